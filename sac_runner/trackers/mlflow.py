"""MLflow (logger=[...,mlflow]; the `mlflow` extra): every scalar as a metric at its env step, the composed config
as parameters (and config.yaml as an artifact), the final and best returns, the best-agent video and, with
log_checkpoint, best.pt as artifacts. The runs of a multirun are children of one parent run named after the
sweep; an Optuna trial's runs carry its number (tag `trial`).

Where: logger.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else a local SQLite store beside the runs,
outputs/mlflow/mlflow.db (artifacts in outputs/mlflow/artifacts) under the directory sac-train was started from.
The run id is kept in <run dir>/trackers.json: `sac-train resume=<run dir>` continues the same MLflow run.

The run is opened before training starts; then the training loop never waits for MLflow: metrics are batched
and a thread of its own sends them. If the server cannot be reached, or stops answering, one line says so and
the run goes on without MLflow (TensorBoard and the checkpoints are unaffected)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from sac_runner.trackers.base import (
    Outcome,
    RunInfo,
    Tracker,
    flatten,
    notice,
    read_ids,
    short_reason,
    write_ids,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

LOCAL_STORE = Path("outputs") / "mlflow"  # under the directory sac-train was started from
PARENT_FILE = "mlflow_parent.json"  # in a multirun's directory: its parent run
FLUSH_SECONDS = 5.0  # metrics are sent at least this often, and at each evaluation
CLOSE_SECONDS = 60.0  # how long the end of a run waits for MLflow to take the rest
MAX_METRICS, MAX_PARAMS = 1000, 100  # per log_batch request (MLflow's limits)
STATUS = {"finished": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


def local_store_uri(launch_dir: Path) -> str:
    return f"sqlite:///{(launch_dir / LOCAL_STORE / 'mlflow.db').absolute()}"


def tracking_uri(setting: str | None, launch_dir: Path) -> str:
    """logger.mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else the local store under launch_dir."""
    return setting or os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri(launch_dir)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def ui_command(uri: str) -> str:
    """How to browse the store: the server's address, or `mlflow ui` over a local database."""
    if uri.startswith(("http://", "https://")):
        return uri
    return f"mlflow ui --backend-store-uri {uri}"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if need be) between processes: parallel jobs of a sweep create
    a SQLite store's tables or a sweep's parent run only once."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_server(uri: str, timeout: float = 10.0) -> None:
    """Raise OSError unless an MLflow server answers at `uri` (its /health page)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            r.read(64)
    except urllib.error.HTTPError as e:
        raise OSError(f"{uri} answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise OSError(f"{uri}: {getattr(e, 'reason', e)}") from None


def quiet_libraries() -> None:
    """MLflow and alembic announce every table they create at INFO, which Hydra's logging would print."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # a lost server would otherwise be retried for minutes at each request (the user's own settings win)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def experiment(client: MlflowClient, uri: str, name: str) -> str:
    """The id of experiment `name`, created if need be (a local store keeps its artifacts beside its database)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    db = sqlite_path(uri)
    location = (db.parent / "artifacts").absolute().as_uri() if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by another job of the sweep
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def parent_run(client: MlflowClient, uri: str, experiment_id: str, sweep_dir: Path, group: str | None) -> str:
    """The sweep's parent run: created by its first job, named in <sweep dir>/mlflow_parent.json."""
    record = sweep_dir / PARENT_FILE
    with file_lock(sweep_dir / f".{PARENT_FILE}.lock"):
        try:
            known = json.loads(record.read_text())
            if known.get("tracking_uri") == uri and known.get("experiment_id") == experiment_id:
                return str(known["run_id"])
        except (OSError, ValueError, KeyError):
            pass
        group = group or str(sweep_dir)
        tags = {"sweep": group, "sweep_dir": str(sweep_dir.absolute())}
        parent = client.create_run(experiment_id, run_name=f"sweep {group}", tags=tags).info.run_id
        record.write_text(json.dumps({"run_id": parent, "experiment_id": experiment_id, "tracking_uri": uri}))
        return parent


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, settings: Mapping):
        self.settings = dict(settings)
        self.run_id: str = ""  # set by MLflow's thread once the run is open
        self.experiment_id = ""
        self.failed = False
        self._pending: list[tuple[str, float, int, int]] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the training loop's side
    def start(self, run: RunInfo) -> None:
        """Open the run before the training clock starts (importing MLflow and opening a SQLite store take
        seconds of CPU that would otherwise compete with the first steps); then a thread sends the records."""
        self.info = run
        self.uri = tracking_uri(self.settings.get("tracking_uri"), run.launch_dir)
        self._last_flush = time.monotonic()
        try:
            self._open()
        except Exception as e:  # noqa: BLE001 - any failure to reach MLflow only costs its records
            self._fail(f"cannot record to {self.uri} ({short_reason(e)})")
            return
        self._thread = threading.Thread(target=self._work, name="sac_runner-mlflow", daemon=True)
        self._thread.start()

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self.failed:
            return
        now = int(time.time() * 1000)
        self._pending.extend((k, v, now, step) for k, v in values.items())
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self._flush()

    def evaluation(self, step: int, mean: float, best: float) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._pending and not self.failed:
            self._queue.put(("metrics", self._pending))
        self._pending = []
        self._last_flush = time.monotonic()

    def finish(self, outcome: Outcome) -> None:
        self._flush()
        self._queue.put(("finish", outcome))

    def close(self) -> None:
        if self._thread is None:
            return
        self._flush()
        self._queue.put(None)
        self._thread.join(CLOSE_SECONDS)
        if self._thread.is_alive():
            notice(
                f"mlflow: {self.uri} took more than {CLOSE_SECONDS:.0f} s to take the last records; they are dropped"
            )
        self._thread = None

    def where(self) -> str | None:
        if not self.run_id or self.failed:
            return None
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"run {self.run_id}; browse it with: {ui_command(self.uri)}"

    # ------------------------------------------------------------------ MLflow's thread
    def _work(self) -> None:
        finished = False
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.failed:
                continue
            kind, payload = item
            try:
                if kind == "metrics":
                    self._send_metrics(payload)
                elif kind == "finish":
                    self._finish(payload)
                    finished = True
            except Exception as e:  # noqa: BLE001
                self._fail(f"{self.uri} stopped taking records ({short_reason(e)})")
        if not finished and not self.failed and self.run_id:
            with contextlib.suppress(Exception):  # the run failed (a NaN, an error): say so, if MLflow answers
                self.client.set_terminated(self.run_id, "FAILED")

    def _fail(self, message: str) -> None:
        self.failed = True
        notice(f"mlflow: {message}; training goes on without MLflow")

    def _open(self) -> None:
        from mlflow.tracking import MlflowClient

        quiet_libraries()
        run = self.info
        if self.uri.startswith(("http://", "https://")):
            check_server(self.uri)
        db = sqlite_path(self.uri)
        lock = db.with_name(db.name + ".lock") if db is not None else None
        with file_lock(lock) if lock is not None else contextlib.nullcontext():
            self.client = MlflowClient(tracking_uri=self.uri)  # a new SQLite store creates its tables here
            previous = read_ids(run.run_dir).get(self.name) if run.resumed else None
            if previous and previous.get("tracking_uri") == self.uri:
                self._reopen(previous)
                return
            if previous:
                notice(
                    f"mlflow: the run was recorded in {previous.get('tracking_uri')}; this session records to "
                    f"a new run in {self.uri}"
                )
            self.experiment_id = experiment(self.client, self.uri, str(self.settings.get("experiment") or "sac_runner"))
            tags = {**run.tags(), "status": "running"}
            if run.sweep_dir is not None:
                parent = parent_run(self.client, self.uri, self.experiment_id, run.sweep_dir, run.group)
                tags["mlflow.parentRunId"] = parent
            self.run_id = self.client.create_run(self.experiment_id, run_name=run.name, tags=tags).info.run_id
        write_ids(
            run.run_dir,
            self.name,
            {"run_id": self.run_id, "experiment_id": self.experiment_id, "tracking_uri": self.uri},
        )
        self._log_config()

    def _reopen(self, previous: dict) -> None:
        """Continue the run of an earlier session; the parameters it lacks are added."""
        self.run_id = str(previous["run_id"])
        r = self.client.get_run(self.run_id)
        self.experiment_id = r.info.experiment_id
        self.client.update_run(self.run_id, status="RUNNING")
        self.client.set_tag(self.run_id, "status", "running")
        self._log_config(known=r.data.params)

    def _log_config(self, known: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import Param

        known = known or {}
        params = {k: str(v)[:6000] for k, v in flatten(self.info.config).items() if k not in known}
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS])
        text = yaml.safe_dump(self.info.config, sort_keys=False)
        self.client.log_text(self.run_id, text, "config.yaml")

    def _send_metrics(self, rows: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(k, float(v), ts, int(step)) for k, v, ts, step in rows]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS])

    def _finish(self, outcome: Outcome) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, v, now, outcome.env_steps) for k, v in outcome.metrics().items()],
        )
        self.client.set_tag(self.run_id, "status", outcome.status)
        if outcome.video is not None and Path(outcome.video).is_file():
            self.client.log_artifact(self.run_id, str(outcome.video), "videos")
        if self.settings.get("log_checkpoint") and outcome.best_checkpoint is not None:
            self.client.log_artifact(self.run_id, str(outcome.best_checkpoint), "checkpoints")
        self.client.set_terminated(self.run_id, STATUS.get(outcome.status, "FINISHED"))
        parent = self.client.get_run(self.run_id).data.tags.get("mlflow.parentRunId")
        if parent:  # the sweep's run ends with its last job
            self.client.set_terminated(parent, "FINISHED")
