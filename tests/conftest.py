import os

import pytest
from hydra import compose, initialize_config_module

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def make_cfg(*overrides):
    """The composed config as `sac-train <overrides>` would see it (without Hydra's run-time keys)."""
    with initialize_config_module("sac_runner.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def cfg_factory():
    return make_cfg


# a budget that exercises every phase (warm-up, updates, evaluation, checkpoints) in seconds
TINY = [
    "algorithm.total_steps=300",
    "algorithm.learning_starts=100",
    "algorithm.eval_interval=150",
    "algorithm.nb_evals=2",
    "algorithm.log_interval=50",
    "algorithm.batch_size=32",
    "architecture=small",
    "env.max_episode_steps=60",
    "progress=false",
]
