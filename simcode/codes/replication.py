"""Replication: the simplest redundancy, each agent's update computed by several learners.

Default placement (the seed's, coding_framework/ReplicationBased.py): learner i computes agent
i mod M alone. Learners 0..M-1 are the identity, and the extra learners copy agents 0, 1, ... in
turn (for N < 2M exactly the seed's rows: agents 0..N-M-1 get a second copy), so every learner
works and loads are all 1. Agents get floor(N/M) or ceil(N/M) copies; the worst case survives
floor(N/M) - 1 stragglers, and every extra copy still shortens the average wait.

With an explicit `replicas` r, each agent is computed by exactly r learners instead: the M * r
copies, agent by agent, are dealt round-robin (copy c goes to learner c mod N), so loads differ by
at most one, and when M * r < N the last learners are idle (load 0, which `show` lists).
Decoding is copying one received result per agent, so it is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from simcode.codes.base import Code
from simcode.errors import BadInput
from simcode.params import MAX_COUNT, Int, ParamsModel


class Replication(Code):
    """Learner i computes agent i mod M (the seed's), or each agent on `replicas` learners; exact copies."""

    name = "replication"
    CONSTRUCTION = ("the seed's (coding_framework/ReplicationBased.py) when replicas is unset: the identity, "
                    "then copies of agents 0, 1, ... (the seed's code stops at N = 2M; simcode goes on round-robin); "
                    "with replicas: simcode's own round-robin placement")

    class Params(ParamsModel):
        replicas: Int | None = Field(None, ge=1, le=MAX_COUNT, description="learners that compute each agent "
                                     "(at most N); unset: learner i computes agent i mod M (the seed's)")

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        super().__init__(n_agents, n_learners, seed, **params)
        m, n = self.n_agents, self.n_learners
        matrix = np.zeros((n, m))
        if self.replicas is None:  # the seed's: learner i computes agent i mod M
            matrix[np.arange(n), np.arange(n) % m] = 1.0
        elif self.replicas > n:
            raise BadInput("replicas", f"{self.replicas} copies need as many distinct learners; "
                           f"allowed: 1 <= replicas <= n_learners ({n})")
        else:
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
        return int(self.matrix.sum(axis=0).min()) - 1  # every copy of the least-copied agent but one
