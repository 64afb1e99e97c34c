"""sac-visualize: replay from a run, a multirun job or a checkpoint file; every bad input is one line, no traceback."""

import contextlib
import io
import os
import shutil

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sac_runner import envs as envs_module
from sac_runner.agent.networks import SquashedGaussianActor
from sac_runner.envs import make_vector_env
from sac_runner.training.evaluation import evaluate
from sac_runner.visualize import main
from tests.helpers import new_trainer, run_cli, train

torch.set_num_threads(1)


def new_run(run_dir, *overrides):
    train(new_trainer(run_dir, "algorithm.total_steps=150", *overrides))
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {
        "CartPoleContinuous-v1": new_run(base / "cartpole"),
        "Pendulum-v1": new_run(base / "pendulum", "env=Pendulum-v1"),
    }


def visualize(*args):
    """main() in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def frames(path):
    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_console_script_replays_the_best_checkpoint_of_a_run(runs):
    run = runs["CartPoleContinuous-v1"]
    proc = run_cli("sac-visualize", run, "--episodes", "3", "--seed", "7", timeout=120, drop_env=("DISPLAY",))
    assert proc.returncode == 0, proc.stderr
    assert str(run / "checkpoints" / "best.pt") in proc.stdout
    video = run / "videos" / "visualize-best.mp4"
    assert f"video: {video}" in proc.stdout and frames(video) >= 2

    # the printed statistics are those of the best actor on seeds 7, 8, 9
    cfg = OmegaConf.load(run / "config.yaml")
    actor = SquashedGaussianActor(
        4,
        1,
        list(cfg.architecture.actor_hidden_sizes),
        cfg.architecture.activation,
        cfg.architecture.log_std_min,
        cfg.architecture.log_std_max,
    )
    actor.load_state_dict(torch.load(run / "checkpoints" / "best.pt", weights_only=True)["agent"]["actor"])
    returns = evaluate(actor, make_vector_env(cfg.env, 3), [7, 8, 9], torch.device("cpu"))
    assert (
        f"mean {returns.mean():.2f}  std {returns.std():.2f}  min {returns.min():.2f}  max {returns.max():.2f}"
        in proc.stdout
    )


@pytest.mark.parametrize("env", ["CartPoleContinuous-v1", "Pendulum-v1"])
def test_every_environment_renders_headless(runs, env, tmp_path):
    out = tmp_path / "nested" / "agent.mp4"
    code, stdout, stderr = visualize(runs[env], "--last", "--episodes", "2", "--output", out)
    assert code == 0, stderr
    assert env in stdout and "checkpoints/last.pt" in stdout and frames(out) >= 2


def test_a_config_yaml_means_its_run(runs, tmp_path):
    """`sac-visualize <run>/config.yaml` (a path a user tab-completes) replays the run, as its directory does; a
    job that failed after its first checkpoint is replayed with a note pointing to its failed.json."""
    run = shutil.copytree(runs["Pendulum-v1"], tmp_path / "run")
    (run / ".hydra").mkdir()
    shutil.copy(run / "config.yaml", run / ".hydra" / "config.yaml")  # as Hydra writes it
    expected = visualize(run, "--episodes", "2", "--no-video")
    assert expected[0] == 0, expected[2]
    assert visualize(run / "config.yaml", "--episodes", "2", "--no-video") == expected
    assert visualize(run / ".hydra" / "config.yaml", "--episodes", "2", "--no-video") == expected

    job = tmp_path / "sweep" / "0"
    shutil.copytree(run, job)
    (job / "failed.json").write_text('{"error": "TrainingError", "message": "actor loss is nan"}')
    code, stdout, stderr = visualize(job, "--episodes", "2", "--no-video")
    assert code == 0 and stdout.splitlines()[1] == expected[1].splitlines()[1]  # the same returns
    assert stderr == f"sac-visualize: note: this job failed afterwards (TrainingError); see {job / 'failed.json'}\n"


def test_checkpoint_files_and_multirun_jobs(runs, tmp_path):
    run = runs["CartPoleContinuous-v1"]
    code, stdout, _ = visualize(run / "checkpoints" / "last.pt", "--episodes", "1", "--no-video")
    assert code == 0 and "mean" in stdout and "video" not in stdout

    lone = tmp_path / "elsewhere" / "agent.pt"  # outside any run: its own stored config is used
    lone.parent.mkdir()
    shutil.copy(run / "checkpoints" / "best.pt", lone)
    code, stdout, stderr = visualize(lone, "--episodes", "1")
    assert code == 0, stderr
    assert frames(tmp_path / "elsewhere" / "agent.mp4") >= 2

    job = tmp_path / "multirun" / "2030-01-01" / "00-00-00" / "0"  # a multirun job directory
    shutil.copytree(run, job)
    code, stdout, stderr = visualize(job, "--episodes", "1", "--no-video")
    assert code == 0, stderr


def write_foreign_checkpoint(src_run, dst_run, **change):
    """A copy of src_run whose best.pt is altered by `change` (actor weights or env id)."""
    shutil.copytree(src_run, dst_run)
    path = dst_run / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    if "actor" in change:
        ckpt["agent"]["actor"] = change.pop("actor")
    ckpt.update(change)
    torch.save(ckpt, path)
    return dst_run


def bad_inputs(runs, tmp_path):
    cart, pend = runs["CartPoleContinuous-v1"], runs["Pendulum-v1"]
    best = cart / "checkpoints" / "best.pt"
    (tmp_path / "empty").mkdir()
    shutil.copytree(cart, tmp_path / "sweep" / "0")
    other_env = tmp_path / "other_env"
    shutil.copytree(cart, other_env)
    shutil.copy(pend / "checkpoints" / "best.pt", other_env / "checkpoints" / "best.pt")
    wide = SquashedGaussianActor(4, 1, [128, 128]).state_dict()
    other_arch = write_foreign_checkpoint(cart, tmp_path / "other_arch", actor=wide)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"format": 2, "agent": {"actor": {}}, "x": np.float64(1.0)}, tmp_path / "pickled.pt")  # needs a global
    no_best = tmp_path / "no_best"
    shutil.copytree(cart, no_best)
    (no_best / "checkpoints" / "best.pt").unlink()
    (tmp_path / "afile").write_text("")
    job = tmp_path / "sweep" / "0"
    (job / "summary.json").write_text("{}")
    failed = tmp_path / "sweep" / "1"  # a sweep job that failed before its first checkpoint
    (failed / ".hydra").mkdir(parents=True)
    shutil.copy(cart / "config.yaml", failed / "config.yaml")
    (failed / "failed.json").write_text('{"job_num": 1, "error": "TrainingError", "message": "critic loss is nan"}')
    return [
        ([tmp_path / "missing"], "does not exist"),
        ([job / "summary.json"], f"{job / 'summary.json'} is not a checkpoint; pass its run directory: {job}"),
        (
            [failed],
            f"{failed} is a sweep job that failed (TrainingError: critic loss is nan) before writing "
            f"checkpoints/best.pt; see {failed / 'failed.json'}",
        ),
        ([failed / "config.yaml"], f"see {failed / 'failed.json'}"),
        ([cart, "--seed", "-3"], "argument --seed: -3 is not a seed (Gymnasium takes seeds >= 0), e.g. --seed 0"),
        ([cart, "--episodes", "0"], "argument --episodes/-n: 0 is not positive (see sac-visualize --help)"),
        ([tmp_path / "empty"], "is not a sac_runner run directory"),
        ([tmp_path / "sweep"], "holds runs (a multirun sweep?); pass one of them"),
        ([other_env], "was trained on Pendulum-v1, but"),
        ([other_arch], "(architecture.actor_hidden_sizes=[64, 64]): size mismatch for backbone.0.weight"),
        ([truncated], "is truncated or corrupted"),
        ([garbage], "is truncated or corrupted"),
        ([tmp_path / "empty.pt"], "is truncated or corrupted"),
        ([tmp_path / "pickled.pt"], "was refused"),
        (
            [no_best],
            "has no checkpoints/best.pt (the run stopped before its first evaluation); last.pt exists (add --last;",
        ),
        ([best, "--last"], "is already a checkpoint file; the last checkpoint (--last, which='last') is one of a run"),
        ([cart, "--output", tmp_path / "x.gif"], "give a file name ending in .mp4"),
    ]


def test_bad_input_is_one_line_and_a_non_zero_exit(runs, tmp_path):
    for args, needle in bad_inputs(runs, tmp_path):
        code, stdout, stderr = visualize(*args)
        lines = stderr.strip().splitlines()
        assert code == 2, (args, stderr)
        assert len(lines) == 1 and lines[0].startswith("sac-visualize: error: ") and needle in lines[0], (args, stderr)


def test_an_unwritable_video_path_is_reported_before_playing(runs, tmp_path):
    (tmp_path / "afile").write_text("")
    code, stdout, stderr = visualize(runs["CartPoleContinuous-v1"], "--output", tmp_path / "afile" / "v.mp4")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and stdout == ""
    assert lines[0] == (
        f"sac-visualize: error: cannot create the video's directory {tmp_path / 'afile'}: "
        f"{tmp_path / 'afile'} is not a directory; choose another place with --output FILE.mp4"
    )


def test_console_script_bad_input_has_no_traceback(tmp_path):
    proc = run_cli("sac-visualize", tmp_path / "missing", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"sac-visualize: error: {tmp_path / 'missing'} does not exist"


def test_mujoco_rendering_is_headless_by_default(monkeypatch):
    import ctypes.util

    for var in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libOSMesa.so.8" if name == "OSMesa" else None)
    envs_module._default_mujoco_gl()
    assert os.environ["MUJOCO_GL"] == "osmesa" and os.environ["PYOPENGL_PLATFORM"] == "osmesa"
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so")
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("PYOPENGL_PLATFORM")
    envs_module._default_mujoco_gl()
    assert os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.setenv("MUJOCO_GL", "glfw")  # an explicit choice wins
    envs_module._default_mujoco_gl()
    assert os.environ["MUJOCO_GL"] == "glfw"
