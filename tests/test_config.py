"""Config composition for every option of every group, and validation errors."""

import itertools
from importlib.resources import files

import pytest
import torch
from omegaconf import OmegaConf

from sac_runner.agent.factory import make_agent, make_optimizer
from sac_runner.config import OPTIMIZERS, compose, migrate_legacy, validate
from sac_runner.errors import ConfigError
from sac_runner.runs import resume_config

# the presets for the standard suites (README, "Environments and presets")
STANDARD_PRESETS = [
    *(f"{task}-v5" for task in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer")),
    *(f"{task}-v5" for task in ("InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Pusher")),
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "MountainCarContinuous-v0",
]


def group_options(group):
    return sorted(
        p.name[: -len(".yaml")] for p in files("sac_runner.conf").joinpath(group).iterdir() if p.name.endswith(".yaml")
    )


def test_groups_have_the_expected_options():
    assert {"CartPoleContinuous-v1", "Pendulum-v1", "generic", *STANDARD_PRESETS} <= set(group_options("env"))
    assert {"default", "small", "medium", "large"} <= set(group_options("architecture"))
    assert {"adam", "adamw"} <= set(group_options("optimizer"))
    assert group_options("algorithm") == ["sac"]
    assert {"smoke", "mujoco"} <= set(group_options("experiment"))


@pytest.mark.parametrize("env", group_options("env"))
def test_every_env_option_composes_and_validates(env):
    extra = ["env.id=MountainCarContinuous-v0"] if env == "generic" else []
    cfg = compose(f"env={env}", *extra)
    validate(cfg)
    if env != "generic":
        assert cfg.env.id == env  # presets are named by their Gymnasium ids


@pytest.mark.parametrize("arch,opt", list(itertools.product(group_options("architecture"), group_options("optimizer"))))
def test_every_architecture_and_optimizer_option_composes(arch, opt):
    cfg = compose(
        f"architecture={arch}",
        f"optimizer@actor_optimizer={opt}",
        f"optimizer@critic_optimizer={opt}",
        f"optimizer@entropy_coef_optimizer={opt}",
    )
    validate(cfg)
    assert cfg.actor_optimizer._target_.startswith("torch.optim.") and cfg.actor_optimizer._partial_ is True
    assert cfg.critic_optimizer == cfg.actor_optimizer


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes_and_wins_over_the_env_preset(make_cfg, experiment):
    preset = OmegaConf.load(files("sac_runner.conf").joinpath("experiment", f"{experiment}.yaml"))
    cfg = make_cfg("env=Pendulum-v1", f"experiment={experiment}")
    assert cfg.env.id == "Pendulum-v1"
    # every key the experiment sets beats the env preset (Pendulum's total_steps is 20000, its lr 1e-3)
    checked = ("algorithm.total_steps", "algorithm.learning_starts", "actor_optimizer.lr")
    keys = [k for k in checked if OmegaConf.select(preset, k) is not None]
    assert keys, "the experiment sets none of the keys checked here"
    for key in keys:
        assert OmegaConf.select(cfg, key) == OmegaConf.select(preset, key), key
    assert compose("env=Pendulum-v1", f"experiment={experiment}", "algorithm.total_steps=7").algorithm.total_steps == 7


@pytest.mark.parametrize(
    "preset,own",
    [
        ("env=CartPoleContinuous-v1", [64, 64]),
        ("env=Pendulum-v1", [64, 64]),
        ("env=Hopper-v5", [256, 256]),
        ("env=BipedalWalker-v3", [400, 300]),
        ("experiment=smoke", [64, 64]),
        ("experiment=mujoco", [256, 256]),
    ],
)
def test_presets_choose_an_architecture_that_the_command_line_can_replace(preset, own):
    assert list(compose(preset).architecture.critic_hidden_sizes) == own
    for args in ([preset, "architecture=large"], ["architecture=large", preset]):
        assert list(compose(*args).architecture.critic_hidden_sizes) == [512, 512, 512], args


def test_env_preset_hyperparameters_and_command_line_precedence():
    cfg = compose("env=Pendulum-v1")
    assert cfg.algorithm.total_steps == 20000 and cfg.actor_optimizer.lr == pytest.approx(1e-3)
    cfg = compose("env=Pendulum-v1", "algorithm.total_steps=7", "actor_optimizer.lr=0.5")
    assert cfg.algorithm.total_steps == 7 and cfg.actor_optimizer.lr == 0.5


def test_default_is_cartpole_continuous():
    assert compose().env.id == "CartPoleContinuous-v1"


def test_numbers_are_normalised(make_cfg):
    cfg = make_cfg("algorithm.buffer_size=1e6", "algorithm.discount=1")
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
    (
        ["algorithm.batch_size=512", "algorithm.buffer_size=100"],
        "algorithm.batch_size=512 is larger than algorithm.buffer_size=100",
    ),
    (["algorithm.entropy_mode=sometimes"], "algorithm.entropy_mode='sometimes' is not one of auto, fixed"),
    (["algorithm.init_entropy_coef=0"], "algorithm.init_entropy_coef=0 is outside"),
    (
        ["architecture.actor_hidden_sizes=[64,0]"],
        "architecture.actor_hidden_sizes=[64, 0] must be a list of positive integers",
    ),
    (["architecture.activation=swish"], "architecture.activation='swish' is not one of"),
    (["architecture.n_critics=0"], "architecture.n_critics=0 must be positive"),
    (["critic_optimizer._target_=torch.optim.Nope"], "critic_optimizer._target_='torch.optim.Nope' is not an"),
    (["actor_optimizer._target_=torch.nn.Linear"], "actor_optimizer._target_='torch.nn.Linear' is not a torch.optim"),
    (["actor_optimizer._target_=Adam"], "actor_optimizer._target_='Adam' is not an importable class"),
    (["entropy_coef_optimizer._partial_=false"], "entropy_coef_optimizer._partial_=False must be true"),
    (["actor_optimizer.lr=-1"], "actor_optimizer.lr=-1 is outside"),
    (["device=tpu"], "device='tpu' is not one of cpu, cuda, auto"),
    (["env=generic"], "env.id is not set; choose the environment with env=<Gymnasium id>"),
    (["env=generic", "env.id=NoSuchEnv-v0"], "env.id='NoSuchEnv-v0' is not a registered Gymnasium environment"),
    (["env=generic", "env.id=Hoper-v5"], "env.id='Hoper-v5' is not a registered Gymnasium env"),
    (["env=generic", "env.id=Hoper-v5"], "; did you mean Hopper-v5?"),
    (["env=generic", "env.id=CartPole-v1"], "has a Discrete action space"),
    (["env=CartPole-v1"], "env.id='CartPole-v1' has a Discrete action space"),
    (["env=CarRacing-v3"], "env.id='CarRacing-v3' has image observations (Box(96, 96, 3) of uint8)"),
    (["env=generic", "env.id=no_such_module:Foo-v0"], "importing no_such_module failed (ModuleNotFoundError"),
    (["env=Pendulum-v1", "env.kwargs.gg=5.0"], "unexpected keyword argument 'gg'"),
    (["seed=abc"], "seed='abc' is not an integer"),
    (["algorithm.total_steps=500"], "algorithm.total_steps=500 leaves no gradient step after the"),
    (
        ["algorithm.total_steps=1000", "algorithm.learning_starts=1000", "algorithm.n_envs=4"],
        "algorithm.total_steps=1000 leaves no gradient step",
    ),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_validation_errors_are_one_clear_line(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as err:
        make_cfg(*overrides)
    text = str(err.value)
    assert message in text
    assert "\n" not in text
    assert "; " in text  # every message carries its fix after the semicolon


def test_resolved_config_round_trips_to_yaml(make_cfg):
    cfg = make_cfg("env=Pendulum-v1")
    again = OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True))
    assert again == cfg


def test_small_and_large_architectures_state_only_their_sizes_and_inherit_the_rest(make_cfg):
    default = compose("architecture=default").architecture
    for arch in ("small", "large"):
        own = OmegaConf.load(files("sac_runner.conf").joinpath("architecture", f"{arch}.yaml"))
        assert set(own) == {"defaults", "actor_hidden_sizes", "critic_hidden_sizes"}
        composed = compose(f"architecture={arch}").architecture
        assert list(composed) == list(default)
        for key in default:
            want = own[key] if key in own else default[key]
            assert composed[key] == want, (arch, key)
        make_cfg(f"architecture={arch}")


@pytest.mark.parametrize("env", [e for e in group_options("env") if e != "generic"])
def test_mujoco_experiment_restores_the_paper_settings_over_every_env_preset(env):
    """experiment=mujoco lists only some keys: whatever an env preset changes must be among them."""
    paper = compose("env=generic", "env.id=Pendulum-v1", "experiment=mujoco")
    cfg = compose(f"env={env}", "experiment=mujoco")
    for section in ("algorithm", "architecture", *OPTIMIZERS):
        assert cfg[section] == paper[section], section
    assert paper.algorithm.total_steps == 1_000_000 and paper.algorithm.learning_starts == 10_000
    assert paper.actor_optimizer.lr == pytest.approx(3e-4)
    assert list(paper.architecture.critic_hidden_sizes) == [256, 256]


def legacy_config(*overrides):
    """A composed config as an older sac_runner wrote it to a run's config.yaml: optimizers named by `classname`."""
    cfg = OmegaConf.create(OmegaConf.to_yaml(compose(*overrides), resolve=True))
    for name in OPTIMIZERS:
        section = OmegaConf.to_container(cfg[name])
        assert section.pop("_partial_") is True
        cfg[name] = {"classname": section.pop("_target_"), **section}
    return cfg


def test_legacy_classname_configs_validate_and_build_the_same_optimizers(make_cfg):
    overrides = ("env=Pendulum-v1", "optimizer@critic_optimizer=adamw", "critic_optimizer.weight_decay=0.05")
    old = legacy_config(*overrides)
    assert old.critic_optimizer == {"classname": "torch.optim.AdamW", "lr": 1e-3, "weight_decay": 0.05}
    new = make_cfg(*overrides)
    assert validate(old) is old
    for name in OPTIMIZERS:
        assert "classname" not in old[name]
        assert old[name] == new[name]
        assert list(old[name])[:2] == ["_target_", "_partial_"]
    built_old, built_new = (make_agent(c, 3, 1, torch.device("cpu")) for c in (old, new))
    assert len(built_old.optimizers) == len(built_new.optimizers) == 3  # AdamW and Adam cannot share one
    for a, b in zip(built_old.optimizers, built_new.optimizers):
        assert type(a) is type(b)
        assert a.defaults == b.defaults
    critic_opt, actor_opt, _ = built_old.optimizers  # in param_groups() order: critic, actor, entropy_coef
    assert type(critic_opt) is torch.optim.AdamW
    assert critic_opt.defaults["lr"] == pytest.approx(1e-3)
    assert critic_opt.defaults["weight_decay"] == pytest.approx(0.05)
    assert type(actor_opt) is torch.optim.Adam
    assert migrate_legacy(new) == new  # a current config is left as it is


def test_a_resumed_run_takes_new_keys_defaults_but_not_the_default_envs_preset(tmp_path):
    """A run's config.yaml from before a key existed gets the key's default, except `preset`: the default's is
    CartPole's description, not the run's."""
    old = OmegaConf.to_container(compose("env=Pendulum-v1"))
    del old["preset"], old["cuda_graph"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(old))
    cfg = validate(resume_config(tmp_path, compose(f"resume={tmp_path}"), [f"resume={tmp_path}"]))
    assert cfg.cuda_graph is True and "preset" not in cfg and cfg.env.id == "Pendulum-v1"
    assert "preset" in compose(f"resume={tmp_path}")  # the composed default has one


def test_resuming_a_legacy_run_migrates_its_config(tmp_path):
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(legacy_config("env=Pendulum-v1")))
    cfg = validate(resume_config(tmp_path, compose(f"resume={tmp_path}"), [f"resume={tmp_path}"]))
    assert cfg.actor_optimizer == {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


class FusedFails(torch.optim.Adam):
    """An optimizer whose constructor takes `fused` but cannot build the fused variant."""

    def __init__(self, params, lr=1e-3, fused=None, **kwargs):
        if fused:
            raise RuntimeError("no fused kernel here")
        super().__init__(params, lr=lr, fused=fused, **kwargs)


def optimizer(*overrides):
    cfg = validate(compose(*overrides))
    return make_optimizer(cfg.actor_optimizer, [torch.nn.Parameter(torch.zeros(3))])


@pytest.mark.parametrize(
    "overrides,cls,fused",
    [
        ([], torch.optim.Adam, True),
        (["optimizer@actor_optimizer=adamw"], torch.optim.AdamW, True),
        (["actor_optimizer._target_=torch.optim.SGD"], torch.optim.SGD, True),
        (["+actor_optimizer.fused=false"], torch.optim.Adam, False),
        (["+actor_optimizer.foreach=true"], torch.optim.Adam, None),
        ([f"actor_optimizer._target_={__name__}.FusedFails"], FusedFails, None),  # falls back silently
        (["actor_optimizer._target_=torch.optim.RMSprop"], torch.optim.RMSprop, None),  # no fused variant
    ],
)
def test_fused_where_the_config_leaves_it_open(overrides, cls, fused):
    opt = optimizer(*overrides)
    assert type(opt) is cls
    assert opt.defaults.get("fused") == fused
    assert opt.defaults["lr"] == pytest.approx(2e-3)  # CartPoleContinuous-v1's preset


def test_optimizers_of_one_class_become_one_optimizer_with_each_networks_own_options(make_cfg):
    cfg = make_cfg("env=Pendulum-v1", "actor_optimizer.lr=0.01", "+critic_optimizer.weight_decay=0.1")
    agent = make_agent(cfg, 3, 1, torch.device("cpu"))
    (opt,) = agent.optimizers
    assert type(opt) is torch.optim.Adam and opt.defaults["fused"] is True
    critic, actor, entropy_coef = opt.param_groups
    assert [critic["lr"], actor["lr"], entropy_coef["lr"]] == pytest.approx([1e-3, 0.01, 1e-3])
    assert [critic["weight_decay"], actor["weight_decay"], entropy_coef["weight_decay"]] == [0.1, 0, 0]
    assert critic["params"] == list(agent.critic.parameters()) and entropy_coef["params"] == [agent.log_entropy_coef]
    fixed = make_agent(make_cfg("algorithm.entropy_mode=fixed"), 3, 1, torch.device("cpu"))
    assert len(fixed.optimizers[0].param_groups) == 2  # no group for a fixed entropy coefficient
    mixed = make_agent(make_cfg("+actor_optimizer.fused=false"), 3, 1, torch.device("cpu"))
    assert [o.defaults["fused"] for o in mixed.optimizers] == [True, False, True]  # global options differ


def test_bad_optimizer_target_fails_before_anything_is_built(make_cfg, capfd):
    with pytest.raises(ConfigError) as err:
        make_cfg("actor_optimizer._target_=torch.optim.Nope")
    assert str(err.value) == (
        "actor_optimizer._target_='torch.optim.Nope' is not an importable class; "
        "use e.g. actor_optimizer._target_=torch.optim.Adam"
    )
    assert capfd.readouterr().err == ""  # hydra.utils.get_class's own error log is kept quiet


def test_compile_is_auto_or_a_boolean_that_a_resume_may_change(make_cfg):
    assert make_cfg("compile=true").compile is True
    with pytest.raises(ConfigError, match=r"compile='fast' is not one of auto, False, True"):
        make_cfg("compile=fast")
    from sac_runner.keys import RESUME_OVERRIDABLE

    assert "compile" in RESUME_OVERRIDABLE
