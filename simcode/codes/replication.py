"""Replication: the simplest redundancy, each agent's update computed by `replicas` learners.

Placement: the M * replicas copies, agent by agent, are dealt round-robin over the learners (copy
c goes to learner c mod N). An agent's copies are consecutive, so with replicas <= N no learner holds
one agent twice, and learner loads differ by at most one. When M * replicas < N the last
N - M * replicas learners get nothing to do (load 0): they are idle, not wrong, and `show` lists
their load. Decoding is copying one received result per agent, so it is exact.
"""

from __future__ import annotations

import numpy as np

from simcode.codes.base import Code, check_count
from simcode.errors import BadInput


class Replication(Code):
    """Each agent on `replicas` learners (default floor(N/M)), round-robin; survives replicas - 1."""

    name = "replication"
    PARAMS = ("replicas",)

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, replicas: int | None = None):
        super().__init__(n_agents, n_learners, seed)
        m, n = self.n_agents, self.n_learners
        if replicas is None:
            replicas = n // m
        self.replicas = check_count("replicas", replicas)
        if self.replicas > n:
            raise BadInput("replicas", f"{self.replicas} copies need as many distinct learners; "
                           f"allowed: 1 <= replicas <= n_learners ({n})")
        matrix = np.zeros((n, m))
        for copy in range(m * self.replicas):
            matrix[copy % n, copy // self.replicas] = 1.0
        self._set_matrix(matrix)

    def _decodable(self, rows: tuple[int, ...]) -> bool:
        return len({self._unit_agent[i] for i in rows if i in self._unit_agent}) == self.n_agents

    def survives(self, erased: np.ndarray) -> np.ndarray:
        erased = np.asarray(erased, dtype=int)
        alive = np.ones((len(erased), self.n_learners), dtype=bool)
        np.put_along_axis(alive, erased, False, axis=1)
        return np.all(alive.astype(float) @ self.matrix > 0, axis=1)

    def _compute_tolerance(self) -> int:
        return self.replicas - 1
