"""Population training (issue 17): hydra/launcher=population groups a multirun's jobs (sweeps/population_launcher.py)
and trains each group as the members of one process (training/population.py)."""

import functools
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from sac_runner.config import compose
from sac_runner.errors import TrainingError
from sac_runner.sweeps import population_launcher
from sac_runner.sweeps.population_plan import describe_plan, is_member_key, job_ranges, plan_groups, shared_part
from sac_runner.training import steps
from sac_runner.training.checkpoint import load_checkpoint
from sac_runner.training.population import Population
from tests.helpers import TINY, cli_command, new_trainer, run_cli, step_hook, tiny_config, train

POPULATION = ["hydra/launcher=population", *TINY, "save_video=false"]


@pytest.fixture(scope="module")
def slurm_partition():
    """A single-node SLURM cluster on this machine (tests/test_slurm.py's), or skip."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"
    proc = subprocess.run(["nice", "-n", "19", str(script)], capture_output=True, text=True, timeout=300)
    if proc.returncode == 3:
        pytest.skip(f"no SLURM cluster here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def flat_tensors(tree, prefix=""):
    """{path: tensor} of every tensor in nested dicts and lists."""
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    out = {}
    for k, v in items:
        out.update(flat_tensors(v, f"{prefix}/{k}"))
    return out


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Two checkpoints with bit-identical weights, optimizer states and resume state (RNG streams, buffer)."""
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    ta, tb = (
        flat_tensors({"agent": ca.agent, "resume": ca.resume}),
        flat_tensors({"agent": cb.agent, "resume": cb.resume}),
    )
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, different[:5]
    assert ca.progress["evals"] == cb.progress["evals"]


# ------------------------------------------------------------------------------------------------ grouping
def test_which_keys_members_may_differ_in_comes_from_the_key_table():
    for key in ("seed", "actor_optimizer.lr", "critic_optimizer.lr", "entropy_coef_optimizer.lr", "algorithm.tau"):
        assert is_member_key(key), key
    for key in ("algorithm.discount", "algorithm.init_entropy_coef", "algorithm.target_entropy", "objective.metric"):
        assert is_member_key(key), key
    for key in ("env.id", "algorithm.batch_size", "algorithm.utd_ratio", "architecture.actor_hidden_sizes"):
        assert not is_member_key(key), key
    for key in ("actor_optimizer._target_", "actor_optimizer.weight_decay", "device", "compile", "threads"):
        assert not is_member_key(key), key


def parts(*jobs):
    return [shared_part(OmegaConf.to_container(compose(*TINY, *job), resolve=True)) for job in jobs]


def test_jobs_are_grouped_by_what_a_process_must_share():
    jobs = [
        ["seed=0"],
        ["seed=1", "actor_optimizer.lr=0.01", "algorithm.discount=0.9", "algorithm.tau=0.1"],
        ["seed=0", "algorithm.batch_size=16"],
        ["seed=2", "algorithm.init_entropy_coef=0.2", "algorithm.target_entropy=-2"],
        ["seed=1", "algorithm.batch_size=16"],
        ["seed=3", "architecture.critic_hidden_sizes=[32,32]"],
    ]
    groups, keys = plan_groups(parts(*jobs), None)
    assert groups == [[0, 1, 3], [2, 4], [5]]
    assert keys == ["algorithm.batch_size", "architecture.critic_hidden_sizes"]
    line = describe_plan(groups, keys, None, "one group after another")
    assert line == (
        "[population] 6 jobs in 3 groups (jobs 0-1,3; jobs 2,4; jobs 5): they differ in algorithm.batch_size, "
        "architecture.critic_hidden_sizes, which a population shares; one group after another"
    )
    groups, _ = plan_groups(parts(*jobs), 2)  # hydra.launcher.max_members caps a group
    assert groups == [[0, 1], [2, 4], [3], [5]]
    assert "hydra.launcher.max_members=2" in describe_plan(groups, keys, 2, "")
    groups, keys = plan_groups([*parts(["seed=0"]), None, *parts(["seed=1"])], None)  # a job that did not compose
    assert groups == [[0, 2], [1]] and keys == []
    assert job_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"


# ------------------------------------------------------------------------------------------------ in one process
def member(run_dir, *overrides, hooks=()):
    return functools.partial(lambda: train(new_trainer(run_dir, *overrides, hooks=hooks)))


def test_members_train_exactly_as_their_lone_runs(tmp_path):
    """Each member draws from its own random streams (its torch generator, buffer, envs, evaluation seeds), so with
    the per-member eager update (compile=false) member k is its lone run, bit for bit."""
    overrides = [("seed=0",), ("seed=1", "actor_optimizer.lr=0.003", "algorithm.tau=0.02")]
    members = Population([member(tmp_path / f"m{i}", "compile=false", *o) for i, o in enumerate(overrides)]).run()
    assert [m.error for m in members] == [None, None]
    for i, o in enumerate(overrides):
        lone = train(new_trainer(tmp_path / f"lone{i}", "compile=false", *o))
        assert members[i].result["best_return"] == lone["best_return"]
        for name in ("last.pt", "best.pt"):
            assert_same_checkpoint(
                tmp_path / f"m{i}" / "checkpoints" / name, tmp_path / f"lone{i}" / "checkpoints" / name
            )


def test_a_failing_member_stops_alone(tmp_path):
    def poison(trainer):  # member 1's critic goes non-finite after step 200
        if trainer.progress.env_steps == 200:
            with torch.no_grad():
                next(trainer.agent.critic.parameters()).fill_(float("nan"))

    members = Population(
        [member(tmp_path / "m0", "seed=0"), member(tmp_path / "m1", "seed=1", hooks=[step_hook(poison)])]
    ).run()
    assert members[0].error is None and members[0].result["env_steps"] == 300
    assert isinstance(members[1].error, TrainingError) and "critic loss became nan at env step 20" in str(
        members[1].error
    )


def test_a_joint_population_isolates_a_failing_member_and_a_member_resumes_as_a_lone_run(tmp_path, monkeypatch):
    """compile=true: the members train through the population's vmapped step (here dynamo's graph run by eager
    PyTorch: the same composition, without inductor's C++). Member 2's weights go non-finite: it stops alone, the
    others train on; a member's checkpoints are lone-run checkpoints (own storages), and its last.pt resumes as a
    lone run."""

    def poison(trainer):
        if trainer.progress.env_steps == 200:
            with torch.no_grad():
                next(trainer.agent.critic.parameters()).fill_(float("nan"))

    overrides = [("seed=0",), ("seed=1", "actor_optimizer.lr=0.003", "algorithm.discount=0.9"), ("seed=2",)]
    fns = [
        member(tmp_path / f"m{i}", "compile=true", *o, hooks=[step_hook(poison)] if i == 2 else ())
        for i, o in enumerate(overrides)
    ]
    monkeypatch.setattr(steps, "COMPILE_FROM", 50)  # the population's step takes over at gradient step 50
    population = Population(fns)
    population.compile_args = {"backend": "eager"}  # dynamo's graph without inductor: quick to build
    members = population.run()
    assert isinstance(members[2].error, TrainingError) and "critic loss became nan at env step 20" in str(
        members[2].error
    )
    for m in members[:2]:
        assert m.error is None, m.error
        assert m.result["env_steps"] == 300 and m.result["update"] == "population" and m.result["compiled_from"] == 50
    assert population.update is not None and len(population.update) == 3
    a0, a1 = (load_checkpoint(tmp_path / f"m{i}" / "checkpoints" / "last.pt").agent for i in (0, 1))
    for name, t in flat_tensors(a1).items():
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size(), name  # not the stacked tensor
        assert torch.isfinite(t).all(), name
    assert not torch.equal(a0["actor"]["mean.weight"], a1["actor"]["mean.weight"])
    again = run_cli("sac-train", f"resume={tmp_path / 'm1'}", "algorithm.total_steps=400", "compile=false")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "m1" / "summary.json").read_text())["env_steps"] == 400


def test_a_stop_signal_stops_every_member_with_its_checkpoint(tmp_path):
    def ctrl_c(trainer):
        if trainer.progress.env_steps == 160:
            os.kill(os.getpid(), signal.SIGINT)

    population = Population(
        [member(tmp_path / "m0", "seed=0", hooks=[step_hook(ctrl_c)]), member(tmp_path / "m1", "seed=1")]
    )
    members = population.run()
    assert population.stopped == "SIGINT"
    for i, m in enumerate(members):
        assert m.error is None and m.result["interrupted"] == "SIGINT" and m.result["env_steps"] < 300
        last = load_checkpoint(tmp_path / f"m{i}" / "checkpoints" / "last.pt")
        assert last.progress["env_steps"] == m.result["env_steps"]


# ------------------------------------------------------------------------------------------------ the launcher
def test_a_population_sweep_writes_what_lone_jobs_write(tmp_path):
    """4 jobs, 2 groups (the batch sizes differ), each in a process of its own; every member is a Hydra job with
    its own directory."""
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "sac-train",
        "-m",
        *POPULATION,
        "seed=0,1",
        "algorithm.batch_size=16,32",
        "hydra.launcher.n_parallel=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("[population]")]
    assert line.startswith("[population] 4 jobs in 2 groups (jobs ") and line.endswith(
        "): they differ in algorithm.batch_size, which a population shares; 2 groups at a time, each in a process "
        "of its own"
    )
    seen = set()
    for job in range(4):  # each job's directory as the basic launcher makes it, with its own overrides
        d = sweep / str(job)
        overrides = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        values = dict(o.split("=", 1) for o in overrides)
        seed, batch = int(values["seed"]), int(values["algorithm.batch_size"])
        seen.add((seed, batch))
        for f in ("config.yaml", "hydra.yaml"):
            assert (d / ".hydra" / f).is_file()
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        assert (cfg["seed"], cfg["algorithm"]["batch_size"]) == (seed, batch)
        summary = json.loads((d / "summary.json").read_text())
        assert summary["env_steps"] == 300 and summary["objective"] is not None
        assert (d / "checkpoints" / "last.pt").is_file() and list((d / "tensorboard").glob("events.out.tfevents.*"))
    assert seen == {(0, 16), (0, 32), (1, 16), (1, 32)}
    for group in line.split("(", 1)[1].split(")", 1)[0].split("; "):  # "jobs 0,2" or "jobs 0-1": one batch size
        ranges = group.removeprefix("jobs ").replace("-", ",").split(",")
        batches = {yaml.safe_load((sweep / n / "config.yaml").read_text())["algorithm"]["batch_size"] for n in ranges}
        assert len(batches) == 1, line
    report = run_cli("sac-report", sweep, "--no-plot", cwd=tmp_path)
    assert report.returncode == 0, report.stderr


@pytest.mark.system
def test_ctrl_c_stops_a_population_and_one_command_resumes_it(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*POPULATION, "seed=0,1,2", "algorithm.total_steps=100000", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(
        [*cli_command("sac-train"), "-m", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 300
        while not all((sweep / str(j) / "checkpoints" / "last.pt").is_file() for j in range(3)):
            assert proc.poll() is None, proc.communicate(timeout=60)[1][-3000:]
            assert time.time() < deadline, "no checkpoints within 300 s"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    line = next(x for x in err.splitlines() if "the population in" in x)
    command = line.split("resume it with: ", 1)[1]
    assert "hydra.launcher.resume=true" in command and f"hydra.sweep.dir={sweep}" in command
    stopped = [json.loads((sweep / str(j) / "summary.json").read_text()) for j in range(3)]
    assert all(s["interrupted"] == "SIGINT" for s in stopped)
    # before the population's graph takes over, members take turns: each stops at its own step and saves it
    assert all(s["env_steps"] > 0 and s["env_steps"] < 100000 for s in stopped)
    steps = max(s["env_steps"] for s in stopped)
    # the printed command, with a budget that ends soon (a resume may change algorithm.total_steps)
    argv = [
        a.replace("algorithm.total_steps=100000", f"algorithm.total_steps={steps + 300}") for a in shlex.split(command)
    ]
    assert argv[:2] == ["sac-train", "-m"]
    again = run_cli(*argv, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    for j in range(3):
        done = json.loads((sweep / str(j) / "summary.json").read_text())
        assert done["env_steps"] == steps + 300 and not done["interrupted"]
        assert (sweep / str(j) / ".hydra" / "overrides.yaml").is_file()  # the first session's .hydra/ stays
        assert list((sweep / str(j) / ".hydra").glob("resume-*"))


# ------------------------------------------------------------------------------------------------ the vmapped step
def population_agents(overrides_per_member, obs_dim=3, act_dim=2, capacity=64):
    """Agents (networks from `tiny_config`, each member its own seed and overrides) and replay buffers full of
    random transitions."""
    from sac_runner.agent.buffer import ReplayBuffer
    from sac_runner.agent.factory import make_agent

    agents, buffers = [], []
    for k, overrides in enumerate(overrides_per_member):
        cfg = tiny_config(*overrides)
        torch.manual_seed(cfg.seed)
        agents.append(make_agent(cfg, obs_dim, act_dim, torch.device("cpu")))
        buf = ReplayBuffer(capacity, obs_dim, act_dim, torch.device("cpu"), seed=k)
        g = torch.Generator().manual_seed(100 + k)
        n = capacity
        buf.add(
            torch.randn(n, obs_dim, generator=g).numpy(),
            (torch.rand(n, act_dim, generator=g) * 2 - 1).numpy(),
            torch.randn(n, generator=g).numpy(),
            torch.randn(n, obs_dim, generator=g).numpy(),
            (torch.rand(n, generator=g) < 0.1).float().numpy(),
        )
        buffers.append(buf)
    return agents, buffers


MEMBERS = [
    ("seed=0",),
    ("seed=1", "actor_optimizer.lr=0.003", "critic_optimizer.lr=0.002", "algorithm.discount=0.9"),
    ("seed=2", "algorithm.tau=0.1", "algorithm.init_entropy_coef=0.5", "algorithm.target_entropy=-0.5"),
]


@pytest.mark.parametrize("clip, backend", [(True, "eager"), pytest.param(False, "aot_eager", marks=pytest.mark.system)])
def test_member_k_gets_the_gradients_of_a_lone_agent_with_its_params_and_batch(clip, backend):
    """The population's vmapped step against each member's own eager SAC.update (the reference), on the member's
    own batch and noise: after the first step Adam's exp_avg is (1 - beta1) * the gradient, so equal exp_avg means
    equal gradients; then three steps of parameters, optimizer states and targets agree to float rounding.
    backend eager: dynamo's graph run eagerly (about 10 s to trace); aot_eager: with AOT autograd, as inductor
    compiles it (a minute)."""
    import copy

    from sac_runner.agent.population import PopulationUpdate

    extra = ("algorithm.max_grad_norm=0.5",) if clip else ()
    agents, buffers = population_agents([(*m, *extra) for m in MEMBERS])
    lone = [copy.deepcopy(a) for a in agents]  # taken before the population binds the members' tensors
    pop = PopulationUpdate(
        agents, [b.storage for b in buffers], buffers[0].columns, 16, backend=backend, skip_guards=False
    )
    for k, b in enumerate(buffers):
        b.use_storage(pop.storage[k])
    for step in range(3):
        for k, (a, b) in enumerate(zip(lone, buffers)):
            idx = b.sample_indices(16)
            pop.idx[k].copy_(idx)
            torch.manual_seed(1000 * step + k)  # member k's noise: what its lone update draws
            for n in pop.noise:
                torch.randn(n.shape[1:], out=n[k])
            torch.manual_seed(1000 * step + k)
            a.update(b.gather(idx))
        stats = pop()
        assert stats["loss/total"].shape == (3,)
        for k, (member, ref) in enumerate(zip(agents, lone)):
            ms, rs = member.state_dict(), ref.state_dict()
            got, want = flat_tensors(ms), flat_tensors(rs)
            assert got.keys() == want.keys()
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=f"member {k}: {name}")
    # different members really differ (their own weights, batches and hyperparameters)
    assert not torch.equal(agents[0].actor.mean.weight, agents[1].actor.mean.weight)


def test_an_optuna_search_trains_each_batch_of_trials_as_a_population(tmp_path):
    """hparams_search=optuna hydra/launcher=population: the sweeper's batch of trials (n_jobs) is one launch, its
    jobs the members of one process; each trial reports to the study and gets its value."""
    pytest.importorskip("optuna")
    import optuna

    sweep = tmp_path / "sweep"
    proc = run_cli(
        "sac-train",
        "-m",
        *POPULATION,
        "hparams_search=optuna",
        # a plain value fixes a parameter: the search is over the learning rates and tau, which members may differ in
        "algorithm.discount=0.99",
        "algorithm.utd_ratio=1.0",
        "search.actor_width=16",
        "search.critic_width=16",
        "hparams_search.pruner.type=none",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[population] 2 job(s) as the members of one process" in proc.stdout
    study = optuna.load_study(study_name="sac-CartPoleContinuous-v1", storage=f"sqlite:///{sweep / 'optuna.db'}")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].params["actor_optimizer.lr"] != trials[1].params["actor_optimizer.lr"]
    for t in trials:
        assert t.intermediate_values  # each member reported its evaluations


def test_population_slurm_is_refused_in_one_line_until_it_is_tested_on_a_cluster(tmp_path):
    proc = run_cli("sac-train", "-m", *POPULATION, "hydra/launcher=population_slurm", "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("sac-train: error:")]
    assert line.startswith("sac-train: error: hydra/launcher=population_slurm is not available yet")
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("outputs/multirun/*/*"))  # the sweep directory made for it is removed


@pytest.mark.system
@pytest.mark.skipif(not population_launcher.SLURM_ENABLED, reason="population_slurm is switched off (SLURM_ENABLED)")
def test_population_slurm_submits_each_group_as_one_slurm_job(slurm_partition, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "sac-train",
        "-m",
        *POPULATION,
        "hydra/launcher=population_slurm",
        f"hydra.launcher.partition={slurm_partition}",
        "hydra.launcher.mem_gb=1",
        "seed=0,1",
        "algorithm.batch_size=16,32",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 jobs in 2 groups" in proc.stdout and "each group one SLURM job" in proc.stdout
    assert len(list((sweep / ".submitit").glob("*/*_log.err"))) == 2  # two SLURM jobs, one per group
    for job in range(4):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert summary["env_steps"] == 300 and not summary["interrupted"]
        assert (sweep / str(job) / ".hydra" / "overrides.yaml").is_file()
