"""Population training (issue 17): the jobs of a multirun train as the members of one process.

Each member is the ordinary code path of one job: Hydra's run_job, sac-train's task function, a Trainer and its
train(), so it writes exactly what a lone run writes (config, TensorBoard, checkpoints, summary.json, video,
failed.json or pruned.json). It runs in a thread of its own, but the threads never run at the same time: the
scheduler (`Population.run`, in the main thread) resumes them one after another, and a member runs until it needs
a gradient step, then hands back (`Member.pause`). When every member still training waits for its step, the
scheduler runs them; the members then go on with the next environment step, evaluation and checkpoint, each in
turn. Members that end (their budget, a failure, a pruned trial) leave; the others train on.

What the members share, the scheduler keeps apart:
- the global generators (Python's, NumPy's, torch's default one, which draws the collection policy's and the
  update's noise; the replay buffer and the loop have generators of their own): while member k runs, they hold
  member k's states, so each member draws from its own streams, as a lone run with its seed would, and its
  checkpoints save those streams;
- Hydra's current config (HydraConfig), which is the member's own while it runs;
- signals: the scheduler's StopSignals in the main thread passes SIGINT / SIGTERM on to every member's
  (training/signals.py), so each one writes its last.pt and stops.

A member joins from its Trainer (join_population, at the end of Trainer.__init__): its update step becomes the
population's (`Member.update`). Where its lone run would train with the compiled update (config compile), it
trains as that run would: the eager update until gradient step COMPILE_FROM (training/steps.py, recorded as the
run's compiled_from), then the population's vmapped step (agent/population.py), built there over every member.
Elsewhere each member takes its own eager step, one after another.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sac_runner.errors import TrainingError
from sac_runner.training import steps
from sac_runner.training.signals import StopSignals

_local = threading.local()


def current_member() -> Member | None:
    """The population member this thread runs, or None (a lone run, a basic multirun job)."""
    return getattr(_local, "member", None)


def join_population(trainer) -> None:
    """Called by every Trainer when built: in a member's thread, the member takes over its update step."""
    member = current_member()
    if member is not None:
        member.attach(trainer)


class Member:
    """One job of a population: `fn()` run in a thread of its own, one stretch at a time (see the module doc).

    result: what fn() returned; error: the BaseException it raised (SystemExit included), if any."""

    def __init__(self, population: Population, index: int, fn: Callable[[], Any], name: str):
        self.population, self.index, self.fn, self.name = population, index, fn, name
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.trainer: Any = None
        self.abort: BaseException | None = None  # raised in the member at its next pause
        self.rng: tuple | None = None  # the global generators' states while the member is paused (get_rng)
        self.hydra: Any = None  # the member's HydraConfig
        self.joint = False  # whether it joins the population's vmapped step (attach)
        self.ready = False  # it has drawn for the population's step (past its compiled_from)
        self.row = -1  # its row in that step
        self.idx: torch.Tensor | None = None  # where it draws its batch indices and noise (its row, once built)
        self.noise: tuple = ()
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"population member {name}", daemon=True)
        self._inner_update: Callable | None = None

    # ------------------------------------------------------------------ the member's own thread
    def _main(self) -> None:
        _local.member = self
        self._go.wait()
        self._go.clear()
        try:
            if self.abort is None:
                self.result = self.fn()
            else:
                raise self.abort
        except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which decides
            self.error = e
        finally:
            self.done = True
            self.population._back.set()

    def pause(self) -> None:
        """Hand control back to the scheduler; return when it resumes this member."""
        self.population._back.set()
        self._go.wait()
        self._go.clear()
        if self.abort is not None:
            raise self.abort

    def attach(self, trainer) -> None:
        """Take over `trainer`'s update step (join_population). A member whose lone run would train with the
        compiled update joins the population's vmapped step (Population.joint_reason); any other takes its own
        step (trainer's), and only waits for the others after it."""
        self.trainer = trainer
        self._inner_update = trainer.update_step
        self.joint = self.population.joint_reason(trainer) is None
        if self.joint:  # until the population's step is built: its own tensors to draw into
            device, act_dim = trainer.buffer.device, trainer.act_dim
            self.idx = torch.zeros(trainer.algo.batch_size, dtype=torch.long, device=device)
            self.noise = tuple(torch.zeros((trainer.algo.batch_size, act_dim), device=device) for _ in range(2))
            trainer.compiled_step = JointReport(self.population)  # what its summary.json says about its update
        trainer.update_step = self.update

    def update(self):
        """The member's gradient step. Joint: until gradient step COMPILE_FROM (training/steps.py; recorded in its
        progress as compiled_from) the eager update, as a lone compiled run; from then on, draw its batch indices
        (its buffer's generator) and the actor's noise (its own stream of torch's generator) into its row of the
        population's step, as a lone compiled step would draw them, then wait for the step. Not joint: its own
        step, then the others have theirs."""
        if not self.joint:
            assert self._inner_update is not None
            stats = self._inner_update()
            self.pause()
            return stats
        t, p = self.trainer, self.trainer.progress
        if p.compiled_from is None:  # where the population's step takes over, as a lone compiled run chooses it
            p.compiled_from = max(p.updates, steps.COMPILE_FROM)
        if self.population.update is None and p.updates < p.compiled_from:
            # before it: the eager update, as a lone compiled run trains until its graph takes over
            stats = t.agent.update(t.buffer.sample(t.algo.batch_size))
            self.pause()
            return stats
        self.ready = True
        t.buffer.sample_indices(t.algo.batch_size, out=self.idx)
        for n in self.noise:  # for s' first, then for s, as SAC.losses takes them
            torch.randn(n.shape, out=n)
        self.pause()
        return RowStats(self.population.stats, self.row)


class JointReport:
    """A joint member's `Trainer.compiled_step` for its summary: the update was the population's."""

    def __init__(self, population: Population):
        self.population = population

    def report(self) -> dict:
        ready = self.population.update is not None
        return {
            "update": "population" if ready else "eager",
            "compiled_from": self.population.compiled_from if ready else None,
            "compile_s": self.population.compile_s,
            "compile_wait_s": None,
        }


def get_rng() -> tuple:
    """The global generators a run draws from: Python's, NumPy's, torch's (and CUDA's, once initialised)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda


def set_rng(state: tuple) -> None:
    py, npy, cpu, cuda = state
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


class RowStats(Mapping):
    """Member `row`'s view of the population step's statistics (each a (K,) tensor), indexed when read: the loop
    reads one value per step on the CPU, all of them at a log step."""

    def __init__(self, stats: dict, row: int):
        self.stats, self.row = stats, row

    def __getitem__(self, key):
        return self.stats[key][self.row]

    def __iter__(self):
        return iter(self.stats)

    def __len__(self) -> int:
        return len(self.stats)


class Population:
    """Runs `fns` (one per member, each a job's whole run) as the members of a population; `run()` returns the
    members, in order, with their result or error."""

    def __init__(self, fns: Sequence[Callable[[], Any]], names: Sequence[str] | None = None):
        names = list(names) if names is not None else [str(i) for i in range(len(fns))]
        self.members = [Member(self, i, fn, name) for i, (fn, name) in enumerate(zip(fns, names))]
        self._back = threading.Event()
        self.stopped: str | None = None  # the signal that stopped the population (SIGINT, SIGTERM), if any
        self.update: Any = None  # the vmapped step (agent/population.py), built at the members' first step
        self.stats: dict = {}  # its last statistics, (K,) each
        self.compile_args: dict = {}  # for PopulationUpdate (tests: {"backend": "aot_eager"})
        self.compile_s: float | None = None  # the seconds its first step took (building the graph)
        self.compiled_from: int | None = None  # the gradient step it took over at

    def live(self) -> list[Member]:
        return [m for m in self.members if not m.done]

    def _resume(self, m: Member) -> None:
        """Let member m run until it pauses or ends, with its generator states and Hydra config in place."""
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.instance()
        if m.rng is not None:
            set_rng(m.rng)
        if m.hydra is not None:
            hydra.cfg = m.hydra
        self._back.clear()
        m._go.set()
        self._wait()
        m.rng = get_rng()
        m.hydra = hydra.cfg

    def _wait(self) -> None:
        """Wait for the running member to hand back. A second stop signal (KeyboardInterrupt here) tells every
        member to stop at once, at its next pause; the running one is still waited for."""
        while True:
            try:
                self._back.wait()
                return
            except KeyboardInterrupt:
                for m in self.members:
                    m.abort = m.abort or KeyboardInterrupt()

    def run(self) -> list[Member]:
        from hydra.core.hydra_config import HydraConfig

        outer = HydraConfig.instance().cfg
        outer_rng = get_rng()
        try:
            with StopSignals() as stop:
                for m in self.members:
                    m._thread.start()
                for m in self.members:  # set-up, one member at a time, until each needs its first step
                    self._resume(m)
                while live := self.live():
                    self.step(live)
                    for m in live:
                        self._resume(m)
                self.stopped = stop.name
        finally:
            for m in self.members:  # a member left paused by an error here: end its thread
                if not m.done:
                    m.abort = m.abort or KeyboardInterrupt()
                    self._resume(m)
            HydraConfig.instance().cfg = outer
            set_rng(outer_rng)
        return self.members

    def joint_reason(self, trainer) -> str | None:
        """Why `trainer`'s member cannot join the population's vmapped step, or None when it can: it joins where its
        lone run would train with the compiled update (config compile; training/steps.py), whose vmap the
        population's step is; elsewhere (compile=false, compile=auto on a short budget, an optimizer the compiled
        update does not cover) each member takes its own eager step."""
        update = trainer.update_step
        if trainer.compiled_step is None and getattr(update, "compiled", None) is None:
            return "its run trains with the eager update"
        return None

    def step(self, live: list[Member]) -> None:
        """The population's gradient step for every live member that joins it (the others took their own)."""
        joint = [m for m in live if m.joint]
        if not joint or any(m.abort is not None for m in live) or not any(m.ready for m in joint):
            return  # each took its own (eager) step
        try:
            if self.update is None:
                late = [m.name for m in joint if not m.ready]
                if late:  # members of one group are in lockstep: they reach compiled_from together
                    raise RuntimeError(f"members {', '.join(late)} have not reached the compiled update's step")
                t0 = time.perf_counter()
                update: Any = self._build(joint)
                self.stats = update()
                self.compile_s = time.perf_counter() - t0
                self.compiled_from = joint[0].trainer.progress.updates
            else:
                self.stats = self.update()
        except Exception as e:  # noqa: BLE001 - each member then fails with it, in one line
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            error = TrainingError(f"the population's update failed ({type(e).__name__}: {reason})")
            for m in joint:
                m.abort = m.abort or error

    def _build(self, joint: list[Member]) -> Any:
        """The vmapped step over the members that join it (at the gradient step where it takes over): their agents'
        tensors (trained eagerly so far) and their replay buffers become rows of the step's stacked tensors."""
        from sac_runner.agent.population import PopulationUpdate

        trainers = [m.trainer for m in joint]
        first = trainers[0]
        self.update = PopulationUpdate(
            [t.agent for t in trainers],
            [t.buffer.storage for t in trainers],
            first.buffer.columns,
            first.algo.batch_size,
            **self.compile_args,
        )
        for k, (m, t) in enumerate(zip(joint, trainers)):
            m.row = k
            self.update.idx[k].copy_(m.idx)  # what it drew for this first step
            for mine, theirs in zip(m.noise, self.update.noise):
                theirs[k].copy_(mine)
            m.idx, m.noise = self.update.idx[k], tuple(n[k] for n in self.update.noise)
            t.buffer.use_storage(self.update.storage[k])
            # the collection policy reads the weights where they now live (NumPy views, a captured graph)
            if t.device.type == "cuda" and t.cfg.get("cuda_graph") is not False:
                t.policy = steps.GraphedPolicy(t.agent.actor, t.device, t.algo.n_envs, t.state.obs_dim)
            else:
                t.policy = steps.Policy(t.agent.actor, t.device)
        return self.update
