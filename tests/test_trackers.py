"""Trackers beside TensorBoard (sac_runner/trackers/): the logger group, W&B offline runs read back from their
record files, MLflow with a SQLite store and with a real `mlflow server`, sweeps grouped, resumed runs continued,
outages that cost only their tracker. No mocks: the real libraries, where their extras are installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sac_runner import runs, trackers
from sac_runner.config import compose, validate
from sac_runner.errors import ConfigError
from sac_runner.trackers.base import IDS_FILE, flatten
from sac_runner.training.trainer import Trainer
from tests.helpers import TINY, cli_command, new_trainer, run_cli, sac_train, step_hook, train

NEEDS_WANDB = "the wandb extra is not installed (pip install 'sac_runner[wandb]')"
NEEDS_MLFLOW = "the mlflow extra is not installed (pip install 'sac_runner[mlflow]')"


def tensorboard_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the run's TensorBoard scalars (a step logged twice keeps its last value)."""
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# TensorBoard's HParams metrics (sac_runner/hparams.py, written by sac-train at the end) under the trackers' names
END_METRICS = {"hparams/final": "final_return", "hparams/best": "best_return", "hparams/objective": "objective"}


def assert_same_scalars(
    tracked: dict[str, dict[int, float]], tb: dict[str, dict[int, float]], end_metrics: bool = True
) -> None:
    """Every TensorBoard scalar is in the tracker, at the same steps, with the same values (TensorBoard keeps
    float32). TensorBoard's HParams end metrics (rewritten at each session's end) are among the tracker's
    end-of-session values under their names; with end_metrics=False (W&B keeps them in its summary) not checked."""
    for tag, by_step in tb.items():
        if tag.startswith("hparams/"):
            if end_metrics and tag in END_METRICS:
                for step, value in by_step.items():
                    assert tracked[END_METRICS[tag]][step] == pytest.approx(value, rel=1e-6), (tag, step)
            continue
        assert tag in tracked, f"{tag} is missing; the tracker has {sorted(tracked)}"
        assert sorted(tracked[tag]) == sorted(by_step), tag
        for step, value in by_step.items():
            assert tracked[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-6), (tag, step)


def resumed_trainer(run_dir: Path, *overrides: str) -> Trainer:
    """The Trainer of `sac-train resume=<run_dir> <overrides>`, in this process."""
    run_dir, cfg, ckpt = runs.prepare_resume(compose(f"resume={run_dir}", *overrides), list(overrides))
    trainer = Trainer(cfg, run_dir)
    trainer.resume(ckpt)
    return trainer


# ---------------------------------------------------------------------------------------------- the config group
def test_tensorboard_is_the_default_and_the_group_composes_as_a_list():
    assert trackers.selected(compose()) == ["tensorboard"]
    assert trackers.selected(compose("logger=[tensorboard,wandb,mlflow]")) == ["tensorboard", "wandb", "mlflow"]
    assert trackers.selected(compose("logger=mlflow")) == ["mlflow"]
    assert trackers.selected(compose("logger=[]")) == []
    assert trackers.selected({"seed": 1}) == ["tensorboard"]  # a run's config.yaml from before the group
    cfg = compose("logger=[tensorboard,wandb]", "logger.wandb.project=p", "logger.wandb.mode=offline")
    assert cfg.logger.wandb.project == "p" and cfg.logger.tensorboard.video is True


@pytest.mark.parametrize(
    "override, message",
    [
        ("logger.tensorboard.video=maybe", "logger.tensorboard.video='maybe' is not true or false; use e.g."),
        ("+logger.comet={}", "logger.comet is not a tracker; choose among tensorboard, wandb, mlflow"),
    ],
)
def test_a_bad_tensorboard_setting_is_one_config_error(override, message):
    with pytest.raises(ConfigError) as e:
        validate(compose(*TINY, override))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["logger.wandb.mode=sometimes"], "logger.wandb.mode='sometimes' is not one of auto, online, offline"),
        (["logger.wandb.project=a/b"], "logger.wandb.project='a/b' contains '/'"),
        (["logger.wandb.init_timeout=-1"], "logger.wandb.init_timeout=-1 is not a positive number of seconds"),
        (["logger.wandb.tags=oops"], "logger.wandb.tags='oops' is not a list of short names"),
    ],
)
def test_bad_wandb_settings_are_one_config_error(overrides, message):
    pytest.importorskip("wandb", reason=NEEDS_WANDB)
    with pytest.raises(ConfigError) as e:
        validate(compose(*TINY, "logger=[tensorboard,wandb]", *overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["logger.mlflow.tracking_uri=/tmp/mlruns"], "logger.mlflow.tracking_uri='/tmp/mlruns' is not an MLflow"),
        (["logger.mlflow.experiment=''"], "logger.mlflow.experiment='' is not a name"),
        (["logger.mlflow.log_checkpoint=2"], "logger.mlflow.log_checkpoint=2 is not true or false"),
    ],
)
def test_bad_mlflow_settings_are_one_config_error(overrides, message):
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    with pytest.raises(ConfigError) as e:
        validate(compose(*TINY, "logger=[tensorboard,mlflow]", *overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_tracker_whose_extra_is_missing_is_one_config_error(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # how Python marks a module as not importable
    with pytest.raises(ConfigError) as e:
        validate(compose(*TINY, f"logger=[tensorboard,{name}]"))
    assert str(e.value) == (
        f"logger={name} needs the {name} package, which is not installed; "
        f"install it with: pip install 'sac_runner[{name}]'"
    )


def test_sac_train_refuses_a_bad_setting_with_one_line_and_exit_2_before_building_anything(tmp_path):
    proc = sac_train(*TINY, "logger.tensorboard.video=sometimes", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "sac-train: error: logger.tensorboard.video='sometimes' is not true or false; "
        "use e.g. logger.tensorboard.video=true"
    ]
    run = tmp_path / "run"
    assert not (run / "tensorboard").exists() and not (run / "checkpoints").exists()
    assert not (run / IDS_FILE).exists() and not (run / "config.yaml").exists()


def test_logger_overrides_are_neither_hyperparameters_nor_report_groups(tmp_path):
    from sac_runner.report.groups import groups_by
    from sac_runner.sweeps import hparams

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- logger=[tensorboard,wandb]\n- algorithm.tau=0.01\n")
    hp = hparams.hyperparameters(compose("logger=[tensorboard,wandb]", "algorithm.tau=0.01"), tmp_path)
    assert not [k for k in hp if k.startswith("logger")] and hp["algorithm.tau"] == 0.01
    assert not groups_by("logger") and not groups_by("logger.wandb.project") and groups_by("algorithm.tau")


def test_without_tensorboard_no_event_file_is_written(tmp_path):
    s = train(new_trainer(tmp_path, "logger=[]"))
    assert s["env_steps"] == 300 and s["trackers"] == {}
    assert not (tmp_path / "tensorboard").exists()


def test_flatten_gives_dotted_parameters():
    flat = flatten({"a": {"b": 1, "c": [256, 256], "d": None, "e": {}}, "f": True})
    assert flat == {"a.b": 1, "a.c": "[256, 256]", "a.d": "null", "a.e": "{}", "f": True}


def test_tensorboard_gets_the_best_agent_video_as_an_animated_image(tmp_path):
    s = train(new_trainer(tmp_path, "save_video=true"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    (image,) = acc.Images("eval/best_agent")
    assert image.step == s["env_steps"] == 300
    assert image.encoded_image_string[:6] in (b"GIF87a", b"GIF89a") and 0 < image.width <= 240
    assert s["trackers"] == {"tensorboard": f"tensorboard --logdir {tmp_path / 'tensorboard'}"}


# ---------------------------------------------------------------------------------------------- W&B
def wandb_records(run_dir: Path) -> list[list]:
    """The records of each offline W&B run directory under run_dir/wandb, oldest first. The .wandb file is a
    ':W&B' header (7 bytes) then a LevelDB-style log: 32 KiB blocks of chunks, each a 7-byte header (CRC,
    length, type: 1 whole, 2 first, 3 middle, 4 last) and a piece of a serialised Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        data = path.read_bytes()
        assert data[:4] == b":W&B"
        records, pos, parts, block = [], 7, b"", 32768
        while pos + 7 <= len(data):
            if block - pos % block < 7:  # a block's tail too short for a header is padding
                pos += block - pos % block
                continue
            length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
            chunk = data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind == 0 and length == 0:
                continue
            assert kind in (1, 2, 3, 4), f"chunk type {kind} in {path}"
            parts = chunk if kind in (1, 2) else parts + chunk
            if kind in (1, 4):
                record = pb.Record()
                record.ParseFromString(parts)
                records.append(record)
        runs.append(records)
    return runs


def wandb_contents(records: list) -> dict:
    """What one offline run recorded: its run record, scalar history by env step, summary, exit code, artifacts."""
    out: dict = {"history": {}, "summary": {}, "artifacts": [], "run": None, "exit": None, "media": {}}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
        elif kind == "history":
            row: dict = {}
            for item in r.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            step = row.get("env_step")
            for key, value in row.items():
                if isinstance(value, (int, float)) and not key.startswith("_") and key != "env_step":
                    out["history"].setdefault(key, {})[step] = value
                elif key.endswith("/_type"):
                    out["media"][key.rsplit("/", 1)[0]] = (step, row)
        elif kind == "summary":
            for item in r.summary.update:
                out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit"] = r.exit.exit_code
        elif kind == "artifact":
            out["artifacts"].append(r.artifact)
    return out


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """No W&B account: no API key, an empty netrc, no WANDB_MODE (mode=auto must choose offline itself)."""
    pytest.importorskip("wandb", reason=NEEDS_WANDB)
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))
    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"NETRC": str(netrc)}


def test_wandb_offline_records_every_tensorboard_scalar_the_config_returns_video_and_checkpoint(
    tmp_path, wandb_offline
):
    run_dir = tmp_path / "run"
    s = train(new_trainer(run_dir, "logger=[tensorboard,wandb]", "logger.wandb.log_checkpoint=true", "save_video=true"))
    (records,) = wandb_records(run_dir)
    got = wandb_contents(records)
    ids = json.loads((run_dir / IDS_FILE).read_text())["wandb"]
    assert got["run"].run_id == ids["id"] and ids["mode"] == "offline" and got["run"].run_group == ""
    config = {u.key: json.loads(u.value_json) for u in got["run"].config.update}
    assert config["env"]["id"] == "CartPoleContinuous-v1" and config["algorithm"]["total_steps"] == 300
    assert config["logger"]["wandb"]["log_checkpoint"] is True

    assert_same_scalars(got["history"], tensorboard_scalars(run_dir), end_metrics=False)
    assert got["summary"]["best_return"] == pytest.approx(s["best_return"])
    assert got["summary"]["final_return"] == pytest.approx(s["last_return"])
    assert got["summary"]["status"] == "finished" and got["exit"] == 0
    step, row = got["media"]["eval/best_agent_video"]
    assert step == 300 and row["eval/best_agent_video/_type"] == "video-file"
    offline_dir = next((run_dir / "wandb").glob("offline-run-*"))
    video = offline_dir / "files" / row["eval/best_agent_video/path"]
    assert video.read_bytes() == (run_dir / "videos" / "best_agent.mp4").read_bytes()
    (artifact,) = got["artifacts"]
    assert artifact.type == "model" and [m.path for m in artifact.manifest.contents] == ["best.pt"]
    assert s["trackers"]["wandb"] == (
        f"offline run {ids['id']}; upload it with: wandb sync {run_dir.absolute()}/wandb/offline-run-*-{ids['id']}"
    )


@pytest.mark.system
def test_wandb_resume_continues_the_same_run_and_a_sweep_shares_a_group(tmp_path, wandb_offline):
    run = tmp_path / "run"
    train(new_trainer(run, "logger=[tensorboard,wandb]"))
    again = train(resumed_trainer(run, "algorithm.total_steps=450"))
    sessions = [wandb_contents(r) for r in wandb_records(run)]
    assert len(sessions) == 2
    (run_id,) = {s["run"].run_id for s in sessions}
    assert run_id == json.loads((run / IDS_FILE).read_text())["wandb"]["id"]
    # the second session logs from its checkpoint on, against the same env_step axis
    assert sorted(sessions[0]["history"]["eval/return_mean"]) == [150, 300]
    assert sorted(sessions[1]["history"]["eval/return_mean"]) == [450]
    assert "wandb sync" in again["trackers"]["wandb"] and run_id in again["trackers"]["wandb"]

    sweep = tmp_path / "sweep"
    proc = sac_train("-m", *TINY, "logger=[tensorboard,wandb]", f"hydra.sweep.dir={sweep}", "seed=1,2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = [wandb_contents(wandb_records(sweep / str(job))[0])["run"] for job in (0, 1)]
    assert runs[0].run_group == runs[1].run_group == "sweep"  # the sweep directory, relative to where it started
    assert [r.display_name for r in runs] == [
        "job 0 CartPoleContinuous-v1 seed 1",
        "job 1 CartPoleContinuous-v1 seed 2",
    ]


@pytest.mark.system
def test_wandb_online_without_a_reachable_server_falls_back_to_offline_in_one_line(tmp_path, wandb_offline):
    env = {**wandb_offline, "WANDB_API_KEY": "a" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    proc = run_cli(
        "sac-train",
        *TINY,
        "logger=[tensorboard,wandb]",
        "logger.wandb.init_timeout=3",
        "hydra.run.dir=run",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("sac-train:")]
    assert len(ours) == 1 and ours[0].startswith("sac-train: wandb: cannot reach the W&B server (")
    assert ours[0].endswith("); logging offline instead")
    (records,) = wandb_records(tmp_path / "run")
    assert wandb_contents(records)["history"]["eval/return_mean"].keys() == {150, 300}


# ---------------------------------------------------------------------------------------------- MLflow
def mlflow_scalars(client, run_id: str) -> dict[str, dict[int, float]]:
    run = client.get_run(run_id)
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in run.data.metrics}


def only_tracked(scalars: dict) -> dict:
    return {k: v for k, v in scalars.items() if k != "best_step"}


def test_mlflow_local_store_records_every_tensorboard_scalar_params_returns_video_and_checkpoint(tmp_path, monkeypatch):
    """No tracking_uri: the local SQLite store under the directory training started from, shared by its runs."""
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    s = train(
        new_trainer(
            run_dir,
            "logger=[tensorboard,mlflow]",
            "logger.mlflow.log_checkpoint=true",
            "save_video=true",
        )
    )
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}"
    ids = json.loads((run_dir / IDS_FILE).read_text())["mlflow"]
    assert ids["tracking_uri"] == uri
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(ids["run_id"])
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "sac_runner"
    assert run.data.params["env.id"] == "CartPoleContinuous-v1" and run.data.params["algorithm.total_steps"] == "300"
    assert run.data.params["architecture.actor_hidden_sizes"] == "[64, 64]"
    assert run.data.tags["status"] == "finished" and run.data.tags["seed"] == "1"
    scalars = mlflow_scalars(client, ids["run_id"])
    assert_same_scalars(only_tracked(scalars), tensorboard_scalars(run_dir))
    assert scalars["best_return"] == {300: pytest.approx(s["best_return"])}
    assert scalars["final_return"] == {300: pytest.approx(s["last_return"])}
    artifacts = {a.path for a in client.list_artifacts(ids["run_id"])} | {
        a.path for d in ("videos", "checkpoints") for a in client.list_artifacts(ids["run_id"], d)
    }
    assert {"config.yaml", "videos/best_agent.mp4", "checkpoints/best.pt"} <= artifacts
    local = Path(client.download_artifacts(ids["run_id"], "checkpoints/best.pt", str(tmp_path / "down")))
    assert local.read_bytes() == (run_dir / "checkpoints" / "best.pt").read_bytes()
    assert (tmp_path / "outputs" / "mlflow" / "artifacts").is_dir()  # beside the database
    assert s["trackers"]["mlflow"] == f"run {ids['run_id']}; browse it with: mlflow ui --backend-store-uri {uri}"

    # another run started from the same directory, an Optuna trial's (MLflow alone, no TensorBoard): the same store
    # and experiment; the run carries its trial number
    trial = ("hparams_search=optuna", "hparams_search.trial=3")
    train(new_trainer(tmp_path / "other", "logger=[mlflow]", "seed=2", *trial))
    by_seed = {r.data.tags["seed"]: r for r in client.search_runs([run.info.experiment_id])}
    assert sorted(by_seed) == ["1", "2"] and all(r.info.status == "FINISHED" for r in by_seed.values())
    other = by_seed["2"]
    assert other.info.run_name == "trial 3 CartPoleContinuous-v1 seed 2" and other.data.tags["trial"] == "3"
    assert other.data.params["hparams_search.trial"] == "3" and "trial" not in by_seed["1"].data.tags


def test_an_unreachable_mlflow_server_is_one_line_and_the_run_goes_on(tmp_path, capfd):
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    s = train(new_trainer(tmp_path, "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={url}"))
    err = capfd.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("sac-train:")]
    assert len(ours) == 1, err
    assert ours[0].startswith(f"sac-train: mlflow: cannot record to {url} (")
    assert ours[0].endswith("; training goes on without MLflow")
    assert s["env_steps"] == 300 and "mlflow" not in s["trackers"]
    assert sorted(tensorboard_scalars(tmp_path)["eval/return_mean"]) == [150, 300]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["progress"]["env_steps"] == 300


@pytest.mark.system
def test_mlflow_resume_continues_the_run_and_a_failed_run_is_marked_failed(tmp_path):
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tmp_path / "run"
    train(new_trainer(run, "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={uri}"))
    run_id = json.loads((run / IDS_FILE).read_text())["mlflow"]["run_id"]
    train(resumed_trainer(run, "algorithm.total_steps=450"))
    client = MlflowClient(tracking_uri=uri)
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1  # no second run
    scalars = mlflow_scalars(client, run_id)
    assert sorted(scalars["eval/return_mean"]) == [150, 300, 450]
    assert_same_scalars(only_tracked(scalars), tensorboard_scalars(run))
    assert client.get_run(run_id).info.status == "FINISHED" and scalars["final_return"].keys() == {300, 450}

    def explode(trainer):
        if trainer.progress.env_steps == 200:
            raise RuntimeError("boom")

    broken = new_trainer(
        tmp_path / "broken",
        "logger=[tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri={uri}",
        hooks=[step_hook(explode)],
    )
    with pytest.raises(RuntimeError):
        train(broken)
    broken_id = json.loads((tmp_path / "broken" / IDS_FILE).read_text())["mlflow"]["run_id"]
    assert client.get_run(broken_id).info.status == "FAILED"
    assert sorted(mlflow_scalars(client, broken_id)["eval/return_mean"]) == [150]


class MlflowServer:
    """A real `mlflow server` on a free local port, with its own SQLite store and proxied artifacts."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
        self.log = open(root / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                exe,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--backend-store-uri",
                f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination",
                str(root / "server-artifacts"),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() ends the server and its workers together
        )
        deadline = time.monotonic() + 300  # it takes minutes on a busy 2-core machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                import urllib.request

                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("mlflow server did not answer within 300 s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` of the test's own (which the test may stop)."""
    pytest.importorskip("mlflow", reason=NEEDS_MLFLOW)
    root = tmp_path / "mlflow-server"
    root.mkdir()
    server = MlflowServer(root)
    yield server
    server.stop()


@pytest.mark.system
def test_a_real_mlflow_server_gets_a_sweep_as_one_parent_run_and_losing_it_costs_one_line(tmp_path, mlflow_server):
    """One server (it takes seconds to start): a sweep's jobs are children of one parent run, queried through
    MlflowClient; then the server goes away after a run's first evaluation: that run ends normally, with every
    checkpoint, every TensorBoard scalar and one line about MLflow."""
    from mlflow.tracking import MlflowClient

    sweep = tmp_path / "sweep"
    proc = sac_train(
        "-m",
        *TINY,
        "save_video=true",
        "logger=[tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri={mlflow_server.url}",
        "logger.mlflow.log_checkpoint=true",
        f"hydra.sweep.dir={sweep}",
        "seed=1,2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(tracking_uri=mlflow_server.url)
    parent_id = json.loads((sweep / "mlflow_parent.json").read_text())["run_id"]
    exp_id = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.data.tags["job"] for c in children) == ["0", "1"]
    assert client.get_run(parent_id).data.tags["sweep_dir"] == str(sweep)
    for child in children:
        job_dir = sweep / child.data.tags["job"]
        assert json.loads((job_dir / IDS_FILE).read_text())["mlflow"]["run_id"] == child.info.run_id
        assert child.info.status == "FINISHED"
        assert_same_scalars(only_tracked(mlflow_scalars(client, child.info.run_id)), tensorboard_scalars(job_dir))
        got = Path(
            client.download_artifacts(child.info.run_id, "videos/best_agent.mp4", str(tmp_path / child.info.run_id))
        )
        assert got.read_bytes() == (job_dir / "videos" / "best_agent.mp4").read_bytes()  # through the server
    assert f"{mlflow_server.url}/#/experiments/{exp_id}/runs/" in proc.stdout

    cmd = [
        *TINY[:-1],  # progress on: the evaluation lines tell when the first one is done
        "algorithm.total_steps=600",
        "logger=[tensorboard,mlflow]",
        f"logger.mlflow.tracking_uri={mlflow_server.url}",
        "hydra.run.dir=run",
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    lost = subprocess.Popen(
        [*cli_command("sac-train"), *cmd],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert lost.stdout is not None
    for line in lost.stdout:
        if re.search(r"step 150/600 .*: avg \d+ steps/s", line):
            mlflow_server.stop()
            break
    out, err = lost.communicate(timeout=300)
    assert lost.returncode == 0, err
    ours = [line for line in err.splitlines() if line.startswith("sac-train:")]
    assert (
        len(ours) == 1 and ours[0].startswith("sac-train: mlflow: ") and "training goes on without MLflow" in ours[0]
    ), err
    assert sorted(tensorboard_scalars(tmp_path / "run")["eval/return_mean"]) == [150, 300, 450, 600]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["progress"]["env_steps"] == 600
