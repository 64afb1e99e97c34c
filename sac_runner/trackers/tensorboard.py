"""TensorBoard, the default tracker: the scalars in <run dir>/tensorboard (sac-report reads them), and the best
agent's episode as an animated GIF in the Images tab (logger.tensorboard.video). Its failures (a full disk)
stop the run with one line, as they always did: the same disk holds the checkpoints."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from sac_runner.errors import TrainingError
from sac_runner.trackers.base import Outcome, RunInfo, Tracker, notice, short_reason

VIDEO_TAG = "eval/best_agent"
# the GIF: at most this wide (pixels), at most this many frames per second
GIF_WIDTH, GIF_FPS = 240, 15


def gif_from_video(path: Path, width: int = GIF_WIDTH, fps: int = GIF_FPS) -> tuple[bytes, int, int]:
    """An mp4 as a small looping GIF: (bytes, height, width). ffmpeg scales and resamples while decoding."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(
        str(path), output_params=["-vf", f"fps={fps},scale='min({width},iw)':-2:flags=area"]
    )
    warns = logging.getLogger("imageio_ffmpeg")  # it warns that the frames read are smaller: we asked for that
    level, warns.level = warns.level, logging.ERROR
    try:
        meta = next(reader)
        w, h = meta["size"]
        frames = [Image.frombytes("RGB", (w, h), bytes(f)) for f in reader]
    finally:
        warns.setLevel(level)
    if not frames:
        raise ValueError(f"{path} holds no frame")
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue(), h, w


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    critical = True

    def __init__(self, settings: Mapping | None = None):
        self.video = bool((settings or {}).get("video", True))

    def start(self, run: RunInfo) -> None:
        self.log_dir = run.run_dir / "tensorboard"
        # a resumed run drops the events written after its checkpoint
        purge = run.start_step + 1 if run.resumed else None
        try:
            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge)
        except OSError as e:
            raise TrainingError(
                f"cannot write TensorBoard logs to {self.log_dir} "
                f"({e.strerror or type(e).__name__}); choose a writable hydra.run.dir"
            ) from None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, step)

    def evaluation(self, step: int, mean: float, best: float) -> None:
        self.writer.flush()

    def finish(self, outcome: Outcome) -> None:
        if not (self.video and outcome.video is not None and Path(outcome.video).is_file()):
            return
        from tensorboard.compat.proto.summary_pb2 import Summary

        try:
            gif, h, w = gif_from_video(Path(outcome.video))
        except Exception as e:  # noqa: BLE001 - a video that cannot be converted is not worth failing the run
            notice(f"tensorboard: the best-agent video was not added ({short_reason(e)})")
            return
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif)
        events = self.writer.file_writer
        assert events is not None  # SummaryWriter opens its file writer when created
        events.add_summary(Summary(value=[Summary.Value(tag=VIDEO_TAG, image=image)]), outcome.env_steps)

    def close(self) -> None:
        if hasattr(self, "writer"):
            self.writer.close()

    def where(self) -> str:
        return f"tensorboard --logdir {self.log_dir}"
