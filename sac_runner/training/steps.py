"""The loop's two hot calls, the gradient step and the collection policy, as callables: on a GPU captured
once as CUDA graphs and replayed; on the CPU the policy runs in NumPy (networks.NumpyActor).

A SAC update at 256-256 is some sixty small kernels (forward, backward, Adam, Polyak), and on a GPU launching
them one by one from Python takes longer than running them. A CUDA graph records the kernels of one call
and replays them with a single launch (as LeanRL does). What the graph reads and writes must stay at fixed
addresses: the replay buffer's storage (preallocated), the networks' parameters and optimizer states (updated
in place), one index tensor the batch is gathered through, and the policy's observation tensor. The first
`warmup` calls run eagerly on a side stream (cuBLAS, the fused optimizer's state and a compiled loss set
themselves up there); they are real steps, not rehearsals. The next call captures and then replays.

Nothing here synchronises with the host per step except reading the policy's actions, which the
environment needs anyway. Randomness inside a graph (the actor's noise) comes from the default CUDA
generator, which advances on every replay as it would eagerly.

The compiled update (config `compile`, agent/compiled.py: the whole gradient step as one torch.compile graph)
takes a minute or more to build from a cold cache. CompiledUpdateStep builds it in a background thread from the
run's first gradient step on, while the eager update trains, and switches at a gradient step fixed in advance
(COMPILE_FROM, recorded in the run's progress), waiting there if the graph is not ready yet: the same config
gives the same weights however fast the machine compiles, and a resumed run switches where the uninterrupted
one did. Both updates draw the same random numbers and share every tensor, so the switch is seamless.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.compiled import CompiledUpdate, make_capturable, unsupported
from sac_runner.agent.networks import NumpyActor, SquashedGaussianActor
from sac_runner.agent.sac import SAC
from sac_runner.errors import TrainingError
from sac_runner.training.evaluation import policy_action

Stats = dict[str, torch.Tensor]

# the gradient step from which a compiled run's update is the compiled one (on a CPU; the eager update runs
# before it while the graph builds). A run records it in its progress, so a resumed run keeps its own.
COMPILE_FROM = 1000
# compile=auto on a CPU: the compiled update for a learning phase of at least this many gradient steps, where
# the update's measured saving (about 1 ms per step at 64-64, 2 ms at 256-256 on the 2-core EPYC) repays even a cold
# build (80-130 s of CPU there); a warm cache (about 20 s) repays after some 20k steps
AUTO_MIN_UPDATES = 100_000
# torch.compile's arguments for the loop's compiled update (tests choose backend="aot_eager": no C++ to build)
COMPILE_ARGS: dict[str, Any] = {}


def say(message: str) -> None:
    """One line on stderr, above the progress bar if there is one."""
    tqdm.write(f"sac-train: {message}", file=sys.stderr)


def compiled_update_wanted(cfg, agent: SAC, device: torch.device) -> bool:
    """Whether the run's gradient step is the compiled one (config `compile`: auto, true, false). auto: where it
    was measured to pay, on a CPU with a learning phase of AUTO_MIN_UPDATES gradient steps or more (the build
    runs beside the eager update, but a cold one costs a minute or two of CPU time). An optimizer the compiled
    step does not cover keeps the eager update, with a line saying so."""
    mode = cfg.get("compile", False)
    if mode is None or mode is False:
        return False
    if mode == "auto":
        algo = cfg.algorithm
        updates = (int(algo.total_steps) - int(algo.learning_starts)) * float(algo.utd_ratio)
        if device.type != "cpu" or updates < AUTO_MIN_UPDATES:
            return False
    reason = unsupported(agent)
    if reason is not None:
        say(f"the SAC update stays eager (compile={str(mode).lower()}): the compiled update cannot run it, {reason}")
        return False
    return True


class UpdateStep:
    """One gradient step of `agent` on a uniform batch of `batch_size` transitions from `buffer`."""

    def __init__(self, agent: SAC, buffer: ReplayBuffer, batch_size: int):
        self.agent, self.buffer, self.batch_size = agent, buffer, int(batch_size)

    def __call__(self) -> Stats:
        return self.agent.update(self.buffer.sample(self.batch_size))


class CompiledUpdateStep(UpdateStep):
    """UpdateStep with the compiled update (agent/compiled.py) from gradient step `progress.compiled_from` on;
    before it, the eager update, while the graph builds in a background thread (see the module doc).

    Args:
        agent, buffer, batch_size: as UpdateStep.
        progress: the run's Progress: `updates` says which gradient step comes next, `compiled_from` is where the
            compiled update takes over (None: a run that has not chosen yet; the first call sets it to
            COMPILE_FROM, or to the next step when the run is past it).
        compile_args: torch.compile's arguments (default COMPILE_ARGS).
    """

    def __init__(self, agent: SAC, buffer: ReplayBuffer, batch_size: int, progress, compile_args=None):
        super().__init__(agent, buffer, batch_size)
        self.progress = progress
        args = COMPILE_ARGS if compile_args is None else compile_args
        self.compiled = CompiledUpdate(agent, buffer.storage, buffer.columns, self.batch_size, **args)
        self.idx = torch.zeros(self.batch_size, dtype=torch.long, device=buffer.device)
        self.active = False  # the compiled update has taken over
        self.failed: str | None = None  # why the graph could not be built
        self.waited_s = 0.0  # how long the loop waited for the graph at the switch
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Choose the switch point (if the run has none yet) and start building the graph in the background."""
        p = self.progress
        if p.compiled_from is None:
            p.compiled_from = max(p.updates, COMPILE_FROM)
        if self._thread is None:
            self._thread = threading.Thread(target=self._build, name="compile the SAC update", daemon=True)
            self._thread.start()
            say(
                f"compiling the SAC update in the background; the eager update trains until gradient step "
                f"{p.compiled_from}"
                if p.compiled_from > p.updates
                else "compiling the SAC update ..."
            )

    def _build(self) -> None:
        try:
            self.compiled.compile()
        except Exception as e:  # noqa: BLE001 - whatever stops inductor (no C++ compiler, ...) leaves the eager step
            self.failed = " ".join(str(e).split())[:300] or type(e).__name__

    def __call__(self) -> Stats:
        if self.active:
            return self.compiled(self.buffer.sample_indices(self.batch_size, out=self.idx))
        if self._thread is None:
            self.start()
        p = self.progress
        if self.failed is None and p.compiled_from is not None and p.updates >= p.compiled_from:
            self._switch()
            if self.active:
                return self()
        return super().__call__()

    def _switch(self) -> None:
        assert self._thread is not None
        if self._thread.is_alive():
            say(f"compiling the SAC update ... (gradient step {self.progress.updates} waits for it)")
            t0 = time.perf_counter()
            self._thread.join()
            self.waited_s = time.perf_counter() - t0
        if self.failed is not None:
            say(f"the compiled SAC update could not be built ({self.failed}); training goes on with the eager update")
            return
        self.active = True
        say(
            f"the compiled SAC update takes over at gradient step {self.progress.updates} (built in "
            f"{self.compiled.compile_s:.1f} s)"
        )

    EAGER = {"update": "eager", "compiled_from": None, "compile_s": None, "compile_wait_s": None}

    def report(self) -> dict:
        """What the run's summary says about the compiled update."""
        return {
            "update": "compiled" if self.active else "eager",
            "compiled_from": self.progress.compiled_from if self.active else None,
            "compile_s": self.compiled.compile_s,
            "compile_wait_s": self.waited_s,
        }


class GraphedUpdateStep(UpdateStep):
    """UpdateStep captured as one CUDA graph: each call draws the batch indices into a fixed index tensor
    (one kernel outside the graph, since the buffer's fill level changes every step) and replays the
    gather, the losses, the backward pass, the optimizer step and the target update."""

    def __init__(
        self, agent: SAC, buffer: ReplayBuffer, batch_size: int, warmup: int = 3, compiled: CompiledUpdate | None = None
    ):
        super().__init__(agent, buffer, batch_size)
        if buffer.device.type != "cuda":
            raise ValueError("a CUDA graph needs the replay buffer and the agent on a CUDA device")
        self.compiled = compiled  # the compiled update in the graph, in place of the eager one (compile=true)
        self.idx = torch.zeros(self.batch_size, dtype=torch.long, device=buffer.device)
        self.warmup, self.calls = int(warmup), 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stats: Stats = {}
        self._stream: torch.cuda.Stream | None = None

    def _step(self) -> Stats:
        if self.compiled is not None:  # built at the first warm-up call
            return self.compiled(self.idx)
        return self.agent.update(self.buffer.gather(self.idx))

    def __call__(self) -> Stats:
        self.buffer.sample_indices(self.batch_size, out=self.idx)
        if self.graph is None:
            if self.calls < self.warmup:
                self.calls += 1
                return _on_side_stream(self, self._step)
            make_capturable(self.agent.optimizers)
            self.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self.graph):
                    self.stats = self._step()
            except RuntimeError as e:  # e.g. an optimizer that reads values back to the host while stepping
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise TrainingError(
                    f"the update could not be captured as a CUDA graph ({reason}); train with cuda_graph=false"
                ) from None
        self.graph.replay()
        return self.stats


class Policy:
    """The collection policy: actor.act(obs, deterministic=False) for a batch of observations, as a NumPy array;
    on the CPU computed in NumPy where the actor allows it (NumpyActor: a fraction of torch's overhead)."""

    def __init__(self, actor: SquashedGaussianActor, device: torch.device):
        self.actor, self.device = actor, device
        self.numpy = NumpyActor(actor) if device.type == "cpu" and NumpyActor.supports(actor) else None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.numpy is not None:
            return self.numpy.act(obs, deterministic=False)
        return policy_action(self.actor, obs, self.device, deterministic=False)


class GraphedPolicy(Policy):
    """Policy for a fixed number of observations, captured as a CUDA graph: the observations are copied
    into a fixed tensor, the actor's forward pass and sampling are replayed, the actions read back."""

    def __init__(self, actor: SquashedGaussianActor, device: torch.device, n: int, obs_dim: int, warmup: int = 3):
        super().__init__(actor, device)
        self.obs = torch.zeros((n, obs_dim), dtype=torch.float32, device=device)
        self.warmup, self.calls = int(warmup), 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.act = torch.empty(0)
        self._stream: torch.cuda.Stream | None = None

    def _act(self) -> torch.Tensor:
        with torch.no_grad():
            return self.actor.act(self.obs, False)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.obs.copy_(torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(self.obs.shape)))
        if self.graph is None:
            if self.calls < self.warmup:
                self.calls += 1
                return _on_side_stream(self, self._act).cpu().numpy()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.act = self._act()
        self.graph.replay()
        return self.act.cpu().numpy()


def _on_side_stream(owner, fn: Callable):
    """fn() on a side stream that the current one then waits for, as CUDA graph capture requires of the
    calls before it."""
    stream = owner._stream = owner._stream or torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        out = fn()
    torch.cuda.current_stream().wait_stream(stream)
    return out


def loop_steps(
    agent: SAC,
    buffer: ReplayBuffer,
    batch_size: int,
    n_envs: int,
    obs_dim: int,
    graphs: bool,
    compiled: bool = False,
    progress=None,
):
    """The (update step, collection policy) pair the training loop uses: captured as CUDA graphs when `graphs`
    and the agent is on a GPU, else eager calls (the policy in NumPy on the CPU where it can). `compiled`: the
    compiled update (inside the graph on a GPU; else a CompiledUpdateStep on the run's `progress`)."""
    device = buffer.device
    if graphs and device.type == "cuda":
        update: UpdateStep = GraphedUpdateStep(
            agent,
            buffer,
            batch_size,
            compiled=CompiledUpdate(agent, buffer.storage, buffer.columns, batch_size, **COMPILE_ARGS)
            if compiled
            else None,
        )
        return update, GraphedPolicy(agent.actor, device, n_envs, obs_dim)
    if compiled:
        if progress is None:
            raise ValueError("the compiled update step needs the run's progress")
        return CompiledUpdateStep(agent, buffer, batch_size, progress), Policy(agent.actor, device)
    return UpdateStep(agent, buffer, batch_size), Policy(agent.actor, device)
