"""scripts/results.py: the results store (outputs/results/) and the presets table, aggregate, plot and GIF made
from it, on real tiny runs of sac-train; and the provenance sac-train writes into summary.json for it."""

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest
from omegaconf import OmegaConf
from PIL import Image

from sac_runner.config import compose
from sac_runner.rundir import cpu_model, provenance, read_evals
from tests.helpers import TINY, make_run, new_trainer, sac_train, step_hook, tiny_config, train

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "v0.1.0"  # two runs of sac-train 0.1.0 (no provenance)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


results = _load("results")
learning_table = _load("learning_table")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run of sac-train on the TINY budget (CartPoleContinuous-v1, seed 0, 300 steps, with its video)."""
    d = tmp_path_factory.mktemp("tiny")
    proc = sac_train(*TINY, "seed=0", f"hydra.run.dir={d / 'run'}", cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d / "run"


def copy_run(run, dest):
    shutil.copytree(run, dest)
    return dest


def as_container(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


def rows_of(store_dir):
    with (store_dir / "runs.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(table):
    return {cells(line)[0].strip("`"): cells(line) for line in table.splitlines() if line.startswith("| `")}


def interrupted_run(run_dir, at_step=200):
    """A real tiny run (seed 1) stopped by SIGTERM at `at_step` of its 300, its summary.json written as sac-train
    writes it (cli.run)."""

    def stop(t):
        if t.progress.env_steps == at_step:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer = new_trainer(run_dir, "seed=1", hooks=[step_hook(stop)])
    summary = train(trainer)
    assert summary["interrupted"] == "SIGTERM"
    summary["evals"] = trainer.progress.evals
    summary.update(provenance("cpu"))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


# ------------------------------------------------------------------------------------------ provenance
def test_sac_train_records_the_commit_and_machine_it_ran_on(tiny_run):
    s = json.loads((tiny_run / "summary.json").read_text())
    commit = s["commit"].removesuffix("-dirty")
    assert len(commit) == 12 and s["commit"] in (commit, commit + "-dirty")
    # HEAD itself where nothing was committed while the test ran, else one of its ancestors
    git = ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit, "HEAD"]
    assert subprocess.run(git, capture_output=True).returncode == 0, f"{commit} is not HEAD or before it"
    assert s["machine"] == cpu_model() and s["device"] == "cpu" and s["cpus"] >= 1
    assert s["versions"]["gymnasium"] == gymnasium.__version__ and s["finished"].endswith("+00:00")


# ------------------------------------------------------------------------------------------ the store
def test_adding_a_run_again_from_anywhere_keeps_one_row(tiny_run, tmp_path, capsys):
    store_dir = tmp_path / "store"
    store = results.Store(store_dir)
    assert results.add_runs(store, [tiny_run]) == 1
    (row,) = rows_of(store_dir)
    assert row["env_id"] == "CartPoleContinuous-v1" and row["seed"] == "0" and row["status"] == "complete"
    assert (row["budget"], row["steps_done"], row["evals"], row["sessions"]) == ("300", "300", "2", "1")
    assert row["machine"] == cpu_model() and row["commit"] != results.NOT_RECORDED
    first = (store_dir / "runs.csv").read_bytes()

    # the same run again, then a copy of it elsewhere (another machine's disk), then the folder above it
    assert results.add_runs(results.Store(store_dir), [tiny_run]) == 0
    elsewhere = copy_run(tiny_run, tmp_path / "copied" / "to" / "another" / "machine")
    assert results.add_runs(results.Store(store_dir), [elsewhere]) == 0
    assert results.add_runs(results.Store(store_dir), [tmp_path / "copied"]) == 0
    assert (store_dir / "runs.csv").read_bytes() == first
    assert "unchanged" in capsys.readouterr().out
    assert [p.name for p in (store_dir / "curves").iterdir()] == [f"{row['run_id']}.csv"]


def test_rows_are_keyed_by_the_run_never_by_the_machine(tiny_run, tmp_path):
    store_dir = tmp_path / "store"
    results.add_runs(results.Store(store_dir), [tiny_run])
    # runs of sac-train 0.1.0 record no machine or commit: the one adding them says where they ran
    results.add_runs(results.Store(store_dir), [DATA], machine="Intel Xeon", commit="5e1ec7ed0000")
    rows = {(r["env_id"], r["seed"]): r for r in rows_of(store_dir)}
    old = rows["Pendulum-v1", "1"]
    assert len(rows) == 3 and old["machine"] == "Intel Xeon" and old["commit"] == "5e1ec7ed0000"
    results.add_runs(results.Store(store_dir), [DATA])  # again, without saying where: what was said stays
    assert {(r["env_id"], r["seed"]): r for r in rows_of(store_dir)} == rows

    # the tiny run's directory moves to a GPU machine and is added from there: its row changes machine, the
    # other machine's rows stay
    moved = copy_run(tiny_run, tmp_path / "gpu-machine" / "run")
    summary = json.loads((moved / "summary.json").read_text())
    (moved / "summary.json").write_text(json.dumps({**summary, "machine": "NVIDIA H200", "device": "cuda:0"}))
    assert results.add_runs(results.Store(store_dir), [moved]) == 1
    after = {(r["env_id"], r["seed"]): r for r in rows_of(store_dir)}
    assert len(after) == 3 and after["CartPoleContinuous-v1", "0"]["machine"] == "NVIDIA H200"
    assert after["CartPoleContinuous-v1", "0"]["run_id"] == rows["CartPoleContinuous-v1", "0"]["run_id"]
    assert after["CartPoleContinuous-v1", "0"]["device"] == "cuda:0"
    assert (
        after["Pendulum-v1", "1"] == old and after["CartPoleContinuous-v1", "1"] == rows["CartPoleContinuous-v1", "1"]
    )


def test_a_resumed_and_extended_run_updates_its_row_and_an_older_copy_does_not(tiny_run, tmp_path, capsys):
    store_dir = tmp_path / "store"
    run = copy_run(tiny_run, tmp_path / "run")
    results.add_runs(results.Store(store_dir), [run])
    (before,) = rows_of(store_dir)

    proc = sac_train(f"resume={run}", "algorithm.total_steps=450", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert results.add_runs(results.Store(store_dir), [run]) == 1
    (after,) = rows_of(store_dir)
    assert after["run_id"] == before["run_id"] and after["status"] == "complete"
    assert (after["budget"], after["steps_done"], after["evals"], after["sessions"]) == ("450", "450", "3", "2")
    assert float(after["wall_time_s"]) > 0
    assert len(results.Store(store_dir).curve(after["run_id"])) == 3

    assert results.add_runs(results.Store(store_dir), [tiny_run]) == 0  # the copy from before the resume
    assert "kept" in capsys.readouterr().out and rows_of(store_dir) == [after]


def test_a_run_stopped_before_its_budget_is_stored_and_shown_as_partial(tiny_run, tmp_path):
    store_dir = tmp_path / "store"
    store = results.Store(store_dir)
    results.add_runs(store, [interrupted_run(tmp_path / "stopped")])
    (row,) = rows_of(store_dir)
    assert (row["status"], row["steps_done"], row["budget"]) == ("partial", "200", "300")
    assert row["note"] == "interrupted by SIGTERM at step 200"

    configs = {"CartPoleContinuous-v1": as_container(tiny_config("seed=1"))}
    table = results.presets_table(store, configs)
    partial = results.fmt_return(float(row["final_return"]))
    assert table_rows(table)["CartPoleContinuous-v1"][5] == f"{partial} (1 seed, at 200 of 300)"

    # the same as a sweep's job stopped by SLURM: sweeps/multirun.py records it in failed.json too
    job = copy_run(tmp_path / "stopped", tmp_path / "sweep" / "0")
    message = f"stopped by signal 15; continue it with: sac-train resume={job}"
    (job / "failed.json").write_text(json.dumps({"error": "Interrupted", "message": message}))
    results.add_runs(store, [tmp_path / "sweep"])
    (row,) = rows_of(store_dir)
    assert (row["status"], row["note"]) == ("partial", "interrupted: stopped by signal 15")

    # beside a complete run, a partial one is named but not averaged in
    results.add_runs(store, [tiny_run])
    complete = next(r for r in store.rows.values() if r["status"] == "complete")
    cell = table_rows(results.presets_table(store, configs))["CartPoleContinuous-v1"][5]
    final = results.fmt_return(float(complete["final_return"]))
    assert cell == f"{final} (1 seed; 1 more stopped at 200 of 300, not counted)"


def test_a_failed_run_is_stored_as_failed_and_named_in_the_table(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "sweep" / "0")
    (run / "failed.json").write_text(json.dumps({"error": "TrainingError", "message": "critic loss is nan"}))
    os.utime(run / "summary.json", (1, 1))  # the failure is newer than the summary
    store = results.Store(tmp_path / "store")
    results.add_runs(store, [tmp_path / "sweep"])
    (row,) = rows_of(tmp_path / "store")
    assert row["status"] == "failed" and "critic loss is nan" in row["note"]
    table = results.presets_table(store, {"CartPoleContinuous-v1": as_container(tiny_config())})
    assert table_rows(table)["CartPoleContinuous-v1"][5] == "not yet measured (1 failed run)"


def test_the_stored_csv_files_round_trip(tiny_run, tmp_path):
    store_dir = tmp_path / "store"
    results.add_runs(results.Store(store_dir), [tiny_run, DATA], machine="Intel Xeon")
    text = (store_dir / "runs.csv").read_text()
    store = results.Store(store_dir)
    store.save()
    assert (store_dir / "runs.csv").read_text() == text
    assert list(store.rows.values()) == rows_of(store_dir)

    written = json.loads((tiny_run / "summary.json").read_text())["evals"]
    assert isinstance(written[0], dict)  # labelled records; make_run's and interrupted_run's are arrays
    evals = read_evals(written)
    (row,) = [r for r in store.rows.values() if r["env_id"] == "CartPoleContinuous-v1" and r["seed"] == "0"]
    curve = store.curve(row["run_id"])
    assert [c[0] for c in curve] == [e[0] for e in evals]
    for mine, theirs in zip(curve, evals):
        assert mine[1:] == pytest.approx(theirs[1:], rel=1e-6)
    assert float(row["final_return"]) == pytest.approx(evals[-1][1], rel=1e-6)
    assert store.config(row["run_id"]) == OmegaConf.to_container(OmegaConf.load(tiny_run / "config.yaml"))
    curve_file = store_dir / "curves" / f"{row['run_id']}.csv"
    assert results._curve_text(results.read_curve(curve_file)) == curve_file.read_text()


# ------------------------------------------------------------------------------------------ generated from it
def test_the_table_counts_the_presets_runs_and_says_why_other_rows_have_none(tiny_run, tmp_path):
    store_dir = tmp_path / "store"
    other = copy_run(tiny_run, tmp_path / "other")
    cfg = (other / "config.yaml").read_text()
    assert "  tau: 0.02\n" in cfg
    (other / "config.yaml").write_text(cfg.replace("  tau: 0.02\n", "  tau: 0.05\n"))
    for name in os.listdir(other / "tensorboard"):  # another run: its own first event file
        if name.endswith(".1"):
            os.rename(other / "tensorboard" / name, other / "tensorboard" / (name[:-2] + ".7"))
    store_dir.mkdir()
    shutil.copy(results.STORE / "anchors.csv", store_dir / "anchors.csv")
    store = results.Store(store_dir)
    results.add_runs(store, [tiny_run, other], context="niced, on a shared core")
    results.add_runs(store, [tiny_run])  # again, without saying how: what was said stays
    configs = {
        "Hopper-v5": as_container(compose("env=Hopper-v5")),
        "Reacher-v5": as_container(compose("env=Reacher-v5")),
        "CartPoleContinuous-v1": as_container(tiny_config()),  # the tiny run's config as the "preset"
        "Pendulum-v1": as_container(tiny_config("env=Pendulum-v1")),
    }
    table = results.presets_table(store, configs)
    rows = table_rows(table)
    assert rows["Hopper-v5"][5:] == [
        "not yet measured (needs a GPU)",
        "2326 (rl-baselines3-zoo, 1M, version not stated)",
        "-",
    ]
    assert rows["Reacher-v5"][5:] == ["not yet measured", "-2.6 (Tianshou, 1M, version not stated)", "-"]
    assert rows["Pendulum-v1"][5:] == ["not yet measured", "none recorded", "-"]
    final = read_evals(json.loads((tiny_run / "summary.json").read_text())["evals"])[-1].mean
    assert rows["CartPoleContinuous-v1"][5] == f"{results.fmt_return(final)} (1 seed)"  # not the other lr
    cpus = json.loads((tiny_run / "summary.json").read_text())["cpus"]  # as the run had them
    cores = f"{cpus} core{'' if cpus == 1 else 's'}"
    assert rows["CartPoleContinuous-v1"][7].endswith(f"({cpu_model()}, {cores}; niced, on a shared core)")
    assert "TODO" not in table

    # once the preset changes, its old runs are not counted but said to be there
    configs["CartPoleContinuous-v1"]["algorithm"]["tau"] = 0.5
    rows = table_rows(results.presets_table(store, configs))
    assert rows["CartPoleContinuous-v1"][5] == "not yet measured (2 runs of another config or budget stored)"


def test_a_seed_run_twice_counts_once_the_latest_complete_run(tmp_path):
    configs = {"Pendulum-v1": as_container(compose("env=Pendulum-v1"))}
    sweep = tmp_path / "sweep"
    runs = [(0, -300.0, "2026-01-02"), (0, -100.0, "2026-01-03"), (1, -200.0, "")]  # seed, final return, finished
    for job, (seed, final, finished) in enumerate(runs):
        run = make_run(sweep / str(job), ["env=Pendulum-v1"], seed, [-1000.0, final])
        (run / "config.yaml").write_text(OmegaConf.to_yaml(compose("env=Pendulum-v1", f"seed={seed}")))
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "env_steps": 20000, "finished": finished}))
    store = results.Store(tmp_path / "store")
    results.add_runs(store, [sweep])
    assert len(store.rows) == 3
    cell = table_rows(results.presets_table(store, configs))["Pendulum-v1"][5]
    assert cell == "-150 [-200, -100] (2 seeds; 1 repeat of a seed not counted)"


def test_the_aggregate_scores_runs_between_random_and_the_anchor(tmp_path):
    store_dir = tmp_path / "store"
    sweep = tmp_path / "sweep"
    configs = {"Pendulum-v1": as_container(compose("env=Pendulum-v1")), "Reacher-v5": None}
    configs["Reacher-v5"] = as_container(compose("env=Reacher-v5"))
    for job, (env, final) in enumerate([("Reacher-v5", -2.6), ("Reacher-v5", -23.3), ("Pendulum-v1", -150.0)]):
        run = make_run(sweep / str(job), [f"env={env}"], job, [-40.0, final], env_id=env)
        budget = configs[env]["algorithm"]["total_steps"]
        (run / "config.yaml").write_text(OmegaConf.to_yaml(compose(f"env={env}", f"seed={job}")))
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "env_steps": budget}))
    store = results.Store(store_dir)
    results.add_runs(store, [sweep])
    (store_dir / "anchors.csv").write_text(
        ",".join(results.ANCHOR_FIELDS) + "\nReacher-v5,-2.6,,T,1000000,v4,published,\n"
    )
    (store_dir / "random.csv").write_text("task,episodes,mean,std,gymnasium,measured\nReacher-v5,20,-44,1,1,x\n")
    store = results.Store(store_dir)
    assert results.normalised_scores(store, configs) == {"mujoco": {"Reacher-v5": pytest.approx([1.0, 0.5])}}
    lines = results.aggregate_table(store, configs).splitlines()
    assert lines[2] == "| MuJoCo | Reacher-v5 | 2 | 0.75 [0.50, 1.00] |"
    assert lines[4] == "| Classic control | - | 0 | not yet measured |"  # Pendulum has no anchor


def test_the_plot_has_a_panel_per_preset_with_runs(tiny_run, tmp_path):
    store = results.Store(tmp_path / "store")
    results.add_runs(store, [tiny_run])
    out = tmp_path / "curves.png"
    configs = {
        "CartPoleContinuous-v1": as_container(tiny_config()),
        "Hopper-v5": as_container(compose("env=Hopper-v5")),
    }
    assert results.plot(store, out, configs) == 1
    assert Image.open(out).text["Comment"] == "panels: CartPoleContinuous-v1"


def test_a_gif_from_the_best_agent_video_is_small(tiny_run, tmp_path):
    out = tmp_path / "fig" / "classic_control.gif"
    frames, size, width = results.make_gif(tiny_run, out, seconds=1.0, fps=10, width=160)
    gif = Image.open(out)
    # identical frames in a row are merged into one longer frame
    assert gif.format == "GIF" and 1 < gif.n_frames <= frames and gif.size[0] == width == 160
    assert size == out.stat().st_size < 1_000_000


def test_the_readme_table_is_the_one_generated_from_the_store():
    text = (ROOT / "README.md").read_text()
    block = text.split(results.START)[1].split(results.END)[0].strip()
    assert block == results.readme_block(results.Store()), (
        "the README's presets table is not what the store and the presets give today; "
        "run: python scripts/results.py table --readme README.md"
    )


def test_the_anchors_are_the_issues_with_their_versions():
    store = results.Store()
    anchors = {(a["task"], a["source"]): a for a in store.anchors()}
    assert anchors["HalfCheetah-v5", "rl-baselines3-zoo"]["value"] == "9535"
    assert anchors["HalfCheetah-v5", "rl-baselines3-zoo"]["env_version"] == "v3"
    assert anchors["Pusher-v5", "CleanRL"]["value"] == "-22.45"
    assert anchors["Pusher-v5", "CleanRL"]["env_version"] == "v4"
    assert anchors["LunarLanderContinuous-v3", "rl-baselines3-zoo"]["budget"] == "500000"
    assert anchors["Reacher-v5", "Tianshou"]["env_version"] == "version not stated"
    from sac_runner import presets

    assert {a["task"] for a in store.anchors()} <= set(presets.preset_names())
    assert set(store.random_returns()) == set(presets.preset_names())


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert results.main(["--store", str(tmp_path / "s"), "add", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err
    (tmp_path / "empty").mkdir()
    assert results.main(["--store", str(tmp_path / "s"), "add", str(tmp_path / "empty")]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert results.main(["gif", str(tmp_path / "empty"), "--out", str(tmp_path / "x.gif")]) == 2
    assert "save_video=true" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert results.main(["--store", str(tmp_path / "s"), "table", "--readme", str(readme)]) == 2
    assert "presets-table" in capsys.readouterr().err


def test_a_run_whose_summary_is_not_sac_trains_is_skipped_saying_why(tmp_path, capsys):
    run = make_run(tmp_path / "sweep" / "0", ["env=Pendulum-v1"], 0, [-1000.0, -150.0])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(compose("env=Pendulum-v1", "seed=0")))
    good = results.read_run(run).row
    summary = json.loads((run / "summary.json").read_text())
    # labelled records (what sac-train writes now) and arrays (sac_runner 0.1.0) are the same run
    labelled = [dict(zip(("env_steps", "mean", "std", "min", "max"), e)) for e in summary["evals"]]
    (run / "summary.json").write_text(json.dumps({**summary, "evals": labelled}))
    assert results.read_run(run).row == good
    (run / "summary.json").write_text(json.dumps({**summary, "evals": [{"step": 1000, "mean": -1000.0}]}))
    assert results.main(["--store", str(tmp_path / "s"), "add", str(tmp_path / "sweep")]) == 2  # nothing stored
    out = capsys.readouterr()
    assert "skipped" in out.out and "summary.json is not one sac-train wrote: evaluation 0" in out.out
    assert "no run could be stored" in out.err


def test_learning_table_fills_the_readme_through_the_store(tmp_path, monkeypatch):
    """learning_table.py --readme: the sweep's runs go into the store, and the table comes from the store."""
    pendulum = as_container(compose("env=Pendulum-v1"))
    monkeypatch.setattr(results, "preset_configs", lambda: {"Pendulum-v1": pendulum})  # one preset is enough
    sweep = tmp_path / "sweep"
    for job in range(2):
        run = make_run(sweep / str(job), ["env=Pendulum-v1"], job, [-1000.0, -150.0 - 20 * job])
        (run / "config.yaml").write_text(OmegaConf.to_yaml(compose("env=Pendulum-v1", f"seed={job}")))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.START}\nold\n{results.END}\nrest\n")
    learning_table.store_and_fill(sweep, tmp_path / "store", readme)
    assert len(rows_of(tmp_path / "store")) == 2
    rows = table_rows(readme.read_text())
    assert rows["Pendulum-v1"][5] == "-160 [-170, -150] (2 seeds, at 2k of 20k)"
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("rest\n")
