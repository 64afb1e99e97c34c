"""`sac-visualize`: replay a trained agent and record it.

    sac-visualize <run dir | multirun job dir | checkpoint file> [--last] [--episodes N] [--seed S]
                  [--output FILE.mp4] [--no-video] [--device cpu|cuda|auto]

The agent is rebuilt from the run's config.yaml (a lone checkpoint file: from the config it carries)
and its best checkpoint (--last: the last one). It plays N deterministic episodes, prints their
return mean/std/min/max, and records one more, seeded like the first, to an mp4.

A plain argparse front rather than Hydra: the only inputs are a path and a few switches, and the
config comes from the run, not from the config tree. Rendering is headless (pygame's dummy video
driver; MuJoCo through MUJOCO_GL=egl, or osmesa when EGL is missing; see sac_runner/envs.py).
torch and the modules that build and play the agent are imported where they are used, so that --help and
bad arguments are answered at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sac_runner.errors import CheckpointError, ConfigError, fail
from sac_runner.rundir import CHECKPOINT_DIR, CONFIG_FILE, check_run_dir, check_writable_dir, is_run_dir

PROG = "sac-visualize"


class VisualizeError(Exception):
    """Bad input or a failure to report on one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Play a trained SAC agent deterministically, print its returns and record a video.",
    )
    ap.add_argument("path", help="a run directory (also a multirun job directory) or a checkpoint file (.pt)")
    ap.add_argument("--last", action="store_true", help="use checkpoints/last.pt instead of checkpoints/best.pt")
    ap.add_argument(
        "--episodes",
        "-n",
        type=positive_int,
        default=10,
        metavar="N",
        help="deterministic episodes to play (default: 10)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="episode i is seeded with SEED + i; the video replays episode 0 (default: 0)",
    )
    ap.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the mp4 (default: <run>/videos/visualize-<best|last>.mp4, or "
        "<checkpoint>.mp4 beside a lone checkpoint)",
    )
    ap.add_argument("--no-video", action="store_true", help="only play the episodes and print the returns")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="default: cpu")
    ap.add_argument(
        "--max-frames",
        type=positive_int,
        default=5000,
        metavar="N",
        help="stop the video after N frames (default: 5000)",
    )
    return ap.parse_args(argv)


def locate(path: str, last: bool) -> tuple[Path | None, Path]:
    """(run directory or None, checkpoint file) for the path given on the command line."""
    p = Path(path).expanduser()
    if p.is_file():
        if last:
            raise VisualizeError(f"--last picks a checkpoint of a run directory, but {p} is already a checkpoint file")
        run = p.parent.parent if p.parent.name == CHECKPOINT_DIR and is_run_dir(p.parent.parent) else None
        return run, p
    try:
        run = check_run_dir(p)
    except ConfigError as e:
        raise VisualizeError(str(e)) from None
    name, other = ("last.pt", "best.pt") if last else ("best.pt", "last.pt")
    ckpt = run / CHECKPOINT_DIR / name
    if not ckpt.is_file():
        hint = ""
        if (run / CHECKPOINT_DIR / other).is_file():
            hint = f"; {other} exists ({'drop --last' if last else 'add --last'})"
        raise VisualizeError(
            f"{run} has no {CHECKPOINT_DIR}/{name} (the run stopped before its first evaluation){hint}"
        )
    return run, ckpt


def load_config(run: Path | None, ckpt, ckpt_path: Path):
    if run is None:  # a lone checkpoint carries the config it was trained with
        cfg, source = OmegaConf.create(ckpt.config or {}), f"the config stored in {ckpt_path}"
    else:
        source = f"{run / CONFIG_FILE}"
        try:
            cfg = OmegaConf.load(run / CONFIG_FILE)  # type: ignore[assignment]  # checked below
        except Exception as e:  # unreadable or not YAML
            raise VisualizeError(f"cannot read {source} ({type(e).__name__})") from None
    if not isinstance(cfg, DictConfig) or not all(k in cfg for k in ("env", "architecture", "algorithm")):
        raise VisualizeError(f"{source} is not a sac-train config")
    return cfg, source


def build_actor(cfg, ckpt, ckpt_path: Path, source: str, device):
    """The actor of the run's architecture with the checkpoint's weights; checks that both belong together."""
    from sac_runner.agent.factory import make_actor
    from sac_runner.envs import flat_size, make_env
    from sac_runner.training.checkpoint import state_dict_mismatch

    env_id = cfg.env.id
    if ckpt.env_id != env_id:
        raise VisualizeError(
            f"checkpoint {ckpt_path} was trained on {ckpt.env_id}, but {source} is for "
            f"{env_id}; pass the checkpoint file on its own, or the run it belongs to"
        )
    try:
        probe = make_env(cfg.env)
    except Exception as e:  # a missing extra (MuJoCo, Box2D), bad kwargs, ...
        msg = " ".join(str(e).split())[:200]
        raise VisualizeError(
            f"cannot create {env_id} ({type(e).__name__}: {msg}); install its extra, e.g. "
            f"pip install 'sac_runner[mujoco]'"
        ) from None
    try:
        obs_dim, act_dim = flat_size(probe.observation_space), flat_size(probe.action_space)
    finally:
        probe.close()
    if (ckpt.obs_dim, ckpt.act_dim) != (obs_dim, act_dim):
        raise VisualizeError(
            f"checkpoint {ckpt_path} expects observations of size {ckpt.obs_dim} and actions "
            f"of size {ckpt.act_dim}, but {env_id} as configured in {source} has {obs_dim} "
            f"and {act_dim}"
        )
    try:
        actor = make_actor(cfg, obs_dim, act_dim, device)
    except Exception as e:  # an edited or incomplete config
        raise VisualizeError(f"cannot build the actor from {source} ({type(e).__name__}: {str(e)[:200]})") from None
    try:
        actor.load_state_dict(ckpt.agent["actor"])
    except (RuntimeError, TypeError, AttributeError) as e:
        sizes = list(cfg.architecture.actor_hidden_sizes)
        raise VisualizeError(
            f"checkpoint {ckpt_path} does not fit the actor of {source} "
            f"(architecture.actor_hidden_sizes={sizes}): {state_dict_mismatch(e)}"
        ) from None
    actor.eval()
    return actor


def video_path(args, run: Path | None, ckpt_path: Path) -> Path | None:
    """Where the mp4 goes (None with --no-video), checked before anything is played."""
    if args.no_video:
        return None
    if args.output is not None:
        out = args.output.expanduser()
    elif run is not None:
        out = run / "videos" / f"visualize-{ckpt_path.stem}.mp4"
    else:
        out = ckpt_path.with_suffix(".mp4")
    if out.suffix.lower() != ".mp4":
        raise VisualizeError(f"--output {out}: the video is an mp4; give a file name ending in .mp4")
    try:
        check_writable_dir(out.parent, "the video's directory", "choose another place with --output FILE.mp4")
    except ConfigError as e:
        raise VisualizeError(str(e)) from None
    return out


def visualize(args: argparse.Namespace) -> dict:
    import torch

    from sac_runner.agent.factory import resolve_device
    from sac_runner.envs import make_vector_env
    from sac_runner.training.checkpoint import load_checkpoint
    from sac_runner.training.evaluation import evaluate, record_video

    run, ckpt_path = locate(args.path, args.last)
    out = video_path(args, run, ckpt_path)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise VisualizeError("--device cuda but no CUDA device is available; use --device cpu")
    device = resolve_device(args.device)
    try:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
    except CheckpointError as e:
        raise VisualizeError(str(e)) from None
    cfg, source = load_config(run, ckpt, ckpt_path)
    actor = build_actor(cfg, ckpt, ckpt_path, source, device)
    step = ckpt.progress.get("env_steps")
    print(f"{PROG}: {cfg.env.id}, {ckpt_path} (env step {step})", flush=True)

    seeds = [args.seed + i for i in range(args.episodes)]
    envs = make_vector_env(cfg.env, args.episodes)
    try:
        returns = evaluate(actor, envs, seeds, device)
    finally:
        envs.close()
    result = {
        "returns": returns.tolist(),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "video": None,
    }
    print(
        f"return over {args.episodes} deterministic episode(s), seeds {seeds[0]}..{seeds[-1]}: "
        f"mean {result['mean']:.2f}  std {result['std']:.2f}  min {result['min']:.2f}  max {result['max']:.2f}",
        flush=True,
    )
    if out is None:
        return result
    try:
        total, frames = record_video(actor, cfg.env, out, seed=seeds[0], device=device, max_frames=args.max_frames)
    except OSError as e:
        raise VisualizeError(
            f"cannot write the video {out} ({e.strerror or type(e).__name__}); choose another "
            f"place with --output FILE.mp4",
            code=1,
        ) from None
    except Exception as e:  # an environment without rgb_array rendering, a missing OpenGL backend, ffmpeg
        msg = " ".join(str(e).split())[:200]
        raise VisualizeError(
            f"cannot record a video of {cfg.env.id} ({type(e).__name__}: {msg}); for MuJoCo try "
            f"MUJOCO_GL=egl or MUJOCO_GL=osmesa, or skip it with --no-video",
            code=1,
        ) from None
    result["video"] = str(out)
    print(f"video: {out} (seed {seeds[0]}, return {total:.2f}, {frames} frames)", flush=True)
    return result


def main(argv=None) -> None:
    """`sac-visualize` console script. Bad input: one line on stderr and exit status 2."""
    args = parse_args(argv)
    try:
        visualize(args)
    except VisualizeError as e:
        fail(str(e), e.code, prog=PROG)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
