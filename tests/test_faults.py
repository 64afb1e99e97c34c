"""Faults: SIGTERM / SIGINT, a writer killed mid-checkpoint, NaN guard, pickled objects, full disk, bad output dirs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sac_runner.errors import CheckpointError, TrainingError
from sac_runner.training.checkpoint import load_checkpoint
from tests.helpers import TINY, cli_command, new_trainer, sac_train, step_hook, train

torch.set_num_threads(1)


def scalars(run_dir, tags):
    """{tag: [(step, value), ...]} as TensorBoard shows them (events past a resume's purge step dropped)."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags}


def wait_for(path: Path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"exited early: {proc.communicate(timeout=60)}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------- signals
def test_sigterm_checkpoints_exits_and_cli_resume_matches_an_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [*cli_command("sac-train"), *TINY, "save_video=false", "algorithm.total_steps=100000", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(run / "checkpoints" / "last.pt", proc)  # the first evaluation, at step 150
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"resume with: sac-train resume={run}")
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    stopped = ckpt["progress"]["env_steps"]
    assert 150 <= stopped < 600 and "resume" in ckpt
    assert json.loads((run / "summary.json").read_text())["interrupted"] == "SIGTERM"

    # continue it from the command line, to a budget of 600 steps: identical to 600 steps in one go
    proc = sac_train(f"resume={run}", "algorithm.total_steps=600", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"resuming {run} at step {stopped} of 600" in proc.stdout
    full = new_trainer(tmp_path / "full", "algorithm.total_steps=600")
    train(full)
    resumed = load_checkpoint(run / "checkpoints" / "last.pt")
    assert resumed.progress["evals"] == full.progress.evals
    for k, v in full.agent.actor.state_dict().items():
        assert torch.equal(resumed.agent["actor"][k], v)

    # the same directory and the same TensorBoard stream, with no step missing or repeated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "run"]  # no stray Hydra output directory
    assert "algorithm.total_steps=100000" in (run / ".hydra" / "overrides.yaml").read_text()
    assert len(list((run / ".hydra").glob("resume-*/overrides.yaml"))) == 1
    assert "total_steps: 600" in (run / "config.yaml").read_text()
    tags = ("eval/return_mean", "train/episode_return", "train/loss/critic", "time/updates")
    assert scalars(run, tags) == scalars(tmp_path / "full", tags)


def test_sigint_stops_after_the_step_and_a_second_one_stops_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)

    def one_sigint(t):
        if t.progress.env_steps == 200:
            os.kill(os.getpid(), signal.SIGINT)

    summary = train(new_trainer(tmp_path / "a", hooks=[step_hook(one_sigint)]))
    assert summary["interrupted"] == "SIGINT" and summary["env_steps"] == 200 and summary["video"] is None
    assert load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt").progress["env_steps"] == 200
    assert signal.getsignal(signal.SIGINT) is before

    def two_sigints(t):
        if t.progress.env_steps == 200:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(new_trainer(tmp_path / "b", hooks=[step_hook(two_sigints)]))
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt").progress["env_steps"] == 150
    assert signal.getsignal(signal.SIGINT) is before


# ------------------------------------------------------------------------------------------- atomic writes
WRITER = """
import sys, torch
from sac_runner.training.checkpoint import Checkpoint, save_checkpoint
i = 0
while True:
    i += 1
    agent = {"actor": {}, "version": i, "payload": torch.full((3_000_000,), float(i))}
    save_checkpoint(Checkpoint("x", 1, 1, {}, agent, {"env_steps": i}), sys.argv[1])
"""


def test_a_writer_killed_mid_write_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        try:
            wait_for(path, proc)
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob(".last.pt.tmp-*")):  # a write is under way
                assert time.monotonic() < deadline
                time.sleep(0.001)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
        ckpt = load_checkpoint(path)
        assert ckpt.agent["version"] >= 1 and torch.all(ckpt.agent["payload"] == ckpt.agent["version"])
        for leftover in tmp_path.glob(".last.pt.tmp-*"):  # the killed writer's partial file, never last.pt
            try:
                load_checkpoint(leftover)
            except CheckpointError as e:
                assert "truncated or corrupted" in str(e)
            leftover.unlink()


# ------------------------------------------------------------------------------------------- NaN guard
def test_a_nan_loss_stops_training_naming_step_and_quantity_and_keeps_the_last_good_checkpoint(make_trainer, tmp_path):
    def poison(t):
        if t.progress.env_steps == 169:  # after the checkpoint of step 150: the next update meets a NaN
            with torch.no_grad():
                next(t.agent.critic.parameters()).fill_(float("nan"))

    trainer = make_trainer(tmp_path, hooks=[step_hook(poison)])
    with pytest.raises(TrainingError) as e:
        trainer.train()
    msg, p = str(e.value), trainer.progress
    assert p.env_steps == 170 and "\n" not in msg
    assert msg.startswith(
        f"critic loss became nan at env step {p.env_steps} (gradient step {p.updates}); training stopped"
    )
    assert f"the last good checkpoint, {tmp_path / 'checkpoints' / 'last.pt'} (step 150), is kept" in msg
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt.progress["env_steps"] == 150
    assert all(torch.isfinite(v).all() for v in ckpt.agent["critic"].values())


def test_non_finite_parameters_are_never_checkpointed(make_trainer, tmp_path):
    trainer = make_trainer(tmp_path, "algorithm.total_steps=150")
    trainer.train()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        trainer.agent.actor.mean.bias.fill_(float("inf"))
    with pytest.raises(TrainingError, match=r"actor parameter mean.bias became inf at env step 150"):
        trainer.save("last.pt", resumable=True)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_cli_reports_a_diverging_run_on_one_line(tmp_path):
    proc = sac_train(
        *TINY,
        "save_video=false",
        "actor_optimizer.lr=1e30",
        "critic_optimizer.lr=1e30",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sac-train: error: ") and "at env step" in lines[0]
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


# ------------------------------------------------------------------------------------------- loading
class Payload:
    def __reduce__(self):  # what a malicious pickle would run on load
        return (Path.touch, (Path(os.environ["SAC_TEST_MARKER"]),))


def test_a_checkpoint_carrying_a_pickled_object_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SAC_TEST_MARKER", str(marker))
    torch.save({"format": 2, "agent": {"actor": {}}, "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(tmp_path / "evil.pt")
    assert "\n" not in str(e.value) and not marker.exists()


def test_a_format_1_checkpoint_is_migrated_and_a_newer_format_refused(tmp_path):
    """Checkpoints written before the agent's entries were grouped still resume and replay."""
    run = tmp_path / "run"
    train(new_trainer(run, "algorithm.total_steps=150"))
    path = run / "checkpoints" / "last.pt"
    v2 = torch.load(path, weights_only=True)
    v1 = {**{k: v for k, v in v2.items() if k != "agent"}, **v2["agent"], "format": 1}
    torch.save(v1, path)
    ckpt = load_checkpoint(path)
    assert ckpt.agent.keys() == v2["agent"].keys() and ckpt.progress == v2["progress"]
    assert torch.equal(ckpt.agent["actor"]["mean.bias"], v2["agent"]["actor"]["mean.bias"])
    proc = sac_train(f"resume={run}", "algorithm.total_steps=300", cwd=tmp_path)
    assert proc.returncode == 0 and f"resuming {run} at step 150 of 300" in proc.stdout, proc.stderr
    assert load_checkpoint(path).progress["env_steps"] == 300  # rewritten in the current format

    torch.save({**v2, "format": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"newer sac_runner \(checkpoint format 99; .*upgrade sac_runner"):
        load_checkpoint(tmp_path / "future.pt")


# ------------------------------------------------------------------------------------------- disk
def test_a_full_disk_at_a_checkpoint_is_one_clear_error(make_trainer, tmp_path):
    trainer = make_trainer(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    full = tmp_path / "checkpoints" / f".best.pt.tmp-{os.getpid()}"  # where the first write goes
    full.symlink_to("/dev/full")
    with pytest.raises(TrainingError) as e:
        trainer.train()
    msg = str(e.value)
    assert msg.startswith(f"cannot write {tmp_path / 'checkpoints' / 'best.pt'} (No space left on device)")
    assert msg.endswith("then start the run again")  # no checkpoint yet: nothing to resume
    assert not (tmp_path / "checkpoints" / "best.pt").exists() and not full.exists()


def test_a_failing_tensorboard_write_is_one_clear_error(make_trainer, tmp_path, monkeypatch):
    import errno

    import sac_runner.trackers.tensorboard as tb_module

    class FullDiskWriter(tb_module.SummaryWriter):
        def add_scalar(self, tag, value, step=None, *args, **kwargs):
            if step is not None and step > 200:  # as the writer thread reports it, at the next call
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "tensorboard" / "events"))
            return super().add_scalar(tag, value, step, *args, **kwargs)

    monkeypatch.setattr(tb_module, "SummaryWriter", FullDiskWriter)  # a full disk, seen by TensorBoard
    with pytest.raises(TrainingError) as e:
        make_trainer(tmp_path).train()
    assert str(e.value) == (
        f"cannot write {tmp_path / 'tensorboard' / 'events'} (No space left on device); free disk "
        f"space or fix the directory's permissions, then continue from step 150 with: "
        f"sac-train resume={tmp_path}"
    )


@pytest.mark.parametrize("where", ["/proc/sac-runner-test/run", "/dev/null/run"])
def test_a_run_directory_that_cannot_be_created_is_one_line(tmp_path, where):
    """/proc refuses new directories even to root (ENOENT); /dev/null is a file on the way."""
    proc = sac_train(*TINY, f"hydra.run.dir={where}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sac-train: error: cannot create the run directory {where}")
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


def test_a_sweep_directory_that_cannot_be_created_is_one_line(tmp_path):
    proc = sac_train("-m", *TINY, "seed=0,1", "hydra.sweep.dir=/proc/sac-runner-test/sweep", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the sweep directory /proc/sac-runner-test/sweep" in lines[0]
    assert "hydra.sweep.dir=<path>" in lines[0] and "Traceback" not in proc.stderr


def test_an_unwritable_output_directory_is_reported_at_start(tmp_path):
    (tmp_path / "afile").write_text("")
    proc = sac_train(*TINY, f"hydra.run.dir={tmp_path / 'afile' / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the run directory" in lines[0] and "is not a directory" in lines[0]
    assert "Traceback" not in proc.stderr
