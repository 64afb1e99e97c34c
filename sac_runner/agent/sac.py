"""Soft Actor-Critic (Haarnoja et al., 2018): the losses and one update step.

Notation: s, a, r, s', d = a replay batch (d = 1 only on *termination*; a time-limit
truncation keeps bootstrapping), gamma the discount (algorithm.discount), alpha = exp(log_alpha) the
entropy coefficient, Q_i the critic ensemble, Qbar_i its Polyak-averaged target, pi the actor. In the code
gamma is `discount` and alpha `entropy_coef`, as in the config.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, obs_dim)
    act: torch.Tensor  # (B, act_dim), in [-1, 1]
    rew: torch.Tensor  # (B,)
    next_obs: torch.Tensor  # (B, obs_dim)
    terminated: torch.Tensor  # (B,) float, 1.0 where s' is terminal


def critic_loss(
    actor,
    critic,
    target_critic,
    batch: Batch,
    entropy_coef: torch.Tensor,
    discount: float | torch.Tensor,
    noise: torch.Tensor | None = None,
):
    """J_Q = sum_i E[(Q_i(s, a) - y)^2],  y = r + gamma (1 - d) (min_i Qbar_i(s', a') - alpha log pi(a'|s')),
    with a' ~ pi(.|s') sampled fresh (from `noise` when given). The target carries no gradient."""
    with torch.no_grad():
        next_act, next_logp = actor.sample(batch.next_obs, noise)
        next_q = target_critic(batch.next_obs, next_act).min(dim=0).values
        y = batch.rew + discount * (1.0 - batch.terminated) * (next_q - entropy_coef * next_logp)
    q = critic(batch.obs, batch.act)  # (n_critics, B)
    loss = (q - y).pow(2).mean(dim=1).sum()
    return loss, q.detach()


def actor_loss(actor, critic, obs: torch.Tensor, entropy_coef: torch.Tensor, noise: torch.Tensor | None = None):
    """J_pi = E_s[alpha log pi(a|s) - min_i Q_i(s, a)],  a = tanh(mu + sigma * eps) (reparameterised, eps from
    `noise` when given). The critic is evaluated with detached parameters, so this loss puts no gradient on it."""
    act, logp = actor.sample(obs, noise)
    q = critic(obs, act, detach_params=True).min(dim=0).values
    return (entropy_coef * logp - q).mean(), logp.detach()


def entropy_coef_loss(log_entropy_coef: torch.Tensor, logp: torch.Tensor, target_entropy: float | torch.Tensor):
    """J_alpha = E[-alpha (log pi(a|s) + Hbar)]: alpha grows when the entropy -log pi falls below Hbar."""
    return -(log_entropy_coef.exp() * (logp.detach() + target_entropy)).mean()


@torch.no_grad()
def polyak_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float | torch.Tensor) -> None:
    """Qbar <- (1 - tau) Qbar + tau Q, over matching parameter lists. tau is a float, or a 0-d tensor in the
    compiled update (agent/compiled.py), where one lerp per tensor keeps it on the device and vmappable."""
    if isinstance(tau, torch.Tensor):
        for t, o in zip(target, online):
            t.lerp_(o, tau)
    else:
        torch._foreach_lerp_(target, online, tau)


def merge_optimizer_states(states: list[dict]) -> dict:
    """One optimizer's state_dict from those of optimizers over consecutive parameter groups."""
    merged: dict = {"state": {}, "param_groups": []}
    offset = 0
    for st in states:
        merged["state"].update({offset + int(i): v for i, v in st["state"].items()})
        for group in st["param_groups"]:
            merged["param_groups"].append({**group, "params": [offset + int(i) for i in group["params"]]})
        offset += sum(len(g["params"]) for g in st["param_groups"])
    return merged


# checkpoint format <= 2 kept the optimizers' states by network, under these names (param_groups: the file's)
FORMAT2_NAMES = {"critic": "critic", "actor": "actor", "entropy_coef": "alpha"}


class SAC(nn.Module):
    """Actor, critic ensemble, target critics, log alpha and their optimizers; `update` is one gradient step.

    Args:
        actor: a SquashedGaussianActor (its `sample` gives reparameterised actions and log-probabilities).
        critic: a CriticEnsemble, Q_1..Q_n in one module; target_critic: its copy, updated by Polyak averaging.
        log_entropy_coef: the initial log entropy coefficient, log alpha (a scalar tensor).
        optimizers: the optimizers over `param_groups()` (one holding all three groups, or one each); they step
            after each update's single backward pass.
        discount: gamma; tau: Polyak factor; target_entropy: Hbar, the entropy alpha steers towards.
        learn_entropy_coef: tune alpha (entropy_mode=auto) or keep it fixed.
        max_grad_norm: clip each network's gradient norm to this value (None: no clipping).
    """

    def __init__(
        self,
        actor,
        critic,
        target_critic,
        log_entropy_coef,
        optimizers=(),
        *,
        discount,
        tau,
        target_entropy,
        learn_entropy_coef,
        max_grad_norm=None,
    ):
        super().__init__()
        self.actor, self.critic, self.target_critic = actor, critic, target_critic
        self.target_critic.requires_grad_(False)
        self.log_entropy_coef = nn.Parameter(log_entropy_coef, requires_grad=learn_entropy_coef)
        self.optimizers: list[torch.optim.Optimizer] = list(optimizers)
        self.discount, self.tau, self.target_entropy = discount, tau, target_entropy
        self.learn_entropy_coef, self.max_grad_norm = learn_entropy_coef, max_grad_norm
        # parameter lists looked up once: walking the module tree on every update is measurable on CPU
        self._actor_params, self._critic_params = list(actor.parameters()), list(critic.parameters())
        self._target_params = list(target_critic.parameters())

    def state_dict(self) -> dict:  # type: ignore[override]
        """Everything an update changes: networks, target, log alpha and the optimizers' states."""
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_entropy_coef.detach().cpu().clone(),  # the checkpoint's name for it
            "optimizers": [opt.state_dict() for opt in self.optimizers],
        }

    def load_state_dict(self, state: dict) -> None:  # type: ignore[override]
        """Load a state_dict(); raises (RuntimeError, KeyError, ValueError) when it does not fit."""
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        with torch.no_grad():
            self.log_entropy_coef.copy_(state["log_alpha"].to(self.log_entropy_coef.device))
        saved = state["optimizers"]
        if isinstance(saved, dict):  # checkpoint format <= 2: one optimizer state per network, by its name there
            saved = [
                merge_optimizer_states([saved[FORMAT2_NAMES[name]] for name in self._optimized_by(opt)])
                for opt in self.optimizers
            ]
        if len(saved) != len(self.optimizers):
            raise ValueError(f"{len(saved)} saved optimizer states for {len(self.optimizers)} optimizers")
        for opt, opt_state in zip(self.optimizers, saved):
            opt.load_state_dict(opt_state)

    def _optimized_by(self, opt: torch.optim.Optimizer) -> list[str]:
        """The names (param_groups()) of the networks `opt` trains, in its group order."""
        first = {id(params[0]): name for name, params in self.param_groups().items()}
        return [first[id(group["params"][0])] for group in opt.param_groups]

    def param_groups(self) -> dict[str, list[torch.Tensor]]:
        """The parameters each loss trains, by name: critic, actor, and entropy_coef (when it is learned)."""
        groups = {"critic": self._critic_params, "actor": self._actor_params}
        if self.learn_entropy_coef:
            groups["entropy_coef"] = [self.log_entropy_coef]
        return groups

    @property
    def entropy_coef(self) -> torch.Tensor:
        """alpha = exp(log alpha), without gradient."""
        return self.log_entropy_coef.detach().exp()

    def checked_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """(name, tensor) of every learned tensor, named for an error message: the parameters and log alpha."""
        named = [(f"actor parameter {n}", v) for n, v in self.actor.named_parameters()]
        named += [(f"critic parameter {n}", v) for n, v in self.critic.named_parameters()]
        named += [(f"target critic parameter {n}", v) for n, v in self.target_critic.named_parameters()]
        return [*named, ("log_alpha", self.log_entropy_coef)]

    def losses(
        self,
        batch: Batch,
        discount: float | torch.Tensor | None = None,
        target_entropy: float | torch.Tensor | None = None,
        noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum of the three losses on `batch`, all from the current parameters, and the step's statistics.

        Each loss puts gradient on its own parameters only (the target carries none, the actor's loss
        reaches the critic through detached parameters, alpha's loss sees log pi detached), so one
        backward pass of the sum gives every network exactly its own loss's gradient.

        discount and target_entropy default to the agent's; the compiled update (agent/compiled.py) passes
        them as tensors. noise: the actor's two standard normal draws, for s' (the critic's target) and for s
        (the actor's loss); by default drawn by the actor, in that order.
        """
        discount = self.discount if discount is None else discount
        target_entropy = self.target_entropy if target_entropy is None else target_entropy
        next_noise, noise_now = (None, None) if noise is None else noise
        entropy_coef = self.entropy_coef
        q_loss, q = critic_loss(self.actor, self.critic, self.target_critic, batch, entropy_coef, discount, next_noise)
        pi_loss, logp = actor_loss(self.actor, self.critic, batch.obs, entropy_coef, noise_now)
        total = q_loss + pi_loss
        stats = {
            "loss/critic": q_loss.detach(),
            "loss/actor": pi_loss.detach(),
            "q/mean": q.mean(),
            "q/min": q.min(),
            "q/max": q.max(),
            "entropy": -logp.mean(),
            "alpha": entropy_coef,  # the TensorBoard tags keep their names: train/alpha, train/loss/alpha
        }
        if self.learn_entropy_coef:
            a_loss = entropy_coef_loss(self.log_entropy_coef, logp, target_entropy)
            total = total + a_loss
            stats["loss/alpha"] = a_loss.detach()
        stats["loss/total"] = total.detach()  # finite exactly when every loss is: the loop checks this one
        return total, stats

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step of critic, actor and alpha on `batch` (see `losses`), then the target update.
        agent/compiled.py runs the same step as one compiled function."""
        total, stats = self.losses(batch)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        total.backward()
        if self.max_grad_norm is not None:
            for params in self.param_groups().values():
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        for opt in self.optimizers:
            opt.step()
        polyak_update(self._target_params, self._critic_params, self.tau)
        return stats
