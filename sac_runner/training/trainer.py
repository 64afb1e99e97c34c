"""The training loop: collect, learn, evaluate, checkpoint. The run's state is in state.py, the checkpoint format
in checkpoint.py, TensorBoard, the progress bar and the error messages in logger.py, signals in signals.py."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import torch
from omegaconf import OmegaConf

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.factory import make_agent, resolve_device
from sac_runner.envs import ActionScaler, flat_size, make_vector_env, transition_next_obs
from sac_runner.errors import TrainingError
from sac_runner.threads import job_threads
from sac_runner.training.checkpoint import save_checkpoint
from sac_runner.training.evaluation import evaluate, record_checkpoint_video
from sac_runner.training.hooks import Evaluation, Hook
from sac_runner.training.logger import RunLogger, first_non_finite
from sac_runner.training.population import join_population
from sac_runner.training.signals import StopSignals
from sac_runner.training.state import Resumed, RunState, seed_everything
from sac_runner.training.steps import CompiledUpdateStep, compiled_update_wanted, loop_steps

__all__ = ["Evaluation", "Hook", "Trainer", "TrainingError"]


def next_multiple(current: int, interval: int, step: int) -> int:
    """The first point of the schedule current, current + interval, ... that lies beyond `step`."""
    while current <= step:
        current += interval
    return current


class Trainer:
    """SAC on one task: builds the environments, the agent and its replay buffer from `cfg`, and trains it.

    Args:
        cfg: the validated, resolved config (sac_runner/config.py).
        run_dir: where checkpoints/, tensorboard/ and videos/ are written.
        hooks: Hook instances called from the loop.
    """

    def __init__(self, cfg, run_dir: str | Path, hooks: Sequence[Hook] = ()):
        self.cfg, self.run_dir, self.hooks = cfg, Path(run_dir), list(hooks)
        # a plain snapshot: DictConfig attribute access costs microseconds, and the loop reads it every step
        self.algo = SimpleNamespace(**cast(dict, OmegaConf.to_container(cfg.algorithm, resolve=True)))
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.device = resolve_device(cfg.device)
        torch.set_num_threads(job_threads(cfg))
        seed_everything(int(cfg.seed))
        self.envs = make_vector_env(cfg.env, self.algo.n_envs)
        self.eval_envs = make_vector_env(cfg.env, self.algo.nb_evals)
        obs_dim = flat_size(self.envs.single_observation_space)
        self.act_dim = flat_size(self.envs.single_action_space)
        self.scaler = ActionScaler(self.envs.single_action_space)
        self.agent = make_agent(cfg, obs_dim, self.act_dim, self.device)
        capacity = min(self.algo.buffer_size, self.algo.total_steps + self.algo.n_envs)
        self.buffer = ReplayBuffer(capacity, obs_dim, self.act_dim, self.device, seed=cfg.seed)
        self.state = RunState(cfg, self.agent, self.buffer, self.envs, obs_dim, self.act_dim)
        self.progress = self.state.progress
        # on a GPU the update and the collection policy are captured as CUDA graphs; the update may be the
        # compiled one (config compile; steps.py)
        graphs = self.device.type == "cuda" and cfg.get("cuda_graph") is not False
        compiled = compiled_update_wanted(cfg, self.agent, self.device)
        self.update_step, self.policy = loop_steps(
            self.agent, self.buffer, self.algo.batch_size, self.algo.n_envs, obs_dim, graphs, compiled, self.progress
        )
        self.compiled_step = self.update_step if isinstance(self.update_step, CompiledUpdateStep) else None
        self.resumed: Resumed | None = None
        self.logger = RunLogger(self.run_dir, self.algo.total_steps, f"SAC {cfg.env.id}", bool(cfg.progress), cfg)
        join_population(self)  # a member of hydra/launcher=population: its update is the population's (population.py)

    def resume(self, ckpt, source: str | None = None) -> Resumed:
        """Continue from a Checkpoint of this run's last.pt (read from `source`)."""
        self.resumed = self.state.restore(ckpt, source or str(self.ckpt_dir / "last.pt"))
        return self.resumed

    # ---------------------------------------------------------------- the loop
    def start(self) -> None:
        """Open the logger and, unless resumed, reset the training environments (train() starts with it)."""
        p = self.progress
        if self.resumed is None:
            self.state.obs, _ = self.envs.reset(seed=int(self.cfg.seed))
            p.next_eval, p.next_log = self.algo.eval_interval, self.algo.log_interval
        self.logger.open(p.env_steps, purge_step=p.env_steps + 1 if self.resumed else None)
        if self.resumed:
            self.logger.saved(self.ckpt_dir / "last.pt", p.env_steps)

    def train(self) -> dict:
        """Run, or continue after resume(), until algorithm.total_steps or a stop signal.

        On SIGINT / SIGTERM the current step (and its gradient steps) finishes, last.pt is written and the
        summary's "interrupted" names the signal; no video is recorded then.
        """
        algo, p, log = self.algo, self.progress, self.logger
        self.start()
        if isinstance(self.compiled_step, CompiledUpdateStep):  # build the compiled update in the background now
            self.compiled_step.start()
        start, start_steps = time.perf_counter(), p.env_steps
        self.state.start_session(start)
        with StopSignals() as stop, log.reporting_write_failures():
            while p.env_steps < algo.total_steps:
                self.collect()
                self.learn()
                log.advance(algo.n_envs)
                if p.env_steps >= p.next_log:
                    p.next_log = next_multiple(p.next_log, algo.log_interval, p.env_steps)
                    log.training(p.env_steps, p.updates, self.state.stats)
                if p.env_steps >= p.next_eval or p.env_steps >= algo.total_steps:
                    # the final evaluation of a shorter budget leaves the schedule alone, so a budget
                    # extended on resume evaluates at the same steps as a run given it from the start
                    p.next_eval = next_multiple(p.next_eval, algo.eval_interval, p.env_steps)
                    self.evaluate()
                for hook in self.hooks:
                    hook.on_step(self)
                if stop.received is not None:
                    if log.last_saved is None or log.last_saved[1] != p.env_steps:
                        self.save("last.pt", resumable=True)
                    break
        summary = self.summary(time.perf_counter() - start, p.env_steps - start_steps)
        if stop.received is not None and p.env_steps < algo.total_steps:
            summary["interrupted"] = stop.name
        elif self.cfg.save_video and stop.received is None:  # a signal on the last step: done, but no video
            seed = int(self.state.rng.integers(2**31 - 1))
            path = self.run_dir / "videos" / "best_agent.mp4"
            record_checkpoint_video(self.agent.actor, self.ckpt_dir / "best.pt", self.cfg.env, path, seed, self.device)
            summary["video"] = str(path)
        log.finish(summary, p.evals)  # the trackers record the outcome; summary["trackers"]: where
        log.close()
        return summary

    def summary(self, wall: float, steps: int) -> dict:
        """What `sac-train` prints and writes to summary.json, for `steps` env steps in `wall` seconds."""
        summary = self.state.summary(self.run_dir, wall, steps)
        # which update trained (compiled or eager), and the seconds the compiled one took to build
        summary.update(self.compiled_step.report() if self.compiled_step else CompiledUpdateStep.EAGER)
        return summary

    # ---------------------------------------------------------------- its steps
    def collect(self) -> None:
        """One step of every training environment; the transitions go into the replay buffer."""
        s, algo, p = self.state, self.algo, self.progress
        if p.env_steps < algo.learning_starts:
            act = s.rng.uniform(-1.0, 1.0, size=(algo.n_envs, self.act_dim)).astype(np.float32)
        else:
            act = self.policy(s.obs)
        next_obs, rew, term, trunc, infos = self.envs.step(self.scaler.to_env(act))
        done = term | trunc
        # the stored s' is the real last observation of a finished episode, never a reset observation;
        # termination stops bootstrapping, truncation does not
        real_next = transition_next_obs(next_obs, infos, done)
        self.buffer.add(s.obs.reshape(algo.n_envs, -1), act, rew, real_next.reshape(algo.n_envs, -1), term)
        s.ep_return += rew
        s.ep_length += 1
        for i in np.flatnonzero(done):
            p.episodes += 1
            self.logger.episode(s.ep_return[i], int(s.ep_length[i]), p.env_steps + int(i) + 1)
            s.ep_return[i], s.ep_length[i] = 0.0, 0
        p.env_steps += algo.n_envs
        s.obs = next_obs

    def learn(self) -> None:
        """The gradient steps owed for the data collected so far (algorithm.utd_ratio per env step)."""
        p, algo = self.progress, self.algo
        if p.env_steps - algo.n_envs < algo.learning_starts:  # only steps collected after the warm-up count
            return
        if self.resumed and len(self.buffer) < self.resumed.refill_until:  # resumed without the buffer
            return
        p.update_debt += algo.n_envs * algo.utd_ratio
        stats = None
        while p.update_debt >= 1.0:
            stats = self.update_step()
            p.updates += 1
            p.update_debt -= 1.0
        if stats is not None:
            self.state.stats = stats
            # a NaN spreads to every later loss, so the last step's losses tell. Checking reads the losses
            # back to the host; on a GPU that waits for the queued work, so there it waits for a log step
            if self.device.type == "cpu" or p.env_steps >= p.next_log:
                self.check_losses()

    def check_losses(self) -> None:
        """Stop with a one-line TrainingError if the last gradient step's losses are not finite."""
        stats, p = self.state.stats, self.progress
        if stats is None or math.isfinite(float(stats["loss/total"])):  # one value read back per step
            return
        losses = [(k, v) for k, v in stats.items() if k.startswith("loss/") and k != "loss/total"]
        name, value = first_non_finite(losses) or ("loss/total", float(stats["loss/total"]))  # or it overflowed
        raise self.logger.non_finite(name.replace("loss/", "") + " loss", value, p.env_steps, p.updates)

    def evaluate(self) -> Evaluation:
        """Deterministic episodes on the evaluation envs; then best.pt (on a new best) and last.pt."""
        p, t0 = self.progress, time.perf_counter()
        seeds = self.state.rng.integers(0, 2**31 - 1, size=self.algo.nb_evals)
        returns = evaluate(self.agent.actor, self.eval_envs, seeds, self.device)
        mean = float(returns.mean())
        p.evals.append([p.env_steps, mean, float(returns.std()), float(returns.min()), float(returns.max())])
        p.last_return = mean
        if mean > p.best_return:
            p.best_return, p.best_step = mean, p.env_steps
            self.save("best.pt")
        self.save("last.pt", resumable=True)
        self.logger.evaluation(p.env_steps, returns, p.best_return)
        result = Evaluation(p.env_steps, returns, time.perf_counter() - t0)
        for hook in self.hooks:
            hook.on_evaluation(self, result)
        return result

    def save(self, name: str, resumable: bool = False) -> Path:
        """Write checkpoints/<name> atomically (with `resumable`, all that resume needs), after checking
        that every parameter is finite."""
        bad = first_non_finite(self.agent.checked_tensors())
        if bad is not None:
            raise self.logger.non_finite(*bad, self.progress.env_steps, self.progress.updates)
        path = self.ckpt_dir / name
        try:
            save_checkpoint(self.state.checkpoint(resumable), path)
        except (OSError, RuntimeError) as e:  # torch reports a failed write of its archive as a RuntimeError
            raise self.logger.write_failed(path, e) from None
        if resumable:
            self.logger.saved(path, self.progress.env_steps)
        return path

    def close(self) -> None:
        self.envs.close()
        self.eval_envs.close()
        with contextlib.suppress(TrainingError):  # already reported by train()
            self.logger.close()
