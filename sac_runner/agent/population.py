"""The gradient steps of K SAC agents as one function (issue 17): agent/functional.py's `sac_step`, vmapped over a
leading member dimension (torch.func.vmap) and compiled as one graph. Not a second copy of the maths, and not K
calls: member k's step is exactly the lone compiled step on member k's tensors.

`PopulationUpdate(agents, storages, columns, batch_size)` stacks every tensor the step reads or writes into one
(K, ...) tensor per role: the networks' parameters, the target critic, log alpha, the Adam states of the optimizers
(torch.optim's own entries), the hyperparameters that enter the step as 0-d tensors (each optimizer group's learning
rate, discount, tau, target entropy), and the replay buffers' storages. Then each agent's own Parameters and
optimizer-state entries become views of its row: member k's modules act, evaluate and save with the live weights,
`agents[k].state_dict()` is a lone agent's (checkpoint.own_storage copies the views when saving), and a member's
checkpoint resumes as a lone run.

What may differ between members: their weights and optimizer states (the seed; init_entropy_coef is log alpha's
initial value), their buffers, and the hyperparameters above. What must not (network sizes, optimizer classes and
their constant options: betas, eps, weight decay, amsgrad; whether alpha is learned; max_grad_norm; batch size;
buffer capacity): ValueError names the first member that differs.

Randomness is data: each member draws its batch indices (its buffer's generator) and the actor's noise (its own
stream) into its row of `idx` and `noise` before the step (training/population.py does it in the member's thread),
so the graph is a pure function of its inputs, as the lone compiled step is.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from sac_runner.agent.compiled import AgentBinding, unsupported
from sac_runner.agent.functional import Stats, sac_step
from sac_runner.agent.sac import SAC


def _signature(b: AgentBinding) -> tuple:
    tensors = {**b.params, **b.frozen}
    return b.layout, tuple((n, tuple(t.shape), t.dtype, t.device) for n, t in tensors.items())


class PopulationUpdate:
    """One gradient step of every member, each on its own batch `storage[k][idx[k]]` with its own `noise[.][k]`;
    `update()` returns the statistics, each a (K,) tensor.

    Args:
        agents: the members' SAC agents (each `unsupported(agent)` must be None).
        storages: each member's replay-buffer storage, all of one shape (they are copied into `storage`, whose row k
            the member's buffer must then use: ReplayBuffer.use_storage).
        columns: the buffers' columns (ReplayBuffer.columns); batch_size: the rows each member's step gathers.
        backend, options: for torch.compile ("eager": dynamo's graph run by eager PyTorch, "aot_eager": with
            AOT autograd too; both without inductor's C++, for tests).
        skip_guards: from the second step on, skip dynamo's guard checks (as CompiledUpdate does).
    """

    def __init__(
        self,
        agents: list[SAC],
        storages: list[torch.Tensor],
        columns: dict,
        batch_size: int,
        *,
        backend: str = "inductor",
        options: dict | None = None,
        skip_guards: bool = True,
    ):
        if not agents or len(agents) != len(storages):
            raise ValueError("a population needs one replay-buffer storage per agent, and at least one agent")
        for k, agent in enumerate(agents):
            reason = unsupported(agent)
            if reason is not None:
                raise ValueError(f"member {k}'s update cannot run compiled: {reason}")
        self.agents = list(agents)
        bindings = [AgentBinding(a, columns) for a in agents]
        for b in bindings:
            b.sync()  # the hyperparameter tensors, and the optimizer state torch.optim would create at its first step
        ref = _signature(bindings[0])
        for k, b in enumerate(bindings[1:], start=1):
            if _signature(b) != ref:
                raise ValueError(f"member {k} differs from member 0 in its networks or its optimizers' options")
        if len({tuple(s.shape) for s in storages}) != 1:
            raise ValueError("the members' replay buffers differ in capacity or row width")
        self.template, self.layout = bindings[0].template, bindings[0].layout
        stack = functools.partial(_stack, device=storages[0].device)
        self.params = {n: stack([b.params[n] for b in bindings]) for n in bindings[0].params}
        self.frozen = {n: stack([b.frozen[n] for b in bindings]) for n in bindings[0].frozen}
        self.states = {
            n: {key: stack([b.states[n][key] for b in bindings]) for key in bindings[0].states[n]}
            for n in bindings[0].states
        }
        self.hyper = {key: stack([b.hyper[key] for b in bindings]) for key in bindings[0].hyper}
        self.storage = stack(storages)
        self._rebind(bindings)
        k, act_dim = len(agents), agents[0].actor.mean.out_features
        dtype, device = agents[0].log_entropy_coef.dtype, self.storage.device
        self.batch_size = int(batch_size)
        self.idx = torch.zeros((k, self.batch_size), dtype=torch.long, device=device)
        self.noise = tuple(torch.zeros((k, self.batch_size, act_dim), dtype=dtype, device=device) for _ in range(2))
        step = torch.func.vmap(functools.partial(sac_step, self.template, self.layout))
        args: dict[str, Any] = {"backend": backend, **({"options": options} if options else {})}
        self.fn = torch.compile(step, fullgraph=True, dynamic=False, **args)
        self.skip_guards, self.steps = skip_guards, 0

    def __len__(self) -> int:
        return len(self.agents)

    def _rebind(self, bindings: list[AgentBinding]) -> None:
        """Make every member's Parameters and optimizer-state entries views of its row of the stacked tensors."""
        for k, (agent, b) in enumerate(zip(self.agents, bindings)):
            with torch.no_grad():
                for n, p in agent.named_parameters():
                    name = f"agent.{n}"
                    p.data = (self.params[name] if name in self.params else self.frozen[name])[k]
            for opt in agent.optimizers:
                for g in opt.param_groups:
                    for p in g["params"]:
                        state = opt.state[p]
                        for key in list(state):
                            state[key] = self.states[b.name_of[id(p)]][key][k]

    def __call__(self) -> Stats:
        """One step of every member on the batches `idx` points at, with `noise`: the statistics, (K,) each."""
        self.steps += 1
        args = (self.params, self.frozen, self.states, self.hyper, self.storage, self.idx, self.noise)
        if self.skip_guards and self.steps > 1:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return self.fn(*args)
        return self.fn(*args)


def _stack(tensors: list[torch.Tensor], device) -> torch.Tensor:
    return torch.stack([t.detach().to(device) for t in tensors])
