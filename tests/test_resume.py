"""Checkpoint round trip and exact resume: a run stopped and resumed equals the same run uninterrupted (CPU)."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch

from sac_runner import runs
from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.factory import make_agent
from sac_runner.config import compose
from sac_runner.errors import ConfigError
from sac_runner.training.checkpoint import load_checkpoint
from sac_runner.training.trainer import Trainer
from tests.helpers import new_trainer, sac_train, step_hook, train

torch.set_num_threads(1)

ENVS = {
    # mid-episode stops (episodes last up to 60 steps), two training envs for the vector state
    "CartPoleContinuous-v1": ["algorithm.n_envs=2"],
    "Pendulum-v1": ["env=Pendulum-v1"],
}


def sigterm_at(step):
    """A hook sending ourselves SIGTERM once the run reaches `step` (the real handler sets the flag)."""

    def maybe_signal(trainer):
        if trainer.progress.env_steps == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return [] if step is None else [step_hook(maybe_signal)]


def new_run(run_dir, *overrides, stop_at=None):
    """Train in-process as `sac-train` would (config.yaml first); with stop_at, send ourselves SIGTERM at that step."""
    trainer = new_trainer(run_dir, *overrides, hooks=sigterm_at(stop_at))
    return trainer, train(trainer)


def resume_run(run_dir, *overrides, stop_at=None):
    """What `sac-train resume=<run_dir> <overrides>` does, in-process."""
    composed = compose(f"resume={run_dir}", *overrides)
    run_dir, cfg, ckpt = runs.prepare_resume(composed, list(overrides))
    trainer = Trainer(cfg, run_dir, hooks=sigterm_at(stop_at))
    trainer.resume(ckpt)
    return trainer, train(trainer)


def resume_message(trainer):
    return runs.resume_message(trainer.run_dir, trainer.resumed, trainer.algo.total_steps)


class PointMass(gym.Env):
    """A 1-D point mass pushed towards 0. Its state lives in attributes no checkpoint can save (as a MuJoCo
    simulator's does), so a resumed run must start fresh episodes."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.v = float(self.np_random.uniform(-1, 1)), 0.0
        return np.array([self.x, self.v], np.float32), {}

    def step(self, action):
        self.v += 0.1 * float(action[0])
        self.x += self.v
        return np.array([self.x, self.v], np.float32), -abs(self.x), False, False, {}


gym.register("PointMass-v0", entry_point=PointMass)


def assert_same_state(a: Trainer, b: Trainer):
    assert a.progress.evals == b.progress.evals
    assert (a.progress.env_steps, a.progress.updates, a.progress.episodes) == (
        b.progress.env_steps,
        b.progress.updates,
        b.progress.episodes,
    )
    for name in ("actor", "critic", "target_critic"):
        sa, sb = getattr(a.agent, name).state_dict(), getattr(b.agent, name).state_dict()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}.{k} differs"
    assert torch.equal(a.agent.log_entropy_coef, b.agent.log_entropy_coef)
    for k in a.buffer.data:
        assert torch.equal(a.buffer.data[k][: a.buffer.size], b.buffer.data[k][: b.buffer.size])
    np.testing.assert_array_equal(a.state.obs, b.state.obs)


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    trainer, _ = new_run(tmp_path / "run", "algorithm.total_steps=150")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    agent = make_agent(trainer.cfg, ckpt.obs_dim, ckpt.act_dim, torch.device("cpu"))
    agent.load_state_dict(ckpt.agent)
    obs = torch.randn(64, ckpt.obs_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(trainer.agent.actor.act(obs, True), agent.actor.act(obs, True))
        torch.manual_seed(5)
        a = trainer.agent.actor.act(obs, False)
        torch.manual_seed(5)
        b = agent.actor.act(obs, False)
    assert torch.equal(a, b)


@pytest.mark.parametrize("env", list(ENVS))
def test_stopped_and_resumed_equals_uninterrupted(tmp_path, env):
    full, _ = new_run(tmp_path / "full", *ENVS[env])
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    part, summary = new_run(tmp_path / "part", *ENVS[env], stop_at=226)  # mid-episode, between evaluations
    assert summary["interrupted"] == "SIGTERM" and part.progress.env_steps == 226
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers put back
    resumed, _ = resume_run(tmp_path / "part")
    assert resumed.resumed.env_restored
    assert_same_state(full, resumed)


def test_extending_the_budget_equals_a_longer_run(tmp_path):
    full, _ = new_run(tmp_path / "full", "algorithm.total_steps=450")
    new_run(tmp_path / "part", "algorithm.total_steps=150")  # ends on an evaluation step
    resumed, _ = resume_run(tmp_path / "part", "algorithm.total_steps=450")
    assert_same_state(full, resumed)


def test_resume_without_replay_buffer_refills_it_first(tmp_path):
    full, _ = new_run(tmp_path / "full")
    new_run(tmp_path / "part", "checkpoint.save_replay_buffer=false", stop_at=200)
    ckpt = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")
    assert "data" not in ckpt.resume["buffer"]
    resumed, summary = resume_run(tmp_path / "part")
    assert resumed.resumed.refill_until == 100 and summary["env_steps"] == 300
    assert resumed.progress.updates < full.progress.updates  # 100 steps without gradient steps
    assert "replay buffer was not saved" in resume_message(resumed)


def test_environments_that_cannot_be_restored_start_fresh_episodes(tmp_path):
    new_run(tmp_path / "part", "env=generic", "env.id=PointMass-v0", stop_at=200)
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt").resume["envs"] is None
    resumed, summary = resume_run(tmp_path / "part")
    assert not resumed.resumed.env_restored and summary["env_steps"] == 300
    assert "fresh episodes" in resume_message(resumed)


def test_buffer_loads_into_a_different_capacity():
    small = ReplayBuffer(6, 1, 1, "cpu", seed=1)
    v = np.arange(4, dtype=np.float32)
    small.add(v[:, None], v[:, None], v, v[:, None], v * 0)
    big = ReplayBuffer(20, 1, 1, "cpu", seed=2)
    big.load_state_dict(small.state_dict())  # never wrapped: same layout, same samples
    assert (big.pos, big.size) == (4, 4)
    assert torch.equal(big.sample(32).rew, small.sample(32).rew)
    w = np.arange(4, 9, dtype=np.float32)
    small.add(w[:, None], w[:, None], w, w[:, None], w * 0)  # wraps: slots hold 6 7 8 3 4 5
    tiny = ReplayBuffer(4, 1, 1, "cpu")
    tiny.load_state_dict(small.state_dict())  # the newest that fit, oldest first
    assert tiny.data["rew"].tolist() == [5, 6, 7, 8] and (tiny.pos, tiny.size) == (0, 4)


def test_refusals_are_one_line_config_errors(tmp_path):
    new_run(tmp_path / "run", "algorithm.total_steps=150")
    cases = [
        (tmp_path / "nope", [], "does not exist"),
        (tmp_path / "run" / "checkpoints", [], "is not a sac_runner run directory"),
        (tmp_path, [], "holds runs (a multirun sweep?); pass one of them"),
        (tmp_path / "run" / "config.yaml", [], "is a file"),
        (tmp_path / "run", [], "already reached its budget"),
        (tmp_path / "run", ["algorithm.batch_size=64"], "algorithm.batch_size cannot be changed when resuming"),
        (tmp_path / "run", ["env=Pendulum-v1"], "env cannot be changed when resuming"),
    ]
    for path, overrides, needle in cases:
        with pytest.raises(ConfigError) as e:
            runs.prepare_resume(compose(f"resume={path}", *overrides), overrides)
        assert needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="--multirun"):
        runs.prepare_resume(compose(f"resume={tmp_path / 'run'}"), [], multirun=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").unlink()
    with pytest.raises(ConfigError, match="no checkpoints/last.pt"):
        runs.prepare_resume(
            compose(f"resume={tmp_path / 'run'}", "algorithm.total_steps=300"), ["algorithm.total_steps=300"]
        )


def test_cli_resume_of_a_missing_run_creates_nothing(tmp_path):
    proc = sac_train("resume=outputs/typo", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("sac-train: error: resume=outputs/typo:")
        and "does not exist" in lines[0]
    )
    assert list(tmp_path.iterdir()) == []  # no stray run directory, no .hydra in the typo
