"""scripts/benchmark.py runs both implementations under one evaluation protocol (a smoke test, not a timing)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"


def test_benchmark_compares_sac_runner_and_sb3_on_the_same_schedule(tmp_path):
    """sac_runner and SB3 (SBX too where sbx-rl is installed: the bench extra, not the test extra)."""
    impls = ["sac_runner", "sb3", *(["sbx"] if importlib.util.find_spec("sbx") else [])]
    overrides = [
        "algorithm.learning_starts=100",
        "algorithm.eval_interval=150",
        "algorithm.nb_evals=2",
        "algorithm.batch_size=32",
        "env.max_episode_steps=60",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--steps",
            "400",
            "--seeds",
            "0",
            "--target",
            "10",
            "--arch",
            "small",
            "--out",
            str(tmp_path),
            "--impl",
            *impls,
            "--",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| sac_runner | 64-64 | 1 |" in proc.stdout and "| sb3 | 64-64 | 1 |" in proc.stdout
    assert "ratio sac_runner / sb3, learning-phase steps/s" in proc.stdout
    rows = json.loads((tmp_path / "benchmark.json").read_text())["rows"]
    assert sorted(r["impl"] for r in rows) == sorted(impls)
    for impl in impls:
        run = json.loads((tmp_path / f"{impl}-small-seed0.json").read_text())
        assert [c[0] for c in run["curve"]] == [150, 300, 400]  # the same evaluation steps for both
        assert run["updates"] == 150  # the preset's utd_ratio 0.5: a gradient step every 2 env steps after warm-up
        assert 0 < run["eval_s"] < run["wall_s"]
        assert 0 < run["learn_s"] < run["wall_s"] - run["eval_s"]  # the steps after learning_starts, less evaluations
    for r in rows:
        assert (
            r["train_sps"] > 0
            and r["learn_sps"] > 0
            and r["hidden"] == [64, 64]
            and r["steps_to_target"] in (150, 300, 400, None)
        )


def test_loop_profile_times_each_piece_of_a_loop_step():
    script = SCRIPT.with_name("loop_profile.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--calls", "20", "--", "architecture=small", "algorithm.learning_starts=300"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Pendulum-v1, 64-64, batch 256, device cpu")
    for piece in ("policy", "environment step", "replay-buffer write", "gradient step", "whole loop step"):
        (line,) = [x for x in lines if x.strip().startswith(piece)]
        assert float(line.split()[-2]) > 0
    assert lines[-1].strip().startswith("=>") and "steps/s" in lines[-1]
