"""`sac-visualize`: replay a trained agent and record it.

    sac-visualize <run dir | multirun job dir | checkpoint file> [--last] [--episodes N] [--seed S]
                  [--output FILE.mp4] [--no-video] [--device cpu|cuda|auto]

The agent is loaded by the public API, sac_runner.load_policy (sac_runner/policy.py): the actor of the run's
config.yaml (a lone checkpoint file: of the config it carries; a run's config.yaml means its run) with the
weights of its best checkpoint (--last: the last one). It plays N deterministic episodes, prints their
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

from sac_runner.errors import CheckpointError, ConfigError, fail
from sac_runner.rundir import FAILED_FILE, check_writable_dir

PROG = "sac-visualize"


class VisualizeError(Exception):
    """Bad input or a failure to report on one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _int(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1, "positive")


def seed(text: str) -> int:
    return _int(text, 0, "a seed (Gymnasium takes seeds >= 0), e.g. --seed 0")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block before it), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        fail(f"{message} (see {self.prog} --help)", 2, prog=self.prog)


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(
        prog=PROG,
        description="Play a trained SAC agent deterministically, print its returns and record a video.",
    )
    ap.add_argument(
        "path", help="a run directory (also a multirun job directory, or the run's config.yaml) or a checkpoint file"
    )
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
        type=seed,
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

    from sac_runner.policy import load_policy
    from sac_runner.training.evaluation import record_video

    if args.device == "cuda" and not torch.cuda.is_available():
        raise VisualizeError("--device cuda but no CUDA device is available; use --device cpu")
    policy = load_policy(args.path, device=args.device, which="last" if args.last else "best")
    out = video_path(args, policy.run_dir, policy.checkpoint)
    print(f"{PROG}: {policy.env_id}, {policy.checkpoint} (env step {policy.env_steps})", flush=True)
    if policy.failure is not None and policy.run_dir is not None:
        print(
            f"{PROG}: note: this job failed afterwards ({policy.failure.get('error', 'an error')}); "
            f"see {policy.run_dir / FAILED_FILE}",
            file=sys.stderr,
            flush=True,
        )

    seeds = [args.seed + i for i in range(args.episodes)]
    returns = policy.evaluate(args.episodes, args.seed)
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
        total, frames = record_video(
            policy.actor, policy.config.env, out, seed=seeds[0], device=policy.device, max_frames=args.max_frames
        )
    except OSError as e:
        raise VisualizeError(
            f"cannot write the video {out} ({e.strerror or type(e).__name__}); choose another "
            f"place with --output FILE.mp4",
            code=1,
        ) from None
    except Exception as e:  # an environment without rgb_array rendering, a missing OpenGL backend, ffmpeg
        msg = " ".join(str(e).split())[:200]
        raise VisualizeError(
            f"cannot record a video of {policy.env_id} ({type(e).__name__}: {msg}); for MuJoCo try "
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
    except (ConfigError, CheckpointError) as e:  # from sac_runner.load_policy: the path, config or checkpoint
        fail(str(e), 2, prog=PROG)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
