"""The paper's MDS code: the seed's real Vandermonde matrix, kept so its published results can be reproduced.

Exactly the seed's construction (coding_framework/MDS_code.py of the paper's code):
`np.vander(np.linspace(0.1, 0.5, M), N).T`, i.e. agent j has the node x_j (M nodes evenly spaced in
[0.1, 0.5]) and learner i returns sum_j x_j^(N-1-i) theta_j: the first learner the highest power,
the last learner the plain sum. Any M rows are independent (distinct positive nodes, distinct
exponents), so any M results decode in exact arithmetic, but the condition number grows
exponentially with M (all N rows: 8e3 at M=5, N=6; 6e9 at M=10, N=11; 7e15 at M=15, N=16; single
M-subsets are up to 10x worse). Decoding therefore warns (RuntimeWarning, once per code object)
when cond x eps of the results' precision exceeds the accuracy target (1e-4 for float32, 1e-9 for
float64), and construction warns when even float64 results with no straggler cannot meet 1e-9.
Use `mds` for a stable code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simcode.codes.base import ACCURACY
from simcode.codes.mds import AnyMOfN
from simcode.errors import BadInput


class MDSVandermonde(AnyMOfN):
    """The paper's real Vandermonde MDS code (nodes in [0.1, 0.5]); ill-conditioned beyond M ~ 6."""

    name = "mds_vandermonde"
    CONSTRUCTION = "exactly the seed's (coding_framework/MDS_code.py): np.vander(np.linspace(.1, .5, M), N).T"
    WARN_IF_INACCURATE = True

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        super().__init__(n_agents, n_learners, seed, **params)
        nodes = np.linspace(0.1, 0.5, self.n_agents)  # one node per agent, as in the seed
        matrix = np.vander(nodes, self.n_learners).T
        # Past x^323 the smallest node's powers underflow to 0 in float64: rows that are no longer
        # Vandermonde rows, so M of them need not decode (all-zero rows cannot decode at all).
        underflowed = int(np.sum(~matrix.all(axis=1)))
        if underflowed:
            raise BadInput("n_learners", f"{self.n_learners} learners make the highest powers x^(N-1) of the nodes "
                           f"underflow to 0 in float64; allowed: n_learners <= {self.n_learners - underflowed} "
                           "(use 'mds' for more learners)")
        self._set_matrix(matrix)
        best = np.linalg.cond(self.matrix)  # all N results: the best case
        if best * np.finfo(np.float64).eps > ACCURACY[np.dtype(np.float64)]:
            self._warn_if_inaccurate(best, np.float64)
