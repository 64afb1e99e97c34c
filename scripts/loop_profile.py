#!/usr/bin/env python
"""Where one training step's time goes: the collection policy, the environment step, the replay-buffer write
and the gradient step, each timed alone over many calls, against the whole loop step.

    python scripts/loop_profile.py --env HalfCheetah-v5 -- device=cuda
    python scripts/loop_profile.py --env Pendulum-v1 -- architecture=small

The trainer is built as `sac-train` builds it (env preset plus overrides after `--`), its buffer filled with
`learning_starts` random transitions, then each piece is called `--calls` times. On a GPU every timing ends
with a device synchronisation, so queued work is counted where it was queued.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Pendulum-v1")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    import numpy as np
    import torch

    from sac_runner.config import compose, validate
    from sac_runner.training.trainer import Trainer

    overrides = [f"env={args.env}", "seed=0", "threads=1", "save_video=false", "progress=false", *args.overrides]
    cfg = validate(compose(*overrides))
    trainer = Trainer(cfg, Path(tempfile.mkdtemp(prefix="sac-loop-profile-")))
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    p, s = trainer.progress, trainer.state
    trainer.start()  # what train() does first: the logger (collect() logs finished episodes), the envs' reset
    while p.env_steps < int(cfg.algorithm.learning_starts):
        trainer.collect()
    for _ in range(10):  # warm-up: graph capture, cuBLAS, a compiled loss
        trainer.collect()
        trainer.update_step()
    sync()

    def timed(fn) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(args.calls):
            fn()
        sync()
        return (time.perf_counter() - t0) / args.calls * 1e6

    act = trainer.policy(s.obs)
    env_act = trainer.scaler.to_env(act)
    n = trainer.algo.n_envs
    rows = {
        "policy (obs to action, host to device and back)": timed(lambda: trainer.policy(s.obs)),
        "environment step": timed(lambda: trainer.envs.step(env_act)),
        "replay-buffer write": timed(
            lambda: trainer.buffer.add(s.obs.reshape(n, -1), act, np.zeros(n), s.obs.reshape(n, -1), np.zeros(n))
        ),
        "gradient step (sample, losses, backward, optimizer, target)": timed(trainer.update_step),
        "whole loop step (collect + learn)": timed(lambda: (trainer.collect(), trainer.learn())),
    }
    trainer.close()
    print(
        f"{cfg.env.id}, {'-'.join(map(str, cfg.architecture.critic_hidden_sizes))}, batch {cfg.algorithm.batch_size}, "
        f"device {trainer.device}, cuda_graph={cfg.get('cuda_graph')}, compile={cfg.get('compile')}"
    )
    for name, us in rows.items():
        print(f"  {name:<62} {us:8.1f} us")
    print(f"  => {1e6 / rows['whole loop step (collect + learn)']:.0f} steps/s in the learning phase (no evaluations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
