"""threads=auto (issue 20, item 1): more than one thread only while OpenMP's waiting threads sleep
(OMP_WAIT_POLICY=PASSIVE, set by `import sac_runner` before torch loads); spinning ones made runs up to 80x slower
on a busy machine."""

import os
import subprocess
import sys

from sac_runner import threads

SHOW = "import os, sys; {first}; print(os.environ.get('OMP_WAIT_POLICY'))"


def wait_policy(first: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", SHOW.format(first=first)], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_sac_runner_first_makes_openmp_threads_wait_passively():
    assert wait_policy("import sac_runner") == "PASSIVE"
    assert wait_policy("import sac_runner", OMP_WAIT_POLICY="active") == "active"  # the user's choice stays
    # torch (a stand-in, to keep this fast) loaded first: too late for libgomp, left alone
    assert wait_policy("sys.modules['torch'] = type(sys)('torch'); import sac_runner") == "None"


def test_auto_uses_one_thread_unless_waiting_threads_sleep(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert threads.resolve_threads("auto") == threads.available_cores()
    assert threads.resolve_threads("auto", 64) == 1
    for spinning in ("ACTIVE", "active", ""):
        monkeypatch.setenv("OMP_WAIT_POLICY", spinning)
        assert threads.resolve_threads("auto") == 1
        assert threads.resolve_threads(2) == 2  # a number is taken as given
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert threads.resolve_threads("auto") == 1
