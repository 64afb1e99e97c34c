#!/usr/bin/env python
"""How close one sac_runner gradient step comes to this machine's matrix-multiply ceiling.

    python scripts/gemm_ceiling.py                         # 256-256 networks, Pendulum-v1's sizes, 1 thread
    python scripts/gemm_ceiling.py --hidden 64 --env CartPoleContinuous-v1 --threads 2
    python scripts/gemm_ceiling.py --compiled               # also the compiled update (compile=true)

One update (SAC.update on a batch from a filled replay buffer) is run under the torch profiler, which
records every matrix multiply it makes (mm, addmm, bmm, baddbmm) with its exact shapes: the critic, target
and actor forward passes and their backward. Each of those multiplies is then timed alone, on fresh
contiguous tensors of the same shapes, as many times as needed for a stable time. Their sum is the time an
update would take if it did nothing but its matrix multiplies at the speed this machine gives them: the
ceiling. Reported: the update's own time (the median of several timed blocks), the ceiling, and the
fraction of it reached (ceiling time / update time; 100% would mean no time at all outside the GEMMs).
Skinny multiplies (a layer with one output, the first layer's few inputs) run far below the machine's
best GEMM rate; a stricter bound, with every multiply at that best rate, is printed too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

GEMMS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def build(env: str, hidden: int, batch: int, seed: int = 0):
    """A SAC agent for `env`'s sizes with hidden-hidden networks and a replay buffer of random transitions."""
    import numpy as np
    import torch

    from sac_runner.agent.buffer import ReplayBuffer
    from sac_runner.agent.factory import make_agent
    from sac_runner.config import compose, validate
    from sac_runner.envs import flat_size, make_env

    sizes = f"[{hidden},{hidden}]"
    cfg = validate(
        compose(
            f"env={env}",
            f"architecture.actor_hidden_sizes={sizes}",
            f"architecture.critic_hidden_sizes={sizes}",
            f"algorithm.batch_size={batch}",
        )
    )
    e = make_env(cfg.env)
    obs_dim, act_dim = flat_size(e.observation_space), flat_size(e.action_space)
    e.close()
    torch.manual_seed(seed)
    agent = make_agent(cfg, obs_dim, act_dim, torch.device("cpu"))
    buffer = ReplayBuffer(10_000, obs_dim, act_dim, torch.device("cpu"), seed=seed)
    rng = np.random.default_rng(seed)
    n = 10_000
    buffer.add(
        rng.normal(size=(n, obs_dim)),
        rng.uniform(-1, 1, size=(n, act_dim)),
        rng.normal(size=n),
        rng.normal(size=(n, obs_dim)),
        (rng.random(n) < 0.01).astype(np.float32),
    )
    return agent, buffer, obs_dim, act_dim


def timed(fn, min_seconds: float = 0.2, blocks: int = 5) -> float:
    """The median over `blocks` of the mean time of one call, each block lasting at least `min_seconds`."""
    for _ in range(3):
        fn()
    t0, reps = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds / 4:
        fn()
        reps += 1
    per_call = (time.perf_counter() - t0) / reps
    n = max(1, int(min_seconds / per_call))
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def gemm_calls(agent, batch) -> list[tuple[str, list]]:
    """The (op, input shapes) of every matrix multiply one update makes, forward and backward."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        agent.update(batch)
    return [(e.name, [list(s) for s in e.input_shapes]) for e in prof.events() if e.name in GEMMS]


def replay(name: str, shapes: list) -> tuple:
    """A zero-argument function running `name` alone on fresh contiguous tensors of `shapes`, and its FLOPs."""
    import torch

    def t(shape):
        return torch.randn(*shape)

    if name == "aten::mm":
        a, b = t(shapes[0]), t(shapes[1])
        return (lambda: torch.mm(a, b)), 2 * a.shape[0] * a.shape[1] * b.shape[1]
    if name == "aten::addmm":
        c, a, b = t(shapes[0]), t(shapes[1]), t(shapes[2])
        return (lambda: torch.addmm(c, a, b)), 2 * a.shape[0] * a.shape[1] * b.shape[1]
    if name == "aten::bmm":
        a, b = t(shapes[0]), t(shapes[1])
        return (lambda: torch.bmm(a, b)), 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    c, a, b = t(shapes[0]), t(shapes[1]), t(shapes[2])  # baddbmm
    return (lambda: torch.baddbmm(c, a, b)), 2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Pendulum-v1", help="env preset whose observation and action sizes are used")
    ap.add_argument("--hidden", type=int, default=256, help="hidden width of actor and critics (two layers each)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-shape", action="store_true", help="also list every multiply with its time")
    ap.add_argument(
        "--compiled",
        action="store_true",
        help="also time the compiled update (sac_runner/agent/compiled.py, inductor; its build is not timed)",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    agent, buffer, obs_dim, act_dim = build(args.env, args.hidden, args.batch)
    update_s = timed(lambda: agent.update(buffer.sample(args.batch)), min_seconds=1.0)
    compiled_s = None
    if args.compiled:  # the same step as one compiled function, on a copy (the eager agent is profiled below)
        import copy

        from sac_runner.agent.compiled import CompiledUpdate

        twin = copy.deepcopy(agent)
        step = CompiledUpdate(twin, buffer.storage, buffer.columns, args.batch)
        build_s = step.compile()
        idx = torch.zeros(args.batch, dtype=torch.long)
        compiled_s = timed(lambda: step(buffer.sample_indices(args.batch, out=idx)), min_seconds=1.0)
    calls = gemm_calls(agent, buffer.sample(args.batch))
    cache: dict[tuple, float] = {}
    rows, total_s, total_flop = [], 0.0, 0
    for name, shapes in calls:
        key = (name, str(shapes))
        fn, flop = replay(name, shapes)
        if key not in cache:
            cache[key] = timed(fn)
        rows.append((name, shapes, cache[key], flop))
        total_s += cache[key]
        total_flop += flop
    print(
        f"{args.env} (obs {obs_dim}, act {act_dim}), {args.hidden}-{args.hidden} networks, batch {args.batch}, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    if args.per_shape:
        for name, shapes, s, flop in rows:
            print(f"  {name:14} {str(shapes):48} {s * 1e6:8.1f} us {flop / s / 1e9:6.1f} GFLOP/s")
    print(f"  matrix multiplies per update: {len(calls)}, {total_flop / 1e9:.3f} GFLOP")
    print(f"  ceiling (those multiplies alone): {total_s * 1e3:.2f} ms = {1 / total_s:.0f} updates/s")
    print(f"  sac_runner's update:              {update_s * 1e3:.2f} ms = {1 / update_s:.0f} updates/s")
    print(f"  fraction of the ceiling reached:  {total_s / update_s:.0%}")
    if compiled_s is not None:
        print(f"  the compiled update:              {compiled_s * 1e3:.2f} ms = {1 / compiled_s:.0f} updates/s")
        print(f"  fraction of the ceiling reached:  {total_s / compiled_s:.0%}   (its build took {build_s:.1f} s)")
    peak = max(flop / s for _, _, s, flop in rows)
    print(
        f"  (a stricter bound: every multiply at the best rate any of them reached, {peak / 1e9:.0f} GFLOP/s: "
        f"{total_flop / peak * 1e3:.2f} ms, {total_flop / peak / update_s:.0%} of it reached)"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
