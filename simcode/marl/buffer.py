"""A ring replay buffer of joint transitions (all agents' obs, actions, rewards), growing on demand."""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    FIELDS = ("obs", "act", "rew", "next_obs", "done")

    def __init__(self, capacity: int, obs_total: int, act_total: int, n_agents: int):
        self.capacity = capacity
        self.widths = {"obs": obs_total, "act": act_total, "rew": n_agents, "next_obs": obs_total,
                       "done": n_agents}
        self.data = {f: np.zeros((0, w), dtype=np.float32) for f, w in self.widths.items()}
        self.size = 0
        self.next = 0  # where the next transition goes

    def __len__(self) -> int:
        return self.size

    def add(self, obs, act, rew, next_obs, done) -> None:
        if self.next >= len(self.data["obs"]):  # grow (by doubling) until the capacity is reached
            rows = min(self.capacity, max(1024, 2 * len(self.data["obs"])))
            for f, arr in self.data.items():
                grown = np.zeros((rows, arr.shape[1]), dtype=np.float32)
                grown[:len(arr)] = arr
                self.data[f] = grown
        for f, value in zip(self.FIELDS, (obs, act, rew, next_obs, done)):
            self.data[f][self.next] = value
        self.next = (self.next + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def gather(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Rows at `index` (any shape): each field gets shape index.shape + (width,)."""
        return {f: arr[index] for f, arr in self.data.items()}

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "size": self.size, "next": self.next,
                "data": {f: arr[:self.size].copy() for f, arr in self.data.items()}}

    @classmethod
    def from_state_dict(cls, sd: dict) -> ReplayBuffer:
        d = sd["data"]
        buf = cls(sd["capacity"], d["obs"].shape[1], d["act"].shape[1], d["rew"].shape[1])
        buf.data = {f: arr.copy() for f, arr in d.items()}
        buf.size, buf.next = sd["size"], sd["next"]
        return buf
