"""The loop's update step and collection policy (sac_runner/training/steps.py): the eager pieces on CPU, and on a
CUDA device (skipped without one) the captured graphs against the eager steps, a GPU run and its resume."""

import copy

import numpy as np
import pytest
import torch

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.compiled import CompiledUpdate
from sac_runner.agent.factory import make_agent
from sac_runner.agent.networks import NumpyActor, SquashedGaussianActor
from sac_runner.config import compose, validate
from sac_runner.errors import ConfigError
from sac_runner.keys import RESUME_OVERRIDABLE
from sac_runner.training.steps import GraphedPolicy, GraphedUpdateStep, Policy, UpdateStep, loop_steps, make_capturable
from tests.helpers import new_trainer, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
OBS, ACT = 5, 2


def filled_buffer(device, n=500, seed=0) -> ReplayBuffer:
    g = np.random.default_rng(seed)
    buf = ReplayBuffer(1000, OBS, ACT, torch.device(device), seed=seed)
    buf.add(
        g.normal(size=(n, OBS)),
        g.uniform(-1, 1, size=(n, ACT)),
        g.normal(size=n),
        g.normal(size=(n, OBS)),
        (g.random(n) < 0.1).astype(np.float32),
    )
    return buf


def agent_on(device, *overrides):
    torch.manual_seed(0)
    cfg = validate(compose("architecture=small", f"device={device}", *overrides))
    return make_agent(cfg, OBS, ACT, torch.device(device))


# ------------------------------------------------------------------------------------------ on CPU
def test_indices_drawn_into_a_fixed_tensor_gather_the_batch_sample_draws():
    a, b = filled_buffer("cpu"), filled_buffer("cpu")
    idx = torch.zeros(64, dtype=torch.long)
    for _ in range(3):
        assert b.sample_indices(64, out=idx) is idx
        for x, y in zip(a.sample(64), b.gather(idx)):
            assert torch.equal(x, y)


def test_on_cpu_the_loop_steps_are_the_eager_ones_whatever_cuda_graph_says():
    agent, buf = agent_on("cpu"), filled_buffer("cpu")
    update, policy = loop_steps(agent, buf, 32, 1, OBS, graphs=True)
    assert type(update) is UpdateStep and type(policy) is Policy
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedUpdateStep(agent, buf, 32)


def test_update_step_is_one_update_on_a_sampled_batch():
    a, b = agent_on("cpu"), agent_on("cpu")
    buf_a, buf_b = filled_buffer("cpu"), filled_buffer("cpu")
    step = UpdateStep(a, buf_a, 32)
    for _ in range(3):
        torch.manual_seed(7)
        stats_a = step()
        torch.manual_seed(7)
        stats_b = b.update(buf_b.sample(32))
        assert stats_a.keys() == stats_b.keys()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_numpy_actor_acts_as_the_torch_actor_with_the_current_weights(activation):
    """The CPU collection policy in NumPy: the same actions as actor.act (same noise draws), also after an
    optimizer step and a load_state_dict changed the weights in place."""
    torch.manual_seed(0)
    actor = SquashedGaussianActor(OBS, ACT, [32, 16], activation)
    other = SquashedGaussianActor(OBS, ACT, [32, 16], activation)
    fast = NumpyActor(actor)
    obs = np.random.default_rng(0).normal(size=(4, OBS)).astype(np.float32)
    opt = torch.optim.Adam(actor.parameters(), lr=0.1)

    def check():
        for deterministic in (True, False):
            torch.manual_seed(1)
            with torch.no_grad():
                want = actor.act(torch.from_numpy(obs), deterministic).numpy()
            torch.manual_seed(1)
            got = fast.act(obs, deterministic)
            assert got.dtype == np.float32 and got.shape == (4, ACT)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    check()
    actor.sample(torch.from_numpy(obs))[1].sum().backward()
    opt.step()
    check()
    actor.load_state_dict(other.state_dict())
    check()


def test_the_cpu_policy_uses_numpy_where_the_actor_allows_it():
    relu = agent_on("cpu")
    assert Policy(relu.actor, torch.device("cpu")).numpy is not None
    elu = agent_on("cpu", "architecture.activation=elu")
    assert not NumpyActor.supports(elu.actor) and Policy(elu.actor, torch.device("cpu")).numpy is None
    obs = np.zeros((1, OBS), np.float32)
    assert Policy(elu.actor, torch.device("cpu"))(obs).shape == (1, ACT)  # the torch path


def test_make_capturable_turns_capturable_on_for_every_group():
    agent = agent_on("cpu")
    agent.update(filled_buffer("cpu").sample(32))  # the optimizer state exists
    make_capturable(agent.optimizers)
    assert all(g["capturable"] for opt in agent.optimizers for g in opt.param_groups)


def test_cuda_graph_is_a_boolean_that_a_resume_may_change(make_cfg):
    assert make_cfg().cuda_graph is True
    assert make_cfg("cuda_graph=false").cuda_graph is False
    with pytest.raises(ConfigError, match=r"cuda_graph='yes' is not one of False, True"):
        make_cfg("cuda_graph=yes")
    assert "cuda_graph" in RESUME_OVERRIDABLE


# ------------------------------------------------------------------------------------------ on a GPU
@cuda
@pytest.mark.parametrize("compiled", [False, True])
def test_graphed_update_steps_as_the_eager_update(compiled):
    """Warm-up calls, the capture and many replays: the same parameters as eager updates on the same batches
    and the same noise (the default CUDA generator advances alike), and fresh statistics at every replay."""
    eager, graphed = agent_on("cuda", "actor_optimizer.lr=1e-2"), agent_on("cuda", "actor_optimizer.lr=1e-2")
    buf_e, buf_g = filled_buffer("cuda"), filled_buffer("cuda")
    # compiled: the whole update compiled (agent/compiled.py) in the graph; it draws the noise as SAC.update does
    inner = CompiledUpdate(graphed, buf_g.storage, buf_g.columns, 64) if compiled else None
    plain, step = UpdateStep(eager, buf_e, 64), GraphedUpdateStep(graphed, buf_g, 64, warmup=2, compiled=inner)
    torch.cuda.manual_seed(3)
    e_losses = [plain()["loss/critic"].item() for _ in range(12)]
    torch.cuda.manual_seed(3)
    g_losses = [step()["loss/critic"].item() for _ in range(12)]
    assert step.graph is not None  # captured after the two warm-up steps
    assert len(set(g_losses[3:])) == len(g_losses[3:])  # each replay wrote new statistics
    tol = {"rtol": 1e-4, "atol": 1e-5}  # a stale batch or noise draw would be off by orders of magnitude more
    torch.testing.assert_close(torch.tensor(g_losses), torch.tensor(e_losses), **tol)
    for (name, pe), pg in zip(eager.named_parameters(), graphed.parameters()):
        torch.testing.assert_close(pg, pe, **tol, msg=name)
    for pe, pg in zip(eager.target_critic.parameters(), graphed.target_critic.parameters()):
        torch.testing.assert_close(pg, pe, **tol)


@cuda
def test_graphed_policy_acts_as_the_eager_policy():
    agent = agent_on("cuda")
    eager = Policy(agent.actor, torch.device("cuda"))
    graphed = GraphedPolicy(copy.deepcopy(agent.actor), torch.device("cuda"), 3, OBS, warmup=1)
    obs = np.random.default_rng(0).normal(size=(6, 3, OBS)).astype(np.float32)
    torch.cuda.manual_seed(5)
    want = [eager(o) for o in obs]
    torch.cuda.manual_seed(5)
    got = [graphed(o) for o in obs]
    assert graphed.graph is not None
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-6, atol=1e-7)
    assert np.abs(np.stack(got)).max() <= 1.0


@cuda
def test_a_gpu_run_trains_checkpoints_and_resumes_with_graphs(tmp_path):
    """A short run on the GPU with captured graphs, then a resume that extends it: the resumed optimizer
    state comes from the checkpoint (capturable off there) and is captured again."""
    trainer = new_trainer(tmp_path / "run", "device=cuda", "algorithm.total_steps=200", "algorithm.utd_ratio=1")
    assert isinstance(trainer.update_step, GraphedUpdateStep) and isinstance(trainer.policy, GraphedPolicy)
    summary = train(trainer)
    assert summary["updates"] == 100 and trainer.update_step.graph is not None
    assert all(torch.isfinite(v).all() for v in trainer.state.stats.values())

    from sac_runner.training.checkpoint import load_checkpoint

    resumed = new_trainer(tmp_path / "run", "device=cuda", "algorithm.total_steps=300", "algorithm.utd_ratio=1")
    resumed.resume(load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cuda"))
    summary = train(resumed)
    assert summary["env_steps"] == 300 and summary["updates"] == 200
    assert resumed.update_step.graph is not None


@cuda
def test_cuda_graph_false_keeps_the_eager_steps_on_a_gpu(tmp_path):
    trainer = new_trainer(tmp_path / "run", "device=cuda", "cuda_graph=false", "algorithm.utd_ratio=1")
    assert type(trainer.update_step) is UpdateStep and type(trainer.policy) is Policy
    assert train(trainer)["updates"] == 200
