"""The paper's MDS code: a real Vandermonde matrix, kept so its published results can be reproduced.

Row i is [x_i^0, x_i^1, ..., x_i^(M-1)] with x_i = N nodes evenly spaced in [0.1, 0.5]. Any M rows
are independent (distinct nodes), so any M results decode in exact arithmetic, but the condition
number grows exponentially with M: measured worst relative decode error with float32 results is
~2e-4 at M=5, N=6, ~1e2 at M=10, N=11 and ~1e8 at M=15, N=16 (float64: 1e-12, 2e-6, 1). Decoding
therefore warns (RuntimeWarning, once per code object) when cond x eps of the results' precision
exceeds the accuracy target (1e-4 for float32, 1e-9 for float64), and construction warns when even
float64 results with no straggler cannot meet 1e-9. Use `mds` for a stable code.
"""

from __future__ import annotations

import numpy as np

from simcode.codes.base import ACCURACY
from simcode.codes.mds import AnyMOfN


class MDSVandermonde(AnyMOfN):
    """The paper's real Vandermonde MDS code (nodes in [0.1, 0.5]); ill-conditioned beyond M ~ 6."""

    name = "mds_vandermonde"
    WARN_IF_INACCURATE = True

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0):
        super().__init__(n_agents, n_learners, seed)
        nodes = np.linspace(0.1, 0.5, self.n_learners)
        self._set_matrix(np.vander(nodes, self.n_agents, increasing=True))
        best = np.linalg.cond(self.matrix)  # all N results: the best case
        if best * np.finfo(np.float64).eps > ACCURACY[np.dtype(np.float64)]:
            self._warn_if_inaccurate(best, np.float64)
