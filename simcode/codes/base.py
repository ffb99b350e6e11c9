"""The contract every coding scheme shares, and the one decoder they reuse.

A scheme only has to build its assignment matrix A (N x M); this base class derives the load, a
cached `can_decode`, the worst-case `tolerance`, and a decoder. Decoding first copies agents that a
received learner computed alone (a unit row: systematic codes, replication), then solves the small
remaining system (received rows x missing agents) once with QR and applies it to the payload in
column chunks, so a decode of 30 x 10^6 values needs no buffer larger than the output plus one chunk.
Schemes with structure (peeling LDPC) override how that small system is factorised, not the plumbing.
`decodable_agents` and `decode_partial` (simcode.codes.partial) do the same for rows that do not
decode: the agents they determine exactly, and those agents' states.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import Field
from scipy.linalg import qr
from scipy.linalg.blas import dtrsm

from simcode.codes.partial import PartialPlan, plan_partial, solve_partial
from simcode.errors import BadInput
from simcode.params import MAX_COUNT, MAX_SEED, Int, ParamsModel, check

# Relative singular-value threshold under which a set of rows counts as rank deficient. Generic real
# codes sit far above it; structural dependencies (sparse supports) sit at rounding level, far below.
RANK_RTOL = 1e-10
# Columns of the payload decoded per pass: keeps the (rows x chunk) float64 buffer cache-sized.
CHUNK = 8192  # payload columns solved at once: the buffer stays in cache
# Accuracy targets: relative decode error allowed for results delivered in each precision.
ACCURACY = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


class CodeSize(ParamsModel):
    """What every scheme is built for."""

    n_agents: Int = Field(ge=1, le=MAX_COUNT, description="agents M")
    n_learners: Int = Field(ge=1, le=MAX_COUNT, description="learners N")
    seed: Int = Field(0, ge=0, le=MAX_SEED, description="seed of the construction's random stream")


def full_column_rank(rows: np.ndarray) -> bool:
    """True when `rows` (k x c) has numerical rank c (SVD, relative threshold RANK_RTOL)."""
    k, c = rows.shape
    if c == 0:
        return True
    if k < c:
        return False
    s = np.linalg.svd(rows, compute_uv=False)
    return bool(s[0] > 0 and s[-1] > RANK_RTOL * s[0])


def triangular_solve(t: np.ndarray, z: np.ndarray, lower: bool) -> np.ndarray:
    """X with T X = Z for a small triangular T and a wide C-ordered Z (k x n).

    Solved as X^T T^T = Z^T with BLAS trsm on the transposed view, which is Fortran-ordered: no
    copy of Z, and 3-5x faster than solve_triangular's column-major path at k <= 30 (measured).
    """
    return dtrsm(1.0, t, z.T, side=1, lower=int(lower), trans_a=1).T


class Code:
    """Base class: subclasses set `name`, declare their `Params` and call `_set_matrix` in `__init__`."""

    name: ClassVar[str] = ""
    # The scheme's parameters (a ParamsModel: types, bounds, defaults, descriptions); checked here and
    # kept as attributes of the same names. The scenario's `code` section is built from it too.
    Params: ClassVar[type[ParamsModel]] = ParamsModel
    # Warn (once per code object) when a decode is predicted to miss ACCURACY for the results' dtype.
    WARN_IF_INACCURATE: ClassVar[bool] = False
    # Which construction the matrix follows, and where it departs from the paper's own code (`codes show`).
    CONSTRUCTION: ClassVar[str] = ""

    def __init__(self, n_agents: int, n_learners: int, seed: int = 0, **params: Any):
        size = check(CodeSize, {"n_agents": n_agents, "n_learners": n_learners, "seed": seed}, "a code")
        self.n_agents, self.n_learners, self.seed = size.n_agents, size.n_learners, size.seed
        if self.n_learners < self.n_agents:
            raise BadInput("n_learners", f"{self.n_learners} learners cannot carry {self.n_agents} agents; "
                           "allowed: n_learners >= n_agents")
        for key, value in check(self.Params, params, f"scheme {self.name!r}"):
            setattr(self, key, value)
        self._decodable_cache: dict[frozenset[int], bool] = {}
        self._plan_cache: dict[tuple, object] = {}  # rows (or ('partial', *rows)) -> decode plan
        self._tolerance: int | None = None
        self._tolerance_exact = True
        self._warned = False

    # ----- construction -------------------------------------------------------------------------
    def _set_matrix(self, matrix: np.ndarray) -> None:
        matrix = np.array(matrix, dtype=np.float64)
        assert matrix.shape == (self.n_learners, self.n_agents), matrix.shape
        matrix.setflags(write=False)
        self.matrix = matrix
        self.load = np.count_nonzero(matrix, axis=1).astype(int)
        # learner -> agent for learners that computed exactly one agent (their result is that agent)
        self._unit_agent = {i: int(np.flatnonzero(row)[0]) for i, row in enumerate(matrix)
                            if np.count_nonzero(row) == 1}

    def params(self) -> dict[str, object]:
        """The scheme's parameters as used (defaults resolved)."""
        return {key: getattr(self, key) for key in self.Params.model_fields}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(n_agents={self.n_agents}, n_learners={self.n_learners}{extra})"

    # ----- decodability -------------------------------------------------------------------------
    def _rows(self, received: Iterable[int]) -> tuple[int, ...]:
        return tuple(sorted({int(i) for i in received if 0 <= int(i) < self.n_learners}))

    def can_decode(self, received: Iterable[int]) -> bool:
        """Whether the results of learners `received` determine every agent (indices outside range ignored)."""
        rows = self._rows(received)
        key = frozenset(rows)
        if key not in self._decodable_cache:
            if len(self._decodable_cache) > 65536:
                self._decodable_cache.clear()
            self._decodable_cache[key] = self._decodable(rows)
        return self._decodable_cache[key]

    def _decodable(self, rows: tuple[int, ...]) -> bool:
        return full_column_rank(self.matrix[list(rows)])

    def survives(self, erased: np.ndarray) -> np.ndarray:
        """For each row of `erased` (C x s learner indices): does everything else still decode?

        Rank-based default, on the dual: with H spanning the left null space of A, erasing the
        learners R leaves rank M exactly when the columns H[:, R] are independent (a codeword A v
        supported inside R is a dependency among them). Checks are s-column, batched SVDs.
        """
        erased = np.asarray(erased, dtype=int)
        count, s = erased.shape
        if s == 0:
            return np.ones(count, dtype=bool)
        if s > self.n_learners - self.n_agents:
            return np.zeros(count, dtype=bool)
        dual = self._dual()
        cols = dual[:, erased].transpose(1, 0, 2)  # (C, N-M, s)
        sv = np.linalg.svd(cols, compute_uv=False)
        return sv[:, -1] > RANK_RTOL * np.maximum(sv[:, 0], 1e-300)

    def _dual(self) -> np.ndarray:
        if not hasattr(self, "_dual_basis"):
            from scipy.linalg import null_space

            self._dual_basis = null_space(self.matrix.T, rcond=RANK_RTOL).T  # (N - M, N)
        return self._dual_basis

    @property
    def tolerance(self) -> int:
        """Stragglers survived in the worst case: max s such that every set of N - s learners decodes."""
        if self._tolerance is None:
            self._tolerance = self._compute_tolerance()
        return self._tolerance

    @property
    def tolerance_exact(self) -> bool:
        """False when `tolerance` is only a proven lower bound (enumeration budget reached)."""
        _ = self.tolerance
        return self._tolerance_exact

    def _compute_tolerance(self) -> int:
        from simcode.codes.tolerance import worst_case_tolerance

        value, exact = worst_case_tolerance(self)
        self._tolerance_exact = exact
        return value

    # ----- numerics -----------------------------------------------------------------------------
    def condition(self, received: Iterable[int]) -> float:
        """2-norm condition number of the received rows (inf when they do not have rank M)."""
        sub = self.matrix[list(self._rows(received))]
        if sub.shape[0] < self.n_agents:
            return float("inf")
        s = np.linalg.svd(sub, compute_uv=False)
        return float(s[0] / s[-1]) if s[-1] > RANK_RTOL * s[0] else float("inf")

    def _require_decodable(self, rows: tuple[int, ...]) -> tuple[int, ...]:
        if not self.can_decode(rows):
            raise ValueError(f"{self.name}: results of learners {list(rows)} do not determine all "
                             f"{self.n_agents} agents; check can_decode() before decode()")
        return rows

    # ----- decoding -----------------------------------------------------------------------------
    def _payloads(self, results: Mapping[int, np.ndarray]) -> tuple[tuple[int, ...], dict[int, np.ndarray], int]:
        """The received rows, their payloads and the payload length, or ValueError on a malformed mapping."""
        bad = [i for i in results if not 0 <= int(i) < self.n_learners]
        if bad:
            raise ValueError(f"{self.name}: unknown learners {bad}; allowed: 0..{self.n_learners - 1}")
        rows = self._rows(results)
        ys = {i: np.asarray(results[i]) for i in rows}
        shapes = {y.shape for y in ys.values()}
        if len(shapes) > 1 or any(len(shape) != 1 for shape in shapes):
            raise ValueError(f"{self.name}: results must be 1-D arrays of one length; got shapes {sorted(shapes)}")
        return rows, ys, next(iter(shapes))[0] if shapes else 0

    def decode(self, results: Mapping[int, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """theta (M, P) float64 from {learner: y_i} with y_i = matrix[i] @ theta (float32 or float64), written
        into `out` when it is an (M, P) float64 array (a caller that decodes every iteration reuses one: a
        new array of megabytes costs its page faults each time), else into a new one."""
        rows, ys, size = self._payloads(results)
        self._require_decodable(rows)
        dtype = np.result_type(*ys.values())
        if out is None or out.shape != (self.n_agents, size) or out.dtype != np.float64:
            out = np.empty((self.n_agents, size), dtype=np.float64)
        direct, steps = self._cached_plan(rows, lambda: self._plan(rows))
        for i, agent in direct:
            np.divide(ys[i], self.matrix[i, agent], out=out[agent], casting="unsafe")
        if steps is not None:
            self._solve_rest(ys, out, direct, *steps, dtype=dtype)
        return out

    # ----- partial decoding (simcode.codes.partial) ----------------------------------------------
    def decodable_agents(self, received: Iterable[int]) -> list[int]:
        """The agents, sorted, whose states the results of learners `received` determine exactly
        (e_j in the row space of the received rows); every agent when `can_decode`."""
        rows = self._rows(received)
        if self.can_decode(rows):
            return list(range(self.n_agents))
        return list(self._partial_plan(rows).agents)

    def decode_partial(self, results: Mapping[int, np.ndarray]) -> tuple[list[int], np.ndarray]:
        """(agents, theta_agents): the states (len(agents), P) float64 of exactly the agents that
        {learner: y_i} determine (`decodable_agents`); `decode`'s result when the rows decode."""
        rows, ys, size = self._payloads(results)
        if self.can_decode(rows):
            return list(range(self.n_agents)), self.decode(results)
        plan = self._partial_plan(rows)
        return list(plan.agents), solve_partial(self.matrix, plan, ys, size, CHUNK)

    def _partial_plan(self, rows: tuple[int, ...]) -> PartialPlan:
        return self._cached_plan(("partial", *rows), lambda: plan_partial(self.matrix, self._unit_agent, rows,
                                                                          RANK_RTOL))

    def _cached_plan(self, key: tuple, build):
        """A decode plan for a set of rows, built once: a simulator decodes the same sets again and again."""
        if key not in self._plan_cache:
            if len(self._plan_cache) > 4096:
                self._plan_cache.clear()
            self._plan_cache[key] = build()
        return self._plan_cache[key]

    def _plan(self, rows: tuple[int, ...]):
        """Which agents are copied from unit rows, and the rows/agents left for a joint solve."""
        direct: list[tuple[int, int]] = []
        known: set[int] = set()
        for i in rows:
            agent = self._unit_agent.get(i)
            if agent is not None and agent not in known:
                direct.append((i, agent))
                known.add(agent)
        unknown = [j for j in range(self.n_agents) if j not in known]
        if not unknown:
            return direct, None
        used = {i for i, _ in direct}
        eq_rows = [i for i in rows if i not in used and np.any(self.matrix[i, unknown])]
        return direct, (eq_rows, unknown, self._factor(eq_rows, unknown))

    def _factor(self, eq_rows: list[int], unknown: list[int]):
        """Factorise the reduced system once: ('qr', Q, R)."""
        q, r = qr(self.matrix[np.ix_(eq_rows, unknown)], mode="economic")
        return ("qr", q, r)

    def _solve_rest(self, ys, out, direct, eq_rows, unknown, factor, dtype) -> None:
        kind, q, r = factor
        if self.WARN_IF_INACCURATE:
            self._warn_if_inaccurate(np.linalg.cond(r), dtype)
        known = [agent for _, agent in direct]
        coupling = self.matrix[np.ix_(eq_rows, known)] if known else None
        size = out.shape[1]
        buffer = np.empty((len(eq_rows), min(CHUNK, size)), dtype=np.float64)
        for start in range(0, size, CHUNK):
            stop = min(start + CHUNK, size)
            rhs = buffer[:, : stop - start]
            for k, i in enumerate(eq_rows):
                rhs[k] = ys[i][start:stop]
            if coupling is not None:
                rhs -= coupling @ out[known, start:stop]
            if kind == "qr":
                out[unknown, start:stop] = triangular_solve(r, q.T @ rhs, lower=False)
            else:  # 'lower': square lower-triangular system in peel order
                out[unknown, start:stop] = triangular_solve(r, rhs, lower=True)

    def _warn_if_inaccurate(self, cond: float, dtype) -> None:
        dtype = np.dtype(dtype) if np.dtype(dtype) in ACCURACY else np.dtype(np.float64)
        predicted = cond * np.finfo(dtype).eps
        if predicted > ACCURACY[dtype] and not self._warned:
            self._warned = True
            warnings.warn(f"{self.name} (M={self.n_agents}, N={self.n_learners}): condition number "
                          f"{cond:.3g} x {dtype} eps = {predicted:.3g} > {ACCURACY[dtype]:g}; decoded "
                          "updates may be inaccurate (use 'mds' for a well-conditioned code)",
                          RuntimeWarning, stacklevel=3)
