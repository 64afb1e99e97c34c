"""sac-report on synthetic run directories (TensorBoard events written directly, no training)."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from sac_runner import objectives
from sac_runner.report import cli as report
from sac_runner.report import data as report_data
from sac_runner.report import groups as report_groups
from sac_runner.report import stats as report_stats
from sac_runner.rundir import EVAL_FIELDS
from tests.helpers import make_run, read_csv


@pytest.fixture
def sweep(tmp_path):
    """A sweep directory: two groups (tau 0.01: three seeds, tau 0.05: two seeds) and five jobs that
    cannot be used: failed, still running, not started, diverged, interrupted by SIGTERM."""
    d = tmp_path / "sweep"
    common = ["algorithm.total_steps=3000", "progress=false"]
    make_run(d / "0", ["algorithm.tau=0.01", *common], 0, [-900.0, -400.0, -200.0])
    make_run(d / "1", ["algorithm.tau=0.01", *common], 1, [-1000.0, -300.0, -150.0])
    make_run(d / "2", ["algorithm.tau=0.01", *common], 2, [-800.0, -600.0, -350.0])
    make_run(d / "3", ["algorithm.tau=0.05", *common], 0, [-1100.0, -900.0, -700.0], sps=800.0)
    make_run(d / "4", ["algorithm.tau=0.05", *common], 1, [-1000.0, -800.0, -600.0], sps=800.0)
    failed = d / "5"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=2", "algorithm.tau=1.5", *common]))
    (failed / "failed.json").write_text(
        json.dumps({"error": "ConfigError", "message": "algorithm.tau=1.5 is outside (0.0, 1.0]"})
    )
    make_run(d / "6", ["algorithm.tau=0.05", *common], 2, [-1200.0, -1000.0], summary=False)
    (d / "7").mkdir()
    make_run(d / "8", ["algorithm.tau=0.2", *common], 0, [-1200.0, float("nan")])
    make_run(d / "9", ["algorithm.tau=0.05", *common], 3, [-1300.0], interrupted="SIGTERM")
    (d / "multirun.yaml").write_text("{}")
    return d


def test_statistics():
    lo, hi = report_stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    assert lo < 2.5 < hi and (lo, hi) == report_stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    assert lo >= 1.0 and hi <= 4.0
    assert all(math.isnan(v) for v in report_stats.bootstrap_ci([5.0]))
    assert objectives.iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)  # 25% trimmed from each end
    assert objectives.iqm([1, 2, 3, 100, 200, 300, 400, 500]) == pytest.approx(150.75)  # mean of 3, 100, 200, 300
    assert objectives.iqm([2.0, 4.0]) == pytest.approx(3.0)


def test_each_bootstrap_interval_is_computed_once(sweep, monkeypatch):
    """The resampling is the slow part: a group's row draws one interval for the final and one for the best
    returns, its curve one per evaluation step."""
    real = report_stats.bootstrap_ci
    calls = []

    def counting(x, *args, **kwargs):
        calls.append(list(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(report_stats, "bootstrap_ci", counting)
    runs = [report_data.load_run(sweep / str(i)) for i in range(3)]
    (group,) = report_groups.make_groups(runs)
    row = report_stats.group_stats(group, -300.0, 0.9, 500, 1)
    assert calls == [[r.final for r in runs], [r.best for r in runs]]
    assert (row["final_ci_low"], row["final_ci_high"]) == real(calls[0], 0.9, 500, 1)
    assert (row["best_ci_low"], row["best_ci_high"]) == real(calls[1], 0.9, 500, 1)
    calls.clear()
    steps, _, lo, hi = report_stats.group_curve(group, 0.9, 500, 1)
    assert len(calls) == len(steps) == 3
    assert (lo[-1], hi[-1]) == real([r.returns[-1] for r in runs], 0.9, 500, 1)


def test_report_on_a_partial_sweep(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out), "--threshold", "-300", "--resamples", "2000"]) == 0
    printed = capsys.readouterr().out

    rows = read_csv(out / "report.csv")
    assert [r["group"] for r in rows] == ["algorithm.tau=0.01", "algorithm.tau=0.05"]
    g1, g2 = rows
    assert (g1["runs"], g1["seeds"], g2["runs"], g2["seeds"]) == ("3", "0 1 2", "2", "0 1")
    assert float(g1["final_mean"]) == pytest.approx(-700.0 / 3)
    assert float(g1["final_ci_low"]) <= -700.0 / 3 <= float(g1["final_ci_high"])
    assert float(g1["best_mean"]) == pytest.approx(-700.0 / 3)
    assert float(g2["final_mean"]) == pytest.approx(-650.0)
    assert float(g1["final_iqm"]) == pytest.approx(-700.0 / 3)  # nothing trimmed from 3 values
    # -300 first reached at 3000 (seed 0), 2000 (seed 1), never (seed 2)
    assert g1["reached"] == "2/3" and float(g1["steps_to_threshold_mean"]) == pytest.approx(2500.0)
    assert g2["reached"] == "0/2" and g2["steps_to_threshold_mean"] == "nan"
    assert float(g2["steps_per_second"]) == pytest.approx(800.0)
    assert float(g1["wall_time_s"]) == pytest.approx(6.0)

    runs = {r["run_dir"].rsplit("/", 1)[-1]: r for r in read_csv(out / "runs.csv")}
    assert len(runs) == 10
    assert [k for k, r in runs.items() if r["status"] == "complete"] == ["0", "1", "2", "3", "4"]
    assert "failed: ConfigError: algorithm.tau=1.5" in runs["5"]["skip_reason"]
    assert "incomplete: no summary.json" in runs["6"]["skip_reason"]
    assert "nothing written yet" in runs["7"]["skip_reason"]
    assert "diverged" in runs["8"]["skip_reason"]
    assert "interrupted by SIGTERM" in runs["9"]["skip_reason"] and "resume=" in runs["9"]["skip_reason"]

    md = (out / "report.md").read_text()
    assert "| algorithm.tau=0.01 | 3 | 0 1 2 |" in md and "Skipped 5 run(s)" in md
    assert "`algorithm.total_steps=3000`" in md  # the common overrides are named once, not in the labels
    assert "skipped 5 run(s)" in printed and "algorithm.tau=1.5" in printed

    from PIL import Image

    with Image.open(out / "report.png") as png:
        assert png.format == "PNG" and png.size[0] > 500
        assert png.text["Description"] == "2 groups: algorithm.tau=0.01; algorithm.tau=0.05"


def test_include_incomplete_and_run_dirs(sweep, tmp_path):
    out = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out), "--include-incomplete", "--no-plot"]) == 0
    rows = {r["group"]: r for r in read_csv(out / "report.csv")}
    assert rows["algorithm.tau=0.05"]["seeds"] == "0 1 2 3"  # with the running and the interrupted job
    assert not (out / "report.png").exists()

    # run directories given one by one; the default output directory is ./report
    out2 = tmp_path / "cwd"
    out2.mkdir()
    cwd = os.getcwd()
    os.chdir(out2)
    try:
        assert report.main([str(sweep / "0"), str(sweep / "3"), "--no-plot"]) == 0
    finally:
        os.chdir(cwd)
    rows = read_csv(out2 / "report" / "report.csv")
    assert [(r["group"], r["runs"]) for r in rows] == [("algorithm.tau=0.01", "1"), ("algorithm.tau=0.05", "1")]
    assert rows[0]["final_ci_low"] == "nan"  # no interval from one run

    assert report.main([str(sweep / "3"), str(sweep / "0"), "--no-plot", "--sort", "final", "--out", str(out2)]) == 0
    assert [r["group"] for r in read_csv(out2 / "report.csv")] == ["algorithm.tau=0.01", "algorithm.tau=0.05"]


def test_default_output_in_the_sweep_dir_and_rerun(sweep):
    assert report.main([str(sweep), "--no-plot"]) == 0
    assert (sweep / "report" / "report.csv").is_file()
    assert report.main([str(sweep), "--no-plot"]) == 0  # report/ itself is not taken for a run


def test_errors(tmp_path, capsys):
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 1
    assert "no run directories" in capsys.readouterr().err
    failed = tmp_path / "only_failed" / "0"
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text(json.dumps({"error": "TrainingError", "message": "critic loss became nan"}))
    assert report.main([str(tmp_path / "only_failed"), "--no-plot"]) == 1
    assert "critic loss became nan" in capsys.readouterr().err


def test_a_step_logged_twice_keeps_its_last_value(tmp_path):
    """A run resumed from an earlier checkpoint logs some evaluation steps again (TensorBoard's curve: the
    resumed session is still running, so there is no summary.json yet)."""
    run = make_run(tmp_path / "r", [], 0, [1.0, 2.0], summary=False)
    w = SummaryWriter(str(run / "tensorboard"))
    w.add_scalar("eval/return_mean", 5.0, 2000)
    w.add_scalar("eval/return_mean", 6.0, 3000)
    w.close()
    r = report_data.load_run(run)
    assert r.skip_reason is None
    assert r.steps.tolist() == [1000, 2000, 3000] and r.returns.tolist() == [1.0, 5.0, 6.0]
    assert np.isfinite(r.wall_time_s)


def test_a_failed_job_resumed_afterwards_counts(tmp_path):
    run = tmp_path / "0"
    run.mkdir()
    (run / "failed.json").write_text(json.dumps({"error": "Interrupted", "message": "stopped by signal 15"}))
    make_run(tmp_path / "tmp", [], 0, [1.0, 2.0])
    for f in (tmp_path / "tmp").iterdir():
        f.rename(run / f.name)
    written = (run / "summary.json").stat().st_mtime
    os.utime(run / "failed.json", (written - 10, written - 10))  # resumed later: summary.json is newer
    r = report_data.load_run(run)
    assert r.skip_reason is None and r.complete
    os.utime(run / "failed.json", (written + 10, written + 10))
    assert report_data.load_run(run).skip_reason == "failed: Interrupted: stopped by signal 15"


@pytest.fixture
def env_sweep(tmp_path):
    """A sweep over env presets and seeds (sac-train -m env=Pendulum-v1,Hopper-v5 seed=0,1,2), plus a group on
    Pendulum-v1 with another tau."""
    d = tmp_path / "envs"
    job = 0
    for env, returns in (("Pendulum-v1", [-1000.0, -300.0, -150.0]), ("Hopper-v5", [200.0, 900.0, 2000.0])):
        for seed in range(3):
            make_run(d / str(job), [f"env={env}"], seed, [r + 10 * seed for r in returns], env_id=env)
            job += 1
    for seed in range(2):
        make_run(d / str(job), ["env=Pendulum-v1", "algorithm.tau=0.02"], seed, [-900.0, -500.0, -100.0])
        job += 1
    return d


def test_a_sweep_over_environments_gets_one_group_and_one_panel_each(env_sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert report.main([str(env_sweep), "--out", str(out), "--resamples", "500"]) == 0
    rows = read_csv(out / "report.csv")
    assert [(r["env"], r["group"], r["runs"]) for r in rows] == [  # each environment's groups together
        ("Pendulum-v1", "Pendulum-v1", "3"),
        ("Pendulum-v1", "Pendulum-v1 algorithm.tau=0.02", "2"),
        ("Hopper-v5", "Hopper-v5", "3"),
    ]
    assert float(rows[2]["final_mean"]) == pytest.approx(2010.0)
    assert "| Hopper-v5 | 3 | 0 1 2 |" in (out / "report.md").read_text()
    assert capsys.readouterr().out.startswith("Hopper-v5, Pendulum-v1: 8 run(s) in 3 group(s)")

    from PIL import Image

    with Image.open(out / "report.png") as png:
        assert png.text["Comment"] == "panels: Pendulum-v1; Hopper-v5"
        assert png.text["Description"] == "3 groups: Pendulum-v1; Pendulum-v1 algorithm.tau=0.02; Hopper-v5"
        assert png.size[0] > png.size[1]  # two panels side by side

    # --sort orders the groups within each environment; returns of different tasks are not compared
    assert report.main([str(env_sweep), "--out", str(out), "--no-plot", "--sort", "final"]) == 0
    assert [r["group"] for r in read_csv(out / "report.csv")] == [
        "Pendulum-v1 algorithm.tau=0.02",  # final -100, above the other Pendulum-v1 group's -140
        "Pendulum-v1",
        "Hopper-v5",
    ]


def test_runs_of_two_environments_with_the_same_overrides_are_not_mixed(tmp_path):
    """Run directories of separate single-env sweeps carry no env= override: the config's env.id tells them apart."""
    a = make_run(tmp_path / "a" / "0", ["algorithm.tau=0.01"], 0, [1.0, 2.0], env_id="Pendulum-v1")
    b = make_run(tmp_path / "b" / "0", ["algorithm.tau=0.01"], 0, [3.0, 4.0], env_id="Reacher-v5")
    groups = report_groups.make_groups([report_data.load_run(a), report_data.load_run(b)])
    assert [(g.env_id, g.label, g.detail) for g in groups] == [
        ("Pendulum-v1", "Pendulum-v1", ""),
        ("Reacher-v5", "Reacher-v5", ""),
    ]


# ------------------------------------------------------------------------------ groups from the config that ran
def composed(*overrides):
    """The config.yaml sac-train writes for these overrides (resolved, as a dict)."""
    from omegaconf import OmegaConf

    from sac_runner.config import compose

    return OmegaConf.to_container(compose(*overrides), resolve=True)


def test_runs_with_the_same_values_are_one_group_whatever_set_them(tmp_path, capsys):
    """tau 0.005 by default (Pendulum's preset) and by override is one group; progress never splits groups."""
    d = tmp_path / "mixed"
    by_default = composed("env=Pendulum-v1")
    assert by_default["algorithm"]["tau"] == 0.005
    make_run(d / "0", ["env=Pendulum-v1"], 0, [-900.0, -300.0], config=by_default)
    make_run(d / "1", ["env=Pendulum-v1", "algorithm.tau=0.005"], 1, [-800.0, -200.0], config=by_default)
    quiet = composed("env=Pendulum-v1", "algorithm.tau=0.005", "progress=false")
    make_run(d / "2", ["env=Pendulum-v1", "algorithm.tau=0.005", "progress=false"], 2, [-700.0, -250.0], config=quiet)
    other = composed("env=Pendulum-v1", "algorithm.tau=0.02")
    make_run(d / "3", ["env=Pendulum-v1", "algorithm.tau=0.02"], 0, [-1000.0, -600.0], config=other)
    out = tmp_path / "out"
    assert report.main([str(d), "--out", str(out), "--no-plot"]) == 0
    rows = read_csv(out / "report.csv")
    assert [(r["group"], r["runs"], r["seeds"]) for r in rows] == [
        ("algorithm.tau=0.005", "3", "0 1 2"),
        ("algorithm.tau=0.02", "1", "0"),
    ]
    assert rows[0]["settings"] == "algorithm.tau=0.005"
    runs = read_csv(out / "runs.csv")
    assert [r["group"] for r in runs] == ["algorithm.tau=0.005"] * 3 + ["algorithm.tau=0.02"]
    assert "| algorithm.tau=0.005 | 3 | 0 1 2 |" in (out / "report.md").read_text()


def test_labels_prefer_the_keys_the_command_lines_named(tmp_path):
    """architecture=small sets both hidden sizes; a value derived from another key (search.actor_width sets
    architecture.actor_hidden_sizes) is left out of the label when the named key tells the groups apart."""
    runs = []
    for i, width in enumerate((32, 64)):
        ov = ["hparams_search=optuna", f"search.actor_width={width}"]
        runs.append(make_run(tmp_path / "w" / str(i), ov, 0, [1.0, 2.0], config=composed(*ov)))
    groups = report_groups.make_groups([report_data.load_run(r) for r in runs])
    assert [g.label for g in groups] == ["search.actor_width=32", "search.actor_width=64"]
    assert groups[0].settings == {"search.actor_width": 32}

    runs = []
    for i, arch in enumerate(("small", "medium")):
        ov = [f"architecture={arch}"]
        runs.append(make_run(tmp_path / "a" / str(i), ov, 0, [1.0, 2.0], config=composed(*ov)))
    groups = report_groups.make_groups([report_data.load_run(r) for r in runs])
    assert [g.label for g in groups] == [
        "architecture.actor_hidden_sizes=[64,64] architecture.critic_hidden_sizes=[64,64]",
        "architecture.actor_hidden_sizes=[400,300] architecture.critic_hidden_sizes=[400,300]",
    ]


CARTPOLE = "CartPoleContinuous-v1"


@pytest.fixture
def search(tmp_path):
    """The job directories of an Optuna search as its sweeper launches them: the searched values and the trial
    number as overrides; trials 0 and 1 with two seeds each, trial 2 with one, job 5 failed."""
    d = tmp_path / "search"
    fixed = ["hparams_search=optuna", "algorithm.utd_ratio=0.5"]
    trials = [
        ("0.0003", "0.01", 64, [[-900.0, -400.0], [-950.0, -420.0]]),
        ("0.001", "0.02", 32, [[-700.0, -150.0], [-650.0, -170.0]]),
        ("0.0001", "0.005", 64, [[-1200.0, -900.0]]),
    ]
    job = 0
    for number, (lr, tau, width, curves) in enumerate(trials):
        for seed, curve in enumerate(curves):
            ov = [
                *fixed,
                f"actor_optimizer.lr={lr}",
                f"algorithm.tau={tau}",
                f"search.actor_width={width}",
                f"seed={seed}",
                f"hparams_search.trial={number}",
            ]
            make_run(d / str(job), ov[:-2] + ov[-1:], seed, curve, env_id=CARTPOLE, config=composed(*ov))
            job += 1
    (d / str(job)).mkdir()
    (d / str(job) / "failed.json").write_text(json.dumps({"error": "TrialFailed", "message": "diverged"}))
    return d


def test_trials_are_labelled_by_number_with_their_values_in_a_table(search, tmp_path, capsys):
    out = tmp_path / "out"
    assert report.main([str(search), "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    rows = read_csv(out / "report.csv")
    assert [(r["group"], r["runs"], r["seeds"]) for r in rows] == [
        ("trial 0", "2", "0 1"),
        ("trial 1", "2", "0 1"),
        ("trial 2", "1", "0"),
    ]
    assert rows[1]["settings"] == (
        "actor_optimizer.lr=0.001 algorithm.tau=0.02 hparams_search.trial=1 search.actor_width=32"
    )
    # the terminal and report.md: a short table of each trial's values (the common utd_ratio is not in it)
    table = printed[printed.index("trial values:") :].splitlines()[1:6]
    assert table[0].split() == ["group", "actor_optimizer.lr", "tau", "actor_width"]  # three optimizers have an lr
    assert table[2].split() == ["trial", "0", "0.0003", "0.01", "64"]
    assert table[3].split() == ["trial", "1", "0.001", "0.02", "32"]
    md = (out / "report.md").read_text()
    assert "| group | actor_optimizer.lr | tau | actor_width |" in md and "| trial 2 | 0.0001 | 0.005 | 64 |" in md
    assert "| trial 1 | 2 | 0 1 |" in md
    main_table = printed.splitlines()[1:6]
    assert main_table[2].startswith("trial 0  ") and max(len(line) for line in main_table + table) < 120

    from PIL import Image

    with Image.open(out / "report.png") as png:
        assert png.text["Description"] == "3 groups: trial 0; trial 1; trial 2"


def test_a_stopped_grid_sweep_lists_the_jobs_it_never_started(tmp_path, capsys):
    """Ctrl-C during `sac-train -m seed=0,1,2 algorithm.total_steps=3000` stopped job 0: sac-report names jobs 1
    and 2 and the command that runs them, from the sweep's multirun.yaml."""
    d = tmp_path / "sweep"
    make_run(d / "0", ["algorithm.total_steps=3000"], 0, [-900.0], interrupted="SIGINT")
    hydra = {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None},
        "sweep": {"dir": str(d), "subdir": "${hydra.job.num}"},
        "overrides": {"task": ["seed=0,1,2", "algorithm.total_steps=3000"]},
    }
    (d / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "seed": 1}))
    assert report.main([str(d), "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "sac-report: no usable run among 1 run(s) and 2 job(s) not started; skipped:"
    assert f"{d / '0'}: incomplete: interrupted by SIGINT" in err
    assert f"{d / '2'}: not started" in err and "sac-train -m seed=1,2 algorithm.total_steps=3000" in err
    runs = read_csv(d / "report" / "runs.csv")
    assert [(r["run_dir"].rsplit("/", 1)[-1], r["seed"], r["status"]) for r in runs] == [
        ("0", "0", "skipped"),
        ("1", "1", "skipped"),
        ("2", "2", "skipped"),
    ]

    # resumed to its end, job 0 counts; the two jobs never started are still listed
    make_run(tmp_path / "done", ["algorithm.total_steps=3000"], 0, [-900.0, -300.0])
    (d / "0" / "summary.json").write_text((tmp_path / "done" / "summary.json").read_text())
    assert report.main([str(d), "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 2 run(s)" in printed and "not started" in printed


def test_a_finished_run_s_curve_is_its_summary_s_in_either_form(tmp_path):
    """summary.json's evaluation history is the curve of a finished run, whether labelled (what sac-train writes
    now) or in 0.1.0's [env_steps, mean, std, min, max] arrays; also where no TensorBoard was logged
    (logger=[wandb]). A run without summary.json, or an interrupted one, keeps TensorBoard's curve."""
    returns = [-900.0, -400.0, -200.0]
    arrays = make_run(tmp_path / "arrays", [], 0, returns)
    labelled = make_run(tmp_path / "labelled", [], 0, returns)
    summary = json.loads((labelled / "summary.json").read_text())
    summary["evals"] = [dict(zip(EVAL_FIELDS, e)) for e in summary["evals"]]
    (labelled / "summary.json").write_text(json.dumps(summary))
    no_tb = make_run(tmp_path / "no_tb", [], 0, returns)
    (no_tb / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(no_tb / "tensorboard")
    # the summary wins over TensorBoard for a finished run: here they disagree on purpose
    tb_differs = make_run(tmp_path / "tb_differs", [], 0, [0.0, 0.0, 0.0])
    (tb_differs / "summary.json").write_text(json.dumps(summary))
    for run in (arrays, labelled, no_tb, tb_differs):
        r = report_data.load_run(run)
        assert r.skip_reason is None and r.complete, (run.name, r.skip_reason)
        assert r.steps.tolist() == [1000, 2000, 3000] and r.returns.tolist() == returns, run.name

    interrupted = make_run(tmp_path / "interrupted", [], 0, [1.0, 2.0], interrupted="SIGTERM")
    w = SummaryWriter(str(interrupted / "tensorboard"))  # evaluations after the interrupted summary was written
    w.add_scalar("eval/return_mean", 3.0, 3000)
    w.close()
    r = report_data.load_run(interrupted)
    assert not r.complete and r.returns.tolist() == [1.0, 2.0, 3.0]
    shutil.rmtree(no_tb / "checkpoints")  # not a run any more: a job directory without TensorBoard or evaluations
    (no_tb / "summary.json").write_text(json.dumps({**summary, "evals": []}))
    assert report_data.load_run(no_tb).skip_reason.startswith("no TensorBoard event files")


def test_a_damaged_evaluation_history_is_an_unreadable_summary(tmp_path):
    run = make_run(tmp_path / "r", [], 0, [1.0, 2.0])
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "evals": [[1000, 1.0]]}))
    r = report_data.load_run(run)  # TensorBoard's curve, and the run counts as incomplete
    assert r.skip_reason is None and not r.complete and r.incomplete_reason == "unreadable summary.json"
    assert r.returns.tolist() == [1.0, 2.0]
