"""Config composition for every option of every group, and validation errors."""

import itertools
from importlib.resources import files

import pytest
from omegaconf import OmegaConf

from sac_runner.config import ConfigError, validate
from tests.conftest import make_cfg


def group_options(group):
    return sorted(p.name[: -len(".yaml")] for p in files("sac_runner.conf").joinpath(group).iterdir()
                  if p.name.endswith(".yaml"))


def test_groups_have_the_expected_options():
    assert {"CartPoleContinuous-v1", "Pendulum-v1", "generic"} <= set(group_options("env"))
    assert {"default", "small", "large"} <= set(group_options("architecture"))
    assert {"adam", "adamw"} <= set(group_options("optimizer"))
    assert group_options("algorithm") == ["sac"]
    assert {"smoke", "mujoco"} <= set(group_options("experiment"))


@pytest.mark.parametrize("env", group_options("env"))
def test_every_env_option_composes_and_validates(env):
    extra = ["env.id=MountainCarContinuous-v0"] if env == "generic" else []
    cfg = make_cfg(f"env={env}", *extra)
    validate(cfg)
    if env != "generic":
        assert cfg.env.id == env  # presets are named by their Gymnasium ids


@pytest.mark.parametrize("arch,opt", list(itertools.product(group_options("architecture"), group_options("optimizer"))))
def test_every_architecture_and_optimizer_option_composes(arch, opt):
    cfg = make_cfg(f"architecture={arch}", f"optimizer@actor_optimizer={opt}",
                   f"optimizer@critic_optimizer={opt}", f"optimizer@entropy_coef_optimizer={opt}")
    validate(cfg)
    assert cfg.actor_optimizer.classname.startswith("torch.optim.")
    assert cfg.critic_optimizer == cfg.actor_optimizer


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_and_wins_over_the_env_preset(experiment):
    preset = OmegaConf.load(files("sac_runner.conf").joinpath("experiment", f"{experiment}.yaml"))
    cfg = validate(make_cfg("env=Pendulum-v1", f"experiment={experiment}"))
    assert cfg.env.id == "Pendulum-v1"
    # every key the experiment sets beats the env preset (Pendulum's total_steps is 20000, its lr 1e-3)
    for key in ("algorithm.total_steps", "algorithm.learning_starts", "actor_optimizer.lr"):
        if OmegaConf.select(preset, key) is not None:
            assert OmegaConf.select(cfg, key) == OmegaConf.select(preset, key), key
    assert make_cfg("env=Pendulum-v1", f"experiment={experiment}", "algorithm.total_steps=7").algorithm.total_steps == 7


@pytest.mark.parametrize("preset,own", [("env=CartPoleContinuous-v1", [64, 64]), ("env=Pendulum-v1", [64, 64]),
                                         ("experiment=smoke", [64, 64]), ("experiment=mujoco", [256, 256])])
def test_presets_choose_an_architecture_that_the_command_line_can_replace(preset, own):
    assert list(make_cfg(preset).architecture.critic_hidden_sizes) == own
    for args in ([preset, "architecture=large"], ["architecture=large", preset]):
        assert list(make_cfg(*args).architecture.critic_hidden_sizes) == [512, 512, 512], args


def test_env_preset_hyperparameters_and_command_line_precedence():
    cfg = make_cfg("env=Pendulum-v1")
    assert cfg.algorithm.total_steps == 20000 and cfg.actor_optimizer.lr == pytest.approx(1e-3)
    cfg = make_cfg("env=Pendulum-v1", "algorithm.total_steps=7", "actor_optimizer.lr=0.5")
    assert cfg.algorithm.total_steps == 7 and cfg.actor_optimizer.lr == 0.5


def test_default_is_cartpole_continuous():
    assert make_cfg().env.id == "CartPoleContinuous-v1"


def test_numbers_are_normalised():
    cfg = validate(make_cfg("algorithm.buffer_size=1e6", "algorithm.discount=1"))
    assert cfg.algorithm.buffer_size == 1_000_000 and isinstance(cfg.algorithm.buffer_size, int)
    assert isinstance(cfg.algorithm.discount, float)


BAD = [
    (["algorithm.batch_size=abc"], "algorithm.batch_size='abc' is not an integer"),
    (["algorithm.batch_size=0"], "algorithm.batch_size=0 must be positive"),
    (["algorithm.total_steps=-5"], "algorithm.total_steps=-5 must be positive"),
    (["algorithm.n_envs=1.5"], "algorithm.n_envs=1.5 is not an integer"),
    (["algorithm.tau=0"], "algorithm.tau=0 is outside (0.0, 1.0]"),
    (["algorithm.tau=1.5"], "algorithm.tau=1.5 is outside (0.0, 1.0]"),
    (["algorithm.discount=true"], "algorithm.discount=True is not a finite number"),
    (["algorithm.batch_size=512", "algorithm.buffer_size=100"], "algorithm.batch_size=512 is larger than algorithm.buffer_size=100"),
    (["algorithm.entropy_mode=sometimes"], "algorithm.entropy_mode='sometimes' is not one of auto, fixed"),
    (["algorithm.init_entropy_coef=0"], "algorithm.init_entropy_coef=0 is outside"),
    (["architecture.actor_hidden_sizes=[64,0]"], "architecture.actor_hidden_sizes=[64, 0] must be a list of positive integers"),
    (["architecture.activation=swish"], "architecture.activation='swish' is not one of"),
    (["architecture.n_critics=0"], "architecture.n_critics=0 must be positive"),
    (["critic_optimizer.classname=torch.optim.Nope"], "critic_optimizer.classname: 'torch.optim.Nope' cannot be imported"),
    (["actor_optimizer.lr=-1"], "actor_optimizer.lr=-1 is outside"),
    (["device=tpu"], "device='tpu' is not one of cpu, cuda, auto"),
    (["env=generic"], "env.id is required but not set"),
    (["env=generic", "env.id=NoSuchEnv-v0"], "env.id='NoSuchEnv-v0' is not a registered Gymnasium environment"),
    (["env=generic", "env.id=CartPole-v1"], "has a Discrete action space"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_validation_errors_are_one_clear_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    assert "; " in text  # every message carries its fix after the semicolon


def test_resolved_config_round_trips_to_yaml():
    cfg = validate(make_cfg("env=Pendulum-v1"))
    again = OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True))
    assert again == cfg
