"""End to end: `sac-train` as a user runs it, from a temporary directory."""

import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sac_runner.rundir import read_evals
from tests.helpers import TINY, sac_train


def test_sac_train_writes_a_complete_run_directory(tmp_path):
    proc = sac_train(*TINY, "seed=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "outputs" / "CartPoleContinuous-v1").glob("*/*"))
    assert len(runs) == 1, runs
    run = runs[0]
    assert str(run) in proc.stdout and "best eval return" in proc.stdout  # the end-of-run summary

    cfg = (run / "config.yaml").read_text()
    assert "id: CartPoleContinuous-v1" in cfg and "total_steps: 300" in cfg and "seed: 5" in cfg
    assert (run / ".hydra" / "overrides.yaml").exists()

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in [
        "eval/return_mean",
        "eval/return_min",
        "eval/return_max",
        "train/loss/critic",
        "train/loss/actor",
        "train/loss/alpha",
        "train/alpha",
        "train/entropy",
        "train/q/mean",
        "train/episode_return",
        "time/steps_per_second",
    ]:
        assert tag in tags, f"{tag} missing from {sorted(tags)}"
    assert [e.step for e in events.Scalars("eval/return_mean")] == [150, 300]

    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run / "checkpoints" / name, weights_only=True)
        assert ckpt["env_id"] == "CartPoleContinuous-v1" and ckpt["config"]["seed"] == 5
        assert ckpt["format"] == 3 and {"agent", "progress", "obs_dim", "act_dim"} <= set(ckpt)
        assert set(ckpt["agent"]) == {"actor", "critic", "target_critic", "log_alpha", "optimizers"}
        assert ("resume" in ckpt) == (name == "last.pt")
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["env_steps"] == 300

    import imageio_ffmpeg

    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(run / "videos" / "best_agent.mp4"))
    assert frames >= 2 and secs > 0

    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 300 and len(summary["evals"]) == 2
    # labelled records (rundir.eval_records), which rundir.read_evals reads back
    assert [list(e) for e in summary["evals"]] == [["env_steps", "mean", "std", "min", "max"]] * 2
    steps = [e.env_steps for e in read_evals(summary["evals"])]
    assert [e["env_steps"] for e in summary["evals"]] == steps == [150, 300]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["algorithm.tau=1.5"], "algorithm.tau=1.5 is outside (0.0, 1.0]"),
        (["algorithm.batch_size=512", "algorithm.buffer_size=64"], "is larger than algorithm.buffer_size=64"),
        (["env=CartPole-v1"], "Discrete action space"),
        (["env=generic", "env.id=NoSuchEnv-v0"], "is not a registered Gymnasium environment"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, args, needle):
    proc = sac_train(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("sac-train: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("outputs/**/checkpoints"))  # nothing was built
    if args[0].startswith("env"):  # the environment is checked before the run directory is made
        assert list(tmp_path.iterdir()) == []


def test_unknown_env_fails_with_a_suggestion_before_anything_is_written(tmp_path):
    proc = sac_train("-m", "env=Pendulum-v1,Hoper-v5", "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "sac-train: error: env=Hoper-v5 is neither an env preset nor a registered Gymnasium environment; "
        "did you mean Hopper-v5?\n"
    )
    assert list(tmp_path.iterdir()) == []  # not even the sweep directory


def run_in_process(make_trainer, *overrides):
    trainer = make_trainer(None, *overrides)
    trainer.train()
    return np.array(trainer.progress.evals), trainer


def test_seeded_runs_are_reproducible_on_cpu(make_trainer):
    a, ta = run_in_process(make_trainer, "seed=3")
    b, tb = run_in_process(make_trainer, "seed=3")
    c, _ = run_in_process(make_trainer, "seed=4")
    np.testing.assert_array_equal(a, b)
    for k, v in ta.agent.actor.state_dict().items():
        assert torch.equal(v, tb.agent.actor.state_dict()[k])
    assert not np.array_equal(a[:, 1:], c[:, 1:])


def test_update_to_data_ratio_sets_the_number_of_gradient_steps(make_trainer):
    _, t = run_in_process(make_trainer, "algorithm.utd_ratio=0.5", "algorithm.n_envs=4", "algorithm.eval_interval=300")
    assert t.progress.updates == (300 - 100) // 2
    _, t = run_in_process(make_trainer, "algorithm.utd_ratio=2", "algorithm.eval_interval=300")
    assert t.progress.updates == (300 - 100) * 2


def test_smoke_experiment_runs_any_env_in_seconds(tmp_path):
    proc = sac_train("experiment=smoke", "env=Pendulum-v1", "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = list((tmp_path / "outputs" / "Pendulum-v1").glob("*/*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 1000 and [e["env_steps"] for e in summary["evals"]] == [500, 1000]
    assert (run / "videos" / "best_agent.mp4").stat().st_size > 0
