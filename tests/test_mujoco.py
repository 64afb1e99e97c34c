"""MuJoCo tasks end to end, headless: train (the smoke experiment), record, replay with sac-visualize.
Needs the mujoco extra, which the test extra includes."""

import imageio.v3 as iio
import pytest

from tests.helpers import run_cli


def run(tool, *args, cwd):
    """A console script as a headless user runs it: no display, no rendering backend chosen."""
    return run_cli(tool, *args, cwd=cwd, drop_env=("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY"))


@pytest.mark.system
def test_halfcheetah_trains_records_and_replays_headless(tmp_path):
    proc = run("sac-train", "experiment=smoke", "env=generic", "env.id=HalfCheetah-v5", "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # MuJoCo's compiler warnings come once each, not once per environment copy (a dozen per run)
    assert proc.stderr.count("settotalmass") <= 1, proc.stderr
    assert "OpenGL_accelerate" not in proc.stdout + proc.stderr
    (run_dir,) = list((tmp_path / "outputs" / "HalfCheetah-v5").glob("*/*"))
    frames = iio.imread(run_dir / "videos" / "best_agent.mp4")
    assert len(frames) == 201  # max_episode_steps 200 of the smoke preset, plus the first frame
    assert frames[-1].std() > 5  # a rendered scene, not a blank picture

    proc = run("sac-visualize", str(run_dir), "--episodes", "2", "--output", str(tmp_path / "replay.mp4"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "return over 2 deterministic episode(s)" in proc.stdout
    assert len(iio.imread(tmp_path / "replay.mp4")) == 201
