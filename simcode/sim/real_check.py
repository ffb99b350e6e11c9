"""A real run's decode check, kept off the machine while the run is measured.

The real backend checks every iteration's decoded states against the direct update (the
decode_error column), which means computing that update a second time. Done in line, off the clock,
it still took the cores for 5 to 10 ms an iteration (M = 3 and 5) while the learners cancelled late
were still computing on them: those got that long to finish unseen by the clock, and the next
iteration's environment steps met less of their leftover work than a run without the check would.
So the check waits: each iteration keeps what it needs (the states it started from, its minibatch,
its decoded states) and the checks run in one go when the run is over, or, on a long run, whenever
what is kept passes KEPT_BYTES (then, between two iterations, off the clock as before). What is
cheap stays in line: a decode or an episode reward that is not finite stops the run at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simcode.sim import protocol
from simcode.sim.workload import IterationData, stack_states

# What the checks not yet run may keep in memory before they run (bytes).
KEPT_BYTES = 256 * 2**20


@dataclass
class Unchecked:
    iteration: int
    rewards: list[float]
    before: list[np.ndarray]  # the packed states the iteration updated
    batch: object  # its minibatches (simcode.marl.maddpg.Batch)
    decoded: np.ndarray  # (M, width) float64

    def nbytes(self) -> int:
        tensors = (self.batch.obs, self.batch.act, self.batch.rew, self.batch.next_obs, self.batch.done)
        return (sum(s.nbytes for s in self.before) + self.decoded.nbytes
                + sum(t.element_size() * t.nelement() for t in tensors))


class DeferredChecks:
    """The decode checks of a real run's coded iterations, run later (`flush`) against the direct update
    of `trainer` (simcode.marl.trainer.Trainer) from each iteration's own starting states."""

    def __init__(self, trainer, scheme: str, width: int, records: list[dict]):
        self.trainer, self.scheme, self.width, self.records = trainer, scheme, width, records
        self.kept: list[Unchecked] = []
        self.kept_bytes = 0

    @property
    def due(self) -> bool:
        """What the checks keep has passed KEPT_BYTES: they should run (flush) before the next iteration."""
        return self.kept_bytes > KEPT_BYTES

    def keep(self, iteration: int, rewards: list[float], batch, decoded: np.ndarray) -> None:
        """Keep an iteration's check for later (call before installing `decoded`). A non-finite decode
        or reward stops the run here."""
        self.finite(iteration, rewards, decoded)
        item = Unchecked(iteration, rewards, self.trainer.states(), batch, decoded)
        self.kept.append(item)
        self.kept_bytes += item.nbytes()

    def finite(self, iteration: int, rewards: list[float], theta: np.ndarray) -> np.ndarray:
        """`theta`, the iteration's new (M, width) states, once they and the rewards are checked finite."""
        checked = [r for r in self.records if not np.isnan(r["decode_error"])]  # the rest: not yet
        protocol.check_trained(iteration, self.scheme, IterationData(rewards, theta), checked)
        return theta

    def flush(self) -> None:
        """Run the kept checks: each iteration's record gets its decode_error."""
        by_iteration = {record["iteration"]: record for record in self.records}
        for item in self.kept:
            direct = self.trainer.updates_from(item.before, item.batch)
            data = IterationData(item.rewards, stack_states(direct, self.width))
            protocol.check_trained(item.iteration, self.scheme, data, self.records)
            by_iteration[item.iteration]["decode_error"] = protocol.decode_error(item.iteration, self.scheme,
                                                                                 item.decoded, data)
        self.kept, self.kept_bytes = [], 0
