"""The compiled SAC update (sac_runner/agent/compiled.py, training/steps.py's CompiledUpdateStep) against the eager
SAC.update: the same step over many steps, the same tensors written in place in torch.optim's format, the paths
switchable at any step and through checkpoints, exact resume through the Trainer, and the eager fallback.

Cheap by design (the fast tier): most tests run the composition without torch.compile (backend None: the same
functions, run eagerly), one builds it with backend "aot_eager" (dynamo and AOTAutograd, no C++ compiler); the real
inductor build (80+ s cold here) is in the system tier only."""

import copy
import io

import numpy as np
import pytest
import torch

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.agent.compiled import CompiledUpdate, unsupported
from sac_runner.agent.factory import make_agent
from sac_runner.config import compose, validate
from sac_runner.errors import ConfigError
from sac_runner.keys import RESUME_OVERRIDABLE
from sac_runner.training import steps
from sac_runner.training.steps import CompiledUpdateStep, UpdateStep, compiled_update_wanted
from tests.test_resume import assert_same_state, new_run, resume_run

OBS, ACT, BATCH, STEPS = 3, 2, 32, 50
TINY_NETS = ["architecture.actor_hidden_sizes=[16,16]", "architecture.critic_hidden_sizes=[16,16]"]
# every option the compiled step handles, at once: two optimizer classes, weight decay, amsgrad, own lrs, clipping
RICH = [
    "optimizer@actor_optimizer=adamw",
    "actor_optimizer.weight_decay=0.05",
    "actor_optimizer.lr=1e-3",
    "+critic_optimizer.amsgrad=true",
    "critic_optimizer.lr=2e-3",
    "algorithm.max_grad_norm=0.5",
]
# with RICH (learned alpha) in the aot_eager test below, every option is covered
CASES = {
    "adam, learned alpha": [],
    "adamw + weight decay, fixed alpha": [
        "optimizer@actor_optimizer=adamw",
        "optimizer@critic_optimizer=adamw",
        "actor_optimizer.weight_decay=0.05",
        "critic_optimizer.weight_decay=0.01",
        "algorithm.entropy_mode=fixed",
        "algorithm.init_entropy_coef=0.2",
    ],
    "adam, max_grad_norm (clipping active)": ["algorithm.max_grad_norm=0.5"],
}
TIGHT = {"rtol": 1e-5, "atol": 1e-6}


def new_agent(*overrides, seed=0):
    torch.manual_seed(seed)
    cfg = validate(compose(*TINY_NETS, "algorithm.discount=0.95", *overrides))
    return make_agent(cfg, OBS, ACT, torch.device("cpu"))


def filled_buffer(n=400, seed=0) -> ReplayBuffer:
    g = np.random.default_rng(seed)
    buf = ReplayBuffer(512, OBS, ACT, torch.device("cpu"), seed=seed)
    buf.add(
        g.normal(size=(n, OBS)),
        g.uniform(-1, 1, size=(n, ACT)),
        g.normal(size=n),
        g.normal(size=(n, OBS)),
        (g.random(n) < 0.1).astype(np.float32),
    )
    return buf


def indices(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 400, (BATCH,), generator=g) for _ in range(n)]


def opt_states(agent) -> list[dict[str, torch.Tensor]]:
    return [dict(opt.state[p]) for opt in agent.optimizers for g in opt.param_groups for p in g["params"]]


def assert_agents_close(a, b, equal=False, **tol):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if equal:
            assert torch.equal(p, q), name
        else:
            torch.testing.assert_close(q, p, **tol, msg=lambda m, name=name: f"{name}: {m}")
    for sa, sb in zip(opt_states(a), opt_states(b)):
        assert sa.keys() == sb.keys()
        for k in sa:
            if equal:
                assert torch.equal(sa[k], sb[k]), k
            else:
                torch.testing.assert_close(sb[k], sa[k], **tol, msg=lambda m, k=k: f"state {k}: {m}")


def eager_step(agent, buf):
    return lambda idx: agent.update(buf.gather(idx))


def run(step, idxs, seed0=1000):
    """`step` on each index tensor, torch's generator reseeded per step (both paths draw the same noise)."""
    out = []
    for t, idx in enumerate(idxs):
        torch.manual_seed(seed0 + t)
        out.append({k: float(v) for k, v in step(idx).items()})
    return out


def worst_relative_difference(a, b) -> float:
    return max(
        ((p - q).norm() / (p.norm() + 1e-3 * p.numel() ** 0.5)).item() for p, q in zip(a.parameters(), b.parameters())
    )


def check_against_eager(case_overrides, backend):
    """Two checks over STEPS steps of the compiled step:
    - step by step: from each state the compiled run reaches, one eager SAC.update (on a copy) and one compiled step
      give the same parameters and optimizer state to float rounding (TIGHT);
    - the whole run: its statistics follow the all-eager run's at every step, its parameters end near the eager
      run's (SAC amplifies rounding over tens of steps, so this one is looser and relative to the norms)."""
    buf = filled_buffer()
    eager = new_agent(*case_overrides)
    compiled, start = copy.deepcopy(eager), copy.deepcopy(eager)
    update = CompiledUpdate(compiled, buf.storage, buf.columns, BATCH, backend=backend)
    idxs = indices(STEPS)
    eager_stats = run(eager_step(eager, buf), idxs)
    compiled_stats = []
    for t, idx in enumerate(idxs):
        one_eager = copy.deepcopy(compiled)
        compiled_stats += run(update, [idx], 1000 + t)
        run(eager_step(one_eager, buf), [idx], 1000 + t)
        assert_agents_close(one_eager, compiled, **TIGHT)
    for t in range(STEPS):
        assert compiled_stats[t].keys() == eager_stats[t].keys()
        for k, v in eager_stats[t].items():
            assert compiled_stats[t][k] == pytest.approx(v, rel=1e-3, abs=1e-4), (t, k)
    assert worst_relative_difference(eager, compiled) <= 1e-2
    assert worst_relative_difference(start, compiled) > 1e-2  # the agents moved far beyond that tolerance
    return eager, compiled, update


@pytest.mark.parametrize("case", list(CASES))
def test_the_composition_steps_as_the_eager_update(case):
    check_against_eager(CASES[case], backend=None)


def test_the_step_by_step_check_catches_a_wrong_hyperparameter():
    """The tight comparison can fail: an eager step with another discount, tau, target entropy, weight decay or
    clipping threshold does not pass as the compiled step."""
    buf = filled_buffer()
    compiled = new_agent(*RICH)
    update = CompiledUpdate(compiled, buf.storage, buf.columns, BATCH, backend=None)
    run(update, indices(3, seed=1))
    idx = indices(1, seed=2)
    eagers = {}
    for name, factor in [
        ("discount", 0.96),
        ("tau", 2),
        ("target_entropy", 0.5),
        ("weight_decay", 2),
        ("max_grad_norm", 0.1),
    ]:
        eager = eagers[name] = copy.deepcopy(compiled)
        if name == "weight_decay":
            next(g for opt in eager.optimizers for g in opt.param_groups if g["weight_decay"])["weight_decay"] *= factor
        else:
            setattr(eager, name, getattr(eager, name) * factor)
    right = copy.deepcopy(compiled)
    run(update, idx)
    for eager in [right, *eagers.values()]:
        run(eager_step(eager, buf), idx)
    assert_agents_close(right, compiled, **TIGHT)
    for name, eager in eagers.items():
        with pytest.raises(AssertionError):
            assert_agents_close(eager, compiled, **TIGHT)
            print(name, "passed as the compiled step")


def test_compiled_with_aot_eager_writes_in_place_and_switches_with_eager_through_checkpoints():
    """One graph (aot_eager: dynamo + AOTAutograd, no C++), the run all options at once (RICH, learned alpha):
    - over STEPS steps it steps as the eager update (step by step and over the run, as above);
    - it wrote the agent's own tensors in place, the optimizer state in torch.optim.Adam's format;
    - eager -> compiled -> checkpoint -> eager -> compiled (and a state loaded under the live update) follows an
      all-eager run."""
    eager, agent, update = check_against_eager(RICH, backend="aot_eager")
    params = list(agent.parameters())
    assert [id(p) for p in params] == [id(p) for p in update.agent.parameters()]
    states = opt_states(agent)
    ids = [{k: id(v) for k, v in s.items()} for s in states]
    for opt in agent.optimizers:
        amsgrad = opt.param_groups[0]["amsgrad"]
        for p in opt.param_groups[0]["params"]:
            st = opt.state[p]
            assert set(st) == {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if amsgrad else set())
            assert st["step"].dtype == torch.float32 and st["step"].dim() == 0 and float(st["step"]) == STEPS
            assert st["exp_avg"].shape == p.shape and bool((st["exp_avg"] != 0).any())
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    buf = filled_buffer()
    run(update, indices(1, seed=7))
    assert [id(p) for p in agent.parameters()] == [id(p) for p in params]  # the same Parameter objects...
    assert [n for n, p in agent.named_parameters() if torch.equal(p, before[n])] == []  # ...all written
    assert [{k: id(v) for k, v in s.items()} for s in opt_states(agent)] == ids  # ...and the same state tensors
    run(eager_step(eager, buf), indices(1, seed=7))
    assert_agents_close(eager, agent, rtol=1e-2, atol=1e-3)

    # switching paths: the compiled-written state resumes eagerly, and an eager-written one compiled
    reference = new_agent(*RICH, seed=3)
    mixed = copy.deepcopy(reference)
    idxs = indices(60, seed=4)
    run(eager_step(reference, buf), idxs)
    run(eager_step(mixed, buf), idxs[:10])
    run(update_for(mixed, buf), idxs[10:25], 1010)
    checkpoint = io.BytesIO()
    torch.save(mixed.state_dict(), checkpoint)  # written by the compiled path...
    checkpoint.seek(0)
    resumed = new_agent(*RICH, seed=9)
    resumed.load_state_dict(torch.load(checkpoint, weights_only=True))
    run(eager_step(resumed, buf), idxs[25:40], 1025)  # ...resumed eagerly
    live = update_for(resumed, buf)
    run(live, idxs[40:50], 1040)
    resumed.load_state_dict(copy.deepcopy(resumed.state_dict()))  # a checkpoint loaded under the live update
    run(live, idxs[50:], 1050)
    assert_agents_close(reference, resumed, rtol=1e-4, atol=2e-5)


def update_for(agent, buf):
    """The compiled step of `agent`, without torch.compile (the graph's maths; aot_eager's is checked above)."""
    return CompiledUpdate(agent, buf.storage, buf.columns, BATCH, backend=None)


def test_a_changed_learning_rate_or_option_is_picked_up():
    """Learning rates are tensors the step reads (a scheduler's change counts at the next step); a constant
    option (betas, weight decay ...) rebuilds the step."""
    buf = filled_buffer()
    eager = new_agent(*RICH)
    compiled = copy.deepcopy(eager)
    update = update_for(compiled, buf)
    idxs = indices(6, seed=5)
    for agent, step in ((eager, eager_step(eager, buf)), (compiled, update)):
        run(step, idxs[:2])
        agent.optimizers[0].param_groups[0]["lr"] = 3e-3
        run(step, idxs[2:4], 1002)
        agent.optimizers[-1].param_groups[0]["betas"] = (0.8, 0.99)
        run(step, idxs[4:], 1004)
    assert_agents_close(eager, compiled, **TIGHT)


def test_unsupported_optimizers_keep_the_eager_update_with_one_line(make_cfg, capsys):
    rms = new_agent("critic_optimizer._target_=torch.optim.RMSprop")
    assert "torch.optim.rmsprop.RMSprop" in unsupported(rms)
    buf = filled_buffer()
    with pytest.raises(ValueError, match="RMSprop"):
        CompiledUpdate(rms, buf.storage, buf.columns, BATCH)

    class MyAdam(torch.optim.Adam):
        pass

    sub = new_agent()
    sub.optimizers[0] = MyAdam(sub.optimizers[0].param_groups[0]["params"])
    assert "MyAdam" in unsupported(sub)
    assert unsupported(new_agent(*RICH)) is None

    cfg = make_cfg("compile=true", "critic_optimizer._target_=torch.optim.RMSprop")
    assert compiled_update_wanted(cfg, rms, torch.device("cpu")) is False
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stays eager" in err[0] and "RMSprop" in err[0]
    update, _ = steps.loop_steps(rms, buf, BATCH, 1, OBS, graphs=False, compiled=False)
    assert type(update) is UpdateStep


def test_compile_is_auto_true_or_false_and_auto_chooses_by_device_and_length(make_cfg, capsys):
    assert make_cfg().compile == "auto"
    assert make_cfg("compile=true").compile is True and make_cfg("compile=false").compile is False
    with pytest.raises(ConfigError, match=r"compile='fast' is not one of"):
        make_cfg("compile=fast")
    assert "compile" in RESUME_OVERRIDABLE
    agent, cpu = new_agent(), torch.device("cpu")

    def wanted(steps_, *overrides, device=cpu):
        budget = ["env=Pendulum-v1", "algorithm.utd_ratio=1", "algorithm.learning_starts=1000"]
        cfg = make_cfg(*budget, f"algorithm.total_steps={steps_}", *overrides)
        return compiled_update_wanted(cfg, agent, torch.device(device))

    long, short = steps.AUTO_MIN_UPDATES + 1000, steps.AUTO_MIN_UPDATES + 999
    assert wanted(long) is True and wanted(short) is False
    assert wanted(long, "compile=false") is False and wanted(2000, "compile=true") is True
    assert wanted(long, device="cuda") is False  # on a GPU auto keeps the captured eager update
    assert make_cfg().algorithm.total_steps < steps.AUTO_MIN_UPDATES  # the default run stays eager
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------ through the Trainer
@pytest.fixture
def no_compile(monkeypatch):
    """compile=true runs the compiled step's composition without torch.compile, taking over at gradient step 50."""
    monkeypatch.setattr(steps, "COMPILE_ARGS", {"backend": None})
    monkeypatch.setattr(steps, "COMPILE_FROM", 50)


@pytest.mark.parametrize("stop_at", [130, 226])  # before the switch (30 gradient steps) and after it (126)
def test_a_compiled_run_stopped_and_resumed_equals_it_uninterrupted(tmp_path, no_compile, stop_at, capsys):
    full, summary = new_run(tmp_path / "full", "compile=true")
    assert isinstance(full.update_step, CompiledUpdateStep) and full.update_step.active
    assert summary["update"] == "compiled" and summary["compiled_from"] == 50 and summary["compile_s"] >= 0
    err = capsys.readouterr().err
    assert "compiling the SAC update" in err and "takes over at gradient step 50" in err
    part, summary = new_run(tmp_path / "part", "compile=true", stop_at=stop_at)
    assert summary["interrupted"] == "SIGTERM" and part.progress.compiled_from == 50
    resumed, summary = resume_run(tmp_path / "part")
    assert summary["update"] == "compiled" and summary["compiled_from"] == 50
    assert_same_state(full, resumed)


def test_compiled_and_eager_runs_resume_each_other(tmp_path, no_compile):
    """A checkpoint written by the compiled update resumes with the eager one, and the other way round; the
    runs stay close to the all-eager run (the two updates round differently, by about 1e-7 per step)."""
    eager, _ = new_run(tmp_path / "eager", "compile=false")
    new_run(tmp_path / "c", "compile=true", stop_at=226)
    to_eager, summary = resume_run(tmp_path / "c", "compile=false")
    assert type(to_eager.update_step) is UpdateStep and summary["update"] == "eager"
    part, _ = new_run(tmp_path / "e", "compile=false", stop_at=226)
    assert part.progress.compiled_from is None and part.progress.updates > steps.COMPILE_FROM
    to_compiled, summary = resume_run(tmp_path / "e", "compile=true")
    assert summary["update"] == "compiled" and summary["compiled_from"] == part.progress.updates  # at once
    for other in (to_eager, to_compiled):
        assert other.progress.updates == eager.progress.updates
        assert worst_relative_difference(eager.agent, other.agent) < 1e-2


# ------------------------------------------------------------------------------------------ system tier
@pytest.mark.slow  # minutes of C++ builds; run it with: pytest -m slow tests/test_compiled.py
@pytest.mark.xfail(
    strict=False,
    reason="known failure (2026-12-02, CI on an AMD EPYC): with inductor's C++ build, a run stopped at step 226 "
    "and resumed evaluated differently at step 300 from the uninterrupted one (22.0 against 15.5); the aot_eager "
    "graph resumes bit for bit (fast tier). Not yet explained",
)
def test_inductor_compiled_update_as_eager_and_resumes_bit_identically(tmp_path, monkeypatch):
    """The real build (inductor's C++ kernels): the step as the eager update over STEPS steps, and a Trainer run
    stopped and resumed equal to it uninterrupted, bit for bit (the same graph comes from inductor's cache)."""
    check_against_eager(RICH, backend="inductor")
    monkeypatch.setattr(steps, "COMPILE_FROM", 50)
    full, summary = new_run(tmp_path / "full", "compile=true")
    assert summary["update"] == "compiled" and summary["compile_s"] > 0
    new_run(tmp_path / "part", "compile=true", stop_at=226)
    resumed, _ = resume_run(tmp_path / "part")
    assert_same_state(full, resumed)
