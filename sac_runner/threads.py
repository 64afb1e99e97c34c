"""How many CPU threads a run uses: its share of the cores, in torch and in the BLAS/OpenMP libraries."""

from __future__ import annotations

import os

import torch

from sac_runner.hydra_mode import hydra_config, is_multirun, uses_launcher


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask: what SLURM or taskset gave it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_jobs() -> int:
    """How many jobs of this sweep run at once on this machine: the joblib launcher's n_jobs
    (negative as in joblib: -1 all cores, -2 all but one), else 1."""
    if not is_multirun():
        return 1
    hc = hydra_config()
    if uses_launcher(hc, "sac_runner_population") and hc.launcher.get("backend") == "local":
        n = int(hc.launcher.get("n_parallel") or 1)  # groups training at once, each a process (population.yaml)
        return max(1, min(n, available_cores()))
    if not uses_launcher(hc, "joblib"):
        return 1  # basic launcher: one job at a time; submitit: each job has its own cpus_per_task
    cores = available_cores()
    n = int(hc.launcher.get("n_jobs") or 1)
    if n < 0:
        n = cores + 1 + n
    return max(1, min(n, cores))


# below this width a gradient step is bound by per-operation overhead, and a second thread only adds
# synchronisation: measured with scripts/gemm_ceiling.py on 2 cores (scripts/README.md, Threads), 64-64 networks
# gained nothing from 2 threads, 256-256 ones took 30% less time per update
MIN_WIDTH_FOR_THREADS = 256


def passive_wait() -> bool:
    """Whether torch's OpenMP threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE, which sac_runner sets when
    it is imported before torch). Spinning ones took 3 to 30 times longer than one thread with 1 to 3 other
    CPU-bound processes on 2 cores (scripts/threads_under_load.py; scripts/README.md, "Threads under load")."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"


def resolve_threads(value, widest_layer: int = MIN_WIDTH_FOR_THREADS) -> int:
    """`threads` as a number: an integer as given; for "auto", 1 for networks narrower than
    MIN_WIDTH_FOR_THREADS or when OpenMP's threads would spin while they wait (passive_wait), else this job's
    share of the cores (all of them for a lone run)."""
    if isinstance(value, str) and value == "auto":
        if widest_layer < MIN_WIDTH_FOR_THREADS or not passive_wait():
            return 1
        return max(1, available_cores() // parallel_jobs())
    return int(value)


def job_threads(cfg) -> int:
    """The run's `threads`, resolved for its networks (see resolve_threads)."""
    arch = cfg.architecture
    widest = max([*arch.actor_hidden_sizes, *arch.critic_hidden_sizes, 1])
    return resolve_threads(cfg.threads, widest)


def limit_threads(n: int) -> None:
    """Use at most n threads in torch and in the BLAS/OpenMP libraries already loaded (NumPy's
    OpenBLAS, torch's OpenMP), and make child processes inherit the same limit."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (the sweep extra): without it the environment variables above,
        return  # which joblib's workers get at start-up anyway, are all there is
    threadpool_limits(limits=n)
