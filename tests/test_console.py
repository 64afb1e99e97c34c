"""What a run prints as it goes (sac_runner/trackers/console.py): a bar with one labelled rate on a terminal, one
compact line per evaluation without one (stdout and Hydra's cli.log), silence with progress=false; and a resumed
run's summary saying what it covers, consistently with summary.json."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
import torch

from sac_runner import runs
from sac_runner.cli import print_summary
from sac_runner.config import compose
from sac_runner.trackers.base import RunInfo
from sac_runner.trackers.console import ConsoleTracker, clock
from sac_runner.training.checkpoint import load_checkpoint, save_checkpoint
from sac_runner.training.trainer import Trainer
from tests.helpers import TINY, new_trainer, sac_train, train

LINE = re.compile(
    r"CartPoleContinuous-v1 step (\d+)/(\d+) \((\d+)%\): avg \d+ steps/s, eval return -?\d+\.\d\d, "
    r"best -?\d+\.\d\d, ETA (\d+:)?\d+:\d\d$"
)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def run_info(total: int = 1000) -> RunInfo:
    return RunInfo(Path("."), {"env": {"id": "Pendulum-v1"}, "seed": 1}, start_step=0, total_steps=total)


def test_clock():
    assert [clock(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]


def test_on_a_terminal_the_bar_shows_one_rate_labelled_avg(caplog):
    term = Terminal()
    console = ConsoleTracker(1000, "SAC Pendulum-v1", show=True, file=term)
    console.start(run_info())
    for step in range(100, 1001, 100):
        console.advance(100)
        console.training(step)
    with caplog.at_level(logging.INFO):
        console.evaluation(1000, -150.0, -120.0)
    console.bar.refresh()
    last = term.getvalue().split("\r")[-1]
    console.close()
    assert not console.lines  # the bar is on: no lines on stdout
    assert last.count("/s") == 1 and re.search(r"avg \d+ steps/s, ETA \d+:\d\d, eval -150\.0, best -120\.0\]", last)
    assert not caplog.records  # no handler writes to a file here, and stdout stays the bar's


def test_off_a_terminal_each_evaluation_is_one_line_and_progress_false_is_silent(caplog):
    for show in (True, False):
        caplog.clear()
        console = ConsoleTracker(1000, "SAC Pendulum-v1", show=show, file=io.StringIO())  # not a terminal
        console.start(run_info())
        console.advance(500)
        console.training(500)
        with caplog.at_level(logging.INFO):
            console.evaluation(500, -150.0, -120.0)
        console.close()
        assert console.lines is show
        lines = [r.getMessage() for r in caplog.records if r.name == "sac_runner.progress"]
        if show:
            assert len(lines) == 1
            assert re.fullmatch(
                r"Pendulum-v1 step 500/1000 \(50%\): avg \d+ steps/s, eval return -150\.00, best -120\.00, "
                r"ETA \d+:\d\d",
                lines[0],
            )
        else:
            assert lines == []


def test_off_a_terminal_sac_train_prints_a_line_per_evaluation_and_a_resumed_run_says_what_it_covers(tmp_path, capsys):
    run = tmp_path / "run"
    first = sac_train(*TINY, "progress=true", "save_video=false", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stdout.splitlines() if "CartPoleContinuous-v1 step " in line]
    assert [LINE.search(line).group(1, 2, 3) for line in lines] == [("150", "300", "50"), ("300", "300", "100")]
    logged = [line for line in (run / "cli.log").read_text().splitlines() if "CartPoleContinuous-v1 step " in line]
    assert logged == lines  # the same lines in Hydra's job log
    assert "/s" not in first.stderr  # no bar off a terminal

    s1 = json.loads((run / "summary.json").read_text())
    assert s1["session"]["first_step"] == 0 and s1["session"]["env_steps"] == s1["env_steps"] == 300
    assert s1["wall_time_s"] == s1["session"]["wall_time_s"] and s1["timed_from_step"] == 0
    assert "this session" not in first.stdout
    saved = load_checkpoint(run / "checkpoints" / "last.pt").progress["train_seconds"]
    assert 0 < saved <= s1["wall_time_s"]

    # the resume in this process (what sac-train resume=... runs, without a second interpreter's start-up)
    more = ("algorithm.total_steps=450", "progress=false")
    run_dir, cfg, ckpt = runs.prepare_resume(compose(f"resume={run}", *more), list(more))
    trainer = Trainer(cfg, run_dir)
    trainer.resume(ckpt)
    capsys.readouterr()
    s2 = train(trainer)
    print_summary(s2)
    again = capsys.readouterr()
    assert "CartPoleContinuous-v1 step " not in again.out + again.err  # progress=false: quiet
    session = s2["session"]
    assert session["first_step"] == 300 and session["env_steps"] == 150 and s2["env_steps"] == 450
    assert s2["wall_time_s"] == pytest.approx(saved + session["wall_time_s"])
    assert s2["steps_per_second"] == pytest.approx(450 / s2["wall_time_s"])
    assert session["steps_per_second"] == pytest.approx(150 / session["wall_time_s"])
    whole = f"in {s2['wall_time_s']:.1f} s ({s2['steps_per_second']:.0f} steps/s)"
    assert f"SAC on CartPoleContinuous-v1: 450 env steps, {s2['updates']} gradient steps {whole}\n" in again.out
    assert (
        f"  this session      steps 300-450: 150 env steps in {session['wall_time_s']:.1f} s "
        f"({session['steps_per_second']:.0f} steps/s)"
    ) in again.out


def test_a_run_resumed_from_a_checkpoint_without_its_time_is_timed_from_there(tmp_path, capsys):
    """A checkpoint written before runs were timed: the whole-run numbers say from which step they count."""
    train(new_trainer(tmp_path, "save_video=false"))
    last = tmp_path / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    for key in ("train_seconds", "timed_from_step"):
        del ckpt.progress[key]
    save_checkpoint(ckpt, last)
    assert "train_seconds" not in torch.load(last, weights_only=True)["progress"]

    more = "algorithm.total_steps=450"
    run_dir, cfg, ckpt = runs.prepare_resume(compose(f"resume={tmp_path}", more), [more])
    trainer = Trainer(cfg, run_dir)
    trainer.resume(ckpt)
    s = train(trainer)
    assert s["timed_from_step"] == 300 and s["wall_time_s"] == pytest.approx(s["session"]["wall_time_s"])
    assert s["steps_per_second"] == pytest.approx(150 / s["wall_time_s"])
    capsys.readouterr()
    print_summary(s)
    assert "steps/s) since step 300 (earlier sessions were not timed)\n" in capsys.readouterr().out
