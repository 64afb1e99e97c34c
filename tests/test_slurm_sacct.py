"""submitit's "Bypassing sacct error" warning, said once (sweeps/slurm.py), with submitit's own watcher calling a
sacct that fails as on a cluster without job accounting. No cluster needed (tests/test_slurm.py has the real one)."""

import logging
import os

import pytest

from sac_runner.sweeps import slurm


class Collect(logging.Handler):
    """What reaches a handler of submitit's logger: what its own handlers (and Hydra's root one) would print."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def submitit_logger(tmp_path, monkeypatch):
    """submitit's logger with a collecting handler and a fresh filter, and a failing `sacct` first on PATH."""
    pytest.importorskip("submitit")
    sacct = tmp_path / "bin" / "sacct"
    sacct.parent.mkdir()
    # it says $SACCT_SAYS (the default: what it says on a cluster without accounting) and logs each call
    sacct.write_text(
        '#!/bin/sh\necho "$@" >> "$SACCT_CALLS"\necho "${SACCT_SAYS:-Slurm accounting storage is disabled}" >&2\n'
        "exit 1\n"
    )
    monkeypatch.setenv("SACCT_CALLS", str(tmp_path / "calls"))
    sacct.chmod(0o755)
    monkeypatch.setenv("PATH", f"{sacct.parent}:{os.environ['PATH']}")
    logger = logging.getLogger(slurm.SUBMITIT_LOGGER)
    saved = list(logger.filters)
    for f in saved:
        logger.removeFilter(f)
    handler = Collect()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    for f in list(logger.filters):
        logger.removeFilter(f)
    for f in saved:
        logger.addFilter(f)
    from submitit.slurm.slurm import SlurmJob

    SlurmJob.watcher.__dict__.pop("_make_command", None)  # before_sweep's change to the shared watcher


def sacct_calls(tmp_path) -> int:
    calls = tmp_path / "calls"
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def watch(*job_ids, calls=3):
    from submitit.slurm.slurm import SlurmInfoWatcher

    w = SlurmInfoWatcher(delay_s=0)
    for j in job_ids:
        w.register_job(j)
    for _ in range(calls):
        w.update()  # what each poll while the sweep waits does: runs sacct, logs its error
    return w


def test_without_the_filter_each_sacct_call_warns(submitit_logger):
    """The premise: submitit's watcher logs the warning once per sacct call (so the filter has work to do)."""
    _, handler = submitit_logger
    watch("17", calls=3)
    assert sum(slurm.SACCT_ERROR in line for line in handler.lines) == 3


def test_sacct_errors_are_said_once_and_other_warnings_pass(submitit_logger, capsys):
    logger, handler = submitit_logger
    f = slurm.report_sacct_errors_once()
    assert slurm.report_sacct_errors_once() is f and logger.filters.count(f) == 1  # installed once
    watch("17", calls=3)
    watch("18_0", "18_1", calls=2)  # another batch of jobs (an Optuna search's next trials): the same error
    assert not handler.lines  # none of submitit's copies (its stdout and stderr handlers, Hydra's root handler)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sac-train: sacct failed (Command '['sacct', '-o', 'JobID,State,NodeList'")
    assert "returned non-zero exit status 1" in err[0] and "squeue" in err[0]

    # a different sacct error is a different problem: said once too
    logger.warning(
        "Call #9 - Bypassing sacct error [Errno 2] No such file or directory: 'sacct', status may be inaccurate."
    )
    logger.warning(
        "Call #10 - Bypassing sacct error [Errno 2] No such file or directory: 'sacct', status may be inaccurate."
    )
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "No such file or directory: 'sacct'" in err[0]
    # every other message of submitit passes unchanged, warnings and errors alike
    logger.warning("Job 17 has timed out, requeued")
    logger.error("Could not read the result of job %s", "17_0")
    assert handler.lines == ["Job 17 has timed out, requeued", "Could not read the result of job 17_0"]
    assert not capsys.readouterr().err


def launcher(target: str, **more):
    from omegaconf import OmegaConf

    return OmegaConf.create({"launcher": {"_target_": target, **more}})


SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def test_a_cluster_without_accounting_is_said_once_and_sacct_left_alone(submitit_logger, tmp_path, capsys):
    """sacct can never answer there: one line at the sweep's start, then no sacct calls (and so neither sacct's
    own complaint nor submitit's warning at each poll)."""
    _, handler = submitit_logger
    slurm.before_sweep(launcher(SLURM))
    assert sacct_calls(tmp_path) == 1  # the probe
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sac-train: this SLURM cluster keeps no job accounting (sacct: Slurm accounting")
    from submitit.slurm.slurm import SlurmJob

    w = SlurmJob.watcher  # the watcher every SLURM job of this process shares
    w.register_job("17")
    try:
        for _ in range(3):
            w.update()
        assert w.get_state("17", mode="force") == "UNKNOWN"  # as when sacct fails: the result file decides
    finally:
        w.clear()
    assert sacct_calls(tmp_path) == 1 and not handler.lines and not capsys.readouterr().err


@pytest.mark.parametrize(
    "hc",
    [
        launcher(SLURM),
        launcher("hydra_plugins.sac_runner_population.PopulationLauncher", backend="slurm"),
        launcher("hydra._internal.core_plugins.basic_launcher.BasicLauncher"),
    ],
    ids=["slurm", "population_slurm", "basic"],
)
def test_other_sacct_errors_keep_sacct_and_are_said_once(submitit_logger, tmp_path, monkeypatch, capsys, hc):
    """sacct failing otherwise (slurmdbd down) may recover: it is still asked, and its error said once."""
    _, handler = submitit_logger
    monkeypatch.setenv("SACCT_SAYS", "sacct: error: slurmdbd: Connection refused")
    slurm.before_sweep(hc)
    probed = sacct_calls(tmp_path)
    assert probed == (0 if "Basic" in hc.launcher._target_ else 1)  # only a SLURM sweep probes
    watch("17", calls=3)
    assert sacct_calls(tmp_path) == probed + 3 and not handler.lines
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("sac-train: sacct failed (Command '['sacct'"), err
