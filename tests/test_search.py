"""The Optuna search (sac_runner/sweeps/optuna_*.py): search space, pruning, multi-seed trials, the study's
storage, bad input, and each run's TensorBoard HParams entry."""

import json
import math
import os
import shutil

import pytest
import yaml

from sac_runner.config import compose
from sac_runner.errors import SearchError
from sac_runner.objectives import aggregate
from sac_runner.report import cli as report
from sac_runner.sweeps import optuna_study
from sac_runner.sweeps import optuna_sweeper as search
from sac_runner.sweeps.hparams import hyperparameters
from tests.helpers import TINY, run_cli

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState

STUDY = "sac-CartPoleContinuous-v1"
# a budget of 4 evaluations and a small space; the median pruner may stop a trial after its first evaluation
SEARCH = [
    *TINY,
    "algorithm.total_steps=600",
    "algorithm.utd_ratio=0.5",
    "save_video=false",
    "hparams_search=optuna",
    "search.actor_width=choice(16,32)",
    "search.critic_width=choice(16,32)",
]


def search_cli(cwd, *args, timeout=300):
    return run_cli("sac-train", "-m", *SEARCH, *args, cwd=cwd, timeout=timeout)


def load(sweep_dir):
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def one_error_line(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sac-train: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for f in fragments:
        assert f in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------- units
def test_search_space_from_preset_and_command_line():
    params = {"algorithm.tau": "tag(log, interval(1e-3, 0.1))", "algorithm.batch_size": "choice(64, 128)", "x": "3"}
    dists, fixed = search.search_space(
        params, ["algorithm.batch_size=256", "search.actor_width=choice(16,32)", "algorithm.n_envs=range(1,5,2)"]
    )
    d = optuna.distributions
    assert dists == {
        "algorithm.tau": d.FloatDistribution(1e-3, 0.1, log=True),
        "search.actor_width": d.CategoricalDistribution([16, 32]),
        "algorithm.n_envs": d.IntDistribution(1, 3, step=2),
    }
    assert fixed == ["x=3", "algorithm.batch_size=256"]  # a plain value on the command line fixes a parameter
    with pytest.raises(SearchError, match="hparams_search.seeds"):
        search.search_space({}, ["seed=0,1"])


def test_settings_and_pruners():
    from omegaconf import OmegaConf

    ok = OmegaConf.create({"seeds": 2, "aggregate": "iqm", "pruner": {"type": "hyperband"}})
    optuna_study.check_settings(ok)
    for bad, match in (
        ({"seeds": 0}, "hparams_search.seeds=0 must be an integer >= 1"),
        ({"aggregate": "median"}, "hparams_search.aggregate=median"),
        ({"pruner": {"type": "asha"}}, "hparams_search.pruner.type=asha is not a pruner"),
    ):
        with pytest.raises(SearchError, match=match):
            optuna_study.check_settings(OmegaConf.merge(ok, bad))
    kinds = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
    }
    for kind, cls in kinds.items():
        assert isinstance(optuna_study.make_pruner({"type": kind}, 10000), cls)
    assert optuna_study.make_pruner({"type": "median", "warmup": 0.5}, 10000)._n_warmup_steps == 5000
    assert aggregate([1.0, 2.0, 6.0], "mean") == 3.0
    assert aggregate([0.0, 1.0, 2.0, 100.0], "iqm") == 1.5
    assert math.isnan(aggregate([1.0, float("nan")], "mean"))


def test_hparams_are_the_runs_overrides_less_the_keys_that_are_not_hyperparameters(tmp_path):
    overrides = ["seed=3", "algorithm.tau=0.01", "progress=false", "device=cpu", "threads=1", "hydra.run.dir=x"]
    cfg = compose("env=Pendulum-v1", *overrides)
    assert "preset" in cfg  # an env preset's description: a key of the run's config, not a hyperparameter
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hp = hyperparameters(cfg, tmp_path)
    assert hp["seed"] == 3 and hp["algorithm.tau"] == 0.01 and hp["env.id"] == "Pendulum-v1"
    assert hp["actor_optimizer._target_"] == "Adam" and hp["architecture.critic_hidden_sizes"] == "64-64"
    assert not [k for k in hp if k.startswith(("progress", "device", "threads", "hydra", "preset"))], hp


# ---------------------------------------------------------------------------------------------- searches
@pytest.fixture(scope="module")
def pruned_search(tmp_path_factory):
    """4 trials of 2 seeds each, one after the other, pruned by the median rule after the first trial."""
    cwd = tmp_path_factory.mktemp("search")
    proc = search_cli(
        cwd,
        "hydra.sweeper.n_trials=4",
        "hparams_search.seeds=2",
        "hparams_search.pruner.n_startup_trials=1",
        f"hydra.sweep.dir={cwd / 'sweep'}",
    )
    return cwd / "sweep", proc


@pytest.mark.system
def test_pruned_multi_seed_search(pruned_search):
    sweep_dir, proc = pruned_search
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(sweep_dir).trials
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE, TrialState.PRUNED}, trials
    for t in trials:
        jobs = [sweep_dir / str(j) for j in t.user_attrs["jobs"]]
        assert len(jobs) == 2 and all((j / "config.yaml").is_file() for j in jobs)
        seeds = sorted(yaml.safe_load((j / "config.yaml").read_text())["seed"] for j in jobs)
        assert seeds == [1, 2]  # seed, seed + 1
        summaries = [json.loads((j / "summary.json").read_text()) for j in jobs]
        assert t.intermediate_values  # every evaluation was reported
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(sum(s["objective"] for s in summaries) / 2)  # the mean over the seeds
            assert all(s["env_steps"] == 600 and not s.get("pruned") for s in summaries)
            assert sorted(t.intermediate_values) == [150, 300, 450, 600]
        else:  # both seeds stopped early, and their job directories say so
            assert all(s["pruned"]["trial"] == t.number and s["env_steps"] < 600 for s in summaries)
            assert all(json.loads((j / "pruned.json").read_text())["trial"] == t.number for j in jobs)
            assert not any((j / "failed.json").exists() for j in jobs)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["trials"]["PRUNED"] >= 1 and results["best_value"] == pytest.approx(load(sweep_dir).best_value)
    assert "PRUNED" in proc.stdout


@pytest.mark.system
def test_report_lists_pruned_runs_apart(pruned_search, tmp_path):
    sweep_dir, _ = pruned_search
    assert report.main([str(sweep_dir), "--no-plot", "--out", str(tmp_path)]) == 0
    import csv

    with open(tmp_path / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    pruned = [r for r in runs if r["skip_reason"].startswith("pruned: trial")]
    complete = [r for r in runs if r["status"] == "complete"]
    assert pruned and complete and len(pruned) + len(complete) == 8


@pytest.mark.system
def test_hparams_in_tensorboard(pruned_search):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    sweep_dir, _ = pruned_search
    for job in ("0", "2"):
        tb = sweep_dir / job / "tensorboard"
        ea = EventAccumulator(str(tb))
        ea.Reload()
        final = ea.Scalars("hparams/pruned")
        assert len(final) == 1
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert final[0].value == (1.0 if summary.get("pruned") else 0.0) and final[0].step == summary["env_steps"]
        assert ea.Scalars("hparams/objective")[0].value == pytest.approx(summary["objective"])
        assert "config/text_summary" in ea.Tags()["tensors"]
        content = ea.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert {"search.actor_width", "algorithm.tau", "actor_optimizer.lr", "architecture.critic_hidden_sizes"} <= set(
            hp
        )
        assert hp["trial"].number_value == int(job) // 2


@pytest.mark.system
def test_parallel_search_with_seeds_in_parallel(tmp_path):
    """joblib: 2 trials x 2 seeds launched together, 2 jobs at a time, all reporting to one SQLite study."""
    proc = search_cli(
        tmp_path,
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hparams_search.seeds=2",
        "hparams_search.aggregate=iqm",
        "hparams_search.pruner.type=successive_halving",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout
    trials = load(tmp_path / "sweep").trials
    assert len(trials) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sorted(j for t in trials for j in t.user_attrs["jobs"]) == [0, 1, 2, 3]
    assert all(t.intermediate_values for t in trials)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.system
def test_bad_search_input_is_one_line(pruned_search, tmp_path):
    sweep_dir, _ = pruned_search
    one_error_line(search_cli(tmp_path, "hparams_search.pruner.type=asha"), "hparams_search.pruner.type=asha")
    one_error_line(search_cli(tmp_path, "hparams_search.seeds=0"), "hparams_search.seeds=0")
    one_error_line(
        search_cli(tmp_path, "hydra.sweeper.storage=sqlite:////nonexistent/dir/optuna.db"),
        "hydra.sweeper.storage=sqlite:////nonexistent/dir/optuna.db cannot be opened",
    )
    one_error_line(
        search_cli(
            tmp_path, "search.critic_width=choice(16,64)", f"hydra.sweeper.storage=sqlite:///{sweep_dir}/optuna.db"
        ),
        f"study {STUDY}",
        "another space",
        "search.critic_width",
    )
    assert len(load(sweep_dir).trials) == 4  # nothing was added
    assert not any((tmp_path / "outputs").glob("multirun/*/*/*"))  # no job ran


def test_slurm_without_sbatch_is_one_line(tmp_path):
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (shutil.which("sbatch", path=p)))
    proc = run_cli(
        "sac-train", "-m", "hydra/launcher=slurm", *TINY, "seed=0,1", cwd=tmp_path, env={"PATH": path}, timeout=120
    )
    one_error_line(proc, "sbatch, which is not on PATH")


@pytest.mark.system
def test_resume_keeps_one_hparams_entry(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    proc = run_cli("sac-train", *TINY, "save_video=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("sac-train", f"resume={run_dir}", "algorithm.total_steps=450", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = list((run_dir / "tensorboard").glob("*hparams*"))
    assert len(files) == 1
    ea = EventAccumulator(str(run_dir / "tensorboard"))
    ea.Reload()
    assert [(e.step, e.value) for e in ea.Scalars("hparams/pruned")] == [(450, 0.0)]
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    sessions = [
        v.tag
        for f in (run_dir / "tensorboard").glob("events.out.tfevents.*")
        for e in EventFileLoader(str(f)).Load()
        for v in e.summary.value
        if v.tag == "_hparams_/session_start_info"
    ]
    assert len(sessions) == 1
