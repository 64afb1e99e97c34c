"""Learning checks on real environments: minutes each, so marked slow and deselected by default.

Run them with `pytest -m slow`, or call scripts/learning_table.py with --threshold and --min-pass directly."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_table.py"


@pytest.mark.slow
@pytest.mark.parametrize("env,target,within", [("CartPoleContinuous-v1", 475, 30000), ("Pendulum-v1", -200, 20000)])
def test_solves_within_budget_for_4_of_5_seeds(env, target, within, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--envs", env, "--seeds", "0", "1", "2", "3", "4", "--budget", str(within), "--jobs", "2"),
            *("--threshold", str(target), "--min-pass", "4", "--sweep-dir", str(tmp_path / "sweep")),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"learning check: {env}: " in proc.stdout
