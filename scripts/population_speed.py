#!/usr/bin/env python
"""Population against parallel: the wall-clock time of one K-seed sweep trained by hydra/launcher=population and by
hydra/launcher=parallel on the same machine, with the same update (issue 17's CPU targets).

    python scripts/population_speed.py                       # Pendulum-v1 preset (64-64), 10 seeds, 2 rounds
    python scripts/population_speed.py --seeds 10 --rounds 3 --steps 4000 -- architecture=default

Each round runs both sweeps, one after the other, in the order population, parallel, then parallel, population in
the next round (so a drift in the machine's load does not favour one side), each as a fresh `sac-train -m` process:
- parallel: `hydra/launcher=parallel hydra.launcher.n_jobs=<cores>`: each job a process of its own, <cores> at once;
- population: `hydra/launcher=population hydra.launcher.n_parallel=<cores> hydra.launcher.max_members=ceil(K/cores)`:
  one group per core, each group a process whose members share one vmapped step.
Both use sac-train's compiled update (compile=true) and one thread per process (threads=1), evaluate as the preset
says, write checkpoints and TensorBoard as any run does, and skip the video. A lone compiled run trains with the
eager update for its first 1000 gradient steps while its graph builds (training/steps.py, COMPILE_FROM); a
population's vmapped step is compiled from its first. Before the first round, one sweep of each kind with the same
config fills the inductor cache (TORCHINDUCTOR_CACHE_DIR, --cache-dir; --warmup only / skip fill it ahead of a timed
run), so neither side pays a cold compile: what is timed is the sweep a user runs the second time. It prints the
wall seconds of each sweep, the ratio parallel / population per round, and the sum of the members' env steps per
wall second, and writes them as JSON lines to --out/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sac_runner.rundir import cpu_model


def sweep(kind: str, seeds: int, cores: int, sweep_dir: Path, extra: list[str], env: dict) -> dict:
    """Run one sweep of `kind` (population | parallel); its wall seconds and the jobs' env steps."""
    if kind == "population":
        launcher = [
            "hydra/launcher=population",
            f"hydra.launcher.n_parallel={cores}",
            f"hydra.launcher.max_members={math.ceil(seeds / cores)}",
        ]
    else:
        launcher = ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={cores}"]
    cmd = [
        sys.executable,
        "-m",
        "sac_runner.cli",
        "-m",
        *launcher,
        f"seed={','.join(str(s) for s in range(seeds))}",
        "compile=true",
        "threads=1",
        "save_video=false",
        "progress=false",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    summaries = [json.loads((sweep_dir / str(j) / "summary.json").read_text()) for j in range(seeds)]
    return {
        "kind": kind,
        "wall_s": wall,
        "env_steps": sum(s["env_steps"] for s in summaries),
        "returns": [s["last_return"] for s in summaries],
        "command": " ".join(cmd),
    }


def main() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Pendulum-v1", help="the env preset (default Pendulum-v1: 64-64, 20k steps)")
    ap.add_argument("--seeds", type=int, default=10, help="jobs in the sweep (default 10)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    ap.add_argument("--steps", type=int, default=None, help="algorithm.total_steps (default: the preset's)")
    ap.add_argument("--cores", type=int, default=cores, help=f"processes at once on each side (default {cores})")
    ap.add_argument(
        "--warmup",
        choices=("run", "only", "skip"),
        default="run",
        help="the cache-filling sweeps (same config, one job on the parallel side): run them first (default), "
        "only them (fill --cache-dir ahead of a timed run), or skip them (--cache-dir filled before)",
    )
    ap.add_argument("--out", type=Path, default=None, help="where the sweeps and results go (default: a temp dir)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="TORCHINDUCTOR_CACHE_DIR (default: <out>/inductor)")
    ap.add_argument("overrides", nargs="*", help="extra sac-train overrides for both sides, after --")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sac-population-speed-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(args.cache_dir or out / "inductor-cache")}
    extra = [f"env={args.env}", *([f"algorithm.total_steps={args.steps}"] if args.steps else []), *args.overrides]
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load average unknown"
    print(
        f"{cpu_model()}, {cores} cores usable ({load}); {args.seeds} seeds of {' '.join(extra)}; in {out}", flush=True
    )
    # the graphs' shapes (the replay buffer's capacity: the budget; the members) are those of the timed sweeps, so
    # the warm-up has the same budget, but its first steps are random actions and it takes 1100 gradient steps (a
    # lone compiled run switches to its graph at step 1000); one job fills the parallel side's cache
    total = args.steps or 20000
    short = [f"algorithm.learning_starts={max(0, total - 1100)}", f"algorithm.eval_interval={total}"]
    warm = {"population": args.seeds, "parallel": 1} if args.warmup != "skip" else {}
    for kind, seeds in warm.items():
        r = sweep(kind, seeds, args.cores, out / f"warmup-{kind}", [*extra, *short], env)
        print(f"warm-up {kind:<10} {r['wall_s']:8.1f} s ({seeds} job(s))", flush=True)
    if args.warmup == "only":
        return 0
    with open(out / "results.jsonl", "a") as log:
        for rnd in range(args.rounds):
            order = ("population", "parallel") if rnd % 2 == 0 else ("parallel", "population")
            walls = {}
            for kind in order:
                r = sweep(kind, args.seeds, args.cores, out / f"round{rnd}-{kind}", extra, env)
                walls[kind] = r["wall_s"]
                r.update(round=rnd, cpu=cpu_model(), cores=args.cores, seeds=args.seeds)
                log.write(json.dumps(r) + "\n")
                print(
                    f"round {rnd} {kind:<10} {r['wall_s']:8.1f} s  {r['env_steps'] / r['wall_s']:8.0f} env steps/s "
                    f"(all jobs)  mean last return {sum(r['returns']) / len(r['returns']):.0f}",
                    flush=True,
                )
            print(f"round {rnd} parallel / population: {walls['parallel'] / walls['population']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
