"""`env=<any registered id>`, the env presets, bad env input, and sac-train --help.

Every preset is composed and validated in tests/test_config.py; here: what each preset states about itself,
headless rendering of every preset's task, and one smoke run per suite (MuJoCo, Box2D, classic control) as
one multirun that sac-report then reads. Needs the mujoco and box2d extras (the test extra has both)."""

import json
import re
import subprocess
import sys
from importlib.resources import files

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import yaml

from sac_runner import config, envs, overrides, presets
from sac_runner.config import compose
from sac_runner.report import cli as report
from tests.helpers import TINY, run_cli, sac_train

PRESETS = presets.preset_names()


def preset_text(name):
    return files("sac_runner.conf").joinpath("env", f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_describes_itself_and_names_its_source_as_data(name):
    cfg = compose(f"env={name}")
    assert cfg.env.id == name
    assert cfg.preset.description and cfg.preset.description == presets.preset_description(name)
    assert cfg.preset.source in presets.SOURCES and cfg.preset.source == presets.preset_source(name)
    # --help's line: the description, then the budget and network sizes the preset composes to
    steps, sizes = presets.preset_budget(name)
    assert steps == cfg.algorithm.total_steps and sizes == list(cfg.architecture.critic_hidden_sizes)
    line = presets.preset_line(name)
    assert line.startswith(f"{cfg.preset.description}; ") and len(line) <= 95, line
    # it picks its network size as an architecture option; the provenance is stated once, in presets.SOURCES
    text = preset_text(name)
    assert "override /architecture:" in text
    assert "Haarnoja" not in text and "Source:" not in text and "learning_check" not in text


def test_the_help_line_of_a_preset_states_budget_and_networks():
    assert presets.preset_line("Hopper-v5") == (
        "Hop forward on one leg (11-dim state, 3 joints); 1M steps, 256-256 networks."
    )
    assert presets.preset_line("CartPoleContinuous-v1").endswith("; 30k steps, 64-64 networks.")
    assert [presets.format_steps(n) for n in (30000, 1000000, 2500000, 1500, 999)] == [
        "30k",
        "1M",
        "2.5M",
        "1.5k",
        "999",
    ]


def test_tuned_values_stay_under_another_architecture():
    """MountainCarContinuous-v0 tunes a value of the architecture group (the policy's noise floor) besides picking
    64-64 networks: architecture=large changes the sizes only."""
    for args in (
        ["env=MountainCarContinuous-v0", "architecture=large"],
        ["architecture=large", "env=MountainCarContinuous-v0"],
    ):
        cfg = compose(*args)
        assert list(cfg.architecture.critic_hidden_sizes) == [512, 512, 512]
        assert cfg.architecture.log_std_min == 1.5 and cfg.algorithm.discount == 0.999
    assert compose("env=MountainCarContinuous-v0", "architecture.log_std_min=-5").architecture.log_std_min == -5


def test_any_registered_id_without_a_preset_gets_the_defaults():
    default = compose("env=generic", "env.id=InvertedPendulum-v4")
    cfg = compose("env=InvertedPendulum-v4")
    assert cfg == default and cfg.env.id == "InvertedPendulum-v4"
    assert cfg.algorithm.total_steps == 100000 and list(cfg.architecture.critic_hidden_sizes) == [256, 256]
    assert compose("env=phys2d/CartPole-v1").env.id == "phys2d/CartPole-v1"  # a namespaced id
    # the command line still wins, and an architecture can be chosen as for a preset
    cfg = compose("env=BipedalWalkerHardcore-v3", "architecture=small", "algorithm.total_steps=7")
    assert cfg.algorithm.total_steps == 7 and list(cfg.architecture.critic_hidden_sizes) == [64, 64]


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["env=Hoper-v5"],
            "env=Hoper-v5 is neither an env preset nor a registered Gymnasium environment; did you mean Hopper-v5?",
        ),
        (["-m", "env=Hopper-v5,Walkr2d-v5", "seed=0,1"], "env=Walkr2d-v5 is neither"),
        (["env=choice(Hopper-v5,lunarlandercontinuous-v3)"], "did you mean LunarLanderContinuous-v3?"),
        (["seed=2", "env=qqqq"], "use a preset (sac-train --help lists them) or any registered id"),
        (["env=Hopper-v5"], None),
        (["-m", "env=Hopper-v5,InvertedPendulum-v4,phys2d/CartPole-v1,generic"], None),
        (["env=glob(Hop*)"], None),  # Hydra matches globs against the options itself
        (["--config-dir", "my_conf", "env=MyOwnPreset"], None),  # may come from the added directory
        (["hydra.searchpath=[file://my_conf]", "env=MyOwnPreset"], None),
        (["env=Hoper-v5", "bad=syntax=("], None),  # Hydra reports the syntax error itself
    ],
)
def test_unknown_env_names_are_caught_before_hydra_runs(argv, message):
    found = overrides.check_env_overrides(argv)
    if message is None:
        assert found is None
    else:
        assert message in found and "\n" not in found


def test_a_missing_env_id_is_one_line_exit_2_and_writes_nothing(tmp_path):
    """It used to be a long traceback: the run directory's name needs the id. The environment is now checked
    before the run directory is made (the same check rejects Discrete actions and images, tests/test_config.py;
    an unknown name is caught before Hydra runs, tests/test_cli.py)."""
    proc = sac_train("env=generic", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "sac-train: error: env.id is not set; choose the environment with env=<Gymnasium id>, e.g. env=Hopper-v5 "
        "(sac-train --help lists the presets)\n"
    )
    assert list(tmp_path.iterdir()) == []  # no run directory


def test_an_environment_whose_extra_is_missing_names_the_extra(monkeypatch):
    def not_installed(*args, **kwargs):
        raise gym.error.DependencyNotInstalled(
            "Box2D is not installed, you can install it by running `pip install swig`"
        )

    monkeypatch.setattr(envs, "make_env", not_installed)
    monkeypatch.setattr(config, "_CHECKED_ENVS", set())  # BipedalWalker-v3 may have been checked already
    with pytest.raises(config.ConfigError) as err:
        config.validate(compose("env=BipedalWalker-v3"))
    assert str(err.value).startswith("env.id='BipedalWalker-v3' needs a package that is not installed (Box2D is not")
    assert str(err.value).endswith("; pip install 'sac_runner[box2d]'")


def test_help_names_the_app_gives_examples_and_lists_every_preset(tmp_path):
    proc = run_cli("sac-train", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("sac-train: train Soft Actor-Critic")
    assert "powered by Hydra" not in text and "Usage: sac-train" in text
    assert "sac-train -m env=Hopper-v5,Walker2d-v5 seed=0,1" in text
    assert "env= takes any registered Gymnasium id" in text
    for name in PRESETS:
        assert re.search(rf"^    {re.escape(name)} +{re.escape(presets.preset_line(name))}$", text, re.M), name
    for suite in ("MuJoCo (pip install 'sac_runner[mujoco]'):", "Box2D (pip install 'sac_runner[box2d]'):"):
        assert suite in text
    assert "architecture: default, large, medium, small" in text
    assert "  logger (a list, e.g. logger=[tensorboard,wandb]): mlflow, tensorboard, wandb" in text
    assert re.search(r"^  hydra/launcher \(where the jobs of -m run\): parallel, .*slurm$", text, re.M)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_renders_headless(name):
    env = envs.make_env(compose(f"env={name}").env, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
    finally:
        env.close()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 5, "a blank picture"


def test_one_smoke_run_per_suite_in_one_multirun_and_its_report(tmp_path):
    """MuJoCo (an id without a preset), Box2D and classic control, each through the smoke experiment with a
    video, as one sweep over env=...; then sac-report on the sweep: one group and one panel per env."""
    env_ids = ["InvertedPendulum-v4", "LunarLanderContinuous-v3", "MountainCarContinuous-v0"]
    sweep = tmp_path / "sweep"
    proc = sac_train(
        "-m",
        "experiment=smoke",
        f"env={','.join(env_ids)}",
        "algorithm.total_steps=400",
        "algorithm.learning_starts=100",
        "algorithm.eval_interval=400",
        "algorithm.nb_evals=1",
        "env.max_episode_steps=50",
        "progress=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    for job, env_id in enumerate(env_ids):
        run = sweep / str(job)
        assert yaml.safe_load((run / "config.yaml").read_text())["env"]["id"] == env_id
        assert json.loads((run / "summary.json").read_text())["env_steps"] == 400
        frames = iio.imread(run / "videos" / "best_agent.mp4")
        assert len(frames) >= 2 and frames[-1].std() > 5, env_id  # rendered headless, not blank
    assert report.main([str(sweep), "--resamples", "100"]) == 0
    from PIL import Image

    with Image.open(sweep / "report" / "report.png") as png:
        assert png.text["Comment"] == "panels: " + "; ".join(env_ids)


def test_a_script_that_registers_its_own_environment_trains_it(tmp_path):
    """Gymnasium has no plugin discovery: a user's environment is registered by the script that starts sac-train."""
    code = (
        "import sys, gymnasium as gym\n"
        "gym.register('MyCar-v0', entry_point='gymnasium.envs.classic_control.continuous_mountain_car:"
        "Continuous_MountainCarEnv', max_episode_steps=60)\n"
        "from sac_runner.cli import train\n"
        "sys.argv = ['sac-train', 'env=MyCar-v0', *sys.argv[1:]]\n"
        "train()\n"
    )
    args = [a for a in TINY if not a.startswith("env.")] + ["save_video=false"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "outputs" / "MyCar-v0").glob("*/*")
    assert json.loads((run / "summary.json").read_text())["env_id"] == "MyCar-v0"
