"""Worst-case straggler tolerance by enumeration, for codes without a closed form.

The tolerance is the largest s such that every set of N - s learners decodes. Decodability only
improves when learners are added (for rank and for peeling alike), so it is enough to look for the
smallest erasure set that breaks decoding: try every set of s erased learners for s = 1, 2, ...
An agent whose every holder is erased is lost, so min column weight - 1 (and N - M) bound the
answer from above; the search stops there. When the number of erasure sets to try exceeds
ENUMERATION_BUDGET, the search stops early and the value returned is a proven lower bound (every
erasure set that small was checked), flagged by `tolerance_exact = False`.
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np

ENUMERATION_BUDGET = 200_000
BATCH = 4096


def upper_bound(matrix: np.ndarray) -> int:
    n, m = matrix.shape
    column_weight = np.count_nonzero(matrix, axis=0)
    return int(min(n - m, column_weight.min() - 1))


def worst_case_tolerance(code, budget: int = ENUMERATION_BUDGET) -> tuple[int, bool]:
    """(tolerance, exact): enumerate erasure sets of growing size with `code.survives`."""
    bound = upper_bound(code.matrix)
    spent = 0
    for s in range(1, bound + 1):
        total = comb(code.n_learners, s)
        if spent + total > budget:
            return s - 1, False
        spent += total
        combos = itertools.combinations(range(code.n_learners), s)
        while True:
            batch = np.array(list(itertools.islice(combos, BATCH)), dtype=int).reshape(-1, s)
            if len(batch) == 0:
                break
            if not np.all(code.survives(batch)):
                return s - 1, True
    return max(bound, 0), True
