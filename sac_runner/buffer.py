"""A preallocated replay buffer of torch tensors, sampled uniformly by index."""

from __future__ import annotations

import numpy as np
import torch

from sac_runner.sac import Batch

FIELDS = ("obs", "act", "rew", "next_obs", "terminated")


class ReplayBuffer:
    """A ring of the last `capacity` transitions (s, a, r, s', terminated) as float32 tensors on `device`,
    sampled uniformly with its own seeded generator.

    Args:
        capacity: transitions kept; the oldest are overwritten once it is full.
        obs_dim, act_dim: the flattened observation and action sizes.
        device: where the storage lives and batches are sampled (cpu or cuda).
        seed: seed of the sampling generator.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device, seed: int = 0):
        self.capacity, self.device = int(capacity), torch.device(device)
        shapes = {"obs": (obs_dim,), "act": (act_dim,), "rew": (), "next_obs": (obs_dim,), "terminated": ()}
        self.data = {
            k: torch.zeros((self.capacity, *s), dtype=torch.float32, device=self.device) for k, s in shapes.items()
        }
        # on the CPU, writes go through NumPy views of the same memory: a few rows per environment step
        # cost a fraction of torch's indexing overhead
        self._views = {k: v.numpy() for k, v in self.data.items()} if self.device.type == "cpu" else None
        self.pos = 0  # next slot to write
        self.size = 0  # number of valid slots
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return self.size

    def add(self, obs, act, rew, next_obs, terminated) -> None:
        """Store a batch of n transitions (one per sub-environment), overwriting the oldest when full."""
        values = dict(obs=obs, act=act, rew=rew, next_obs=next_obs, terminated=terminated)
        n = len(obs)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        if self._views is not None:
            rows = (
                slice(self.pos, self.pos + n)
                if self.pos + n <= self.capacity
                else (self.pos + np.arange(n)) % self.capacity
            )
            for k, v in values.items():
                view = self._views[k]
                view[rows] = np.asarray(v, dtype=np.float32).reshape(n, *view.shape[1:])
        else:
            idx = ((self.pos + torch.arange(n)) % self.capacity).to(self.device)
            for k, v in values.items():
                t = torch.as_tensor(np.asarray(v, dtype=np.float32)).to(self.device, non_blocking=True)
                self.data[k].index_copy_(0, idx, t.reshape(n, *self.data[k].shape[1:]))
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return Batch(*(self.data[k][idx] for k in FIELDS))

    # --- persistence (the trainer decides whether the contents are saved) ---
    def state_dict(self, with_data: bool = True) -> dict:
        state = {"pos": self.pos, "size": self.size, "capacity": self.capacity, "generator": self.generator.get_state()}
        if with_data:
            state["data"] = {k: v[: self.size].cpu() for k, v in self.data.items()}
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
