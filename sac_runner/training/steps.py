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
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.networks import NumpyActor, SquashedGaussianActor
from sac_runner.agent.sac import SAC
from sac_runner.errors import TrainingError
from sac_runner.training.evaluation import policy_action

Stats = dict[str, torch.Tensor]


class UpdateStep:
    """One gradient step of `agent` on a uniform batch of `batch_size` transitions from `buffer`."""

    def __init__(self, agent: SAC, buffer: ReplayBuffer, batch_size: int):
        self.agent, self.buffer, self.batch_size = agent, buffer, int(batch_size)

    def __call__(self) -> Stats:
        return self.agent.update(self.buffer.sample(self.batch_size))


class GraphedUpdateStep(UpdateStep):
    """UpdateStep captured as one CUDA graph: each call draws the batch indices into a fixed index tensor
    (one kernel outside the graph, since the buffer's fill level changes every step) and replays the
    gather, the losses, the backward pass, the optimizer step and the target update."""

    def __init__(self, agent: SAC, buffer: ReplayBuffer, batch_size: int, warmup: int = 3):
        super().__init__(agent, buffer, batch_size)
        if buffer.device.type != "cuda":
            raise ValueError("a CUDA graph needs the replay buffer and the agent on a CUDA device")
        self.idx = torch.zeros(self.batch_size, dtype=torch.long, device=buffer.device)
        self.warmup, self.calls = int(warmup), 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stats: Stats = {}
        self._stream: torch.cuda.Stream | None = None

    def _step(self) -> Stats:
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


def make_capturable(optimizers: list[torch.optim.Optimizer]) -> None:
    """Let the optimizers step inside a CUDA graph: `capturable` on (their step counts stay on the device
    and nothing reads them back). A checkpoint's optimizer state can turn it off again, so this runs after
    any loading, just before capture."""
    for opt in optimizers:
        for group in opt.param_groups:
            if "capturable" in group:
                group["capturable"] = True
            for p in group["params"]:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor) and step.device != p.device:
                    opt.state[p]["step"] = step.to(p.device)


def loop_steps(agent: SAC, buffer: ReplayBuffer, batch_size: int, n_envs: int, obs_dim: int, graphs: bool):
    """The (update step, collection policy) pair the training loop uses: captured as CUDA graphs when
    `graphs` and the agent is on a GPU, else eager calls (the policy in NumPy on the CPU where it can)."""
    device = buffer.device
    if graphs and device.type == "cuda":
        return GraphedUpdateStep(agent, buffer, batch_size), GraphedPolicy(agent.actor, device, n_envs, obs_dim)
    return UpdateStep(agent, buffer, batch_size), Policy(agent.actor, device)
