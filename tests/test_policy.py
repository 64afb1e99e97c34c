"""The Python API for a trained agent: sac_runner.load_policy and the Policy it returns, on the stored 0.1.0 runs
(tests/data/v0.1.0: Pendulum-v1 and CartPoleContinuous-v1 with 16-16 networks)."""

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sac_runner
from sac_runner.errors import CheckpointError, ConfigError
from sac_runner.visualize import main as visualize_main

DATA = Path(__file__).parent / "data" / "v0.1.0"
PENDULUM, CARTPOLE = DATA / "Pendulum-v1", DATA / "CartPoleContinuous-v1"

torch.set_num_threads(1)


def play(policy, seed: int) -> float:
    """One episode with the policy's single-observation calls, as a user's loop would play it."""
    env = policy.make_env()
    try:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        return total
    finally:
        env.close()


def test_a_policy_maps_observations_to_actions_in_the_env_bounds():
    policy = sac_runner.load_policy(PENDULUM)
    assert isinstance(policy, sac_runner.Policy)
    assert policy.env_id == "Pendulum-v1" and policy.config.env.id == "Pendulum-v1"
    assert list(policy.config.architecture.actor_hidden_sizes) == [16, 16]
    assert policy.checkpoint == PENDULUM.resolve() / "checkpoints" / "best.pt" and policy.run_dir == PENDULUM.resolve()
    assert policy.env_steps == 600 and policy.device == torch.device("cpu") and policy.failure is None
    assert policy.deterministic and repr(policy).startswith("Policy(Pendulum-v1, ")

    env = policy.make_env()
    obs, _ = env.reset(seed=3)
    action = policy(obs)
    assert action.shape == (1,) and action.dtype == np.float32 and env.action_space.contains(action)
    np.testing.assert_array_equal(policy(obs), action)  # deterministic
    np.testing.assert_array_equal(policy(obs.tolist()), action)  # any array-like
    np.testing.assert_array_equal(policy(torch.as_tensor(obs)), action)

    batch = np.stack([env.observation_space.sample() for _ in range(64)])
    actions = policy(batch)
    assert actions.shape == (64, 1) and actions.dtype == np.float32
    with torch.no_grad():  # Pendulum's torque is in [-2, 2]: twice the squashed action in [-1, 1]
        squashed = policy.actor.act(torch.as_tensor(batch), deterministic=True).numpy()
    np.testing.assert_allclose(actions, 2.0 * squashed, atol=1e-6)
    np.testing.assert_allclose(policy(batch[5]), actions[5], rtol=1e-5, atol=1e-6)  # one or a batch: the same
    assert policy(batch[:1]).shape == (1, 1)

    torch.manual_seed(0)
    sampled = policy(np.repeat(obs[None], 200, axis=0), deterministic=False)
    assert np.all(np.abs(sampled) <= 2.0) and np.unique(sampled).size > 100  # stochastic: a draw per row
    stochastic = sac_runner.load_policy(PENDULUM, deterministic=False)
    assert not stochastic.deterministic and not np.array_equal(stochastic(batch), stochastic(batch))
    env.close()


def test_a_policy_reproduces_sac_visualize(tmp_path):
    """The episodes a user plays with policy(obs), one observation at a time, give the returns sac-visualize
    prints (it loads its agent through load_policy and plays them batched); policy.evaluate gives them too."""
    for run, which in ((PENDULUM, "best"), (CARTPOLE, "last")):
        policy = sac_runner.load_policy(run, which=which)
        returns = np.array([play(policy, seed) for seed in (4, 5, 6)])
        np.testing.assert_allclose(policy.evaluate(3, seed=4), returns, rtol=1e-6)
        out = io.StringIO()
        args = [str(run), "--episodes", "3", "--seed", "4", "--no-video"] + (["--last"] if which == "last" else [])
        with contextlib.redirect_stdout(out):
            visualize_main(args)
        printed = re.search(r"mean (\S+)  std (\S+)  min (\S+)  max (\S+)", out.getvalue()).groups()
        expected = f"{returns.mean():.2f} {returns.std():.2f} {returns.min():.2f} {returns.max():.2f}"
        assert " ".join(printed) == expected, (run, out.getvalue())
        assert f"{policy.checkpoint} (env step {policy.env_steps})" in out.getvalue()


def test_the_paths_load_policy_takes(tmp_path):
    best = sac_runner.load_policy(PENDULUM)
    obs = np.array([0.3, -0.9, 1.5], dtype=np.float32)
    for path in (PENDULUM / "config.yaml", str(PENDULUM / "checkpoints" / "best.pt")):
        same = sac_runner.load_policy(path)
        assert same.checkpoint == best.checkpoint and same.run_dir == best.run_dir
        np.testing.assert_array_equal(same(obs), best(obs))
    last = sac_runner.load_policy(PENDULUM, which="last")
    assert last.checkpoint.name == "last.pt" and last.env_steps == 600

    lone = tmp_path / "agent.pt"  # outside any run: the config stored in the checkpoint
    shutil.copy(PENDULUM / "checkpoints" / "best.pt", lone)
    alone = sac_runner.load_policy(lone)
    assert alone.run_dir is None and alone.env_id == "Pendulum-v1"
    np.testing.assert_array_equal(alone(obs), best(obs))


def test_bad_paths_and_arguments_are_one_line_errors(tmp_path):
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes((PENDULUM / "checkpoints" / "best.pt").read_bytes()[:500])
    run = shutil.copytree(PENDULUM, tmp_path / "run")
    (run / "checkpoints" / "best.pt").unlink()
    failed = tmp_path / "sweep" / "3"
    failed.mkdir(parents=True)
    (failed / "failed.json").write_text('{"error": "ConfigError", "message": "algorithm.tau=1.5 is outside (0, 1]"}')
    cases = [
        ((tmp_path / "missing",), {}, ConfigError, f"{tmp_path / 'missing'} does not exist"),
        ((tmp_path / "sweep",), {}, ConfigError, "is not a sac_runner run directory"),
        ((failed,), {}, ConfigError, "failed (ConfigError: algorithm.tau=1.5 is outside (0, 1]) before writing"),
        ((PENDULUM / "summary.json",), {}, ConfigError, "is not a checkpoint; pass its run directory"),
        ((truncated,), {}, CheckpointError, "is truncated or corrupted"),
        ((run,), {}, ConfigError, "has no checkpoints/best.pt (the run stopped before its first evaluation)"),
        ((PENDULUM,), {"which": "middle"}, ConfigError, "which='middle' is not a checkpoint of a run"),
        ((PENDULUM / "checkpoints" / "best.pt",), {"which": "last"}, ConfigError, "is already a checkpoint file"),
        ((PENDULUM,), {"device": "gpu"}, ConfigError, "device='gpu' is not a device; use 'cpu', 'cuda' or 'auto'"),
    ]
    if not torch.cuda.is_available():
        cases.append(((PENDULUM,), {"device": "cuda"}, ConfigError, "no CUDA device is available; use device='cpu'"))
    for args, kwargs, error, needle in cases:
        with pytest.raises(error) as e:
            sac_runner.load_policy(*args, **kwargs)
        assert needle in str(e.value) and "\n" not in str(e.value), (args, kwargs, str(e.value))

    policy = sac_runner.load_policy(PENDULUM)
    with pytest.raises(ValueError, match=r"^an observation of shape \(4,\) does not fit Pendulum-v1, whose") as e:
        policy(np.zeros(4))
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_a_policy_on_the_gpu():
    cpu, gpu = sac_runner.load_policy(PENDULUM), sac_runner.load_policy(PENDULUM, device="cuda")
    assert gpu.device.type == "cuda" and next(gpu.actor.parameters()).is_cuda
    batch = np.random.default_rng(0).uniform(-1, 1, size=(32, 3)).astype(np.float32)
    out = gpu(batch)
    assert isinstance(out, np.ndarray) and out.shape == (32, 1)
    np.testing.assert_allclose(out, cpu(batch), atol=1e-5)
    np.testing.assert_allclose(gpu(torch.as_tensor(batch, device="cuda")), out)


def test_import_sac_runner_stays_light():
    """load_policy is imported at first use: `import sac_runner` (and so sac-report) does not import torch."""
    code = (
        "import sys, sac_runner; assert 'torch' not in sys.modules, 'torch imported'; "
        "sac_runner.load_policy; assert 'torch' in sys.modules; print(sac_runner.__version__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == sac_runner.__version__, proc.stderr


def test_the_readme_example_runs():
    """The README's five lines (blank lines aside: ruff format puts one after the import), on a stored run."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"## A trained agent in Python.*?```python\n(.*?)```", text, re.S).group(1)
    assert len([line for line in block.splitlines() if line.strip()]) == 5
    scope: dict = {}
    exec(block.replace("<run dir>", str(PENDULUM)), scope)
    assert scope["policy"].env_id == "Pendulum-v1" and scope["obs"].shape == (3,) and scope["reward"] <= 0
