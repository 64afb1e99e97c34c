"""One writer per run directory (issue 17, item 4): sac_runner/rundir_lock.py, and `sac-train resume=<dir>` while
another process still writes there."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sac_runner import rundir_lock
from sac_runner.rundir_lock import RunDirInUse
from tests.helpers import TINY, cli_command, run_cli

DATA = Path(__file__).parent / "data" / "v0.1.0"

HOLD = """
import sys, time
from sac_runner import rundir_lock
rundir_lock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def holder_process(run_dir) -> subprocess.Popen:
    """Another process that holds run_dir's lock (until it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def snapshot(root: Path) -> dict:
    """Every file under root with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_the_lock_is_reentrant_in_a_process_and_released_by_the_last_holder(tmp_path):
    rundir_lock.acquire(tmp_path)
    rundir_lock.acquire(tmp_path)  # a population's launcher and its member's run
    assert str(tmp_path.resolve()) in rundir_lock.held()
    assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    rundir_lock.release(tmp_path)
    assert str(tmp_path.resolve()) in rundir_lock.held()
    rundir_lock.release(tmp_path)
    assert str(tmp_path.resolve()) not in rundir_lock.held()
    rundir_lock.release(tmp_path)  # one release too many: ignored
    with rundir_lock.locked(tmp_path):
        assert str(tmp_path.resolve()) in rundir_lock.held()
    assert str(tmp_path.resolve()) not in rundir_lock.held()


def test_another_process_holds_it_until_it_dies_even_by_kill_9(tmp_path):
    proc = holder_process(tmp_path)
    try:
        with pytest.raises(RunDirInUse) as e:
            rundir_lock.acquire(tmp_path)
        message = str(e.value)
        assert "\n" not in message and f"process {proc.pid} on " in message and f"kill -INT {proc.pid}" in message
        assert str(tmp_path.resolve()) not in rundir_lock.held()
    finally:
        proc.kill()  # SIGKILL: no clean-up of its own; the operating system drops the lock
        proc.wait(timeout=30)
    with rundir_lock.locked(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())


def test_resume_of_a_run_in_use_is_refused_in_one_line_and_writes_nothing(tmp_path):
    run_dir = Path(shutil.copytree(DATA / "Pendulum-v1", tmp_path / "run"))
    proc = holder_process(run_dir)
    try:
        before = snapshot(run_dir)
        out = run_cli("sac-train", f"resume={run_dir}", "algorithm.total_steps=900", cwd=tmp_path)
        after = snapshot(run_dir)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"sac-train: error: resume={run_dir}: ") and f"process {proc.pid} on " in line
    assert after == before  # no .hydra/resume-*, no config.yaml, no log


@pytest.mark.system
def test_a_second_resume_while_the_first_trains(tmp_path):
    """Two sac-train processes on one run directory: the second is refused while the first trains; once the first
    has stopped (Ctrl-C: it saves last.pt), the same command resumes the run."""
    run_dir = tmp_path / "run"
    cmd = [*cli_command("sac-train"), *TINY, "algorithm.total_steps=200000", f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 200
        while not (run_dir / "checkpoints" / "last.pt").is_file():
            assert first.poll() is None, first.communicate(timeout=60)[1][-3000:]
            assert time.time() < deadline, "no last.pt within 200 s"
            time.sleep(0.5)
        config = (run_dir / "config.yaml").stat().st_mtime_ns
        second = run_cli("sac-train", f"resume={run_dir}", cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert f"is in use by process {first.pid} on " in second.stderr and len(second.stderr.splitlines()) == 1
        assert (
            not list((run_dir / ".hydra").glob("resume-*")) and (run_dir / "config.yaml").stat().st_mtime_ns == config
        )
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    steps = json.loads((run_dir / "summary.json").read_text())["env_steps"]
    again = run_cli("sac-train", f"resume={run_dir}", f"algorithm.total_steps={steps + 150}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == steps + 150
