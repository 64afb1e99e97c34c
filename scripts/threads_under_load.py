#!/usr/bin/env python
"""How fast one `sac-train` run is with each thread setting while other CPU-bound processes run (issue 20).

    python scripts/threads_under_load.py                    # the whole table (20 to 35 minutes on 2 cores)
    python scripts/threads_under_load.py --loads 0 2 --repeats 1 --variants 1 auto

For each number of competing processes (--loads; each competitor is `python -c "while True: pass"`, or with
--competitor train another `sac-train` run on one thread) it starts the competitors, then runs

    sac-train env=Pendulum-v1 architecture=default algorithm.total_steps=400 algorithm.learning_starts=200
              save_video=false progress=false threads=<variant>

once per variant, the variants in a rotated order each repeat (fresh processes, interleaved), and reads the
training wall time from the run's summary.json (the process's wall time, start-up included, is reported too).
Nothing is pinned: the question is what a run does on a machine that other work shares, so run it on an
otherwise quiet machine.

Variants (--variants; the default: all but auto):
  1           threads=1
  2-spin      threads=2 with GOMP_SPINCOUNT=300000: libgomp's default spin-wait (what threads=auto gave 256-wide
              networks on 2 cores before sac_runner set OMP_WAIT_POLICY)
  2-passive   threads=2 with OMP_WAIT_POLICY=PASSIVE: waiting OpenMP threads sleep instead of spinning
  load-aware  threads=<cores minus the other runnable processes, at least 1>, read from /proc/loadavg just
              before the run starts (what an `auto` that looks at the load at start-up would choose), with
              OMP_WAIT_POLICY=PASSIVE
  auto        threads=auto with the environment as it is: whatever sac_runner's default does at the time

Prints a table (median training seconds per variant and load, and the ratio to threads=1) and, with --out,
writes every measurement as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = [
    "env=Pendulum-v1",
    "architecture=default",
    "algorithm.total_steps=400",
    "algorithm.learning_starts=200",
    "save_video=false",
    "progress=false",
]
SPIN = {"GOMP_SPINCOUNT": "300000"}
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
VARIANTS = ("1", "2-spin", "2-passive", "load-aware", "auto")
THREAD_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def runnable_others() -> int:
    """Processes runnable right now besides this one (the 4th field of /proc/loadavg counts the reader too)."""
    running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    return max(0, running - 1)


def sac_train() -> list[str]:
    exe = shutil.which("sac-train")
    return [exe] if exe else [sys.executable, "-m", "sac_runner.cli"]


def variant_setup(name: str) -> tuple[str, dict[str, str]]:
    """The `threads` value and the extra environment of a variant."""
    if name == "1":
        return "1", {}
    if name == "2-spin":
        return "2", SPIN
    if name == "2-passive":
        return "2", PASSIVE
    if name == "auto":
        return "auto", {}
    if name == "load-aware":
        return str(max(1, cores() - runnable_others())), PASSIVE
    raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def start_competitors(n: int, kind: str, workdir: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        if kind == "spin":
            cmd = [sys.executable, "-c", "while True: pass"]
        else:  # another training run, long enough to outlast the measurement, on one thread
            cmd = [
                *sac_train(),
                "env=Pendulum-v1",
                "architecture=default",
                "threads=1",
                "algorithm.total_steps=100000000",
                "save_video=false",
                "progress=false",
                f"seed={100 + i}",
                f"hydra.run.dir={workdir}/competitor-{i}-{time.time_ns()}",
            ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env()))
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the thread variables (a variant sets its own), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(extra or {})
    return env


def measure(variant: str, load: int, workdir: Path, timeout: float) -> dict:
    threads, extra = variant_setup(variant)
    run_dir = workdir / f"{variant}-load{load}-{time.time_ns()}"
    cmd = [*sac_train(), *COMMAND, f"threads={threads}", f"hydra.run.dir={run_dir}"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(extra))
    except subprocess.TimeoutExpired:  # counted as slower than the timeout, not dropped
        shutil.rmtree(run_dir, ignore_errors=True)
        return {"variant": variant, "load": load, "threads": threads, "env": extra, "train_s": None, "process_s": None}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    resolved = next(
        (
            line.split(":", 1)[1].strip()
            for line in (run_dir / "config.yaml").read_text().splitlines()
            if line.startswith("threads:")
        ),
        None,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "variant": variant,
        "load": load,
        "threads": resolved,
        "env": extra,
        "train_s": float(summary["wall_time_s"]),
        "process_s": wall,
    }


def table(results: list[dict], variants: list[str], loads: list[int], timeout: float) -> str:
    def median(v, load, key):
        xs = [timeout if r[key] is None else r[key] for r in results if r["variant"] == v and r["load"] == load]
        return statistics.median(xs) if xs else float("nan")

    head = "| variant | " + " | ".join(f"{n} competing" for n in loads) + " |"
    lines = [head, "|---" * (len(loads) + 1) + "|"]
    for v in variants:
        cells = []
        for n in loads:
            t, base = median(v, n, "train_s"), median("1", n, "train_s")
            ratio = f" ({t / base:.2f}x)" if "1" in variants and v != "1" else ""
            runs = [r for r in results if r["variant"] == v and r["load"] == n]
            threads = sorted({str(r["threads"]) for r in runs})
            over = ">" if any(r["train_s"] is None for r in runs) and t >= timeout else ""
            cells.append(f"{over}{t:.1f} s{ratio} [threads {','.join(threads)}]")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2, 3], help="competing processes (default 0 1 2 3)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS[:-1]), choices=VARIANTS)
    ap.add_argument("--repeats", type=int, default=3, help="measurements per variant and load (default 3)")
    ap.add_argument("--competitor", choices=["spin", "train"], default="spin")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between starting competitors and a run")
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="seconds after which a run is stopped and counted as slower (120)"
    )
    ap.add_argument("--out", type=Path, help="write each measurement as a JSON line here")
    args = ap.parse_args()

    import torch  # for the header only, in this process

    print(
        f"# {cpu_model()}, {cores()} cores available, torch {torch.__version__}, competitor: {args.competitor}, "
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    print(f"# sac-train {' '.join(COMMAND)} threads=<variant>", flush=True)
    results: list[dict] = []
    out = args.out.open("a") if args.out else None
    with tempfile.TemporaryDirectory(prefix="threads-under-load-") as tmp:
        workdir = Path(tmp)
        for rep in range(args.repeats):
            for load in args.loads:
                competitors = start_competitors(load, args.competitor, workdir)
                try:
                    time.sleep(args.settle if load else 0.0)
                    k = (rep + load) % len(args.variants)
                    for variant in args.variants[k:] + args.variants[:k]:  # rotated: no variant always first
                        r = measure(variant, load, workdir, args.timeout)
                        r["repeat"] = rep
                        results.append(r)
                        took = (
                            f"training {r['train_s']:.2f} s, process {r['process_s']:.2f} s"
                            if r["train_s"] is not None
                            else f"stopped after {args.timeout:.0f} s"
                        )
                        print(f"repeat {rep} load {load} {variant:>10}: threads {r['threads']}, {took}", flush=True)
                        if out:
                            out.write(json.dumps(r) + "\n")
                            out.flush()
                finally:
                    stop(competitors)
    print()
    print("Median training wall time (summary.json's wall_time_s) per variant and number of competing processes;")
    print("in parentheses: the ratio to threads=1 under the same load.")
    print(table(results, args.variants, args.loads, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
