"""Environments: CartPoleContinuous-v1 semantics, action scaling, and vector autoreset at episode boundaries."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from sac_runner.agent.buffer import ReplayBuffer
from sac_runner.config import compose
from sac_runner.envs import ActionScaler, CartPoleContinuousEnv, make_vector_env, transition_next_obs


def test_cartpole_continuous_spaces_and_reset():
    env = gym.make("CartPoleContinuous-v1")
    assert env.spec.max_episode_steps == 500
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float32 and np.all(np.abs(obs) <= 0.05)


def test_cartpole_continuous_dynamics_match_the_classic_equations():
    env = CartPoleContinuousEnv()
    env.reset(seed=0)
    env.state = np.array([0.1, -0.2, 0.05, 0.3])
    obs, rew, term, trunc, _ = env.step(np.array([0.5], dtype=np.float32))
    x, x_dot, th, th_dot = 0.1, -0.2, 0.05, 0.3
    force, g, mc, mp, length, dt = 5.0, 9.8, 1.0, 0.1, 0.5, 0.02
    temp = (force + mp * length * th_dot**2 * math.sin(th)) / (mc + mp)
    thacc = (g * math.sin(th) - math.cos(th) * temp) / (length * (4 / 3 - mp * math.cos(th) ** 2 / (mc + mp)))
    xacc = temp - mp * length * thacc * math.cos(th) / (mc + mp)
    expected = [x + dt * x_dot, x_dot + dt * xacc, th + dt * th_dot, th_dot + dt * thacc]
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    assert rew == 1.0 and not term and not trunc


def test_cartpole_continuous_force_is_clipped():
    a, b = CartPoleContinuousEnv(), CartPoleContinuousEnv()
    a.reset(seed=1), b.reset(seed=1)
    np.testing.assert_array_equal(a.step(np.array([7.0]))[0], b.step(np.array([1.0]))[0])


@pytest.mark.parametrize("state", [[2.5, 0, 0, 0], [-2.5, 0, 0, 0], [0, 0, 0.25, 0], [0, 0, -0.25, 0]])
def test_cartpole_continuous_terminates_out_of_bounds_with_reward(state):
    env = CartPoleContinuousEnv()
    env.reset(seed=0)
    env.state = np.array(state, dtype=np.float64)
    _, rew, term, trunc, _ = env.step(np.zeros(1))
    assert term and not trunc and rew == 1.0


def test_cartpole_continuous_truncates_at_500_steps_and_returns_500():
    env = gym.make("CartPoleContinuous-v1")
    env.reset(seed=0)
    total, steps = 0.0, 0
    while True:
        # a stabilising PD controller keeps the pole up for the whole episode
        x, x_dot, th, th_dot = env.unwrapped.state
        _, r, term, trunc, _ = env.step(np.array([np.clip(10 * th + 2 * th_dot + 0.1 * x + 0.2 * x_dot, -1, 1)]))
        total, steps = total + r, steps + 1
        if term or trunc:
            break
    assert (steps, total, term, trunc) == (500, 500.0, False, True)


def test_action_scaler_maps_the_unit_box_onto_the_bounds():
    space = gym.spaces.Box(np.array([-2.0, 0.0]), np.array([2.0, 1.0]), dtype=np.float32)
    s = ActionScaler(space)
    np.testing.assert_allclose(s.to_env(np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])), [[-2, 0], [2, 1], [0, 0.5]])
    np.testing.assert_allclose(s.to_env(np.array([[3.0, -3.0]])), [[2, 0]])  # clipped to the box
    assert s.to_env(np.zeros((1, 2))).dtype == np.float32


def test_vector_env_boundary_transitions_use_the_true_last_observation():
    """Drive 3 sub-envs of Pendulum (time limit 7) and CartPole-like terminations through the trainer's
    storage path; no stored transition may span two episodes and truncation must not be 'terminated'."""
    cfg = compose("env=Pendulum-v1", "env.max_episode_steps=7")
    envs = make_vector_env(cfg.env, 3)
    obs, _ = envs.reset(seed=0)
    buf = ReplayBuffer(100, 3, 1, "cpu")
    single = [gym.make("Pendulum-v1", max_episode_steps=7) for _ in range(3)]
    ref_obs = [e.reset(seed=i)[0] for i, e in enumerate(single)]
    np.testing.assert_allclose(obs, np.stack(ref_obs))
    actions = np.linspace(-2, 2, 3 * 20, dtype=np.float32).reshape(20, 3, 1)
    saw_truncation = False
    for t in range(20):
        nxt, rew, term, trunc, infos = envs.step(actions[t])
        done = term | trunc
        real = transition_next_obs(nxt, infos, done)
        buf.add(obs, actions[t] / 2, rew, real, term)
        for i, e in enumerate(single):  # the same episode played by a plain env
            o2, r2, te2, tr2, _ = e.step(actions[t, i])
            np.testing.assert_allclose(real[i], o2, rtol=1e-5)  # s' is the real next state
            if te2 or tr2:
                o2, _ = e.reset()
                np.testing.assert_allclose(nxt[i], o2, rtol=1e-5)  # the next s is the new episode's first
                saw_truncation |= tr2
        obs = nxt
    assert saw_truncation
    assert buf.data["terminated"][: buf.size].sum() == 0  # time limits are never terminal


def test_vector_env_termination_is_stored_as_terminal():
    cfg = compose()
    envs = make_vector_env(cfg.env, 2)
    obs, _ = envs.reset(seed=0)
    buf = ReplayBuffer(1000, 4, 1, "cpu")
    terminal_rows = []
    for _ in range(200):  # full force one way: the cart leaves the track within ~50 steps
        act = np.ones((2, 1), dtype=np.float32)
        nxt, rew, term, trunc, infos = envs.step(act)
        real = transition_next_obs(nxt, infos, term | trunc)
        for i in np.flatnonzero(term):
            terminal_rows.append(real[i])
            # the stored s' is out of bounds (a terminal state), the next s is a fresh reset state
            assert abs(real[i][0]) > 2.4 or abs(real[i][2]) > 12 * math.pi / 180
            assert np.all(np.abs(nxt[i]) <= 0.05)
        buf.add(obs, act, rew, real, term)
        obs = nxt
    assert len(terminal_rows) >= 4
    term_mask = buf.data["terminated"][: buf.size].bool()
    assert int(term_mask.sum()) == len(terminal_rows)
    stored = buf.data["next_obs"][: buf.size][term_mask].numpy()
    np.testing.assert_allclose(stored, np.stack(terminal_rows), rtol=1e-6)
    # no transition crosses a boundary: every non-terminal s' equals the following s of its sub-env
    o, n = buf.data["obs"][: buf.size].view(-1, 2, 4), buf.data["next_obs"][: buf.size].view(-1, 2, 4)
    t = buf.data["terminated"][: buf.size].view(-1, 2)
    cont = t[:-1] == 0
    torch.testing.assert_close(n[:-1][cont], o[1:][cont])


def test_an_unbounded_action_space_is_rejected_by_the_scaler():
    with pytest.raises(ValueError):
        ActionScaler(gym.spaces.Box(-np.inf, np.inf, (1,)))
