"""Sweeps: `sac-train -m` through the joblib launcher, the Optuna sweeper, failed jobs, the SLURM preset,
and sac-report on the sweeps' own output; the objective and thread counts a job uses."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module

from sac_runner import objectives, threads
from sac_runner.config import compose as compose_run
from sac_runner.errors import TrialFailed
from sac_runner.report import cli as report
from sac_runner.sweeps import plan
from sac_runner.sweeps.multirun import SweepCallback, run_job
from tests.helpers import TINY, cli_command, read_csv, run_cli

SWEEP_TINY = [*TINY, "save_video=false"]


def sac_train(cwd, *args, timeout=240):
    """`sac-train -m <args>` on the tiny budget."""
    return run_cli("sac-train", "-m", *args, *SWEEP_TINY, cwd=cwd, timeout=timeout)


def overrides_of(job_dir: Path) -> list[str]:
    return yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())


# ---------------------------------------------------------------------------------------------- units
def test_objective():
    evals = [[100, 1.0, 0, 0, 0], [200, 3.0, 0, 0, 0], [300, 5.0, 0, 0, 0], [400, 2.0, 0, 0, 0]]
    assert objectives.objective(evals, "final", 3) == pytest.approx(10 / 3)
    assert objectives.objective(evals, "final", 10) == pytest.approx(11 / 4)
    assert objectives.objective(evals, "best") == 5.0
    # trapezoids: (2 + 4 + 3.5) * 100 over a span of 300
    assert objectives.objective(evals, "auc") == pytest.approx(9.5 / 3)
    assert objectives.objective(evals[:1], "auc") == 1.0
    assert math.isnan(objectives.objective([], "final"))
    assert math.isnan(objectives.objective([*evals, [500, float("nan"), 0, 0, 0]], "best"))
    with pytest.raises(ValueError):
        objectives.objective(evals, "median")


def test_threads_outside_a_sweep():
    assert threads.parallel_jobs() == 1
    assert threads.resolve_threads("auto") == threads.available_cores()  # 256-wide networks: every core
    assert threads.resolve_threads("auto", 64) == 1  # small networks: one thread
    assert threads.resolve_threads(3) == 3 and threads.resolve_threads(3, 64) == 3
    assert threads.job_threads(compose_run("threads=auto", "architecture=small")) == 1
    assert threads.job_threads(compose_run("threads=auto", "architecture=default")) == threads.available_cores()


def test_presets_compose():
    import sac_runner.cli  # noqa: F401  (registers the resolvers the config uses)

    with initialize_config_module("sac_runner.conf", version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == -1
        cfg = compose("config", overrides=["hparams_search=optuna"], return_hydra_config=True)
        assert cfg.hydra.sweeper._target_ == "hydra_plugins.sac_runner_optuna.OptunaSearchSweeper"
        assert cfg.hydra.sweeper.direction == "maximize" and cfg.hparams_search.pruner.type == "median"
        assert cfg.hparams_search.seeds == 1 and cfg.hparams_search.trial is None
        assert cfg.hydra.sweeper.storage.startswith("sqlite:///") and cfg.hydra.sweeper.storage.endswith("/optuna.db")
        assert set(cfg.hydra.sweeper.params) == {
            "actor_optimizer.lr",
            "critic_optimizer.lr",
            "algorithm.tau",
            "algorithm.batch_size",
            "algorithm.discount",
            "algorithm.utd_ratio",
            "search.actor_width",
            "search.critic_width",
        }
        cfg = compose("config", overrides=["hparams_search=optuna", "search.critic_width=128"])
        assert list(cfg.architecture.critic_hidden_sizes) == [128, 128]


def test_slurm_preset_composes_into_an_sbatch_script(tmp_path, monkeypatch):
    """The SLURM preset selects the submitit launcher, and submitit accepts all its parameters (as
    hydra-submitit-launcher passes them) and writes the sbatch flags we mean."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    import sac_runner.cli  # noqa: F401

    with initialize_config_module("sac_runner.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.timeout_min=90",
                f"hydra.sweep.dir={tmp_path}",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    params = OmegaConf.to_container(launcher, resolve=True)
    params.pop("_target_")
    assert params["submitit_folder"] == f"{tmp_path}/.submitit/%j"
    # the same steps as SlurmLauncher.launch
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m task", "uid")
    for flag in ("--partition=gpu", "--time=90", "--cpus-per-task=2", "--mem=8GB", "--signal=TERM@120"):
        assert f"#SBATCH {flag}" in script, (flag, script)
    assert "USR2" not in script


@pytest.fixture
def job_context(tmp_path):
    """Make HydraConfig look like job 3 of a multirun with the given launcher and sweeper presets."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    import sac_runner.cli  # noqa: F401

    def enter(*overrides):
        with initialize_config_module("sac_runner.conf", version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.job.num = 3
            cfg.hydra.runtime.output_dir = str(tmp_path / "3")
            cfg.hydra.sweep.dir = str(tmp_path)
            cfg.hydra.overrides.task = ["seed=7"]
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield enter
    HydraConfig.instance().cfg = None


def test_a_failed_job_is_recorded(job_context, tmp_path, capsys):
    def broken(cfg):
        raise RuntimeError("critic loss became\nnan")

    cfg = job_context()
    assert math.isnan(run_job(cfg, broken))  # grid sweep: NaN, the sweep goes on
    record = json.loads((tmp_path / "3" / "failed.json").read_text())
    assert (record["job_num"], record["overrides"], record["error"]) == (3, ["seed=7"], "RuntimeError")
    assert record["message"] == "critic loss became nan" and "Traceback" in record["traceback"]
    assert "sac-train: job 3 failed" in capsys.readouterr().err
    assert run_job(cfg, lambda c: 2.5) == 2.5
    assert not (tmp_path / "3" / "failed.json").exists()  # a job that runs again starts clean

    cfg = job_context("hparams_search=optuna")
    with pytest.raises(TrialFailed, match="RuntimeError: critic loss"):  # Optuna: a FAIL trial
        run_job(cfg, broken)
    with pytest.raises(TrialFailed, match="Diverged"):
        run_job(cfg, lambda c: float("nan"))


def test_a_job_stopped_by_sigterm(job_context, tmp_path):
    def stopped(cfg):
        sys.exit(143)  # what sac-train does after writing its checkpoint on SIGTERM

    cfg = job_context()
    with pytest.raises(SystemExit):  # a local sweep: the stop ends the sweep
        run_job(cfg, stopped)
    cfg = job_context("hydra/launcher=slurm")  # SLURM: one job stopped, the others collected
    assert math.isnan(run_job(cfg, stopped))
    record = json.loads((tmp_path / "3" / "failed.json").read_text())
    assert record["error"] == "Interrupted" and f"sac-train resume={tmp_path / '3'}" in record["message"]


def write_plan(sweep_dir: Path, task: list[str], **sweeper) -> None:
    """The parts of multirun.yaml that Hydra's basic sweeper writes and plan.planned_jobs reads."""
    hydra = {
        "sweeper": {"_target_": plan.BASIC_SWEEPER, "max_batch_size": None, "params": None, **sweeper},
        "sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"},
        "overrides": {"task": task},
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))


def test_the_jobs_a_grid_sweep_plans(tmp_path):
    write_plan(tmp_path, ["seed=0,1", "algorithm.tau=0.01,0.02", "progress=false"])
    assert plan.planned_jobs(tmp_path) == [  # Hydra's order (the last key varies fastest) and spelling (False)
        ["seed=0", "algorithm.tau=0.01", "progress=False"],
        ["seed=0", "algorithm.tau=0.02", "progress=False"],
        ["seed=1", "algorithm.tau=0.01", "progress=False"],
        ["seed=1", "algorithm.tau=0.02", "progress=False"],
    ]
    (tmp_path / "0").mkdir()
    (tmp_path / "2").mkdir()
    missing = plan.not_started(tmp_path)
    assert [n for n, _ in missing] == [1, 3]
    planned = plan.planned_jobs(tmp_path)
    assert (
        plan.describe_jobs(missing, planned) == "job 1 (seed=0 algorithm.tau=0.02), job 3 (seed=1 algorithm.tau=0.02)"
    )
    assert plan.rerun_command([job for _, job in missing]) == "sac-train -m seed=0,1 algorithm.tau=0.02 progress=False"
    # jobs that differ in two keys, or values a comma would split: one command each, quoted for the shell
    assert (
        plan.rerun_command([["seed=1", "a=2"], ["seed=2", "a=3"]])
        == "sac-train -m seed=1 a=2 ; sac-train -m seed=2 a=3"
    )
    sizes = [["seed=1", "x=[64,64]"], ["seed=1", "x=[32,32]"]]
    assert plan.rerun_command(sizes) == "sac-train -m seed=1 'x=[64,64]' ; sac-train -m seed=1 'x=[32,32]'"
    # the sweeper's own params come first, as Hydra's basic sweeper puts them
    write_plan(tmp_path / "p", ["seed=0,1"], params={"algorithm.tau": "0.01,0.02"})
    assert plan.planned_jobs(tmp_path / "p")[:2] == [["algorithm.tau=0.01", "seed=0"], ["algorithm.tau=0.01", "seed=1"]]
    # unknown plans: an Optuna search, job directories not named by number, no multirun.yaml
    write_plan(tmp_path / "o", ["seed=0"], _target_="hydra_plugins.sac_runner_optuna.OptunaSearchSweeper")
    assert plan.planned_jobs(tmp_path / "o") is None and plan.not_started(tmp_path / "o") is None
    write_plan(tmp_path / "s", ["seed=0,1"])
    text = (tmp_path / "s" / "multirun.yaml").read_text().replace("${hydra.job.num}", "job${hydra.job.num}")
    (tmp_path / "s" / "multirun.yaml").write_text(text)
    assert plan.planned_jobs(tmp_path / "s") is None
    assert plan.planned_jobs(tmp_path / "nothing") is None


def test_a_local_sweep_stopped_by_ctrl_c_names_the_jobs_not_started(job_context, tmp_path, capsys):
    """Ctrl-C stops job 3 of 6 (sac-train exits with 130 after its checkpoint): the sweep ends, naming jobs 4 and
    5 and the command that runs them; a second Ctrl-C (KeyboardInterrupt) ends it the same way, without a
    traceback."""
    write_plan(tmp_path, ["seed=0,1,2,3,4,5", "algorithm.tau=0.01"])
    for job in ("0", "1", "2"):
        (tmp_path / job).mkdir()

    def stopped(cfg):
        sys.exit(130)

    def killed(cfg):
        raise KeyboardInterrupt

    cfg = job_context()
    for job in (stopped, killed):
        with pytest.raises(SystemExit) as e:
            run_job(cfg, job)
        assert e.value.code == 130
        (line,) = capsys.readouterr().err.splitlines()
        assert line == (
            f"sac-train: the sweep in {tmp_path} stopped during job 3; 2 of its 6 jobs not started: job 4 (seed=4), "
            f"job 5 (seed=5); run them (in a new sweep directory) with: sac-train -m seed=4,5 algorithm.tau=0.01; "
            f"sac-report {tmp_path} lists every job"
        )
    assert not (tmp_path / "3" / "failed.json").exists()  # the interrupted job resumes: sac-train resume=<job>

    cfg = job_context("hparams_search=optuna", "hparams_search.trial=2")
    with pytest.raises(SystemExit):
        run_job(cfg, stopped)
    err = capsys.readouterr().err
    assert "stopped during job 3 (trial 2); the trials after it were not started" in err
    assert f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db" in err


def test_the_end_of_a_sweep_points_to_sac_report(job_context, tmp_path, capsys):
    cfg = job_context()
    callback = SweepCallback()
    callback.on_multirun_end(cfg)
    assert capsys.readouterr().out == f"sac-train: sweep done; compare its jobs with: sac-report {tmp_path}\n"
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "failed.json").write_text(json.dumps({"job_num": 1, "error": "ConfigError", "message": "bad"}))
    with pytest.raises(SystemExit) as e:
        callback.on_multirun_end(cfg)
    assert e.value.code == 1
    out, err = capsys.readouterr()
    assert f"sac-report {tmp_path}" in out and "1 job(s) of the sweep" in err and "ConfigError: bad" in err


# ---------------------------------------------------------------------------------------------- grid sweeps
@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """2 seeds x 2 taus through the joblib launcher, 2 jobs at a time, with the default sweep directory."""
    cwd = tmp_path_factory.mktemp("grid")
    proc = sac_train(
        cwd,
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "seed=0,1",
        "algorithm.tau=0.005,0.02",
        "threads=auto",
    )
    return cwd, proc


@pytest.mark.system
def test_joblib_multirun_two_by_two(grid_sweep):
    cwd, proc = grid_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout
    # one timestamped sweep directory (its jobs ran in worker processes: same directory all the same)
    sweeps = sorted((cwd / "outputs" / "multirun").glob("*/*"))
    assert len(sweeps) == 1, sweeps
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    combos = set()
    for job in jobs:
        ov = overrides_of(job)
        seed = next(o for o in ov if o.startswith("seed="))
        tau = next(o for o in ov if o.startswith("algorithm.tau="))
        combos.add((seed, tau))
        summary = json.loads((job / "summary.json").read_text())
        assert summary["env_steps"] == 300 and summary["objective"] is not None
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        assert f"seed={cfg['seed']}" == seed and f"algorithm.tau={cfg['algorithm']['tau']}" == tau
        assert cfg["threads"] == max(1, threads.available_cores() // 2)  # auto: its share of the cores
        assert not (job / "failed.json").exists()
    assert combos == {(f"seed={s}", f"algorithm.tau={t}") for s in (0, 1) for t in (0.005, 0.02)}


@pytest.mark.system
def test_report_on_the_grid_sweep(grid_sweep):
    cwd, proc = grid_sweep
    assert proc.returncode == 0
    sweep_dir = next((cwd / "outputs" / "multirun").glob("*/*"))
    out = subprocess.run(
        [sys.executable, "-m", "sac_runner.report", str(sweep_dir), "--threshold", "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = read_csv(sweep_dir / "report" / "report.csv")
    assert [(r["group"], r["runs"], r["seeds"]) for r in rows] == [
        ("algorithm.tau=0.005", "2", "0 1"),
        ("algorithm.tau=0.02", "2", "0 1"),
    ]
    assert all(float(r["steps_per_second"]) > 0 and float(r["wall_time_s"]) > 0 for r in rows)
    assert "algorithm.tau=0.005  2" in out.stdout
    from PIL import Image

    with Image.open(sweep_dir / "report" / "report.png") as png:
        assert png.text["Description"].startswith("2 groups:")


@pytest.mark.system
def test_a_failed_job_does_not_stop_a_grid_sweep(tmp_path):
    """Basic launcher: the invalid job is recorded, the others run; the exit status says one failed."""
    proc = sac_train(tmp_path, "seed=0", "algorithm.tau=1.5,0.01", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "job 0 failed" in proc.stderr and "1 job(s) of the sweep" in proc.stderr
    assert "Traceback" not in proc.stderr
    failed = json.loads((tmp_path / "sweep" / "0" / "failed.json").read_text())
    assert failed["error"] == "ConfigError" and "algorithm.tau=1.5" in failed["message"]
    assert (tmp_path / "sweep" / "1" / "summary.json").is_file()

    assert report.main([str(tmp_path / "sweep"), "--no-plot"]) == 0
    runs = read_csv(tmp_path / "sweep" / "report" / "runs.csv")
    assert [r["status"] for r in runs] == ["skipped", "complete"]
    assert runs[0]["skip_reason"].startswith("failed: ConfigError: algorithm.tau=1.5")


@pytest.mark.system
def test_ctrl_c_during_a_sweep_names_the_jobs_not_started(tmp_path):
    """The README's promise, end to end: Ctrl-C stops job 0 of `sac-train -m seed=0,1` with a resumable checkpoint;
    the message names job 1, which was not started, and so does sac-report."""
    import signal
    import time

    sweep_dir = tmp_path / "sweep"
    args = ["seed=0,1", "algorithm.total_steps=100000", f"hydra.sweep.dir={sweep_dir}"]
    cmd = [*cli_command("sac-train"), "-m", *SWEEP_TINY, *args]  # the budget after TINY's wins
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 200
        while not (sweep_dir / "0" / "checkpoints" / "last.pt").is_file():
            assert proc.poll() is None, proc.communicate(timeout=60)[1][-3000:]
            assert time.time() < deadline, "job 0 wrote no checkpoint within 200 s"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert f"resume with: sac-train resume={sweep_dir / '0'}" in err and "Traceback" not in err
    assert f"the sweep in {sweep_dir} stopped during job 0; 1 of its 2 jobs not started: job 1 (seed=1)" in err
    assert not (sweep_dir / "1").exists()

    out = run_cli("sac-report", sweep_dir, "--no-plot", timeout=120)
    assert out.returncode == 1
    assert "no usable run among 1 run(s) and 1 job(s) not started" in out.stderr
    assert f"{sweep_dir / '1'}: not started" in out.stderr and "; run: sac-train -m " in out.stderr
    assert out.stderr.rstrip().endswith(" seed=1") and "sac-train -m algorithm.total_steps=100000 " in out.stderr


# ---------------------------------------------------------------------------------------------- optuna
@pytest.mark.system
def test_optuna_search_records_failed_trials_and_continues(tmp_path):
    import optuna

    first, second = tmp_path / "search1", tmp_path / "search2"
    # a small, fast search space; tau=1.5 is invalid, so the trials that draw it fail
    space = [
        "algorithm.utd_ratio=0.5",
        "algorithm.batch_size=choice(16,32)",
        "search.actor_width=choice(16,32)",
        "search.critic_width=choice(16,32)",
        "algorithm.tau=choice(0.01,1.5)",
    ]
    proc = sac_train(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", *space, f"hydra.sweep.dir={first}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = f"sqlite:///{first / 'optuna.db'}"
    study = optuna.load_study(study_name="sac-CartPoleContinuous-v1", storage=storage)
    trials = study.trials
    assert len(trials) == 3
    for t in trials:
        expected = (
            optuna.trial.TrialState.FAIL if t.params["algorithm.tau"] == 1.5 else optuna.trial.TrialState.COMPLETE
        )
        assert t.state == expected, (t.number, t.params, t.state)
    states = {t.state for t in trials}
    assert states == {optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE}  # seed 0 draws both
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in complete:  # the value is the objective the job wrote: mean of its last 3 evaluations
        summary = json.loads((first / str(t.number) / "summary.json").read_text())
        assert t.value == pytest.approx(summary["objective"])
        assert summary["objective"] == pytest.approx(
            sum(e["mean"] for e in summary["evals"][-3:]) / len(summary["evals"][-3:])
        )
    assert yaml.safe_load((first / "optimization_results.yaml").read_text())["best_value"] == pytest.approx(
        study.best_value
    )

    # an interrupted or finished search continues from its storage, into a new sweep directory
    proc = sac_train(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=1",
        *space,
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={second}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(optuna.load_study(study_name="sac-CartPoleContinuous-v1", storage=storage).trials) == 4
    assert not (second / "optuna.db").exists()

    # the report over both sweeps: one group per completed trial, the failed ones skipped with the reason
    out = tmp_path / "report"
    assert report.main([str(first), str(second), "--out", str(out)]) == 0
    runs = read_csv(out / "runs.csv")
    assert len(runs) == 4
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert all("TrialFailed" in r["skip_reason"] or "ConfigError" in r["skip_reason"] for r in skipped)
    used = [r for r in runs if r["status"] == "complete"]
    assert len(read_csv(out / "report.csv")) == len({r["group"] for r in used})
