"""Weights & Biases (logger=[...,wandb]; the `wandb` extra): every scalar against a custom x-axis `env_step`
(a resumed run may log steps again: W&B's own step would drop them), the composed config, the final and best
returns in the run's summary, the best-agent video and, with log_checkpoint, best.pt as a model artifact.

Offline first: mode=auto logs online only where an API key is set up, else offline into <run dir>/wandb, which
`wandb sync` uploads later (the run's summary prints the command); an online run that cannot reach its server
within init_timeout falls back to offline with one line. The run id is kept in <run dir>/trackers.json, so that
`sac-train resume=<run dir>` continues the same W&B run."""

from __future__ import annotations

import netrc
import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sac_runner.trackers.base import Outcome, RunInfo, Tracker, notice, read_ids, short_reason, write_ids

STEP_KEY = "env_step"
VIDEO_KEY = "eval/best_agent_video"
DEFAULT_HOST = "https://api.wandb.ai"


def new_run_id() -> str:
    """A fresh W&B run id: 8 lowercase letters and digits, as W&B makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def has_api_key() -> bool:
    """An API key is set up: WANDB_API_KEY, or `wandb login`'s entry in the netrc file for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname
    try:
        return host is not None and netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(setting: str) -> str:
    """online | offline from logger.wandb.mode: auto follows WANDB_MODE if set, else online with an API key."""
    if setting != "auto":
        return setting
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if has_api_key() else "offline"


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, settings: Mapping):
        self.settings = dict(settings)
        self.mode: Any = "offline"  # online | offline | disabled
        self.run: Any = None
        self.finished = False

    def start(self, run: RunInfo) -> None:
        import wandb

        self.info = run
        previous = read_ids(run.run_dir).get(self.name) if run.resumed else None
        self.mode = resolve_mode(str(self.settings.get("mode", "auto")))
        config = dict(run.config)
        if run.trial is not None:
            config["trial"] = run.trial
        if run.job is not None:
            config["job"] = run.job
        kwargs: dict[str, Any] = dict(
            project=self.settings.get("project") or "sac_runner",
            entity=self.settings.get("entity") or None,
            # a resumed run keeps its group and name (an offline session's records are synced as they are)
            group=(previous or {}).get("group") or self.settings.get("group") or run.group,
            name=(previous or {}).get("name") or run.name,
            tags=[str(t) for t in self.settings.get("tags") or []],
            notes=f"run directory {run.run_dir.absolute()}",
            config=config,
            dir=str(run.run_dir.absolute()),
            job_type="train",
            id=previous["id"] if previous else new_run_id(),
            resume="allow" if previous else None,
            settings=wandb.Settings(
                console="off",  # sac-train's own output stays as it is
                silent=True,
                x_disable_stats=True,  # no system-metrics sampler competing with training for the CPU
                disable_git=True,
                save_code=False,
                x_save_requirements=False,
                init_timeout=float(self.settings.get("init_timeout", 60)),
            ),
        )
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as e:  # noqa: BLE001 - an unreachable or refusing server: keep the records offline
            if self.mode != "online":
                raise
            notice(f"wandb: cannot reach the W&B server ({short_reason(e)}); logging offline instead")
            self.mode = "offline"
            wandb.teardown()
            if not previous:  # W&B may still hold the failed attempt's id ("run ID ... is in use"): a new one
                kwargs["id"] = new_run_id()
            self.run = wandb.init(mode="offline", **kwargs)
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY)
        ids = {k: kwargs[k] for k in ("project", "entity", "group", "name")}
        write_ids(run.run_dir, self.name, {"id": self.run.id, **ids, "mode": self.mode})

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        self.run.log({**values, STEP_KEY: step})

    def finish(self, outcome: Outcome) -> None:
        import wandb

        self.run.summary.update({**outcome.metrics(), "status": outcome.status, "env_steps": outcome.env_steps})
        if outcome.video is not None and Path(outcome.video).is_file():
            self.run.log({VIDEO_KEY: wandb.Video(str(outcome.video), format="mp4"), STEP_KEY: outcome.env_steps})
        if self.settings.get("log_checkpoint") and outcome.best_checkpoint is not None:
            artifact = wandb.Artifact(
                f"{self.run.id}-best",
                type="model",
                metadata={**outcome.metrics(), "env_id": self.info.env_id, "env_steps": outcome.env_steps},
            )
            artifact.add_file(str(outcome.best_checkpoint), name="best.pt")
            self.run.log_artifact(artifact, aliases=["best", "latest"])
        # W&B has no "stopped" state: an interrupted run shows as failed until its resume finishes it
        self.finished = True
        self.run.finish(exit_code=0 if outcome.status in ("finished", "pruned") else 1)

    def close(self) -> None:
        if self.run is not None and not self.finished:
            self.finished = True
            self.run.finish(exit_code=1)

    def where(self) -> str | None:
        if self.run is None:
            return None
        if self.mode == "offline":
            # one directory per session of a resumed run; `wandb sync` uploads them in order
            runs = self.info.run_dir.absolute() / "wandb" / f"offline-run-*-{self.run.id}"
            return f"offline run {self.run.id}; upload it with: wandb sync {runs}"
        return str(self.run.url or self.run.id)
