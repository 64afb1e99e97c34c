"""A preallocated replay buffer of torch tensors, sampled uniformly by index."""

from __future__ import annotations

import numpy as np
import torch

from sac_runner.agent.sac import Batch

FIELDS = ("obs", "act", "rew", "next_obs", "terminated")


def batch_of(rows: torch.Tensor, columns: dict) -> Batch:
    """Rows of a ReplayBuffer's storage as a Batch: a view of each field's columns."""
    return Batch(*(rows[:, columns[k]] for k in FIELDS))


class ReplayBuffer:
    """A ring of the last `capacity` transitions (s, a, r, s', terminated) as float32 tensors on `device`,
    sampled uniformly with its own seeded generator.

    A transition is one row of a single (capacity, 2 obs_dim + act_dim + 2) tensor, and `data` holds a
    view of its columns per field: a batch is one gather of rows instead of one per field, and on a
    GPU an environment step is one host-to-device copy.

    Args:
        capacity: transitions kept; the oldest are overwritten once it is full.
        obs_dim, act_dim: the flattened observation and action sizes.
        device: where the storage lives and batches are sampled (cpu or cuda).
        seed: seed of the sampling generator.
        numpy_writes: write new rows through a NumPy view of the storage (the default on the CPU, where a few
            rows per environment step cost a fraction of torch's indexing overhead); False: torch indexing,
            as on a GPU.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        device: torch.device,
        seed: int = 0,
        numpy_writes: bool | None = None,
    ):
        self.capacity, self.device = int(capacity), torch.device(device)
        widths = {"obs": obs_dim, "act": act_dim, "rew": 1, "next_obs": obs_dim, "terminated": 1}
        self.storage = torch.zeros((self.capacity, sum(widths.values())), dtype=torch.float32, device=self.device)
        self.columns, start = {}, 0
        for k, w in widths.items():  # rew and terminated are single columns, (capacity,) views
            self.columns[k] = slice(start, start + w) if k in ("obs", "act", "next_obs") else start
            start += w
        self.data = {k: self.storage[:, c] for k, c in self.columns.items()}
        self.numpy_writes = self.device.type == "cpu" if numpy_writes is None else bool(numpy_writes)
        if self.numpy_writes and self.device.type != "cpu":
            raise ValueError(f"numpy_writes needs the storage on the CPU, not on {self.device}")
        self._view = self.storage.numpy() if self.numpy_writes else None
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return self.size

    def add(self, obs, act, rew, next_obs, terminated) -> None:
        """Store a batch of n transitions (one per sub-environment), overwriting the oldest when full."""
        n = len(obs)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        fields = (obs, act, rew, next_obs, terminated)  # in FIELDS order, the columns' order
        rows = np.concatenate([np.asarray(v, dtype=np.float32).reshape(n, -1) for v in fields], axis=1)
        if self.pos + n <= self.capacity:
            where: slice | np.ndarray = slice(self.pos, self.pos + n)
        else:
            where = (self.pos + np.arange(n)) % self.capacity
        if self._view is not None:
            self._view[where] = rows
        elif isinstance(where, slice):
            self.storage[where] = torch.from_numpy(rows).to(self.device, non_blocking=True)
        else:
            self.storage.index_copy_(0, torch.from_numpy(where).to(self.device), torch.from_numpy(rows).to(self.device))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """A uniform batch of `batch_size` stored transitions (with replacement)."""
        return self.gather(self.sample_indices(batch_size))

    def sample_indices(self, batch_size: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """`batch_size` uniform row indices into the stored transitions, written into `out` when given (a
        fixed index tensor that a captured CUDA graph reads). Drawing them takes no host synchronisation."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator, out=out)

    def gather(self, idx: torch.Tensor) -> Batch:
        """The transitions at rows `idx`, as one Batch (a single gather of whole rows)."""
        return batch_of(self.storage[idx], self.columns)

    def use_storage(self, storage: torch.Tensor) -> None:
        """Keep the transitions in `storage` from now on, a tensor of the storage's shape and device (a population
        member's row of one stacked storage, agent/population.py), after copying the current ones into it."""
        if storage.shape != self.storage.shape or storage.device != self.storage.device:
            raise ValueError(f"a storage of shape {tuple(self.storage.shape)} on {self.device} is needed")
        if storage.data_ptr() != self.storage.data_ptr():
            storage.copy_(self.storage)
        self.storage = storage
        self.data = {k: storage[:, c] for k, c in self.columns.items()}
        self._view = storage.numpy() if self.numpy_writes else None

    # --- persistence (the trainer decides whether the contents are saved) ---
    def state_dict(self, with_data: bool = True) -> dict:
        state = {"pos": self.pos, "size": self.size, "capacity": self.capacity, "generator": self.generator.get_state()}
        if with_data:
            # copies: a view would make torch.save write the whole storage, unused rows included
            state["data"] = {k: v[: self.size].to("cpu", copy=True) for k, v in self.data.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Load a state_dict(); the capacity may differ (a resumed run given a larger step budget).

        Into a different capacity, the saved transitions are stored oldest first and the newest ones that
        fit are kept; a buffer that never wrapped keeps its exact layout, so sampling stays identical.
        """
        saved_capacity, pos, size = int(state["capacity"]), int(state["pos"]), int(state["size"])
        self.generator.set_state(state["generator"])
        self.pos, self.size = 0, 0
        if "data" not in state:
            return
        data = {k: v.to(self.device) for k, v in state["data"].items()}
        if set(data) != set(FIELDS) or any(len(v) != size for v in data.values()):
            raise ValueError("the saved replay buffer is incomplete")
        if saved_capacity == self.capacity:
            for k, v in data.items():
                self.data[k][:size] = v
            self.pos, self.size = pos, size
            return
        if size == saved_capacity and pos != 0:  # wrapped: put it in chronological order
            order = torch.cat([torch.arange(pos, size), torch.arange(0, pos)]).to(self.device)
            data = {k: v[order] for k, v in data.items()}
        keep = min(size, self.capacity)
        for k, v in data.items():
            self.data[k][:keep] = v[size - keep :]
        self.size, self.pos = keep, keep % self.capacity
