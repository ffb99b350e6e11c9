"""What the controller installs when it stops waiting: `cluster.strategy` exact, deadline or stale.

- `exact` (every scheme's own protocol): wait until the received rows decode every agent.
- `deadline`: wait until `cluster.deadline` seconds after the work is sent, or until every agent
  decodes if that comes first. Then install every agent the rows received so far determine exactly
  (`code.decodable_agents`: unit rows, peeling, or whatever a partial solve pins down); every other
  agent keeps its pre-iteration state for the iteration and its update is lost. Results that arrive
  after the wait are dropped.
- `stale`: the same wait, but late results are kept. A result of iteration k that the controller
  receives during iteration k' (k < k' <= k + max_staleness) joins every row of iteration k received
  so far; at the end of iteration k' every agent those rows determine (`decodable_agents` of all of
  k's rows) is a candidate, and agent j is installed from it when j got no fresh update in k' and
  its current state is older than k's update (the newest candidate wins). The installed state is
  the one computed in iteration k from the states of iteration k: bounded staleness, age k' - k.
  Rows older than max_staleness iterations are dropped when they arrive. A result counts in the
  iteration during whose wait (or at whose end) the controller reads it.

Late work and `cluster.on_decode`, as for exact, with "the wait ends" for "the rows decode": cancel
interrupts the learners still working on the iteration, let_finish lets them finish (their next
work queues), cancel_wait acks every learner and the next iteration starts when all are free.
Stale keeps late work, so it needs let_finish (the config refuses the others).

A quantile deadline `{quantile: q}` is the q-quantile of the learners' response times over the last
DEADLINE_WINDOW iterations: each learner's busy time (computation plus its straggler delay, as drawn,
so a cancelled or late learner counts too and the estimate is not biased down by censoring; a failed
learner counts as infinitely slow) plus its work's and its result's time on an idle network. The
first iteration has no history: it waits for the full decode, as exact does; so does an iteration
whose quantile is infinite.

No clock, no torch, no I/O here: the SimPy clock (simcode.sim.cluster) calls these steps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from simcode.sim.protocol import decode_error
from simcode.sim.workload import IterationData

DEADLINE_WINDOW = 100  # iterations of response times a quantile deadline looks back on
# A quantile deadline is one of the response times themselves: the result that defines it must count
# as on time, though the clock sums its parts in another order (rounding). 1e-9 relative covers that.
TIE_MARGIN = 1e-9


class DeadlineClock:
    """How long the controller waits after sending the work: fixed, or a quantile of past responses."""

    def __init__(self, deadline):
        self.fixed = float(deadline) if isinstance(deadline, (int, float)) else None
        self.quantile = None if self.fixed is not None else float(deadline.quantile)
        self.history: deque[np.ndarray] = deque(maxlen=DEADLINE_WINDOW)

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def seconds(self) -> float:
        if self.fixed is not None:
            return self.fixed
        if not self.history:
            return math.inf  # no past yet: wait for the full decode
        quantile = np.quantile(np.concatenate(self.history), self.quantile, method="inverted_cdf")
        return float(quantile) * (1 + TIE_MARGIN)

    def wait_seconds(self, busy: np.ndarray, network_seconds: list[float]) -> float:
        """This iteration's deadline after the send; then (quantile) learn its response times: each
        learner's busy time plus its work's and its result's time on an idle network."""
        seconds = self.seconds()
        if self.adaptive:
            self.history.append(busy + np.asarray(network_seconds))
        return seconds


@dataclass
class Settled:
    """What one iteration installs: the rows of `states` for the agents in `updated` (None: all)."""

    states: np.ndarray | None
    updated: list[int] | None
    error: float
    columns: dict = field(default_factory=dict)  # n_updated, stale_agents, staleness


def exact_columns(n_agents: int) -> dict:
    """The strategy trace columns of an exact iteration (every run writes them, both clocks, so a
    study's traces have the same columns whatever the strategy): agents updated, agents left at their
    state, "agent:age" of late updates applied."""
    return {"n_updated": n_agents, "stale_agents": "", "staleness": ""}


class Strategy:
    """deadline (and, with `max_staleness`, stale): see the module docstring."""

    def __init__(self, code, deadline, max_staleness: int | None, stale: bool):
        self.code = code
        self.n_agents = code.n_agents
        self.clock = DeadlineClock(deadline)
        self.stale = stale
        self.max_staleness = (max_staleness or 1) if stale else 0
        self.version = [-1] * self.n_agents  # the iteration whose update each agent's state is
        self.pending: dict[int, tuple[set[int], IterationData]] = {}  # stale: rows of recent iterations

    def late_result(self, result_iteration: int, row: int, now_iteration: int) -> None:
        """A result of an earlier iteration arrived: kept for stale while young enough, else dropped."""
        if self.stale and result_iteration in self.pending and now_iteration - result_iteration <= self.max_staleness:
            self.pending[result_iteration][0].add(row)

    def settle(self, iteration: int, rows: list[int], data: IterationData, encode,
               after_wait: list[tuple[int, int]] = ()) -> Settled:
        """The states to install at the end of `iteration` from its rows on time, and (stale) from the
        late rows read so far; `after_wait`: (iteration, row) of results read once the wait was over."""
        for k, row in after_wait:
            if k != iteration:
                self.late_result(k, row, iteration)
        fresh, states, error = self.decode_rows(iteration, rows, data, encode)
        for j in fresh:
            self.version[j] = iteration
        applied = self.apply_stale(iteration, encode) if self.stale else {}
        if self.stale:
            self.pending[iteration] = (set(rows) | {row for k, row in after_wait if k == iteration}, data)
        updated = sorted(set(fresh) | set(applied))
        all_fresh = len(fresh) == self.n_agents
        installed = states if all_fresh else self.assemble(fresh, states, applied, data)
        error = max([error] + [e for _, _, e in applied.values()])
        left = [j for j in range(self.n_agents) if j not in updated]
        columns = {"n_updated": len(updated), "stale_agents": " ".join(map(str, left)),
                   "staleness": " ".join(f"{j}:{iteration - k}" for j, (k, _, _) in sorted(applied.items()))}
        return Settled(installed, None if all_fresh else updated, error, columns)

    def decode_rows(self, iteration: int, rows, data: IterationData, encode):
        """(agents, their states (or None), decode error) from the rows of one iteration."""
        agents = self.code.decodable_agents(rows)
        if data.theta is None or not agents:
            return agents, None, 0.0 if data.theta is not None else math.nan
        coded = {row: encode(row, data.theta) for row in rows}
        if self.code.can_decode(rows):  # exact's own decode: the same numbers as an exact run
            states = self.code.decode(coded)
            return agents, states, decode_error(iteration, self.code.name, states, data)
        agents, states = self.code.decode_partial(coded)
        return agents, states, decode_error(iteration, self.code.name, states, data, agents=agents)

    def apply_stale(self, iteration: int, encode) -> dict[int, tuple[int, np.ndarray | None, float]]:
        """agent -> (iteration k, its state from k, decode error): the newest late update of each agent
        that got none fresher, from the pending iterations still young enough."""
        for k in [k for k in self.pending if iteration - k > self.max_staleness]:
            del self.pending[k]
        applied: dict[int, tuple[int, np.ndarray | None, float]] = {}
        for k in sorted(self.pending, reverse=True):  # newest first: it wins
            rows, data = self.pending[k]
            wanted = [j for j in self.code.decodable_agents(rows) if self.version[j] < k and j not in applied]
            if not wanted:
                continue
            agents, states, error = self.decode_rows(k, sorted(rows), data, encode)
            for j in wanted:
                row = states[agents.index(j)] if states is not None else None
                applied[j] = (k, row, error)
                self.version[j] = k
        for k in [k for k in self.pending if min(self.version) >= k]:
            del self.pending[k]  # every agent has this update or a newer one: its rows can give nothing
        return applied

    def assemble(self, fresh, states, applied, data: IterationData) -> np.ndarray | None:
        """One (M, P) array holding each updated agent's new state (the other rows are unused)."""
        if data.theta is None:
            return None
        out = np.zeros_like(data.theta)
        for n, j in enumerate(fresh):
            out[j] = states[n]
        for j, (_, row, _) in applied.items():
            out[j] = row
        return out


def make_strategy(cluster_config, code) -> Strategy | None:
    """None for exact (the clock's own protocol, untouched); a Strategy for deadline and stale."""
    if cluster_config.strategy == "exact" or code is None:
        return None
    return Strategy(code, cluster_config.deadline, cluster_config.max_staleness, cluster_config.strategy == "stale")
