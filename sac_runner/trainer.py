"""The training loop: collect, learn, evaluate, checkpoint, log."""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sac_runner.agent import make_agent
from sac_runner.buffer import ReplayBuffer
from sac_runner.checkpoint import FORMAT_VERSION, atomic_torch_save
from sac_runner.envs import ActionScaler, make_vector_env, transition_next_obs
from sac_runner.evaluation import evaluate, record_video


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Progress:
    """Counters and history that a checkpoint must carry."""

    env_steps: int = 0
    updates: int = 0
    update_debt: float = 0.0
    episodes: int = 0
    best_return: float = -float("inf")
    best_step: int = -1
    last_return: float | None = None
    evals: list = field(default_factory=list)  # [env_steps, mean, std, min, max]


class Trainer:
    def __init__(self, cfg, run_dir: str | Path):
        self.cfg = cfg
        self.algo = cfg.algorithm
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = resolve_device(cfg.device)
        torch.set_num_threads(int(cfg.threads))
        seed_everything(int(cfg.seed))

        self.envs = make_vector_env(cfg.env, self.algo.n_envs)
        self.eval_envs = make_vector_env(cfg.env, self.algo.nb_evals)
        self.obs_dim = int(np.prod(self.envs.single_observation_space.shape))
        self.act_dim = int(np.prod(self.envs.single_action_space.shape))
        self.scaler = ActionScaler(self.envs.single_action_space)
        self.agent = make_agent(cfg, self.obs_dim, self.act_dim, self.device)
        capacity = min(self.algo.buffer_size, self.algo.total_steps + self.algo.n_envs)
        self.buffer = ReplayBuffer(capacity, self.obs_dim, self.act_dim, self.device, seed=cfg.seed)
        # one generator for everything random outside torch: warm-up actions and evaluation seeds
        self.rng = np.random.default_rng(cfg.seed)
        self.progress = Progress()
        self.writer = None

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        agent = self.agent
        return {
            "format": FORMAT_VERSION,
            "env_id": self.cfg.env.id,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "actor": agent.actor.state_dict(),
            "critic": agent.critic.state_dict(),
            "target_critic": agent.target_critic.state_dict(),
            "log_alpha": agent.log_alpha.detach().cpu(),
            "optimizers": {
                "actor": agent.actor_optimizer.state_dict(),
                "critic": agent.critic_optimizer.state_dict(),
                "alpha": agent.alpha_optimizer.state_dict() if agent.alpha_optimizer else None,
            },
            "progress": vars(self.progress).copy(),
        }

    def save(self, name: str) -> Path:
        path = self.ckpt_dir / name
        atomic_torch_save(self.checkpoint(), path)
        return path

    # ---------------------------------------------------------------- logging
    def log_scalars(self, prefix: str, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}" if prefix else k, float(v), step)

    # ---------------------------------------------------------------- evaluation
    def run_evaluation(self) -> float:
        p = self.progress
        seeds = self.rng.integers(0, 2**31 - 1, size=self.algo.nb_evals)
        returns = evaluate(self.agent.actor, self.eval_envs, seeds, self.device)
        mean = float(returns.mean())
        p.evals.append([p.env_steps, mean, float(returns.std()), float(returns.min()), float(returns.max())])
        p.last_return = mean
        self.log_scalars("eval", {"return_mean": mean, "return_std": returns.std(), "return_min": returns.min(),
                                  "return_max": returns.max()}, p.env_steps)
        if mean > p.best_return:
            p.best_return, p.best_step = mean, p.env_steps
            self.save("best.pt")
        self.save("last.pt")
        self.writer.flush()
        return mean

    # ---------------------------------------------------------------- main loop
    def collect_step(self, obs):
        p, algo = self.progress, self.algo
        if p.env_steps < algo.learning_starts:
            act = self.rng.uniform(-1.0, 1.0, size=(algo.n_envs, self.act_dim)).astype(np.float32)
        else:
            with torch.inference_mode():
                x = torch.as_tensor(obs.reshape(algo.n_envs, -1), dtype=torch.float32, device=self.device)
                act = self.agent.actor.act(x, deterministic=False).cpu().numpy()
        next_obs, rew, term, trunc, infos = self.envs.step(self.scaler.to_env(act))
        done = term | trunc
        # the stored s' is the real last observation of a finished episode, never a reset observation;
        # termination stops bootstrapping, truncation does not
        real_next = transition_next_obs(next_obs, infos, done)
        self.buffer.add(obs.reshape(algo.n_envs, -1), act, rew, real_next.reshape(algo.n_envs, -1), term)
        self.ep_return += rew
        self.ep_length += 1
        for i in np.flatnonzero(done):
            p.episodes += 1
            self.writer.add_scalar("train/episode_return", self.ep_return[i], p.env_steps + i + 1)
            self.writer.add_scalar("train/episode_length", self.ep_length[i], p.env_steps + i + 1)
            self.ep_return[i], self.ep_length[i] = 0.0, 0
        p.env_steps += algo.n_envs
        return next_obs

    def learn(self) -> dict | None:
        p, algo = self.progress, self.algo
        if p.env_steps - algo.n_envs < algo.learning_starts:  # only steps collected after the warm-up count
            return None
        p.update_debt += algo.n_envs * algo.utd_ratio
        stats = None
        while p.update_debt >= 1.0:
            stats = self.agent.update(self.buffer.sample(algo.batch_size))
            p.updates += 1
            p.update_debt -= 1.0
        return stats

    def train(self) -> dict:
        cfg, algo, p = self.cfg, self.algo, self.progress
        self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.ep_return = np.zeros(algo.n_envs)
        self.ep_length = np.zeros(algo.n_envs, dtype=np.int64)
        obs, _ = self.envs.reset(seed=int(cfg.seed))
        next_eval, next_log = algo.eval_interval, algo.log_interval
        bar = tqdm(total=algo.total_steps, unit="step", dynamic_ncols=True, file=sys.stderr,
                   disable=None if cfg.progress else True, desc=f"SAC {cfg.env.id}")
        start = last_time = time.perf_counter()
        last_steps, stats = 0, None
        try:
            while p.env_steps < algo.total_steps:
                obs = self.collect_step(obs)
                stats = self.learn() or stats
                bar.update(algo.n_envs)
                if p.env_steps >= next_log:
                    next_log += algo.log_interval
                    now = time.perf_counter()
                    sps = (p.env_steps - last_steps) / max(now - last_time, 1e-9)
                    last_time, last_steps = now, p.env_steps
                    self.writer.add_scalar("time/steps_per_second", sps, p.env_steps)
                    self.writer.add_scalar("time/updates", p.updates, p.env_steps)
                    if stats is not None:
                        self.log_scalars("train", stats, p.env_steps)
                    bar.set_postfix_str(self._postfix(sps), refresh=False)
                if p.env_steps >= next_eval or p.env_steps >= algo.total_steps:
                    next_eval += algo.eval_interval
                    self.run_evaluation()
                    bar.set_postfix_str(self._postfix(None), refresh=False)
        finally:
            bar.close()
            self.writer.flush()
        wall = time.perf_counter() - start
        summary = {"run_dir": str(self.run_dir), "env_id": cfg.env.id, "env_steps": p.env_steps,
                   "updates": p.updates, "wall_time_s": wall, "steps_per_second": p.env_steps / wall,
                   "best_return": p.best_return, "best_step": p.best_step, "last_return": p.last_return,
                   "video": None}
        if cfg.save_video:
            summary["video"] = str(self.record_best_video())
        self.writer.close()
        return summary

    def _postfix(self, sps):
        p = self.progress
        parts = [] if sps is None else [f"{sps:.0f} steps/s"]
        if p.last_return is not None:
            parts += [f"eval {p.last_return:.1f}", f"best {p.best_return:.1f}"]
        return ", ".join(parts)

    def record_best_video(self) -> Path:
        """Load the best checkpoint's actor into a fresh copy and record one episode."""
        import copy

        from sac_runner.checkpoint import load_checkpoint

        actor = copy.deepcopy(self.agent.actor)
        best = self.ckpt_dir / "best.pt"
        if best.exists():
            actor.load_state_dict(load_checkpoint(best, map_location=self.device)["actor"])
        path = self.run_dir / "videos" / "best_agent.mp4"
        record_video(actor, self.cfg.env, path, seed=int(self.rng.integers(2**31 - 1)), device=self.device)
        return path

    def close(self) -> None:
        self.envs.close()
        self.eval_envs.close()
        if self.writer is not None:
            self.writer.close()
