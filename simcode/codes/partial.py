"""Partial decoding: which agents a set of received rows determines, and their states.

Agent j is determined by the received rows R exactly when the unit vector e_j lies in the row space
of A[R]: then every theta consistent with the results has the same row j. Agents that a received
unit row carries (systematic codes, replication, uncoded) are determined at once and copied; for the
rest, the reduced system (the other received rows, restricted to the agents not copied) is split by
one SVD into its row space and its null space N. e_j is in the row space exactly when row j of the
orthonormal basis N is zero, so that row's norm (the distance from e_j to the row space) decides,
and the pseudo-inverse restricted to the determined agents gives their states: any solution agrees
on them, the minimum-norm one included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The distance from e_j to the row space under which agent j counts as determined. An exact member
# sits at rounding level (1e-16 times the rows' condition); a generic non-member sits near 1, and a
# state read from a row space e_j misses by d is off by about d times the states' scale.
DETERMINED_TOL = 1e-9


@dataclass(frozen=True)
class PartialPlan:
    agents: tuple[int, ...]                 # every agent the rows determine, sorted
    direct: tuple[tuple[int, int], ...]     # (row, agent): agents copied from a unit row
    eq_rows: tuple[int, ...]                # rows of the reduced system
    solved: tuple[int, ...]                 # agents determined by the reduced system
    known: tuple[int, ...]                  # agents copied, whose part the reduced rows subtract
    weights: np.ndarray | None              # (len(solved), len(eq_rows)): pseudo-inverse rows


def plan_partial(matrix: np.ndarray, unit_agent: dict[int, int], rows: tuple[int, ...],
                 rank_rtol: float) -> PartialPlan:
    """What the received `rows` of `matrix` determine, and how to compute it."""
    n_agents = matrix.shape[1]
    direct: list[tuple[int, int]] = []
    for i in rows:
        agent = unit_agent.get(i)
        if agent is not None and all(agent != known for _, known in direct):
            direct.append((i, agent))
    known = [agent for _, agent in direct]
    unknown = [j for j in range(n_agents) if j not in known]
    used = {i for i, _ in direct}
    eq_rows = [i for i in rows if i not in used and np.any(matrix[i, unknown])] if unknown else []
    solved: list[int] = []
    weights = None
    if eq_rows:
        u, s, vt = np.linalg.svd(matrix[np.ix_(eq_rows, unknown)], full_matrices=True)
        rank = int(np.count_nonzero(s > rank_rtol * s[0])) if s.size and s[0] > 0 else 0
        distance = np.linalg.norm(vt[rank:], axis=0)  # of each agent's row of the null-space basis
        local = np.flatnonzero(distance <= DETERMINED_TOL)
        solved = [unknown[k] for k in local]
        pinv = vt[:rank].T @ (u[:, :rank] / s[:rank]).T  # (unknown, eq_rows)
        weights = pinv[local]
    return PartialPlan(tuple(sorted(known + solved)), tuple(direct), tuple(eq_rows) if solved else (),
                       tuple(solved), tuple(known), weights if solved else None)


def solve_partial(matrix: np.ndarray, plan: PartialPlan, ys: dict[int, np.ndarray], size: int,
                  chunk: int) -> np.ndarray:
    """The determined agents' states (len(plan.agents), size) float64, in plan.agents order; the
    reduced system is solved `chunk` payload columns at a time (no buffer of rows x payload)."""
    states = np.empty((len(plan.agents), size), dtype=np.float64)
    place = {agent: k for k, agent in enumerate(plan.agents)}
    for i, agent in plan.direct:
        np.divide(ys[i], matrix[i, agent], out=states[place[agent]], casting="unsafe")
    if not plan.solved:
        return states
    known = [place[a] for a in plan.known]
    solved = [place[a] for a in plan.solved]
    coupling = matrix[np.ix_(plan.eq_rows, plan.known)]
    for begin in range(0, size, chunk):
        end = min(begin + chunk, size)
        rhs = np.stack([np.asarray(ys[i][begin:end], dtype=np.float64) for i in plan.eq_rows])
        if known:
            rhs -= coupling @ states[known, begin:end]
        states[solved, begin:end] = plan.weights @ rhs
    return states
