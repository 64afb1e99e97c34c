"""Learning checks on real environments: minutes each, so marked slow and deselected by default.

Run them with `pytest -m slow` (or call scripts/learning_check.py directly, which prints the per-seed table).
"""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "learning_check.py"


@pytest.mark.slow
@pytest.mark.parametrize("env,target,within", [("CartPoleContinuous-v1", 475, 30000), ("Pendulum-v1", -200, 20000)])
def test_solves_within_budget_for_4_of_5_seeds(env, target, within, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--env",
            env,
            "--target",
            str(target),
            "--within",
            str(within),
            "--min-pass",
            "4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
