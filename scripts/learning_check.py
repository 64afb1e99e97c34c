#!/usr/bin/env python
"""Learning check: train several seeds with `sac-train` and report whether each reaches a target return.

    python scripts/learning_check.py --env CartPoleContinuous-v1 --target 475 --within 30000
    python scripts/learning_check.py --env Pendulum-v1 --target -200 --within 20000
    python scripts/learning_check.py --env CartPoleContinuous-v1 -- architecture=small   # extra overrides

Seeds run as separate processes, `--jobs` at a time (one torch thread each). For each seed it prints
the first evaluation step whose mean return reached the target, the best return, wall time and
steps/s, then how many seeds passed. Exit status 0 when at least `--min-pass` seeds passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_seed(env: str, seed: int, within: int, out_root: Path, extra: list[str]) -> dict:
    run_dir = out_root / f"seed{seed}"
    cmd = [
        sys.executable,
        "-m",
        "sac_runner.cli",
        f"env={env}",
        f"seed={seed}",
        "threads=1",
        "progress=false",
        "save_video=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    if not any(o.startswith("algorithm.total_steps=") for o in extra):
        cmd.append(f"algorithm.total_steps={within}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"seed": seed, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(seed=seed, process_wall_s=wall)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="CartPoleContinuous-v1")
    ap.add_argument("--target", type=float, default=475.0)
    ap.add_argument("--within", type=int, default=30000, help="environment-step budget to reach the target")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--min-pass", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="where run directories go (default: a temp dir)")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, after --")
    args = ap.parse_args()
    out_root = args.out or Path(tempfile.mkdtemp(prefix="sac-learning-check-"))
    print(
        f"{args.env}: target {args.target} within {args.within} env steps, seeds {args.seeds}, "
        f"overrides {args.overrides or '-'}; runs in {out_root}",
        flush=True,
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: run_seed(args.env, s, args.within, out_root, args.overrides), args.seeds))
    passed = 0
    print(f"{'seed':>4} {'reached at':>10} {'best':>9} {'final':>9} {'wall s':>7} {'steps/s':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['seed']:>4} ERROR {r['error']}")
            continue
        hit = next((step for step, mean, *_ in r["evals"] if step <= args.within and mean >= args.target), None)
        passed += hit is not None
        print(
            f"{r['seed']:>4} {hit if hit is not None else '-':>10} {r['best_return']:>9.1f} "
            f"{r['last_return']:>9.1f} {r['wall_time_s']:>7.1f} {r['steps_per_second']:>8.0f}"
        )
    print(f"passed {passed}/{len(results)} (need {args.min_pass})")
    return 0 if passed >= args.min_pass else 1


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
