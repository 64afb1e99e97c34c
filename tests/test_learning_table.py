"""scripts/learning_table.py without training: the command it runs, the table it writes from a sweep's
report, and its learning check."""

import argparse
import importlib.util
from pathlib import Path

from sac_runner.report import cli as report
from tests.helpers import make_run

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("learning_table", ROOT / "scripts" / "learning_table.py")
learning_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(learning_table)


def test_the_sweep_is_one_multirun_over_tasks_and_seeds():
    args = argparse.Namespace(
        envs=["Hopper-v5", "Reacher-v5"], seeds=[0, 1, 2], budget=None, eval_interval=None, jobs=1, overrides=[]
    )
    cmd = learning_table.sweep_command(args, Path("sweep"))[len(learning_table.sac_train_command()) :]
    assert cmd == [
        "-m",
        "env=Hopper-v5,Reacher-v5",
        "seed=0,1,2",
        "save_video=false",
        "progress=false",
        "hydra.sweep.dir=sweep",
    ]  # each preset keeps its own budget
    args.budget, args.jobs, args.overrides = 5000, 2, ["experiment=smoke"]
    cmd = learning_table.sweep_command(args, Path("sweep"))
    assert cmd[-4:] == [
        "algorithm.total_steps=5000",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "experiment=smoke",
    ]


def test_a_sweep_report_makes_the_learning_table_with_each_tasks_budget(tmp_path):
    """The README's presets table is not written here: learning_table.py --readme goes through the results
    store (tests/test_results.py)."""
    sweep = tmp_path / "sweep"
    for job, (env, seed, final) in enumerate(
        [("Pendulum-v1", 0, -150.0), ("Pendulum-v1", 1, -170.0), ("Hopper-v5", 0, 900.0)]
    ):
        run = make_run(sweep / str(job), [f"env={env}"], seed, [-1000.0, final], env_id=env, sps=200.0)
        budget = 20000 if env == "Pendulum-v1" else 3000
        (run / "config.yaml").write_text(f"seed: {seed}\nenv:\n  id: {env}\nalgorithm:\n  total_steps: {budget}\n")
    assert report.main([str(sweep), "--out", str(sweep / "report"), "--no-plot", "--resamples", "200"]) == 0
    measured = learning_table.read_measurements(sweep, sweep / "report" / "report.csv")
    assert measured["Pendulum-v1"]["budget"] == 20000 and measured["Hopper-v5"]["budget"] == 3000

    md = learning_table.learning_markdown(measured, ["sac-train", "-m", "env=Pendulum-v1,Hopper-v5"], sweep)
    assert "| Pendulum-v1 | 20k | 0 1 | -160 [-170, -150] | -160 | 10 s | 200 |" in md
    assert "| Hopper-v5 | 3k | 0 | 900 | 900 | 10 s | 200 |" in md


def test_a_learning_check_counts_per_task_the_seeds_that_reached_the_threshold(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for job, final in enumerate([-150.0, -180.0, -900.0]):  # two of three seeds reach -200
        make_run(sweep / str(job), ["env=Pendulum-v1"], job, [-1000.0, final])
    out = sweep / "report"
    assert report.main([str(sweep), "--out", str(out), "--no-plot", "--threshold", "-200", "--resamples", "100"]) == 0
    assert learning_table.check_threshold(out / "report.csv", -200.0, 2)
    assert "learning check: Pendulum-v1: 2/3 seeds reached -200 (need 2)" in capsys.readouterr().out
    assert not learning_table.check_threshold(out / "report.csv", -200.0, 3)
