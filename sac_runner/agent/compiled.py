"""SAC's gradient step as one compiled function (issue 16): `CompiledUpdate`.

The step itself, a pure function of tensors, is agent/functional.py's `sac_step`: a composition of what the eager
path runs (the batch gathered from the replay buffer's storage, sac.py's `SAC.losses` through torch.func,
clip_grad_norm_'s scale, torch.optim's functional Adam, sac.py's Polyak update), not a second copy of the maths.
This module binds it to a live agent (`AgentBinding`) and compiles it (`CompiledUpdate`).

`torch.compile(fullgraph=True)` traces all of it into one graph: the elementwise work of forward, backward,
optimizer and target update fuses, and eager PyTorch's dispatch per operation disappears.

The step reads and writes, in place, the very tensors the eager `SAC.update` uses: the networks' parameters, the
target critic's, log alpha, and the `step` / `exp_avg` / `exp_avg_sq` (and `max_exp_avg_sq`) entries of the
torch.optim optimizers' state. So checkpoints keep their format, and a run can switch between `SAC.update` and
this step at any update, in either direction. The actor's two noise draws are made outside the graph, by torch's
default generator, exactly as `SAC.update` draws them: both paths consume the same random numbers, and the graph
itself is a pure function of its inputs.

Hyperparameters that may differ between the members of a population (the learning rates, discount, tau, target
entropy) enter as 0-d tensors, and the step reads nothing back to the host, so the same function can be vmapped
over a leading member dimension (issue 17) and captured in a CUDA graph. The optimizers' other options (betas,
eps, weight decay, amsgrad, maximize) are constants of the graph: changing one builds a new graph.

Not covered, so `SAC.update` stays the path for them (`unsupported` names the reason): any optimizer class other
than exactly torch.optim.Adam or AdamW (RMSprop, SGD, a subclass, a user's `_target_`), differentiable optimizer
groups, a learning rate that requires grad, parameters of mixed devices or dtypes, and a torch whose functional
Adam lacks `decoupled_weight_decay` (before 2.7).
"""

from __future__ import annotations

import copy
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.adam import adam as functional_adam  # what torch.optim.Adam and AdamW step with

from sac_runner.agent.functional import Group, Layout, Objective, Stats, sac_step
from sac_runner.agent.sac import SAC

SUPPORTED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
# the per-group options that are constants of the compiled graph
STATIC_OPTIONS = ("betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


def unsupported(agent: SAC) -> str | None:
    """Why `agent`'s update cannot run compiled (a few words), or None when it can."""
    if "decoupled_weight_decay" not in inspect.signature(functional_adam).parameters:
        return f"torch {torch.__version__} has no functional Adam with decoupled_weight_decay (it needs torch 2.7)"
    if not agent.optimizers:
        return "the agent has no optimizer"
    for opt in agent.optimizers:
        if type(opt) not in SUPPORTED_OPTIMIZERS:
            name = f"{type(opt).__module__}.{type(opt).__name__}"
            return f"it covers torch.optim.Adam and AdamW, not {name}"
        for g in opt.param_groups:
            if g.get("differentiable"):
                return "an optimizer group has differentiable=True"
            if isinstance(g["lr"], torch.Tensor) and g["lr"].requires_grad:
                return "a learning rate requires grad"
    trained = [p for group in agent.param_groups().values() for p in group]
    optimized = [p for opt in agent.optimizers for g in opt.param_groups for p in g["params"]]
    if sorted(map(id, trained)) != sorted(map(id, optimized)):
        return "the optimizers do not train exactly the agent's networks"
    tensors = [*trained, *agent.target_critic.parameters(), agent.log_entropy_coef]
    if len({(t.device, t.dtype) for t in tensors}) != 1 or not tensors[0].is_floating_point():
        return "its parameters are of mixed devices or dtypes, or not real floating point"
    return None


# ------------------------------------------------------------------------------------------------ binding
def adam_state(group: dict, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """The state torch.optim.Adam's first step creates for `p` (lazily, in Adam._init_group)."""
    scalar = torch.float32 if group.get("fused") or torch.get_default_dtype() != torch.float64 else torch.float64
    on_device = group.get("capturable") or group.get("fused")
    state = {
        "step": torch.zeros((), dtype=scalar, device=p.device if on_device else "cpu"),
        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
    }
    if group["amsgrad"]:
        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state


def make_capturable(optimizers: list[torch.optim.Optimizer]) -> None:
    """Let the optimizers step where nothing may read back to the host (a CUDA graph, the compiled step on a
    GPU): `capturable` on, so their step counts stay on the parameters' device. A checkpoint's optimizer state
    can turn it off again, so this runs after any loading."""
    for opt in optimizers:
        for group in opt.param_groups:
            if "capturable" in group:
                group["capturable"] = True
            for p in group["params"]:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor) and step.device != p.device:
                    opt.state[p]["step"] = step.to(p.device)


def group_options(opt: torch.optim.Optimizer) -> list[tuple]:
    return [tuple(tuple(g[k]) if k == "betas" else g[k] for k in STATIC_OPTIONS) for g in opt.param_groups]


class AgentBinding:
    """The tensors of one agent that `sac_step` works on, as detached aliases of the agent's own: its parameters,
    its target, its optimizers' states (created as torch.optim would create them, if still empty), and its
    hyperparameters as 0-d tensors. The graph runs the losses of `template`, a copy of the agent's modules that
    functional_call fills with these tensors: the agent's own modules are never touched by the compiled code."""

    def __init__(self, agent: SAC, columns: dict):
        self.agent = agent
        # the networks without the optimizers (their state is bound below, not copied)
        self.template = Objective(copy.deepcopy(agent, memo={id(agent.optimizers): []}))
        named = {f"agent.{n}": p for n, p in agent.named_parameters()}
        self.name_of = {id(p): n for n, p in named.items()}
        nets = agent.param_groups()
        trained = {id(p) for ps in nets.values() for p in ps}
        self.params = {n: p.detach() for n, p in named.items() if id(p) in trained}
        self.frozen = {n: p.detach() for n, p in named.items() if id(p) not in trained}
        self.options = [group_options(opt) for opt in agent.optimizers]
        groups, self.lr_of = [], {}
        for i, opt in enumerate(agent.optimizers):
            for j, g in enumerate(opt.param_groups):
                key = f"lr/{i}/{j}"
                self.lr_of[key] = g
                (b1, b2), eps, wd, ams, maxim, dec = self.options[i][j]
                names = tuple(self.name_of[id(p)] for p in g["params"])
                groups.append(Group(names, key, float(b1), float(b2), float(eps), float(wd), ams, maxim, dec))
        self.layout = Layout(
            groups=tuple(groups),
            networks=tuple(tuple(self.name_of[id(p)] for p in ps) for ps in nets.values()),
            critic=tuple(self.name_of[id(p)] for p in agent.critic.parameters()),
            target=tuple(self.name_of[id(p)] for p in agent.target_critic.parameters()),
            max_grad_norm=None if agent.max_grad_norm is None else float(agent.max_grad_norm),
            columns=tuple(columns.items()),
        )
        self.on_device = agent.log_entropy_coef.device.type != "cpu"  # capturable: step counts on the device
        device = agent.log_entropy_coef.device
        self.hyper = {k: torch.zeros((), dtype=torch.float32, device=device) for k in self.hyper_values()}
        self._hyper_seen: tuple = ()
        self._opt_states: list = []
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    def hyper_values(self) -> dict[str, float]:
        a = self.agent
        values = {"discount": float(a.discount), "tau": float(a.tau), "target_entropy": float(a.target_entropy)}
        for key, group in self.lr_of.items():
            values[key] = float(group["lr"])
        return values

    def sync(self) -> bool:
        """Bring the aliases up to date with the agent before a step: the hyperparameter tensors when a value
        changed, the optimizer-state references when an optimizer's state was replaced (load_state_dict) or is
        still empty. False when a constant option changed (betas, eps, weight decay ...): the graph must be
        rebuilt."""
        if [group_options(opt) for opt in self.agent.optimizers] != self.options:
            return False
        values = tuple(self.hyper_values().values())
        if values != self._hyper_seen:
            with torch.no_grad():
                for t, v in zip(self.hyper.values(), values):
                    t.fill_(v)
            self._hyper_seen = values
        opt_states = [opt.state for opt in self.agent.optimizers]
        if not self._opt_states or any(a is not b for a, b in zip(opt_states, self._opt_states)):
            self._bind_states()
        return True

    def _bind_states(self) -> None:
        optimizers = self.agent.optimizers
        if self.on_device:
            make_capturable(optimizers)
        self.states = {}
        for opt in optimizers:
            for g in opt.param_groups:
                for p in g["params"]:
                    if len(opt.state[p]) == 0:  # torch.optim creates it at the first step
                        opt.state[p].update(adam_state(g, p))
                    self.states[self.name_of[id(p)]] = dict(opt.state[p])
        self._opt_states = [opt.state for opt in optimizers]

    def scratch(self) -> tuple:
        """Fresh tensors shaped as (params, frozen, states, hyper), the agent's and its optimizers' untouched."""
        with torch.no_grad():
            params = {n: p.clone() for n, p in self.params.items()}
            frozen = {n: p.clone() for n, p in self.frozen.items()}
            states = {}
            for opt in self.agent.optimizers:
                for g in opt.param_groups:
                    group = {**g, "capturable": g.get("capturable") or self.on_device}
                    for p in g["params"]:
                        states[self.name_of[id(p)]] = adam_state(group, p)
            hyper = {k: torch.zeros_like(v) for k, v in self.hyper.items()}
        return params, frozen, states, hyper


class CompiledUpdate:
    """`agent.update(buffer.gather(idx))` as one compiled function: `update(idx)` changes the same tensors to the
    same values (to float rounding), draws the same random numbers, and returns the same statistics.

    Args:
        agent: a SAC agent whose `unsupported(agent)` is None (else ValueError with the reason).
        storage, columns: the replay buffer's storage and its columns (ReplayBuffer.storage / .columns), from
            which the graph gathers the batch; batch_size: the length of every index tensor.
        gather_in_graph: False: gather the batch eagerly and pass the rows in (to measure the difference).
        skip_guards: from the second step on, skip dynamo's guard checks (set_stance's skip_guard_eval_unsafe):
            the step's inputs never change shape, dtype or device, and checking some hundred input tensors
            on every call costs a measurable part of a small network's step on a CPU.
        backend, mode, options: for torch.compile. backend "aot_eager" (no inductor, no C++) composes the same
            functions and builds quickly, for tests; inductor's kernels are what makes the step fast. backend None:
            no torch.compile at all, the composition runs eagerly (tests of the maths and of the loop's plumbing).
    """

    def __init__(
        self,
        agent: SAC,
        storage: torch.Tensor,
        columns: dict,
        batch_size: int,
        *,
        gather_in_graph: bool = True,
        skip_guards: bool = True,
        backend: str | None = "inductor",
        mode: str | None = None,
        options: dict | None = None,
    ):
        reason = unsupported(agent)
        if reason is not None:
            raise ValueError(f"the SAC update cannot run compiled: {reason}")
        self.agent, self.storage, self.columns = agent, storage, dict(columns)
        self.batch_size, self.gather_in_graph, self.skip_guards = int(batch_size), gather_in_graph, skip_guards
        self._compile_args: dict[str, Any] = {"backend": backend}
        if mode is not None:
            self._compile_args["mode"] = mode
        if options is not None:
            self._compile_args["options"] = options
        act_dim = agent.actor.mean.out_features
        # the actor's noise, drawn in place before each step: fixed tensors (a CUDA graph reads them there)
        dtype = agent.log_entropy_coef.dtype
        self.noise = tuple(
            torch.empty((self.batch_size, act_dim), dtype=dtype, device=storage.device) for _ in range(2)
        )
        self._build()

    def _build(self) -> None:
        self.binding = AgentBinding(self.agent, self.columns)
        fn: Callable[..., Stats] = functools.partial(sac_step, self.binding.template, self.binding.layout)
        if self._compile_args["backend"] is not None:
            fn = torch.compile(fn, fullgraph=True, dynamic=False, **self._compile_args)
        self.fn = fn
        self.steps = 0  # steps since the graph was built
        self.compile_s: float | None = None  # the seconds the graph took to build (None: not built yet)

    def compile(self) -> float:
        """Build the graph now, by running it once on scratch inputs: neither the agent nor its optimizers nor any
        random generator is touched, so this may run in a background thread while the eager update trains.
        Returns the seconds it took (kept in compile_s)."""
        t0 = time.perf_counter()
        idx: torch.Tensor | None = torch.zeros(self.batch_size, dtype=torch.long, device=self.storage.device)
        with torch.no_grad():
            # the storage's shape without touching its memory, but for the one row the zero indices read
            rows = torch.empty_like(self.storage)
            rows[0].zero_()
            noise = tuple(torch.zeros_like(n) for n in self.noise)
        if not self.gather_in_graph:
            rows, idx = rows[idx], None
        self.fn(*self.binding.scratch(), rows, idx, noise)
        self.compile_s = time.perf_counter() - t0
        return self.compile_s

    def __call__(self, idx: torch.Tensor) -> Stats:
        """One gradient step on the buffer's rows `idx` (a (batch_size,) index tensor)."""
        b = self.binding
        if not b.sync():  # an optimizer's constant option changed: a new graph
            self._build()
            b = self.binding
            b.sync()
        if self.compile_s is None:
            self.compile()
        for n in self.noise:  # the actor's draws, in SAC.losses' order: for s' first, then for s
            torch.randn(n.shape, out=n)
        rows, index = (self.storage, idx) if self.gather_in_graph else (self.storage[idx], None)
        self.steps += 1
        if self.skip_guards and self.steps > 1:
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                return self.fn(b.params, b.frozen, b.states, b.hyper, rows, index, self.noise)
        return self.fn(b.params, b.frozen, b.states, b.hyper, rows, index, self.noise)
