#!/usr/bin/env python
"""One still frame per suite for the README: outputs/figures/{mujoco,box2d,classic}.png.

    python scripts/still_frames.py                       # the three frames, 240 pixels high
    python scripts/still_frames.py --height 300 --out /tmp/frames

Each frame is rendered headless, as sac-train renders its videos (sac_runner.envs picks the backend:
EGL or OSMesa for MuJoCo, pygame's dummy driver for Box2D and classic control), after a fixed number of
uniformly random actions from a seeded reset: it shows the task, not a trained agent. Needs the mujoco and
box2d extras, and Pillow (which the report extra brings with matplotlib).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# suite: (env id, random steps before the frame is taken)
FRAMES = {
    "mujoco": ("HalfCheetah-v5", 40),
    "box2d": ("LunarLanderContinuous-v3", 60),
    "classic": ("MountainCarContinuous-v0", 30),
}


def frame(env_id: str, steps: int, seed: int):
    from omegaconf import OmegaConf

    from sac_runner.envs import make_env

    env = make_env(OmegaConf.create({"id": env_id, "kwargs": {}, "max_episode_steps": None}), render_mode="rgb_array")
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
        return env.render()
    finally:
        env.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "figures")
    ap.add_argument("--height", type=int, default=240, help="pixels; the width keeps the aspect ratio")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    for suite, (env_id, steps) in FRAMES.items():
        image = Image.fromarray(frame(env_id, steps, args.seed))
        width = round(image.width * args.height / image.height)
        path = args.out / f"{suite}.png"
        image.resize((width, args.height), Image.LANCZOS).save(path, optimize=True)
        print(f"{path}: {env_id}, {width}x{args.height}, {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
