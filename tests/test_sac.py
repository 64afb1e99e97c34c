"""SAC maths: log-probabilities, loss values on hand-checkable cases, where gradients land, Polyak."""

import copy
import math

import pytest
import torch
from torch import distributions as D

from sac_runner.agent.networks import CriticEnsemble, SquashedGaussianActor, squashed_log_prob
from sac_runner.agent.sac import SAC, Batch, actor_loss, critic_loss, entropy_coef_loss, polyak_update

torch.set_num_threads(1)


class ConstActor(torch.nn.Module):
    """Always samples action `a` with log-probability `logp` (for hand-checkable losses)."""

    def __init__(self, a, logp):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0))
        self.a, self.logp = a, logp

    def sample(self, obs, noise=None):
        n = obs.shape[0]
        return self.w * torch.full((n, 1), self.a), self.w * torch.full((n,), self.logp)


class TableCritic(torch.nn.Module):
    """Q_i(s, a) = q[i] * (1 + s_0 + a_0): values chosen by the test."""

    def __init__(self, q):
        super().__init__()
        self.q = torch.nn.Parameter(torch.tensor(q))

    def forward(self, obs, act, detach_params=False):
        q = self.q.detach() if detach_params else self.q
        return q[:, None] * (1.0 + obs[:, 0] + act[:, 0])[None, :]


def test_squashed_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean, log_std = torch.randn(1000, 3), torch.rand(1000, 3) * 2 - 1.5
    noise = torch.randn(1000, 3)
    u = mean + log_std.exp() * noise
    ours = squashed_log_prob(u, noise, log_std)
    ref = D.TransformedDistribution(D.Normal(mean, log_std.exp()), [D.TanhTransform()])
    a = torch.tanh(u).clamp(-1 + 1e-6, 1 - 1e-6)
    close = a.abs().amax(-1) < 0.999  # the reference itself is inaccurate at saturation
    torch.testing.assert_close(ours[close], ref.log_prob(a).sum(-1)[close], atol=1e-3, rtol=1e-4)


def test_squashed_log_prob_is_finite_when_saturated():
    u = torch.tensor([[40.0], [-40.0], [0.0]])
    lp = squashed_log_prob(u, torch.zeros_like(u), torch.zeros_like(u))
    assert torch.isfinite(lp).all()
    # -log(1 - tanh(u)^2) -> 2|u| - 2 log 2 for large |u|: the density piles up at the bound
    assert lp[0].item() == pytest.approx(-0.5 * math.log(2 * math.pi) + 2 * (40 - math.log(2)), rel=1e-5)
    assert lp[1].item() == pytest.approx(lp[0].item(), rel=1e-6)


def test_actor_sample_shapes_and_bounds():
    actor = SquashedGaussianActor(3, 2, [16, 16])
    a, lp = actor.sample(torch.randn(5, 3))
    assert a.shape == (5, 2) and lp.shape == (5,)
    assert (a.abs() <= 1).all()
    det = actor.act(torch.randn(5, 3), deterministic=True)
    assert det.shape == (5, 2)


def test_stochastic_act_draws_the_same_action_as_sample():
    actor, obs = SquashedGaussianActor(3, 2, [16, 16]), torch.randn(5, 3)
    torch.manual_seed(7)
    acted = actor.act(obs, deterministic=False)
    torch.manual_seed(7)
    sampled, _ = actor.sample(obs)
    torch.testing.assert_close(acted, sampled)
    assert not torch.equal(acted, actor.act(obs, deterministic=True))


def test_actor_backbone_ends_with_an_activation():
    actor = SquashedGaussianActor(3, 1, [8, 8])
    assert isinstance(actor.backbone[-1], torch.nn.ReLU)


def test_critic_ensemble_equals_members_evaluated_separately():
    torch.manual_seed(0)
    ens = CriticEnsemble(3, 2, [8, 8], n=2)
    obs, act = torch.randn(4, 3), torch.randn(4, 2)
    out = ens(obs, act)
    assert out.shape == (2, 4)
    x = torch.cat([obs, act], -1)
    for i in range(2):
        h = x
        layers = [m for m in ens.net if hasattr(m, "weight")]
        for j, layer in enumerate(layers):
            h = h @ layer.weight[i] + layer.bias[i]
            if j < len(layers) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(out[i], h.squeeze(-1))
    assert not torch.allclose(out[0], out[1])  # members are initialised independently


def test_critic_loss_hand_computed():
    # s = 0, a = 0: Q = (1, 3); s' = 0, a' = 0.5: Qbar = (2, 4) * 1.5 = (3, 6), min 3; logp' = -1
    obs = torch.zeros(2, 1)
    batch = Batch(obs, torch.zeros(2, 1), torch.tensor([1.0, 1.0]), obs.clone(), torch.tensor([0.0, 1.0]))
    actor = ConstActor(0.5, -1.0)
    critic, target = TableCritic([1.0, 3.0]), TableCritic([2.0, 4.0])
    loss, q = critic_loss(actor, critic, target, batch, entropy_coef=torch.tensor(0.2), discount=0.9)
    y = torch.tensor([1 + 0.9 * (3.0 + 0.2), 1.0])  # second transition terminal: y = r
    expected = ((1.0 - y) ** 2).mean() + ((3.0 - y) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item())
    assert q.shape == (2, 2)


def test_actor_and_entropy_coef_loss_hand_computed():
    obs = torch.zeros(3, 1)
    actor, critic = ConstActor(0.5, -2.0), TableCritic([1.0, 3.0])
    loss, logp = actor_loss(actor, critic, obs, entropy_coef=torch.tensor(0.1))
    assert loss.item() == pytest.approx(0.1 * -2.0 - 1.5)  # min Q = 1 * (1 + 0.5)
    log_alpha = torch.tensor(math.log(0.1), requires_grad=True)
    a_loss = entropy_coef_loss(log_alpha, logp, target_entropy=-1.0)
    assert a_loss.item() == pytest.approx(-0.1 * (-2.0 - 1.0))
    a_loss.backward()  # entropy 2 > target -1: alpha must shrink, i.e. positive gradient on log alpha
    assert log_alpha.grad.item() > 0


def make_agent(learn_entropy_coef=True, optimizer=torch.optim.SGD, grouped=False, **opt_kwargs):
    """A small agent whose optimizers (lr 0.1 unless given) are one per network, or one with a group each."""
    torch.manual_seed(0)
    actor, critic = SquashedGaussianActor(3, 2, [16, 16]), CriticEnsemble(3, 2, [16, 16])
    target = copy.deepcopy(critic)
    agent = SAC(
        actor,
        critic,
        target,
        torch.tensor(0.0),
        discount=0.99,
        tau=0.1,
        target_entropy=-2.0,
        learn_entropy_coef=learn_entropy_coef,
    )
    opt_kwargs.setdefault("lr", 0.1)
    groups = agent.param_groups()
    if grouped:
        agent.optimizers = [optimizer([{"params": p} for p in groups.values()], **opt_kwargs)]
    else:
        agent.optimizers = [optimizer(p, **opt_kwargs) for p in groups.values()]
    return agent


def batch(n=8):
    g = torch.Generator().manual_seed(1)
    return Batch(
        torch.randn(n, 3, generator=g),
        torch.rand(n, 2, generator=g) * 2 - 1,
        torch.randn(n, generator=g),
        torch.randn(n, 3, generator=g),
        (torch.rand(n, generator=g) < 0.3).float(),
    )


def grads(module):
    return [p.grad for p in module.parameters()]


def update_alike(agents, data, seed):
    """One update of each agent on the same batch, each from the same torch seed (the same noise draws)."""
    for agent in agents:
        torch.manual_seed(seed)
        agent.update(data)


def assert_same_parameters(a, b):
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name


def test_gradients_land_only_where_they_should():
    agent, b = make_agent(), batch()
    q_loss, _ = critic_loss(agent.actor, agent.critic, agent.target_critic, b, agent.entropy_coef, agent.discount)
    q_loss.backward()
    assert all(g is not None and g.abs().sum() > 0 for g in grads(agent.critic))
    assert all(g is None for g in grads(agent.actor)), "critic loss touched the actor"
    assert agent.log_entropy_coef.grad is None
    assert all(g is None for g in grads(agent.target_critic))

    agent.critic.zero_grad(set_to_none=True)
    pi_loss, logp = actor_loss(agent.actor, agent.critic, b.obs, agent.entropy_coef)
    pi_loss.backward()
    assert all(g is not None for g in grads(agent.actor))
    assert all(g is None for g in grads(agent.critic)), "actor loss touched the critic"
    assert agent.log_entropy_coef.grad is None and all(g is None for g in grads(agent.target_critic))

    agent.actor.zero_grad(set_to_none=True)
    entropy_coef_loss(agent.log_entropy_coef, logp, agent.target_entropy).backward()
    assert agent.log_entropy_coef.grad is not None
    assert all(g is None for g in grads(agent.actor) + grads(agent.critic) + grads(agent.target_critic))


def test_one_backward_of_the_summed_losses_gives_each_network_its_own_losss_gradient():
    """What SAC.update relies on: the sum's gradient equals each loss's gradient taken alone."""
    agent, b = make_agent(), batch()
    alone = {}
    for name, params in agent.param_groups().items():
        torch.manual_seed(3)
        q_loss, _ = critic_loss(agent.actor, agent.critic, agent.target_critic, b, agent.entropy_coef, agent.discount)
        pi_loss, logp = actor_loss(agent.actor, agent.critic, b.obs, agent.entropy_coef)
        own = {
            "critic": q_loss,
            "actor": pi_loss,
            "entropy_coef": entropy_coef_loss(agent.log_entropy_coef, logp, agent.target_entropy),
        }
        alone[name] = torch.autograd.grad(own[name], params)
    torch.manual_seed(3)
    q_loss, _ = critic_loss(agent.actor, agent.critic, agent.target_critic, b, agent.entropy_coef, agent.discount)
    pi_loss, logp = actor_loss(agent.actor, agent.critic, b.obs, agent.entropy_coef)
    total = q_loss + pi_loss + entropy_coef_loss(agent.log_entropy_coef, logp, agent.target_entropy)
    for name, params in agent.param_groups().items():
        for g_sum, g_alone in zip(torch.autograd.grad(total, params, retain_graph=True), alone[name]):
            torch.testing.assert_close(g_sum, g_alone, rtol=1e-6, atol=1e-7)


def test_update_changes_online_networks_and_moves_targets_by_polyak():
    agent = make_agent()
    before = copy.deepcopy(agent.state_dict())
    stats = agent.update(batch())
    after = agent.state_dict()
    for net in ("actor", "critic"):
        for k in before[net]:
            assert not torch.equal(before[net][k], after[net][k]), f"{net}.{k} did not change"
    assert set(before["target_critic"]) == set(before["critic"])
    for k in before["target_critic"]:
        expected = 0.9 * before["target_critic"][k] + 0.1 * after["critic"][k]
        torch.testing.assert_close(after["target_critic"][k], expected)
    assert after["log_alpha"] != before["log_alpha"]
    assert {"loss/critic", "loss/actor", "loss/alpha", "alpha", "entropy", "q/mean"} <= set(stats)


def test_fixed_alpha_never_moves():
    agent = make_agent(learn_entropy_coef=False)
    agent.update(batch())
    assert agent.log_entropy_coef.item() == 0.0 and not agent.log_entropy_coef.requires_grad


def test_polyak_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    polyak_update(list(a.parameters()), list(b.parameters()), 0.25)
    torch.testing.assert_close(a.weight, 0.75 * wa + 0.25 * wb)
    polyak_update(list(a.parameters()), list(b.parameters()), 1.0)
    torch.testing.assert_close(a.weight, wb)


def test_state_dict_round_trip_continues_identically():
    """Networks, target, log alpha and all three optimizers' moments come back: the next update matches."""

    def adam_agent():
        return make_agent(optimizer=torch.optim.Adam, lr=1e-2)

    a = adam_agent()
    for _ in range(3):
        a.update(batch())
    b = adam_agent()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    update_alike((a, b), batch(), seed=7)
    assert_same_parameters(a, b)
    for name, opt in zip(b.param_groups(), b.optimizers):
        assert opt.state_dict()["state"], f"{name} optimizer state was not restored"


@pytest.mark.parametrize("fused", [False, True])
def test_one_grouped_optimizer_updates_exactly_as_one_optimizer_per_network(fused):
    separate = make_agent(optimizer=torch.optim.Adam, lr=1e-2, fused=fused)
    grouped = make_agent(optimizer=torch.optim.Adam, grouped=True, lr=1e-2, fused=fused)
    for _ in range(3):
        update_alike((separate, grouped), batch(), seed=5)
    assert_same_parameters(separate, grouped)


def test_per_network_optimizer_states_of_checkpoint_format_2_load_into_one_grouped_optimizer():
    old = make_agent(optimizer=torch.optim.Adam, lr=1e-2)
    for _ in range(2):
        old.update(batch())
    state = copy.deepcopy(old.state_dict())
    # format 2: one optimizer state per network, by the network's name in those files
    assert list(old.param_groups()) == ["critic", "actor", "entropy_coef"]
    state["optimizers"] = dict(zip(["critic", "actor", "alpha"], state["optimizers"]))
    new = make_agent(optimizer=torch.optim.Adam, grouped=True, lr=1e-2)
    new.load_state_dict(state)
    update_alike((old, new), batch(), seed=9)
    assert_same_parameters(old, new)


def test_gradient_clipping_bounds_the_norm():
    agent = make_agent()
    agent.max_grad_norm = 1e-3
    seen = []
    orig = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm):
        params = list(params)
        orig(params, max_norm)
        seen.append(torch.sqrt(sum((p.grad**2).sum() for p in params if p.grad is not None)).item())

    torch.nn.utils.clip_grad_norm_ = spy
    try:
        agent.update(batch())
    finally:
        torch.nn.utils.clip_grad_norm_ = orig
    assert len(seen) == 3 and max(seen) <= 1e-3 * 1.01
