"""Random sparse code: cheap learners (about p * M agents each) at the price of a weaker guarantee.

Each entry is nonzero with probability `p` (default 0.8, the seed's density), its value drawn from
N(0, 1), all from the seeded "code" stream (the seed draws the same distribution from numpy's global
generator seeded with 30; the matrices differ, the ensemble is the same). The whole N x M matrix must
have rank M; draws are repeated (same stream) up to MAX_ATTEMPTS times, then the parameters are
rejected. A learner may draw an all-zero row: it is then idle (load 0), which the load vector shows.
A received set decodes when its rows have numerical rank M (SVD, singular values above 1e-10 of the
largest).

Tolerance: the nonzero values are Gaussian, so (with probability 1) a set of rows has rank M exactly
when its support graph (rows - agents) has a matching covering every agent. By Hall's theorem, the
erasures survived in the worst case are then min over nonempty agent sets U of |N(U)| - |U| (N(U):
learners touching U). That "surplus" is at least t iff, for every agent j, demanding t + 1 learners
for j and one for each other agent is feasible: a small max-flow per agent (scipy.sparse.csgraph),
milliseconds even at M=30, N=40, where enumerating erasure sets would take seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from simcode.codes.base import Code, full_column_rank
from simcode.codes.tolerance import upper_bound
from simcode.errors import BadInput
from simcode.params import Float, ParamsModel
from simcode.seeding import generator

MAX_ATTEMPTS = 100


class RandomSparse(Code):
    """Random sparse Gaussian assignment (entry nonzero with probability p); decodes on rank M."""

    name = "random_sparse"
    CONSTRUCTION = ("the seed's ensemble (coding_framework/RandomLinear_code.py: N(0, 1) entries kept with "
                    "probability p; p = 0.8 in its MADDPG runs) from simcode's seeded stream, so the matrices "
                    "differ; simcode redraws until the rank is M")

    class Params(ParamsModel):
        p: Float = Field(0.8, gt=0, le=1, description="probability that an entry is nonzero (the seed's: 0.8)")

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        super().__init__(n_agents, n_learners, seed, **params)
        m, n = self.n_agents, self.n_learners
        rng = generator(self.seed, "code")
        for _ in range(MAX_ATTEMPTS):
            matrix = np.where(rng.random((n, m)) < self.p, rng.standard_normal((n, m)), 0.0)
            if full_column_rank(matrix):
                self._set_matrix(matrix)
                return
        raise BadInput("p", f"p={self.p} gave no rank-{m} {n} x {m} matrix in {MAX_ATTEMPTS} seeded draws; "
                       "allowed: a larger p (or more learners)")

    def _compute_tolerance(self) -> int:
        best = upper_bound(self.matrix)
        for agent in range(self.n_agents):
            while best > 0 and not self._matching_covers(agent, best + 1):
                best -= 1
        return best

    def _matching_covers(self, agent: int, demand: int) -> bool:
        """Can `agent` get `demand` distinct learners and every other agent one, all on its support?"""
        m, n = self.n_agents, self.n_learners
        source, sink = 0, 1 + m + n
        rows, agents = np.nonzero(self.matrix)
        supply = np.ones(m, dtype=np.int32)
        supply[agent] = demand
        tails = np.concatenate([np.zeros(m, int), 1 + agents, 1 + m + np.arange(n)])
        heads = np.concatenate([1 + np.arange(m), 1 + m + rows, np.full(n, sink)])
        capacity = np.concatenate([supply, np.ones(len(rows) + n, dtype=np.int32)]).astype(np.int32)
        graph = csr_matrix((capacity, (tails, heads)), shape=(sink + 1, sink + 1))
        return maximum_flow(graph, source, sink).flow_value == m - 1 + demand
