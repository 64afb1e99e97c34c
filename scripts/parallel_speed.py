#!/usr/bin/env python
"""Parallel-sweep speed check: steps/s of N jobs run at once by the joblib launcher, with and
without limiting each job's threads.

    python scripts/parallel_speed.py                     # 1 and `nproc` jobs, threads=1 and threads=`nproc`
    python scripts/parallel_speed.py --jobs 1 2 4 --threads 1 4 -- env=Pendulum-v1

For each (jobs, threads) it runs `sac-train -m hydra/launcher=parallel hydra.launcher.n_jobs=<jobs>
seed=0..<jobs-1> threads=<threads>` on a short budget and prints each job's steps/s (from its
summary.json), their mean, and the total throughput (sum over the jobs). With one thread per job,
N jobs on N cores should each run about as fast as one job alone; with N threads per job they
compete for the cores. Needs the sweep extra (pip install -e ".[sweep]").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(jobs: int, threads: int, steps: int, out: Path, extra: list[str]) -> dict:
    sweep_dir = out / f"jobs{jobs}-threads{threads}"
    cmd = [
        sys.executable,
        "-m",
        "sac_runner.cli",
        "-m",
        "hydra/launcher=parallel",
        f"hydra.launcher.n_jobs={jobs}",
        f"seed={','.join(str(s) for s in range(jobs))}",
        f"threads={threads}",
        f"algorithm.total_steps={steps}",
        f"algorithm.eval_interval={steps}",
        "algorithm.nb_evals=2",
        "save_video=false",
        "progress=false",
        f"hydra.sweep.dir={sweep_dir}",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    sps = [json.loads((sweep_dir / str(j) / "summary.json").read_text())["steps_per_second"] for j in range(jobs)]
    return {"jobs": jobs, "threads": threads, "sps": sps, "wall": wall}


def main() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, nargs="+", default=sorted({1, cores}))
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, cores}))
    ap.add_argument("--steps", type=int, default=4000, help="environment steps per job (default 4000)")
    ap.add_argument("--repeat", type=int, default=1, help="measure each setting this many times")
    ap.add_argument("--out", type=Path, default=None, help="where the sweeps go (default: a temp dir)")
    ap.add_argument("overrides", nargs="*", help="extra sac-train overrides, after --")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sac-parallel-speed-"))
    try:
        load = " (load average {:.2f} {:.2f} {:.2f})".format(*os.getloadavg())
    except OSError:
        load = ""
    print(
        f"{cores} cores{load}; {args.steps} env steps per job; overrides {args.overrides or '-'}; runs in {out}",
        flush=True,
    )
    print(f"{'jobs':>4} {'threads':>7} {'steps/s per job':<32} {'mean':>7} {'total':>7} {'wall s':>7}", flush=True)
    for rep in range(args.repeat):
        for jobs in args.jobs:
            for threads in args.threads:
                r = measure(jobs, threads, args.steps, out / f"rep{rep}", args.overrides)
                per_job = " ".join(f"{s:.0f}" for s in r["sps"])
                print(
                    f"{jobs:>4} {threads:>7} {per_job:<32} {sum(r['sps']) / jobs:>7.0f} {sum(r['sps']):>7.0f} "
                    f"{r['wall']:>7.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
