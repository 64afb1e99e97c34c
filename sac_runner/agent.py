"""Factories: build the SAC agent (networks, target, log alpha, optimizers) from the config."""

from __future__ import annotations

import copy
import inspect
import math

import torch
from hydra.utils import instantiate

from sac_runner.networks import CriticEnsemble, SquashedGaussianActor
from sac_runner.sac import SAC


def make_optimizer(opt_cfg, params) -> torch.optim.Optimizer:
    """The configured optimizer (`_target_` a torch.optim class, `_partial_: true`, its other keys the constructor's
    arguments); where the class has a fused implementation (Adam, AdamW, SGD) and the config chooses neither
    `fused` nor `foreach`, the fused one (same update, fewer kernel launches)."""
    params = list(params)
    factory = instantiate(opt_cfg, _convert_="all")  # functools.partial(cls, **kwargs), plain lists for betas etc.
    if "fused" in inspect.signature(factory.func.__init__).parameters and not {"fused", "foreach"} & set(opt_cfg):
        try:
            return factory(params, fused=True)
        except (RuntimeError, ValueError, TypeError):  # an older torch or an unsupported device
            pass
    return factory(params)


def resolve_device(name: str) -> torch.device:
    """`device` of the config (or of sac-visualize): cpu, cuda, or auto (cuda when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_actor(cfg, obs_dim: int, act_dim: int, device: torch.device) -> SquashedGaussianActor:
    arch = cfg.architecture
    return SquashedGaussianActor(
        obs_dim, act_dim, list(arch.actor_hidden_sizes), arch.activation, arch.log_std_min, arch.log_std_max
    ).to(device)


def make_agent(cfg, obs_dim: int, act_dim: int, device: torch.device) -> SAC:
    arch, algo = cfg.architecture, cfg.algorithm
    actor = make_actor(cfg, obs_dim, act_dim, device)
    critic = CriticEnsemble(obs_dim, act_dim, list(arch.critic_hidden_sizes), arch.activation, arch.n_critics).to(
        device
    )
    target_critic = copy.deepcopy(critic)
    learn_alpha = algo.entropy_mode == "auto"
    log_alpha = torch.tensor(math.log(algo.init_entropy_coef), dtype=torch.float32, device=device)
    target_entropy = float(-act_dim if algo.target_entropy is None else algo.target_entropy)
    agent = SAC(
        actor,
        critic,
        target_critic,
        log_alpha,
        (None, None, None),
        gamma=float(algo.discount),
        tau=float(algo.tau),
        target_entropy=target_entropy,
        learn_alpha=learn_alpha,
        max_grad_norm=algo.max_grad_norm,
    )
    agent.actor_optimizer = make_optimizer(cfg.actor_optimizer, agent.actor.parameters())
    agent.critic_optimizer = make_optimizer(cfg.critic_optimizer, agent.critic.parameters())
    agent.alpha_optimizer = make_optimizer(cfg.entropy_coef_optimizer, [agent.log_alpha]) if learn_alpha else None
    return agent
