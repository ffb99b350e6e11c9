"""The baseline: one learner per agent, no redundancy, so any straggler stalls the iteration."""

from __future__ import annotations

from typing import Any

import numpy as np

from simcode.codes.base import Code
from simcode.errors import BadInput


class Uncoded(Code):
    """Identity assignment: learner i updates agent i (needs N = M); no straggler tolerance."""

    name = "uncoded"
    CONSTRUCTION = "the seed's: the identity, learner i updates agent i"

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        super().__init__(n_agents, n_learners, seed, **params)
        if self.n_learners != self.n_agents:
            raise BadInput("n_learners", f"uncoded needs one learner per agent; got {self.n_learners} "
                           f"learners for {self.n_agents} agents; allowed: n_learners = n_agents")
        self._set_matrix(np.eye(self.n_agents))

    def _decodable(self, rows: tuple[int, ...]) -> bool:
        return len(rows) == self.n_agents

    def _compute_tolerance(self) -> int:
        return 0
