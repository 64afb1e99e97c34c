#!/usr/bin/env python
"""Speed benchmark: sac_runner against Stable-Baselines3's SAC and SBX's (SB3 in JAX), in the same run, with the
same hyperparameters.

    pip install -e ".[bench]"
    python scripts/benchmark.py                                        # CartPoleContinuous-v1 preset, seeds 0 1 2
    python scripts/benchmark.py --env Pendulum-v1 --target -200
    python scripts/benchmark.py --steps 6000 --target none -- architecture=default algorithm.batch_size=256
    python scripts/benchmark.py --env HalfCheetah-v5 --target none --impl sac_runner sb3 -- device=cuda  # a GPU

The implementations are configured from the same composed sac_runner config (the env preset plus any Hydra
overrides after `--`): network sizes, learning rates, batch, buffer, discount, tau, learning_starts,
update-to-data ratio and the initial entropy coefficient with automatic tuning towards -|A|. Each
(implementation, seed) runs alone in a fresh process pinned to one core (--core, by default the last one this
process may use; the pin is set before torch or JAX start a thread) with one torch, BLAS and XLA thread, one after
the other (the implementations' order turns round from seed to seed, so a change in machine load hits all alike).

Both are evaluated the same way: every `algorithm.eval_interval` env steps, `algorithm.nb_evals`
deterministic episodes played by sac_runner's own evaluate() (one sub-environment per episode). Reported,
per implementation (median over seeds, and per seed with --per-seed):
- train steps/s: env steps per second of training alone (collection and gradient steps; the time spent
  in evaluations, and for sac_runner in its checkpoint writes after each evaluation, is left out);
- learning-phase steps/s: the same from learning_starts on; and "steady": from the point where an
  implementation's compiled update runs (sac_runner's compiled update after it took over, compile=auto/true;
  SBX after its first, JIT-compiling, gradient step; SB3 compiles nothing), so the compile is left out;
- steps / wall s to target: the first evaluation whose mean return reached --target, in env steps and in
  seconds since training started (evaluation and checkpoint time included, as a user waits for it);
- final and best evaluation return.

sac_runner's numbers are those of the product as shipped: its Trainer writes TensorBoard events and
best.pt / last.pt (with the replay buffer) as in `sac-train`; only the video is off. Its compiled update builds in
the background on the same core (torch's inductor cache, TORCHINDUCTOR_CACHE_DIR, makes later runs' builds short).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sac_runner.rundir import cpu_model

IMPLEMENTATIONS = ("sac_runner", "sb3", "sbx")
# sac_runner with compile=false: its eager update, beside the compiled one (compile=true after --)
EAGER = "sac_runner_eager"
# SBX's child: XLA on the CPU with one thread (set before JAX is imported)
SBX_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1", "JAX_PLATFORMS": "cpu"}


# ------------------------------------------------------------------------------------------ child process
def run_config(env: str, seed: int, overrides: list[str]):
    """The validated config of one benchmark run: the env preset, one thread, no video or progress bar."""
    from sac_runner.config import compose, validate

    return validate(
        compose(f"env={env}", f"seed={seed}", "threads=1", "save_video=false", "progress=false", *overrides)
    )


def run_sac_runner(cfg, out_dir: Path) -> dict:
    from sac_runner.training.trainer import Hook, Trainer

    class Timing(Hook):
        """When each evaluation ends, and how long evaluations (with their checkpoint writes) took."""

        def __init__(self):
            self.eval_s, self.curve, self.t_start = 0.0, [], time.perf_counter()
            self.t_learn, self.eval_s_learn = None, 0.0  # when the learning phase began; evaluations since
            self.steady = None  # (time, env step, evaluation seconds then) when the compiled update took over

        def on_step(self, trainer):
            if self.t_learn is None and trainer.progress.env_steps >= learning_starts:
                self.t_learn, self.eval_s_learn = time.perf_counter(), 0.0
            step = trainer.compiled_step
            if self.steady is None and step is not None and step.active:
                self.steady = (time.perf_counter(), trainer.progress.env_steps, self.eval_s_learn)

        def on_evaluation(self, trainer, evaluation):
            self.eval_s += evaluation.seconds
            self.eval_s_learn += evaluation.seconds
            self.curve.append([evaluation.env_steps, time.perf_counter() - self.t_start, evaluation.mean])

    learning_starts = int(cfg.algorithm.learning_starts)
    timing = Timing()
    trainer = Trainer(cfg, out_dir, hooks=[timing])
    try:
        timing.t_start = time.perf_counter()
        trainer.train()
        end = time.perf_counter()
    finally:
        trainer.close()
    steady = {}
    if timing.steady is not None:  # from the first compiled step on
        t, step, eval_s = timing.steady
        steady = {
            "steady_s": end - t - (timing.eval_s_learn - eval_s),
            "steady_steps": int(cfg.algorithm.total_steps) - step,
        }
    elif trainer.compiled_step is None and timing.t_learn is not None:  # eager: nothing to compile
        steady = {"steady_s": end - timing.t_learn - timing.eval_s_learn, "steady_steps": None}
    return {
        "wall_s": end - timing.t_start,
        "eval_s": timing.eval_s,
        "learn_s": None if timing.t_learn is None else end - timing.t_learn - timing.eval_s_learn,
        "curve": timing.curve,
        "updates": trainer.progress.updates,
        "update": trainer.compiled_step.report()["update"] if trainer.compiled_step else "eager",
        "compile_s": trainer.compiled_step.compiled.compile_s if trainer.compiled_step else None,
        **steady,
    }


def run_sb3(cfg) -> dict:
    import numpy as np
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from sac_runner.agent.networks import ACTIVATIONS
    from sac_runner.envs import make_env, make_vector_env  # also registers CartPoleContinuous-v1
    from sac_runner.training.evaluation import evaluate

    algo, arch = cfg.algorithm, cfg.architecture
    env = make_env(cfg.env)
    model = SAC(
        "MlpPolicy",
        env,
        **sac_kwargs(cfg, "SB3", ACTIVATIONS[arch.activation]),
        device=str(cfg.device),  # cpu, cuda or auto, as sac_runner's side
        verbose=0,
    )
    eval_envs = make_vector_env(cfg.env, int(algo.nb_evals))
    rng = np.random.default_rng(int(cfg.seed))

    class Actor:  # what evaluate() calls: act(obs, deterministic) -> actions in [-1, 1]
        def act(self, obs, deterministic):
            return model.actor(obs, deterministic=deterministic)

    class Evaluations(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval, self.eval_s, self.curve = int(algo.eval_interval), 0.0, []
            self.t_learn, self.eval_s_learn = None, 0.0

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if self.t_learn is None and step >= int(algo.learning_starts):
                self.t_learn, self.eval_s_learn = time.perf_counter(), 0.0
            if step >= self.next_eval or step >= int(algo.total_steps):
                while self.next_eval <= step:
                    self.next_eval += int(algo.eval_interval)
                t0 = time.perf_counter()
                seeds = rng.integers(0, 2**31 - 1, size=int(algo.nb_evals))
                mean = float(evaluate(Actor(), eval_envs, seeds, model.device).mean())
                self.eval_s += time.perf_counter() - t0
                self.eval_s_learn += time.perf_counter() - t0
                self.curve.append([step, time.perf_counter() - start, mean])
            return True

    callback = Evaluations()
    start = time.perf_counter()
    model.learn(total_timesteps=int(algo.total_steps), callback=callback)
    end = time.perf_counter()
    eval_envs.close()
    learn_s = None if callback.t_learn is None else end - callback.t_learn - callback.eval_s_learn
    return {
        "wall_s": end - start,
        "eval_s": callback.eval_s,
        "learn_s": learn_s,
        "curve": callback.curve,
        "updates": int(model._n_updates),
        "steady_s": learn_s,  # nothing compiled
        "steady_steps": None,
    }


def run_sbx(cfg) -> dict:
    """SBX's SAC (sbx-rl, JAX on the CPU) with the config's hyperparameters, evaluated by sac_runner's evaluate()."""
    import numpy as np
    import torch
    from flax import linen
    from sbx import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from sac_runner.envs import make_env, make_vector_env  # also registers CartPoleContinuous-v1
    from sac_runner.training.evaluation import evaluate

    algo, arch = cfg.algorithm, cfg.architecture
    activations = {"relu": linen.relu, "tanh": linen.tanh, "elu": linen.elu, "gelu": linen.gelu, "silu": linen.silu}
    model = SAC(
        "MlpPolicy",
        make_env(cfg.env),
        **sac_kwargs(cfg, "SBX", activations[arch.activation]),
        verbose=0,
    )
    eval_envs = make_vector_env(cfg.env, int(algo.nb_evals))
    rng = np.random.default_rng(int(cfg.seed))

    class Actor:  # what evaluate() calls: act(obs, deterministic) -> actions in [-1, 1], as a tensor
        def act(self, obs, deterministic):
            action, _ = model.predict(obs.numpy(), deterministic=deterministic)
            return torch.as_tensor(model.policy.scale_action(action))

    class Evaluations(BaseCallback):
        def __init__(self):
            super().__init__()
            self.next_eval, self.eval_s, self.curve = int(algo.eval_interval), 0.0, []
            self.t_learn, self.eval_s_learn = None, 0.0
            self.steady = None  # (time, env step, evaluation seconds then) after the first (compiling) update

        def _on_step(self) -> bool:
            step = self.num_timesteps
            if self.t_learn is None and step >= int(algo.learning_starts):
                self.t_learn, self.eval_s_learn = time.perf_counter(), 0.0
            if self.steady is None and model._n_updates > 0:
                self.steady = (time.perf_counter(), step, self.eval_s_learn)
            if step >= self.next_eval or step >= int(algo.total_steps):
                while self.next_eval <= step:
                    self.next_eval += int(algo.eval_interval)
                t0 = time.perf_counter()
                seeds = rng.integers(0, 2**31 - 1, size=int(algo.nb_evals))
                mean = float(evaluate(Actor(), eval_envs, seeds, "cpu").mean())
                self.eval_s += time.perf_counter() - t0
                self.eval_s_learn += time.perf_counter() - t0
                self.curve.append([step, time.perf_counter() - start, mean])
            return True

    callback = Evaluations()
    start = time.perf_counter()
    model.learn(total_timesteps=int(algo.total_steps), callback=callback)
    end = time.perf_counter()
    eval_envs.close()
    steady = {}
    if callback.steady is not None:
        t, step, eval_s = callback.steady
        steady = {
            "steady_s": end - t - (callback.eval_s_learn - eval_s),
            "steady_steps": int(algo.total_steps) - step,
        }
    return {
        "wall_s": end - start,
        "eval_s": callback.eval_s,
        "learn_s": None if callback.t_learn is None else end - callback.t_learn - callback.eval_s_learn,
        "curve": callback.curve,
        "updates": int(model._n_updates),
        **steady,
    }


def sac_kwargs(cfg, who: str, activation_fn) -> dict:
    """The keyword arguments SB3's SAC and SBX's SAC (one interface) take from the config: the same
    hyperparameters, networks, schedule (sb3_schedule) and seed as sac_runner's side."""
    algo, arch = cfg.algorithm, cfg.architecture
    train_freq, gradient_steps = sb3_schedule(cfg, who)
    return dict(
        learning_rate=float(cfg.actor_optimizer.lr),
        buffer_size=int(algo.buffer_size),
        learning_starts=int(algo.learning_starts),
        batch_size=int(algo.batch_size),
        tau=float(algo.tau),
        gamma=float(algo.discount),
        train_freq=train_freq,
        gradient_steps=gradient_steps,
        ent_coef=f"auto_{algo.init_entropy_coef}" if algo.entropy_mode == "auto" else float(algo.init_entropy_coef),
        target_entropy="auto" if algo.target_entropy is None else float(algo.target_entropy),
        policy_kwargs={
            "net_arch": {"pi": list(arch.actor_hidden_sizes), "qf": list(arch.critic_hidden_sizes)},
            "n_critics": int(arch.n_critics),
            "activation_fn": activation_fn,
        },
        seed=int(cfg.seed),
    )


def sb3_schedule(cfg, who: str) -> tuple[int, int]:
    """(train_freq, gradient_steps) for SB3 and SBX from the config, after checking they can run it alike."""
    algo = cfg.algorithm
    if algo.n_envs != 1:
        raise SystemExit(f"the {who} side of the benchmark runs one training environment; use algorithm.n_envs=1")
    utd = float(algo.utd_ratio)
    # SB3 expresses the update-to-data ratio as gradient_steps every train_freq env steps
    train_freq, gradient_steps = (1, int(utd)) if utd >= 1 else (int(round(1 / utd)), 1)
    if abs(gradient_steps / train_freq - utd) > 1e-9:
        raise SystemExit(f"algorithm.utd_ratio={utd} has no {who} equivalent; use an integer or 1/integer")
    if len({cfg.actor_optimizer.lr, cfg.critic_optimizer.lr, cfg.entropy_coef_optimizer.lr}) != 1:
        raise SystemExit(f"{who} uses one learning rate for actor, critics and entropy; give all three the same lr")
    for name in ("actor_optimizer", "critic_optimizer", "entropy_coef_optimizer"):
        if cfg[name]._target_ != "torch.optim.Adam":
            raise SystemExit(f"the {who} side uses Adam; benchmark with the adam optimizer preset")
    if algo.max_grad_norm is not None:
        raise SystemExit(f"{who}'s SAC has no gradient clipping; benchmark with algorithm.max_grad_norm=null")
    return train_freq, gradient_steps


def child(args) -> None:
    # one core, before torch, BLAS or XLA start a thread pool (they size it by the cores this process may use)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    if args.impl == "sbx":
        os.environ.update(SBX_ENV)
    import torch

    torch.set_num_threads(1)
    cfg = run_config(args.env, args.seed, [*args.overrides, *(["compile=false"] if args.impl == EAGER else [])])
    if args.steps:
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.algorithm.total_steps = args.steps
    if args.impl in ("sac_runner", EAGER):
        result = run_sac_runner(cfg, args.out.parent / f"{args.out.stem}-run")
    elif args.impl == "sbx":
        result = run_sbx(cfg)
    else:
        result = run_sb3(cfg)
    result.update(
        impl=args.impl,
        seed=args.seed,
        env_steps=int(cfg.algorithm.total_steps),
        learning_starts=int(cfg.algorithm.learning_starts),
        hidden=list(cfg.architecture.critic_hidden_sizes),
        utd_ratio=float(cfg.algorithm.utd_ratio),
        env_id=str(cfg.env.id),
        core=args.core,
    )
    args.out.write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------ parent


def default_core() -> int | None:
    """The last core this process may run on (None where affinity cannot be set)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


def summarise(r: dict, target: float | None) -> dict:
    train_s = r["wall_s"] - r["eval_s"]
    hit = None if target is None else next((c for c in r["curve"] if c[2] >= target), None)
    returns = [c[2] for c in r["curve"]]
    learn_steps = r["env_steps"] - r["learning_starts"]
    steady_steps = r.get("steady_steps") or learn_steps
    return {
        "impl": r["impl"],
        "seed": r["seed"],
        "train_sps": r["env_steps"] / train_s,
        "learn_sps": learn_steps / r["learn_s"] if r.get("learn_s") else None,
        "steady_sps": steady_steps / r["steady_s"] if r.get("steady_s") else None,
        "update": r.get("update"),
        "compile_s": r.get("compile_s"),
        "updates_per_s": r["updates"] / train_s,
        "wall_s": r["wall_s"],
        "eval_s": r["eval_s"],
        "hidden": r.get("hidden", []),
        "steps_to_target": hit[0] if hit else None,
        "wall_to_target": hit[1] if hit else None,
        "final": returns[-1] if returns else float("nan"),
        "best": max(returns) if returns else float("nan"),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def run_one(args, impl: str, seed: int, arch: str | None, out: Path, env: dict) -> dict | None:
    """One (implementation, seed, architecture) run in a fresh process; its summary row, or None if it failed."""
    tag = f"{impl}-{arch or 'preset'}-seed{seed}"
    result = out / f"{tag}.json"
    overrides = [*([f"architecture={arch}"] if arch else []), *args.overrides]
    cmd = [sys.executable, __file__, "--child", impl, "--seed", str(seed), "--result", str(result), "--env", args.env]
    cmd += ["--core", str(args.core)] if args.core is not None else []
    cmd += [*(["--steps", str(args.steps)] if args.steps else []), "--", *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"  {impl} seed {seed}: FAILED: {tail}", flush=True)
        return None
    row = summarise(json.loads(result.read_text()), args.target_value)
    row["arch"] = arch or "preset"
    print(
        f"  {impl:>10} {row['arch']:>7} seed {seed}: {fmt(row['learn_sps'], '6.0f')} learning-phase steps/s "
        f"({fmt(row['steady_sps'], '.0f')} steady{', ' + row['update'] if row.get('update') else ''}), "
        f"{row['train_sps']:6.0f} train steps/s, {row['wall_s']:6.1f} s in all, target at step "
        f"{fmt(row['steps_to_target'], 'd')} ({fmt(row['wall_to_target'], '.1f')} s), final {row['final']:.1f}",
        flush=True,
    )
    return row


def table(rows: list[dict], impls: list[str], target: float | None) -> list[str]:
    head = (
        "| implementation | networks | runs | learning-phase steps/s | steady steps/s | train steps/s "
        "| gradient steps/s | wall s (all) | reached target | steps to target | wall s to target | final return "
        "| best return |"
    )
    lines = [head, "|" + "---|" * 13]
    for arch in dict.fromkeys(r["arch"] for r in rows):
        for impl in impls:
            rs = [r for r in rows if r["impl"] == impl and r["arch"] == arch]
            if not rs:
                continue
            reached = sum(r["steps_to_target"] is not None for r in rs)
            lines.append(
                f"| {impl} | {'-'.join(map(str, rs[0]['hidden']))} | {len(rs)} "
                f"| {fmt(median([r['learn_sps'] for r in rs]), '.0f')} "
                f"| {fmt(median([r.get('steady_sps') for r in rs]), '.0f')} "
                f"| {median([r['train_sps'] for r in rs]):.0f} "
                f"| {median([r['updates_per_s'] for r in rs]):.0f} | {median([r['wall_s'] for r in rs]):.1f} "
                f"| {'-' if target is None else f'{reached}/{len(rs)}'} "
                f"| {fmt(median([r['steps_to_target'] for r in rs]), '.0f')} "
                f"| {fmt(median([r['wall_to_target'] for r in rs]), '.1f')} "
                f"| {median([r['final'] for r in rs]):.1f} | {median([r['best'] for r in rs]):.1f} |"
            )
        ours = [r for r in rows if r["impl"] == "sac_runner" and r["arch"] == arch]
        for other in (EAGER, "sb3", "sbx"):
            ref = [r for r in rows if r["impl"] == other and r["arch"] == arch]
            if not (ours and ref):
                continue
            for key, what in (("learn_sps", "learning-phase"), ("steady_sps", "steady"), ("train_sps", "train")):
                mine, theirs = median([r.get(key) for r in ours]), median([r.get(key) for r in ref])
                if mine and theirs:
                    lines.append(
                        f"|  | ratio sac_runner / {other}, {what} steps/s: **{mine / theirs:.2f}x** |" + " |" * 11
                    )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="CartPoleContinuous-v1", help="an env preset (conf/env/), as env=<preset>")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--target",
        default=None,
        help="return that counts as solved (default: 475 for CartPoleContinuous-v1, -200 for "
        "Pendulum-v1); 'none' for throughput only",
    )
    ap.add_argument("--steps", type=int, default=None, help="env steps per run (default: the preset's total_steps)")
    ap.add_argument(
        "--impl",
        "--impls",
        dest="impls",
        nargs="+",
        choices=[*IMPLEMENTATIONS, EAGER],
        default=list(IMPLEMENTATIONS),
        help="which implementations to run (default: all three; sbx needs sbx-rl and jax, the bench extra; "
        f"{EAGER}: sac_runner with compile=false, to set beside sac_runner with compile=true)",
    )
    ap.add_argument(
        "--core",
        type=int,
        default=default_core(),
        help="the CPU core every run is pinned to (default: the last one this process may use)",
    )
    ap.add_argument(
        "--arch",
        nargs="+",
        default=[None],
        metavar="PRESET",
        help="architecture presets to cover, e.g. --arch small default (64-64 and 256-256); default: the env preset's",
    )
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also run scripts/gemm_ceiling.py: sac_runner's 256-256 update against this machine's GEMM ceiling",
    )
    ap.add_argument("--per-seed", action="store_true", help="also print one row per run")
    ap.add_argument("--out", type=Path, default=None, help="directory for the per-run JSON and run directories")
    ap.add_argument("--child", choices=[*IMPLEMENTATIONS, EAGER], dest="impl", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, dest="result", help=argparse.SUPPRESS)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for both implementations, after --")
    args = ap.parse_args()
    if args.impl:
        args.out = args.result
        child(args)
        return 0

    default_targets = {"CartPoleContinuous-v1": 475.0, "Pendulum-v1": -200.0}
    if args.target is None:
        target = default_targets.get(args.env)
    else:
        target = None if args.target.lower() == "none" else float(args.target)
    args.target_value = target
    out = args.out or Path(tempfile.mkdtemp(prefix="sac-benchmark-"))
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"benchmark: env={args.env} overrides={args.overrides or '-'} seeds={args.seeds} target={target} "
        f"steps={args.steps or 'preset'} networks={args.arch if args.arch != [None] else 'preset'}; "
        f"one run at a time, pinned to core {args.core}, 1 thread; {cpu_model()}; results in {out}",
        flush=True,
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    rows = []
    for arch in args.arch:
        for i, seed in enumerate(args.seeds):
            order = args.impls if i % 2 == 0 else list(reversed(args.impls))
            for impl in order:
                row = run_one(args, impl, seed, arch, out, env)
                if row is not None:
                    rows.append(row)

    print("\nmedians over seeds (steps and wall time to target: over the runs that reached it; learning phase:")
    print("the env steps after learning_starts, evaluations left out)")
    print("\n".join(table(rows, args.impls, target)))
    if args.per_seed:
        print(
            "\n| implementation | networks | seed | learning-phase steps/s | steady steps/s | train steps/s | wall s "
            "| steps to target | wall s to target | final | best |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(rows, key=lambda r: (r["arch"], args.impls.index(r["impl"]), r["seed"])):
            print(
                f"| {r['impl']} | {r['arch']} | {r['seed']} | {fmt(r['learn_sps'], '.0f')} "
                f"| {fmt(r.get('steady_sps'), '.0f')} | {r['train_sps']:.0f} "
                f"| {r['wall_s']:.1f} | {fmt(r['steps_to_target'], 'd')} | {fmt(r['wall_to_target'], '.1f')} "
                f"| {r['final']:.1f} | {r['best']:.1f} |"
            )
    if args.ceiling:
        probe = Path(__file__).with_name("gemm_ceiling.py")
        print(f"\n{probe.name}:", flush=True)
        pin = ["taskset", "-c", str(args.core)] if args.core is not None and shutil.which("taskset") else []
        subprocess.run([*pin, sys.executable, str(probe), "--hidden", "256", "--env", args.env], env=env, check=False)
    (out / "benchmark.json").write_text(
        json.dumps({"target": target, "overrides": args.overrides, "cpu": cpu_model(), "rows": rows}, indent=1)
    )
    return 0 if rows else 1


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
