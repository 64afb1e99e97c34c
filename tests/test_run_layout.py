"""Run directories written by sac_runner 0.1.0 (tests/data/v0.1.0, see its README) still replay, resume and report."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from sac_runner.rundir import read_evals
from tests.helpers import run_cli

DATA = Path(__file__).parent / "data" / "v0.1.0"
RUNS = {"Pendulum-v1": (600, 300), "CartPoleContinuous-v1": (400, 200)}  # total_steps, eval_interval


def copy_run(env_id, tmp_path) -> Path:
    """A writable copy (replaying writes a video, resuming writes into the run)."""
    return Path(shutil.copytree(DATA / env_id, tmp_path / env_id))


@pytest.mark.parametrize("env_id", list(RUNS))
def test_sac_visualize_replays_an_old_run(env_id, tmp_path):
    run = copy_run(env_id, tmp_path)
    proc = run_cli("sac-visualize", run, "--episodes", "2", "--no-video", timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert f"{env_id}, {run / 'checkpoints' / 'best.pt'} (env step {summary['best_step']})" in proc.stdout
    assert "return over 2 deterministic episode(s), seeds 0..1: mean" in proc.stdout
    proc = run_cli("sac-visualize", run / "checkpoints" / "last.pt", "--episodes", "1", "--no-video", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"(env step {summary['env_steps']})" in proc.stdout


def test_sac_visualize_records_an_old_runs_video(tmp_path):
    run = copy_run("Pendulum-v1", tmp_path)
    proc = run_cli("sac-visualize", run, "--episodes", "1", "--max-frames", "20", timeout=120)
    assert proc.returncode == 0, proc.stderr
    video = run / "videos" / "visualize-best.mp4"
    assert video.is_file() and video.stat().st_size > 0


@pytest.mark.parametrize("env_id", list(RUNS))
def test_sac_train_resumes_an_old_run_with_a_larger_budget(env_id, tmp_path):
    run = copy_run(env_id, tmp_path)
    total, interval = RUNS[env_id]
    before = json.loads((run / "summary.json").read_text())
    proc = run_cli("sac-train", f"resume={run}", f"algorithm.total_steps={total + interval}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"sac-train: resuming {run} at step {total} of {total + interval}" in proc.stdout
    after = json.loads((run / "summary.json").read_text())
    assert after["env_steps"] == total + interval
    # 0.1.0 wrote unlabelled [env_steps, mean, std, min, max] arrays; the resumed run writes labelled records,
    # which read_evals reads as it reads the old ones
    assert isinstance(before["evals"][0], list) and isinstance(after["evals"][0], dict)
    old, new = read_evals(before["evals"]), read_evals(after["evals"])
    assert [e.env_steps for e in new] == [interval * (i + 1) for i in range(total // interval + 1)]
    assert new[: len(old)] == old  # the history carried over unchanged
    assert after["updates"] > before["updates"]
    # the same config with the new budget and the resume, plus the key 0.1.0 did not have, at today's default
    # (keys.py, from_defaults): the logger, TensorBoard as 0.1.0 wrote it
    assert (run / "config.yaml").read_text() == (DATA / env_id / "config.yaml").read_text().replace(
        f"total_steps: {total}\n", f"total_steps: {total + interval}\n"
    ).replace("resume: null\n", f"resume: {run}\n") + "logger:\n  tensorboard:\n    video: true\n"


def test_sac_report_reads_old_runs(tmp_path):
    from sac_runner.report import cli as report

    out = tmp_path / "report"
    assert report.main([str(DATA), "--out", str(out), "--no-plot", "--resamples", "100"]) == 0
    with (out / "runs.csv").open(newline="") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 2 and all(not r["skip_reason"] for r in runs), runs
    with (out / "report.csv").open(newline="") as f:
        rows = {r["env"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(RUNS)
    for env_id, row in rows.items():
        summary = json.loads((DATA / env_id / "summary.json").read_text())
        assert float(row["final_mean"]) == pytest.approx(read_evals(summary["evals"])[-1].mean, rel=1e-6)
        assert float(row["best_mean"]) == pytest.approx(summary["best_return"], rel=1e-6)
        assert row["runs"] == "1"
