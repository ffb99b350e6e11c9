"""The protocol of one coded iteration, written once and driven by either clock.

The SimPy clock (simcode.sim.cluster) runs it in simulated seconds; the real backend
(simcode.sim.real) runs it in real time on Ray actors. Both call the pure steps here:

- what learner i computes: the agents of row i of the assignment matrix (`row_agents`), their
  MADDPG updates from the current states and their own minibatches;
- what it sends: the float64 combination of its agents' new states (`combine`, `learner_result`);
- when the controller decodes: as soon as the rows received can be decoded (`code.can_decode`);
  while it cannot, `next_move` says whether to wait, re-send after the timeout or give up;
- what it decodes and checks: `decode_and_check`, the decoded states against the direct update;
- late work (`cluster.on_decode`): `cancel` frees late learners at once (their result, if any,
  is ignored); `let_finish` lets them finish (their result is ignored, the next work waits); the
  seed's `cancel_wait` acks every learner, which cuts a straggler's extra wait short but not its
  computation, and the next iteration starts when every learner is free.

The SimPy clock may compute each agent's update once and encode every row from those states (an
exact shortcut: the combination of the same states is the same number); a real learner computes its
row's updates itself. No clock, no torch and no I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simcode.errors import SimulationError
from simcode.sim.workload import IterationData, relative_error

ON_DECODE = ("cancel", "let_finish", "cancel_wait")
# The trace columns of where an answer's time went, on Ray (`answer_timings`): the learner's computation
# of its row, Ray's dispatch of the task and its arguments, the wait behind a late computation, Ray's
# delivery of the result, and the row's CPU seconds (below its compute when it shared a core). A real run
# measures them (simcode.sim.real); the SimPy clock keeps them when its network is `ray` (simcode.sim.learner).
REAL_TIMINGS = ("learner_compute", "ray_dispatch", "learner_queued", "ray_delivery", "learner_cpu")


@dataclass
class Task:
    iteration: int
    row: int        # which row of the matrix to compute (a re-sent task computes another's row)
    busy: float     # seconds of computation, straggler delay included; inf: no answer
    compute: float  # of which the computation itself (cancel_wait waits out the rest only until acked)
    sent: float = 0.0  # when the controller sent it and when it reached its learner (the SimPy clock's seconds)
    arrived: float = 0.0


@dataclass(frozen=True)
class Stamps:
    """When an answer passed each point on its learner's side (one clock): the task sent, the learner has
    it and its arguments (entered), its row's computation began (after any late one before it) and took
    `compute` seconds, of which `cpu` on a core, and the answer left (after the straggler's wait)."""

    sent: float
    entered: float
    begun: float
    compute: float
    cpu: float
    left: float


@dataclass
class Result:
    iteration: int
    row: int
    learner: int
    stamps: Stamps | None = None  # on Ray: where its time went so far (None: not kept)


def answer_timings(stamps: Stamps, taken: float) -> tuple[float, ...]:
    """An answer's REAL_TIMINGS, from its stamps and when the controller had taken it in."""
    return (stamps.compute, stamps.entered - stamps.sent, stamps.begun - stamps.entered, taken - stamps.left,
            stamps.cpu)


def timing_means(timings: list[tuple[float, ...]]) -> dict[str, float]:
    """The REAL_TIMINGS columns of an iteration: means over its answers (nan: none arrived)."""
    means = np.mean(timings, axis=0) if timings else [math.nan] * len(REAL_TIMINGS)
    return {name: float(value) for name, value in zip(REAL_TIMINGS, means, strict=True)}


def trace_record(*, iteration: int, t_start: float, t_end: float, env_seconds: float, t_decoded: float,
                 received: int, error: float, rewards: list[float], n_late: int, delays: np.ndarray | None,
                 resent: int) -> dict:
    """An iteration's trace row as either clock writes it, up to the columns each adds after (`delays`: the
    iteration's straggler delays; None when there are no learners, centralized)."""
    return {
        "iteration": iteration, "t_start": t_start, "t_end": t_end, "duration": t_end - t_start,
        "n_received": received, "decode_error": error,
        "episode_reward": float(np.mean(rewards)) if rewards else math.nan, "episodes": len(rewards),
        "env_seconds": env_seconds, "t_decoded": t_decoded, "n_late": n_late,
        "n_delayed": int(np.count_nonzero(delays > 0)) if delays is not None else 0,
        "n_failed": int(np.count_nonzero(np.isinf(delays))) if delays is not None else 0,
        "resent": resent,
    }


def row_agents(matrix: np.ndarray) -> list[list[int]]:
    """The agents each learner updates: the nonzero columns of its row."""
    return [np.flatnonzero(matrix[i]).tolist() for i in range(matrix.shape[0])]


def combine(coefficients: np.ndarray, agents: list[int], theta: np.ndarray) -> np.ndarray:
    """A row's message: its coefficients times the states (M, P), reading only the row's agents."""
    if len(agents) == 1 and coefficients[agents[0]] == 1.0:
        return theta[agents[0]]  # a systematic row is the agent's state itself
    if len(agents) == len(coefficients):
        return coefficients @ theta  # a dense row: no gathered copy of the states
    return coefficients[agents] @ theta[agents]


def learner_result(coefficients: np.ndarray, agents: list[int], new_states: list[np.ndarray],
                   width: int) -> np.ndarray:
    """What a real learner sends: the float64 combination of the new states of its own agents
    (`new_states[n]` is agent `agents[n]`'s, padded to `width` as the controller's rows are)."""
    rows = np.zeros((len(agents), width), dtype=np.float64)
    for n, state in enumerate(new_states):
        rows[n, : state.size] = state
    if len(agents) == 1 and coefficients[agents[0]] == 1.0:
        return rows[0]
    return coefficients[agents] @ rows


def next_move(*, n_learners: int, failed: int, answered: int, resent: int, timeout_set: bool,
              past_deadline: bool) -> str:
    """While the rows received do not decode: 'resend' (the missing rows, once, to learners that
    answered, after the timeout), 'fail' (no result can still arrive) or 'wait'."""
    may_resend = not resent and timeout_set
    if may_resend and answered and past_deadline:
        return "resend"
    on_the_way = n_learners - failed - answered + resent
    if on_the_way <= 0 and not (may_resend and answered):
        return "fail"
    return "wait"


def resend_plan(n_rows: int, received, answered: list[int]) -> list[tuple[int, int]]:
    """(row, learner): the rows still missing, round robin over the learners that answered.
    Re-sent work is computed without a new straggler draw (documented simplification)."""
    helpers = sorted(set(answered))
    if not helpers:
        return []
    missing = [row for row in range(n_rows) if row not in received]
    return [(row, helpers[n % len(helpers)]) for n, row in enumerate(missing)]


def undecodable_message(iteration: int, code, timeout: float | None, received: int, failed: int,
                        n_learners: int) -> str:
    if timeout is None:
        advice = "set cluster.timeout to re-send missing work to the learners that answered"
    else:
        advice = (f"cluster.timeout ({timeout:g} s) is set, but it re-sends missing work only once and only "
                  "to learners that answered, and too few did")
    return (f"iteration {iteration}: {code.name} cannot decode from the {received} results that can "
            f"arrive ({failed} of {n_learners} learners failed; the scheme tolerates "
            f"{code.tolerance}); {advice}")


def check_trained(iteration: int, scheme: str, data: IterationData, records: list[dict]) -> None:
    """A non-finite number stops the run: a NaN decode error would otherwise vanish from every max."""
    rewards_finite = all(math.isfinite(r) for r in data.rewards)
    if not (math.isfinite(data.theta_scale) and rewards_finite):
        # Inaccurate decodes installed earlier are the usual cause: say how inaccurate they were.
        worst = max((r["decode_error"] for r in records), default=0.0)
        raise SimulationError(f"iteration {iteration} ({scheme}): the MADDPG training diverged: "
                              f"{'updated states' if rewards_finite else 'episode rewards'} are not finite"
                              f" (worst decode error before: {worst:.3g})")


def decode_and_check(iteration: int, code, coded: dict[int, np.ndarray], data: IterationData,
                     scratch: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The states decoded from the rows received, and their error relative to the direct update."""
    decoded = code.decode(coded)
    return decoded, decode_error(iteration, code.name, decoded, data, scratch)


def decode_error(iteration: int, scheme: str, decoded: np.ndarray, data: IterationData,
                 scratch: np.ndarray | None = None, agents: list[int] | None = None) -> float:
    """The decoded states' error relative to the direct update (of `agents` only, whose rows `decoded`
    holds, when given); a SimulationError when not finite."""
    error = relative_error(decoded, data, scratch, agents)  # nan or inf exactly when decoded is not finite
    if not math.isfinite(error):
        raise SimulationError(f"iteration {iteration}: {scheme} decoded states that are not finite (decode error "
                              f"{error}); the code cannot decode these results in float64")
    return error
