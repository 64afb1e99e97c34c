"""The training loop: collect, learn, evaluate, checkpoint, log."""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sac_runner.agent import make_agent, resolve_device
from sac_runner.buffer import ReplayBuffer
from sac_runner.checkpoint import FORMAT_VERSION, CheckpointError, atomic_torch_save, state_dict_mismatch
from sac_runner.envs import ActionScaler, get_env_states, make_vector_env, set_env_states, transition_next_obs
from sac_runner.evaluation import evaluate, policy_action, record_video

# the signals that stop a run cleanly (checkpoint, then exit with status 128 + the signal number)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingError(Exception):
    """Training cannot go on (a non-finite value, a failed write); str() is one line for the user."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derived_seed(*entropy: int) -> int:
    """A seed in [0, 2**31) drawn from a SeedSequence over `entropy` (e.g. the run's seed and a step)."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0] >> 1)


def global_rng_states() -> dict:
    """Python's, NumPy's and torch's global generator states, as plain containers and tensors."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_global_rng_states(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def write_error_reason(e: BaseException) -> str:
    """A few words on why a write failed: the OSError's own reason, also when torch wrapped it."""
    while e is not None:
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        e = e.__cause__ or e.__context__
    return "the write failed; is the disk full?"


def first_non_finite(named_values) -> tuple[str, float] | None:
    """(name, value) of the first tensor in `named_values` holding a NaN or an infinity, else None."""
    for name, v in named_values:
        v = torch.as_tensor(v).detach()
        finite = torch.isfinite(v)
        if not finite.all():
            return name, float(v[~finite].reshape(-1)[0])
    return None


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
    next_eval: int = 0  # env steps of the next evaluation and of the next training log
    next_log: int = 0


class Trainer:
    def __init__(self, cfg, run_dir: str | Path):
        self.cfg = cfg
        # a plain snapshot: DictConfig attribute access costs microseconds, and the loop reads it every step
        self.algo = SimpleNamespace(**OmegaConf.to_container(cfg.algorithm, resolve=True))
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
        self.obs = None  # the current observation of each training env, between steps
        self.ep_return = np.zeros(self.algo.n_envs)
        self.ep_length = np.zeros(self.algo.n_envs, dtype=np.int64)
        self.stats = None  # the last gradient step's statistics (logged at each log interval)
        self.resumed = False
        self.env_restored = None  # on resume: whether the training envs' states could be restored exactly
        self.refill_until = 0  # after a resume without the replay buffer: no update before it holds this many
        self.last_saved = None  # (path, env step) of the last last.pt written
        self.stop_signal = None  # set by the SIGINT / SIGTERM handler
        self.save_replay_buffer = bool(OmegaConf.select(cfg, "checkpoint.save_replay_buffer", default=True))

    # ---------------------------------------------------------------- checkpoints
    def checkpoint(self, resumable: bool = False) -> dict:
        """Everything needed to rebuild the agent; with `resumable`, also what exact resumption needs."""
        agent = self.agent
        ckpt = {
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
        if resumable:
            ckpt["resume"] = self.resume_state()
        return ckpt

    def resume_state(self) -> dict:
        """Replay buffer, generator states, environment states and loop state, all as tensors and plain
        containers, so that torch.load(weights_only=True) reads them back."""
        return {
            "buffer": self.buffer.state_dict(with_data=self.save_replay_buffer),
            "rng": global_rng_states(),
            "trainer_rng": self.rng.bit_generator.state,
            "envs": get_env_states(self.envs),  # None where the environments cannot be restored exactly
            "obs": torch.as_tensor(np.array(self.obs)),
            "ep_return": torch.as_tensor(self.ep_return),
            "ep_length": torch.as_tensor(self.ep_length),
            "stats": None if self.stats is None else {k: float(v) for k, v in self.stats.items()},
        }

    def check_parameters(self) -> None:
        """Refuse to go on (and to checkpoint) with a parameter holding a NaN or an infinity."""
        agent = self.agent
        named = [(f"actor parameter {n}", v) for n, v in agent.actor.named_parameters()]
        named += [(f"critic parameter {n}", v) for n, v in agent.critic.named_parameters()]
        named += [(f"target critic parameter {n}", v) for n, v in agent.target_critic.named_parameters()]
        named += [("log_alpha", agent.log_alpha)]
        bad = first_non_finite(named)
        if bad is not None:
            self._non_finite(*bad)

    def _non_finite(self, name: str, value: float):
        p = self.progress
        if self.last_saved is None:
            kept = "no checkpoint had been written yet"
        else:
            kept = f"the last good checkpoint, {self.last_saved[0]} (step {self.last_saved[1]}), is kept"
        raise TrainingError(f"{name} became {value} at env step {p.env_steps} (gradient step {p.updates}); "
                            f"training stopped and {kept}; try lower learning rates or algorithm.max_grad_norm=1.0")

    def save(self, name: str, resumable: bool = False) -> Path:
        """Write checkpoints/<name> atomically, after checking that every parameter is finite."""
        self.check_parameters()
        path = self.ckpt_dir / name
        try:
            atomic_torch_save(self.checkpoint(resumable), path)
        except (OSError, RuntimeError) as e:  # torch reports a failed write of its archive as a RuntimeError
            raise self._write_failed(path, e) from None
        if name == "last.pt":
            self.last_saved = (path, self.progress.env_steps)
        return path

    def _write_failed(self, path, e: BaseException) -> TrainingError:
        if self.last_saved is None:
            then = "then start the run again"
        else:
            then = f"then continue from step {self.last_saved[1]} with: sac-train resume={self.run_dir}"
        return TrainingError(f"cannot write {path} ({write_error_reason(e)}); free disk space or fix the "
                             f"directory's permissions, {then}")

    def save_last(self) -> Path:
        """checkpoints/last.pt, with all that resume needs (the replay buffer if checkpoint.save_replay_buffer)."""
        return self.save("last.pt", resumable=True)

    def restore(self, ckpt: dict, source: str | None = None) -> None:
        """Continue from a checkpoint written by save_last() (read from `source`, by default the run's
        checkpoints/last.pt): the state of the run at that moment."""
        agent, p = self.agent, self.progress
        source = source or str(self.ckpt_dir / "last.pt")
        expected = (self.cfg.env.id, self.obs_dim, self.act_dim)
        if (ckpt.get("env_id"), ckpt.get("obs_dim"), ckpt.get("act_dim")) != expected:
            raise CheckpointError(f"{source} is for {ckpt.get('env_id')} (observation size {ckpt.get('obs_dim')}, "
                                  f"action size {ckpt.get('act_dim')}), not for the run's {self.cfg.env.id} "
                                  f"({self.obs_dim}, {self.act_dim})")
        if "resume" not in ckpt:
            raise CheckpointError(f"{source} has no resume state (a best.pt, or a last.pt written by an older "
                                  f"sac_runner); resume needs a checkpoints/last.pt written by this version")
        try:
            agent.actor.load_state_dict(ckpt["actor"])
            agent.critic.load_state_dict(ckpt["critic"])
            agent.target_critic.load_state_dict(ckpt["target_critic"])
            with torch.no_grad():
                agent.log_alpha.copy_(ckpt["log_alpha"].to(agent.log_alpha.device))
            opts = ckpt["optimizers"]
            agent.actor_optimizer.load_state_dict(opts["actor"])
            agent.critic_optimizer.load_state_dict(opts["critic"])
            if agent.alpha_optimizer is not None and opts.get("alpha") is not None:
                agent.alpha_optimizer.load_state_dict(opts["alpha"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{source} does not fit the run's architecture or optimizers "
                                  f"({state_dict_mismatch(e)})") from None
        known = set(vars(Progress()))
        for k, v in (ckpt.get("progress") or {}).items():
            if k in known:
                setattr(p, k, v)
        r = ckpt["resume"]
        try:
            self.buffer.load_state_dict(r["buffer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"the replay buffer in {source} does not fit ({e})") from None
        if "data" not in r["buffer"]:  # saved without its contents: fill it again before learning
            self.refill_until = min(self.buffer.capacity, max(self.algo.learning_starts, self.algo.batch_size))
        set_global_rng_states(r["rng"])
        self.rng.bit_generator.state = r["trainer_rng"]
        # fresh episodes seeded from the run's seed and the step, then, where possible, the saved states
        self.obs, _ = self.envs.reset(seed=derived_seed(self.cfg.seed, p.env_steps))
        self.env_restored = r["envs"] is not None and set_env_states(self.envs, r["envs"])
        if self.env_restored:
            self.obs = r["obs"].numpy().copy()
            self.ep_return = r["ep_return"].numpy().astype(np.float64)
            self.ep_length = r["ep_length"].numpy().astype(np.int64)
        self.stats = r.get("stats")
        self.resumed = True
        self.last_saved = (self.ckpt_dir / "last.pt", p.env_steps)

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
        self.save_last()
        self.writer.flush()
        return mean

    # ---------------------------------------------------------------- main loop
    def collect_step(self, obs):
        p, algo = self.progress, self.algo
        if p.env_steps < algo.learning_starts:
            act = self.rng.uniform(-1.0, 1.0, size=(algo.n_envs, self.act_dim)).astype(np.float32)
        else:
            act = policy_action(self.agent.actor, obs, self.device, deterministic=False)
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
        if len(self.buffer) < self.refill_until:  # resumed without the replay buffer: refill it first
            return None
        p.update_debt += algo.n_envs * algo.utd_ratio
        stats = None
        while p.update_debt >= 1.0:
            stats = self.agent.update(self.buffer.sample(algo.batch_size))
            p.updates += 1
            p.update_debt -= 1.0
        if stats is not None:  # a NaN spreads to every later loss, so the last step's losses tell
            losses = [(k, v) for k, v in stats.items() if k.startswith("loss/")]
            if not torch.isfinite(torch.stack([v for _, v in losses])).all():  # one check, then find which
                bad = first_non_finite(losses)
                self._non_finite(bad[0].replace("loss/", "") + " loss", bad[1])
        return stats

    # ---------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict:
        """SIGINT / SIGTERM set a flag that the loop reads after each step; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self.stop_signal is not None:
                raise KeyboardInterrupt
            self.stop_signal = signum

        return {s: signal.signal(s, handler) for s in STOP_SIGNALS}

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    def train(self) -> dict:
        """Run, or continue after restore(), until algorithm.total_steps or a stop signal.

        On SIGINT / SIGTERM the current step (and its gradient steps) finishes, last.pt is written and
        the summary's "interrupted" names the signal; no video is recorded then.
        """
        cfg, algo, p = self.cfg, self.algo, self.progress
        # a resumed run continues the same event stream; events written after its checkpoint are dropped
        purge = p.env_steps + 1 if self.resumed else None
        try:
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        except OSError as e:
            raise TrainingError(f"cannot write TensorBoard logs to {self.run_dir / 'tensorboard'} "
                                f"({e.strerror or type(e).__name__}); choose a writable hydra.run.dir") from None
        if not self.resumed:
            self.obs, _ = self.envs.reset(seed=int(cfg.seed))
            p.next_eval, p.next_log = algo.eval_interval, algo.log_interval
        bar = tqdm(total=algo.total_steps, initial=min(p.env_steps, algo.total_steps), unit="step",
                   dynamic_ncols=True, file=sys.stderr, disable=None if cfg.progress else True,
                   desc=f"SAC {cfg.env.id}")
        start = last_time = time.perf_counter()
        start_steps = last_steps = p.env_steps
        self.stop_signal = None
        previous_handlers = self._install_signal_handlers()
        try:
            while p.env_steps < algo.total_steps:
                self.obs = self.collect_step(self.obs)
                self.stats = self.learn() or self.stats
                bar.update(algo.n_envs)
                if p.env_steps >= p.next_log:
                    while p.next_log <= p.env_steps:
                        p.next_log += algo.log_interval
                    now = time.perf_counter()
                    sps = (p.env_steps - last_steps) / max(now - last_time, 1e-9)
                    last_time, last_steps = now, p.env_steps
                    self.writer.add_scalar("time/steps_per_second", sps, p.env_steps)
                    self.writer.add_scalar("time/updates", p.updates, p.env_steps)
                    if self.stats is not None:
                        self.log_scalars("train", self.stats, p.env_steps)
                    bar.set_postfix_str(self._postfix(sps), refresh=False)
                if p.env_steps >= p.next_eval or p.env_steps >= algo.total_steps:
                    # the final evaluation of a shorter budget leaves the schedule alone, so a budget
                    # extended on resume evaluates at the same steps as a run given it from the start
                    while p.next_eval <= p.env_steps:
                        p.next_eval += algo.eval_interval
                    self.run_evaluation()
                    bar.set_postfix_str(self._postfix(None), refresh=False)
                if self.stop_signal is not None:
                    if self.last_saved is None or self.last_saved[1] != p.env_steps:
                        self.save_last()
                    break
            self.writer.flush()
        except OSError as e:  # a TensorBoard write: its writer thread's failure surfaces at the next call
            raise self._write_failed(e.filename or self.run_dir / "tensorboard", e) from None
        finally:
            self._restore_signal_handlers(previous_handlers)
            bar.close()
        wall = time.perf_counter() - start
        summary = {"run_dir": str(self.run_dir), "env_id": cfg.env.id, "env_steps": p.env_steps,
                   "updates": p.updates, "wall_time_s": wall,
                   "steps_per_second": (p.env_steps - start_steps) / max(wall, 1e-9),
                   "best_return": p.best_return, "best_step": p.best_step, "last_return": p.last_return,
                   "video": None, "interrupted": None}
        if self.stop_signal is not None and p.env_steps < algo.total_steps:
            summary["interrupted"] = signal.Signals(self.stop_signal).name
        elif cfg.save_video and self.stop_signal is None:  # a signal on the last step: done, but no video
            summary["video"] = str(self.record_best_video())
        try:
            self.writer.close()
        except OSError as e:
            raise self._write_failed(e.filename or self.run_dir / "tensorboard", e) from None
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
            try:
                self.writer.close()
            except OSError:  # already reported by train()
                pass
