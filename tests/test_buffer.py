import numpy as np
import torch

from sac_runner.agent.buffer import ReplayBuffer


def add_range(buf, start, n):
    v = np.arange(start, start + n, dtype=np.float32)
    buf.add(v[:, None], v[:, None] / 10, v, v[:, None] + 0.5, (v % 2 == 0).astype(np.float32))


def test_add_and_wrap_around():
    buf = ReplayBuffer(5, 1, 1, "cpu")
    add_range(buf, 0, 3)
    assert len(buf) == 3 and buf.pos == 3
    add_range(buf, 3, 4)  # 3, 4 fill the end, 5, 6 overwrite slots 0, 1
    assert len(buf) == 5 and buf.pos == 2
    assert buf.data["obs"][:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buf.data["rew"].tolist() == [5, 6, 2, 3, 4]
    assert buf.data["next_obs"][:, 0].tolist() == [5.5, 6.5, 2.5, 3.5, 4.5]
    assert buf.data["terminated"].tolist() == [0, 1, 1, 0, 1]


def test_sample_only_valid_rows_and_keeps_fields_aligned():
    buf = ReplayBuffer(100, 1, 1, "cpu", seed=3)
    add_range(buf, 0, 10)
    b = buf.sample(500)
    assert b.obs.shape == (500, 1) and b.rew.shape == (500,)
    assert set(b.rew.tolist()) == set(range(10))  # every valid row, nothing else
    torch.testing.assert_close(b.next_obs[:, 0], b.rew + 0.5)
    torch.testing.assert_close(b.act[:, 0], b.rew / 10)


def test_sampling_is_seeded():
    a, b = ReplayBuffer(50, 1, 1, "cpu", seed=7), ReplayBuffer(50, 1, 1, "cpu", seed=7)
    add_range(a, 0, 50), add_range(b, 0, 50)
    assert torch.equal(a.sample(64).rew, b.sample(64).rew)


def test_state_dict_round_trip():
    a = ReplayBuffer(8, 1, 1, "cpu", seed=1)
    add_range(a, 0, 6)
    add_range(a, 6, 5)  # wraps
    a.sample(4)
    b = ReplayBuffer(8, 1, 1, "cpu", seed=99)
    b.load_state_dict(a.state_dict())
    assert (b.pos, b.size) == (a.pos, a.size)
    assert torch.equal(a.sample(16).obs, b.sample(16).obs)


class CountingWrites(torch.Tensor):
    """A tensor that counts the writes made into it through torch indexing."""

    writes = 0

    def __setitem__(self, key, value):
        CountingWrites.writes += 1
        super().__setitem__(key, value)

    def index_copy_(self, *args, **kwargs):
        CountingWrites.writes += 1
        return super().index_copy_(*args, **kwargs)


def test_torch_indexing_path_matches_the_cpu_view_path():
    """Devices other than the CPU write with torch indexing; both paths must store the same rows."""
    fast, slow = ReplayBuffer(7, 1, 1, "cpu"), ReplayBuffer(7, 1, 1, "cpu", numpy_writes=False)
    assert fast.numpy_writes and not slow.numpy_writes
    slow.storage = slow.storage.as_subclass(CountingWrites)  # the same memory, its torch writes counted
    CountingWrites.writes = 0
    for start, n in ((0, 3), (3, 1), (4, 5), (9, 7)):  # single rows, wrap-arounds, a full refill
        add_range(fast, start, n), add_range(slow, start, n)
        assert (fast.pos, fast.size) == (slow.pos, slow.size)
        for k in fast.data:
            assert torch.equal(fast.data[k], slow.data[k]), k
    assert CountingWrites.writes == 4  # every add went through torch indexing
    assert slow.data["obs"][:, 0].tolist() == [14, 15, 9, 10, 11, 12, 13]  # and stored the rows
