"""sac-train's command line before Hydra runs (sac_runner/overrides.py) and a refused command's traces (issue 20,
items 3, 4, 5, 6 and 9's --version): typos in keys and group options, env.id= without env=, env.kwargs.<name>=,
--version; and that a refused command leaves nothing on disk."""

import pytest
from omegaconf import OmegaConf

from sac_runner import envs, overrides, presets, runs
from sac_runner.config import compose, validate
from sac_runner.rundir import CONFIG_FILE
from tests.helpers import sac_train

presets.register_env_configs()


def check(*argv: str) -> str | None:
    """What sac-train's pre-check says about these arguments (after the documented rewriting, as train() does)."""
    return overrides.check_overrides(overrides.documented_argv(list(argv)))


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["algoritm.total_steps=10"],
            "algoritm.total_steps is not a key of the config; did you mean algorithm.total_steps?",
        ),
        (["total_steps=3000"], "total_steps is not a key of the config; did you mean algorithm.total_steps?"),
        (["env=Pendulum-v1", "algorithm.learning_start=5"], "did you mean algorithm.learning_starts?"),
        (
            ["-m", "seed=0,1", "algorithm.tua=0.1,0.2"],
            "algorithm.tua is not a key of the config; did you mean algorithm.tau?",
        ),
        (["critic_optimizer.weight_decay=0.1"], "(critic_optimizer has no weight_decay); +critic_optimizer.weight_"),
        (["env.kwarg.g=5.0"], "env.kwarg.g is not a key of the config; did you mean env.kwargs.g?"),
        (["hydra.launcher.n_jobs=2"], "is not a key of hydra/launcher=basic, the one in use; choose the one that"),
        (["-m", "hparams_search=optuna", "hydra.sweeper.n_trial=2"], "did you mean hydra.sweeper.n_trials?"),
        (["algorithm.foo=1"], "(algorithm has no foo); +algorithm.foo=<value> adds it"),  # no far-fetched match
        (
            ["architecture=tiny"],
            "architecture=tiny is not an option of architecture (options: default, large, medium, small); "
            "use e.g. architecture=default",
        ),
        (
            ["experiment=smok"],
            "experiment=smok is not an option of experiment (options: mujoco, smoke); did you mean experiment=smoke?",
        ),
        (["optimizer@actor_optimizer=adamm"], "(options: adam, adamw); did you mean optimizer@actor_optimizer=adam?"),
        (["-m", "hydra/launcher=paralel", "seed=0,1"], "did you mean hydra/launcher=parallel?"),
        (["hydra/launchr=parallel"], "hydra/launchr is not a config group; did you mean hydra/launcher?"),
        (["logger=[tensorboard,wandbb]"], "logger=[tensorboard,wandbb]: wandbb is not an option of logger"),
        (["logger=tensorbord"], "did you mean logger=tensorboard?"),
        (["env.id=Pendulum-v1"], "keeps the CartPoleContinuous-v1 preset's hyperparameters and budget"),
        (["seed=1", "env.id=Hopper-v5"], "use env=Hopper-v5 (its preset"),
    ],
)
def test_mistakes_are_named_in_one_line_with_the_fix(argv, message):
    found = check(*argv)
    assert found is not None and message in found and "\n" not in found, found


def test_the_launcher_list_shows_only_the_launchers_we_document():
    found = check("hydra/launcher=paralel")
    assert found is not None
    options = found.split("(options: ")[1].split(")")[0].split(", ")
    assert {"parallel", "slurm"} <= set(options)
    assert not {"basic", "joblib", "submitit_local", "submitit_slurm"} & set(options)  # Hydra's plugins


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["env=Pendulum-v1", "algorithm.total_steps=10"],
        ["env=Pendulum-v1", "env.kwargs.g=5.0"],  # the documented form (item 4)
        ["env=Pendulum-v1", "+env.kwargs.g=5.0"],
        ["env=generic", "env.id=Pendulum-v1"],  # env= given too: deliberate
        ["env.id=CartPoleContinuous-v1"],  # the default preset's own id
        ["architecture.critic_hidden_sizes=[400,300]", "architecture=small"],
        ["optimizer@critic_optimizer=adamw", "critic_optimizer.weight_decay=0.05"],  # a key of the chosen option
        ["logger=[tensorboard,wandb]", "logger.wandb.project=mine"],  # a list picks several options
        ["logger=[]"],
        ["-m", "hparams_search=optuna"],
        ["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1"],
        ["-m", "algorithm.tau=0.01,0.02", "architecture=small,default"],
        ["resume=/no/such/run", "algorithm.total_steps=900"],
        ["hydra.run.dir=somewhere", "hydra.job.chdir=false"],
        ["+my_extra_key=1"],
        ["--config-dir", "my_conf", "architecture=mine", "mykey=1"],  # options and keys may come from there
    ],
)
def test_valid_commands_pass_the_check(argv):
    assert check(*argv) is None


def test_env_kwargs_reach_gymnasium_make_in_the_documented_form():
    assert overrides.documented_argv(["-m", "env.kwargs.g=5.0", "+env.kwargs.h=1", "seed=0"]) == [
        "-m",
        "++env.kwargs.g=5.0",
        "+env.kwargs.h=1",
        "seed=0",
    ]
    for env in ("Pendulum-v1", "generic"):
        extra = ["env.id=Pendulum-v1"] if env == "generic" else []
        cfg = validate(compose(f"env={env}", *extra, "env.kwargs.g=5.0"))
        assert OmegaConf.to_container(cfg.env.kwargs) == {"g": 5.0}
        made = envs.make_env(cfg.env)
        try:
            assert made.unwrapped.g == 5.0  # type: ignore[attr-defined]
        finally:
            made.close()


def test_version_is_ours():
    assert overrides.asks_version(["--version"]) and overrides.asks_version(["env=x", "--vers"])
    assert not overrides.asks_version(["-v"]) and not overrides.asks_version(["version=1"])
    lines = overrides.version_text().splitlines()
    assert lines[0].startswith("sac_runner 0.") and [line.split()[0] for line in lines[1:]] == [
        "torch",
        "gymnasium",
        "hydra-core",
    ]


def test_a_run_refused_inside_hydra_removes_exactly_what_it_created(tmp_path):
    """remove_refused_run: what Hydra and the run made in a directory this invocation created goes; a file
    that someone else put there stays, and so does a directory that existed before."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    run_dir = outputs / "Env" / "day" / "time"
    (run_dir / ".hydra").mkdir(parents=True)
    for f in runs.HYDRA_FILES:
        (run_dir / ".hydra" / f).write_text("x")
    (run_dir / CONFIG_FILE).write_text("x")
    (run_dir / "sac-train.log").write_text("")
    runs._CREATED = runs.Created(run_dir, outputs / "Env", run_dir / ".hydra")
    try:
        runs.remove_refused_run("sac-train.log")
        assert list(tmp_path.rglob("*")) == [outputs]

        # a resumed run's directory: only the new .hydra/resume-* subdirectory goes
        (run_dir / ".hydra" / "resume-1").mkdir(parents=True)
        for f in runs.HYDRA_FILES:
            (run_dir / ".hydra" / "resume-1" / f).write_text("x")
        (run_dir / CONFIG_FILE).write_text("the run's own")
        runs._CREATED = runs.Created(run_dir, None, run_dir / ".hydra" / "resume-1")
        runs.remove_refused_run("sac-train.log")
        assert sorted(p.name for p in run_dir.rglob("*")) == [".hydra", CONFIG_FILE]
    finally:
        runs._CREATED = None


@pytest.mark.parametrize(
    "args,needle",
    [
        (["seed=abc"], "seed='abc' is not an integer"),  # validation: before Hydra makes the run directory
        (["hparams_search=optuna"], "runs a search only as a multirun; add -m"),
        (["algorithm.total_steps=500"], "leaves no gradient step after the algorithm.learning_starts=1000"),
        (["algoritm.total_steps=10"], "did you mean algorithm.total_steps?"),  # before Hydra runs
    ],
)
def test_a_refused_command_is_one_line_exit_2_and_leaves_nothing(tmp_path, args, needle):
    proc = sac_train(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sac-train: error: ") and needle in line
    assert list(tmp_path.iterdir()) == []  # no outputs/<env>/<date>/<time>/.hydra, no cli.log


def test_sac_train_version_and_env_kwargs_through_hydra(tmp_path):
    proc = sac_train("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("sac_runner ") and "Hydra" not in proc.stdout
    proc = sac_train("env=Pendulum-v1", "env.kwargs.g=5.0", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert OmegaConf.create(proc.stdout).env.kwargs == {"g": 5.0}
    assert list(tmp_path.iterdir()) == []
