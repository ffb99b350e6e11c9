"""LDPC assignment: sparse binary parity structure, decoded by peeling (cheap, no matrix solve).

Construction. H is an (N - M) x N binary parity-check matrix whose columns all have weight dv and
whose rows have weight dc (N * dv = (N - M) * dc; with dc unset, row weights are as equal as
possible, i.e. (dv, dc)-regular whenever N * dv / (N - M) is an integer). Gallager's banded
construction cannot be used as such: each band's rows add up to the all-ones word, so its H has
GF(2) rank at most (N - M) - dv + 1 and never yields M information bits. Instead H is the standard
random regular ensemble: each column joins dv distinct checks drawn in proportion to their free
sockets (seeded "code" stream), redrawn until H has GF(2) rank N - M. For the same reason dv must be
odd (an even column weight makes all checks add up to zero). Gaussian elimination over GF(2) puts H
in systematic form [P | I] (column permutation), and the generator's rows are the learners: the M
information bits are learners 0..M-1 (identity rows), parity bit r is learner M + r, computing the
real sum of the agents in row r of P. A parity row may come out empty (that learner is idle).

Decoding (decoder='peel'): a received row with exactly one unknown agent resolves it; known agents
are subtracted from the others; repeat. That order makes the used rows lower triangular, so the
subtraction runs as one BLAS triangular solve per payload chunk. `can_decode` is exactly "peeling
finishes". decoder='solve' uses the rank test and a least-squares solve instead. The tolerance is
exact by enumeration of erasure sets up to a budget (then a lower bound; see tolerance.py).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from simcode.codes.base import Code
from simcode.errors import BadInput
from simcode.params import MAX_COUNT, Int, ParamsModel
from simcode.seeding import generator

MAX_ATTEMPTS = 200


def gf2_systematic(h: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """Row-reduce binary h over GF(2); (reduced h, pivot columns) or None when rank-deficient."""
    h = h.copy()
    rows, cols = h.shape
    pivots: list[int] = []
    r = 0
    for c in range(cols):
        if r == rows:
            break
        hit = np.flatnonzero(h[r:, c])
        if hit.size == 0:
            continue
        h[[r, r + hit[0]]] = h[[r + hit[0], r]]
        others = np.flatnonzero(h[:, c])
        others = others[others != r]
        h[others] ^= h[r]
        pivots.append(c)
        r += 1
    return (h, pivots) if r == rows else None


def random_regular_checks(rng, n_bits: int, dv: int, row_weights: np.ndarray) -> np.ndarray | None:
    """Binary H with column weights dv and the given row weights, or None when a draw dead-ends."""
    free = row_weights.astype(float).copy()
    h = np.zeros((len(row_weights), n_bits), dtype=np.uint8)
    for col in rng.permutation(n_bits):
        open_checks = np.flatnonzero(free > 0)
        if open_checks.size < dv:
            return None
        chosen = rng.choice(open_checks, size=dv, replace=False, p=free[open_checks] / free[open_checks].sum())
        h[chosen, col] = 1
        free[chosen] -= 1
    return h


class LDPC(Code):
    """Systematic generator of a random (dv, dc)-regular LDPC code; decoded by peeling."""

    name = "ldpc"
    CONSTRUCTION = ("simcode's own: a random (dv, dc)-regular code with a systematic generator, so that any M "
                    "fits; the seed's (coding_framework/RegularLDPC_code.py) takes pyldpc's make_ldpc, Gallager's "
                    "banded parity checks, whose rank decides M rather than the number of agents")

    class Params(ParamsModel):
        dv: Int | None = Field(None, ge=1, le=MAX_COUNT, description="column weight: checks per bit, odd and "
                               "at most N - M; unset: 3 (else 1), or the weight that makes dc regular")
        dc: Int | None = Field(None, ge=1, le=MAX_COUNT, description="row weight: bits per check, with "
                               "N * dv = (N - M) * dc; unset: as equal as possible")
        decoder: Literal["peel", "solve"] = Field("peel", description="peel: resolve one agent per row at a "
                                                  "time; solve: rank test and a least-squares solve")

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        super().__init__(n_agents, n_learners, seed, **params)
        m, n = self.n_agents, self.n_learners
        dv, dc = self.dv, self.dc
        checks = n - m
        if checks < 1:
            raise BadInput("n_learners", f"ldpc needs parity learners; allowed: n_learners > n_agents ({m})")
        # Default: column weight 3 (the classic choice), else 1, whichever gives a full-rank H.
        if dv is not None:
            candidates = [dv]
        elif dc is not None and n * dc % checks == 0 and dc * checks % n == 0:
            candidates = [dc * checks // n]  # the column weight that makes dc regular
        else:
            candidates = [w for w in (3, 1) if w <= checks]
        for self.dv in candidates:
            if self.dv % 2 == 0 or self.dv > checks:
                raise BadInput("dv", f"{self.dv} does not work: even column weights make the checks "
                               f"dependent over GF(2) and a bit has at most N - M = {checks} checks; "
                               f"allowed: odd dv in [1, {checks}]")
            row_weights = self._row_weights(n, checks, dc)
            built = self._draw(generator(self.seed, "code"), n, row_weights)
            if built is not None:
                break
        else:
            raise BadInput("dv", f"no ({self.dv}, {dc or 'near'})-regular parity-check matrix of full GF(2) "
                           f"rank {checks} for N={n} in {MAX_ATTEMPTS} seeded draws; allowed: other dv/dc")
        self.dc = int(row_weights[0]) if row_weights.min() == row_weights.max() else None
        self.row_weights = row_weights
        h, reduced_h, pivots = built
        self.parity_checks = h
        info = [c for c in range(n) if c not in set(pivots)]
        self._set_matrix(np.vstack([np.eye(m), reduced_h[:, info].astype(np.float64)]))
        # Python ints, not numpy's: a support is an M-bit mask, and int64 shifts overflow from bit 63.
        self._support = [sum(1 << int(j) for j in np.flatnonzero(row)) for row in self.matrix]

    def _row_weights(self, n: int, checks: int, dc: int | None) -> np.ndarray:
        if dc is None:
            base, extra = divmod(n * self.dv, checks)
            weights = np.full(checks, base)
            weights[:extra] += 1
            return weights
        if n * self.dv != checks * dc:
            regular = [c for c in range(1, n + 1) if n * self.dv == checks * c]
            hint = f"dc = {regular[0]}" if regular else "no dc for this dv (leave dc unset for near-regular)"
            raise BadInput("dc", f"a ({self.dv}, {dc})-regular code needs N*dv = (N-M)*dc, but "
                           f"{n}*{self.dv} != {checks}*{dc}; allowed: {hint}")
        return np.full(checks, dc)

    def _draw(self, rng, n: int, row_weights: np.ndarray):
        for _ in range(MAX_ATTEMPTS):
            h = random_regular_checks(rng, n, self.dv, row_weights)
            reduced = None if h is None else gf2_systematic(h)
            if reduced is not None:
                return (h, *reduced)
        return None

    # ----- peeling ------------------------------------------------------------------------------
    def peel_order(self, received) -> list[tuple[int, int]] | None:
        """[(learner, agent), ...] in the order peeling resolves agents, or None if it gets stuck."""
        unknown = (1 << self.n_agents) - 1
        pending = [(i, self._support[i]) for i in self._rows(received) if self._support[i]]
        order: list[tuple[int, int]] = []
        progress = True
        while unknown and progress:
            progress = False
            for i, support in pending:
                left = support & unknown
                if left and not left & (left - 1):
                    unknown &= ~left
                    order.append((i, left.bit_length() - 1))
                    progress = True
        return None if unknown else order

    def _decodable(self, rows: tuple[int, ...]) -> bool:
        if self.decoder == "solve":
            return super()._decodable(rows)
        return self.peel_order(rows) is not None

    def _plan(self, rows: tuple[int, ...]):
        if self.decoder == "solve":
            return super()._plan(rows)
        order = self.peel_order(rows)
        direct = [(i, a) for i, a in order if i in self._unit_agent]
        rest = [(i, a) for i, a in order if i not in self._unit_agent]
        if not rest:
            return direct, None
        eq_rows, unknown = [i for i, _ in rest], [a for _, a in rest]
        lower = np.ascontiguousarray(self.matrix[np.ix_(eq_rows, unknown)])
        return direct, (eq_rows, unknown, ("lower", None, lower))

    def survives(self, erased: np.ndarray) -> np.ndarray:
        if self.decoder == "solve":
            return super().survives(erased)
        erased = np.asarray(erased, dtype=int)
        alive = np.ones((len(erased), self.n_learners), dtype=bool)
        np.put_along_axis(alive, erased, False, axis=1)
        support = (self.matrix != 0).astype(float)
        unknown = np.ones((len(erased), self.n_agents), dtype=bool)
        for _ in range(self.n_agents):
            resolving = alive & (unknown.astype(float) @ support.T == 1)
            newly = unknown & (resolving.astype(float) @ support > 0)
            if not newly.any():
                break
            unknown &= ~newly
        return ~unknown.any(axis=1)
