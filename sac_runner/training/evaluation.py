"""Deterministic evaluation episodes and the best-agent video."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from sac_runner.envs import ActionScaler, make_env
from sac_runner.training.checkpoint import load_checkpoint


def policy_action(actor, obs, device, deterministic=True) -> np.ndarray:
    """The actor's actions in [-1, 1] for a batch of observations, without autograd."""
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1), device=device)
        return actor.act(x, deterministic).cpu().numpy()


def evaluate(actor, vec_env, seeds, device) -> np.ndarray:
    """Play one deterministic episode in each sub-environment of `vec_env`, seeded by `seeds`.

    Returns the undiscounted return of each episode. Sub-envs that finish early keep
    stepping (their autoreset episode is ignored) until every episode has ended.
    """
    n = vec_env.num_envs
    assert len(seeds) == n, "one seed per evaluation episode"
    scaler = ActionScaler(vec_env.single_action_space)
    obs, _ = vec_env.reset(seed=[int(s) for s in seeds])
    returns = np.zeros(n, dtype=np.float64)
    running = np.ones(n, dtype=bool)
    while running.any():
        act = scaler.to_env(policy_action(actor, obs, device))
        obs, rew, term, trunc, _ = vec_env.step(act)
        returns += np.where(running, rew, 0.0)
        running &= ~(term | trunc)
    return returns


def record_video(actor, env_cfg, path: str | Path, seed: int, device, max_frames: int = 5000) -> tuple[float, int]:
    """Play one deterministic episode with rgb_array rendering and stream it to an mp4. Returns (return, frames)."""
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter  # here: slow to import, and only for videos

    env = make_env(env_cfg, render_mode="rgb_array")
    scaler = ActionScaler(env.action_space)
    fps = int(env.metadata.get("render_fps") or 30)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer, total, frames = None, 0.0, 0
    try:
        obs, _ = env.reset(seed=int(seed))
        done = False
        while not done and frames < max_frames:
            frame = np.asarray(env.render())
            if writer is None:
                h, w = frame.shape[:2]
                writer = FFMPEG_VideoWriter(
                    str(tmp),
                    (w, h),
                    fps,
                    codec="libx264",
                    preset="veryfast",
                    ffmpeg_params=["-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"],
                )
            writer.write_frame(frame)
            frames += 1
            act = scaler.to_env(policy_action(actor, obs[None], device)[0])
            obs, rew, term, trunc, _ = env.step(act)
            total += float(rew)
            done = term or trunc
        if writer is not None:
            writer.write_frame(env.render())
            frames += 1
    finally:
        if writer is not None:
            writer.close()
        env.close()
    tmp.replace(path)
    return total, frames


def record_checkpoint_video(actor, checkpoint: Path, env_cfg, path: Path, seed: int, device) -> Path:
    """record_video of a fresh copy of `actor` with the weights of `checkpoint` (the actor's own where the file
    does not exist); returns `path`."""
    actor = copy.deepcopy(actor)
    if checkpoint.exists():
        actor.load_state_dict(load_checkpoint(checkpoint, map_location=device).agent["actor"])
    record_video(actor, env_cfg, path, seed=seed, device=device)
    return path
