"""SAC's gradient step as a pure function of tensors (issue 16): `sac_step`, which agent/compiled.py binds to a
live agent and compiles (`CompiledUpdate`) and agent/population.py vmaps over the members of a population.

The step is a composition of what the eager path runs, not a second copy of the maths:

1. the batch is gathered from the replay buffer's storage by an index tensor (buffer.batch_of);
2. sac.py's `SAC.losses` (the critic's, the actor's and the entropy coefficient's loss, as in the paper) runs on
   parameters passed in, through `torch.func.functional_call`;
3. `torch.func.grad_and_value` differentiates their sum (the statistics ride along as `has_aux`);
4. each network's gradient is clipped to `max_grad_norm` as clip_grad_norm_ clips it, when the agent clips;
5. torch.optim's own functional Adam (`torch.optim.adam.adam`, which Adam and AdamW step with) steps every
   parameter group with that group's options;
6. sac.py's `polyak_update` moves the target critic.

`torch.compile(fullgraph=True)` traces all of it into one graph: the elementwise work of forward, backward,
optimizer and target update fuses, and eager PyTorch's dispatch per operation disappears.

What the graph bakes in (the optimizer groups and their constant options, the networks clipped one by one, the
buffer's columns) is a `Layout`; the tensors it reads and writes in place are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam as functional_adam  # what torch.optim.Adam and AdamW step with

from sac_runner.agent.buffer import batch_of
from sac_runner.agent.sac import SAC, Batch, polyak_update

Stats = dict[str, torch.Tensor]


class Objective(nn.Module):
    """The agent's summed losses as a module call, so that torch.func.functional_call runs sac.py's
    `SAC.losses` on the tensors passed in (its parameter names are the agent's, prefixed "agent.")."""

    def __init__(self, agent: SAC):
        super().__init__()
        self.agent = agent

    def forward(self, batch: Batch, discount, target_entropy, noise):
        return self.agent.losses(batch, discount, target_entropy, noise)


@dataclass(frozen=True)
class Group:
    """One parameter group of one torch.optim optimizer: its parameters (by name) and its constant options."""

    names: tuple[str, ...]
    lr: str  # the key of its learning rate among the hyperparameter tensors
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    decoupled_weight_decay: bool


@dataclass(frozen=True)
class Layout:
    """What the compiled graph bakes in: the optimizer groups, the networks clipped one by one, the critic's
    parameters and their targets in matching order, the clipping threshold and the buffer's columns."""

    groups: tuple[Group, ...]
    networks: tuple[tuple[str, ...], ...]  # the parameter names of each network (critic, actor, entropy_coef)
    critic: tuple[str, ...]
    target: tuple[str, ...]
    max_grad_norm: float | None
    columns: tuple[tuple[str, Any], ...]  # ReplayBuffer.columns: each field's column(s) in a storage row


def sac_step(
    objective: Objective,
    layout: Layout,
    params: dict[str, torch.Tensor],
    frozen: dict[str, torch.Tensor],
    states: dict[str, dict[str, torch.Tensor]],
    hyper: dict[str, torch.Tensor],
    rows: torch.Tensor,
    idx: torch.Tensor | None,
    noise: tuple[torch.Tensor, torch.Tensor],
) -> Stats:
    """One SAC gradient step, in place: `params` (trained), `frozen` (the target critic; log alpha when it is
    fixed) and `states` (each trained parameter's Adam state) are updated; the statistics are returned.

    rows, idx: the batch is rows[idx] (rows: the replay buffer's storage); idx None: `rows` is the batch.
    hyper: 0-d tensors: discount, tau, target_entropy and a learning rate per optimizer group ("lr/i/j").
    noise: the actor's standard normal draws for s' and for s, as SAC.losses takes them.
    """
    batch = batch_of(rows if idx is None else rows[idx], dict(layout.columns))

    def total_loss(trained: dict[str, torch.Tensor]):
        return torch.func.functional_call(
            objective, (trained, frozen), (batch, hyper["discount"], hyper["target_entropy"], noise), strict=True
        )

    grads, (_, stats) = torch.func.grad_and_value(total_loss, has_aux=True)(params)
    if layout.max_grad_norm is not None:
        for names in layout.networks:  # clip_grad_norm_ per network, as SAC.update does
            # foreach=False: the per-tensor form, which vmap can batch
            norm = torch.nn.utils.get_total_norm([grads[n] for n in names], foreach=False)
            # clip_grad_norm_'s scale (clip_grads_with_norm_ itself scales .grad, which these tensors are not)
            scale = torch.clamp(layout.max_grad_norm / (norm + 1e-6), max=1.0)
            for n in names:
                grads[n] = grads[n] * scale
    for g in layout.groups:
        functional_adam(
            [params[n] for n in g.names],
            [grads[n] for n in g.names],
            [states[n]["exp_avg"] for n in g.names],
            [states[n]["exp_avg_sq"] for n in g.names],
            [states[n]["max_exp_avg_sq"] for n in g.names] if g.amsgrad else [],
            [states[n]["step"] for n in g.names],
            foreach=False,
            # the step count stays a tensor: no read-back, vmappable, CUDA-graph safe (torch refuses it eagerly on
            # a CPU, where the composition runs uncompiled only in tests)
            capturable=torch.compiler.is_compiling() or params[g.names[0]].device.type != "cpu",
            differentiable=False,
            fused=False,
            decoupled_weight_decay=g.decoupled_weight_decay,
            amsgrad=g.amsgrad,
            beta1=g.beta1,
            beta2=g.beta2,
            lr=hyper[g.lr],
            weight_decay=g.weight_decay,
            eps=g.eps,
            maximize=g.maximize,
        )
    polyak_update([frozen[n] for n in layout.target], [params[n] for n in layout.critic], hyper["tau"])
    return stats
