"""The controller's side of `cluster.on_decode: cancel_wait`, the seed's protocol (simcode.sim.cluster):
once the rows decode, every learner is acknowledged; the ack cuts a straggler's extra wait short but not
its computation, and the next iteration begins when every learner is free.

- Off Ray, as the seed runs it over MPI: the controller sends the acks, learner 0 first (on the shared
  network as blocking sends), before it decodes; an acked learner sends nothing.
- On Ray (`cluster.network.model: ray`), as the real backend runs it (simcode.sim.real.RealCluster.release):
  the controller decodes first, then acks each learner, one `ack` call after another on its own thread
  (the profile's `ray.ack`), then takes in every task still out (`ray.get`). A Ray task always returns, so
  an acked learner's task comes back empty: through its actor's part after the row and Ray's threads in the
  driver, and the controller's thread takes each one in (`ray.thread.reply`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcode.sim.network import CONTROLLER

if TYPE_CHECKING:
    from simcode.sim.cluster import Cluster

# An acknowledgement carries next to nothing: a pickled small integer and its envelope.
ACK_NBYTES = 64


class AckRound:
    """One iteration's acknowledgements: `acks[i]` fires when learner i is acked; on Ray `returned[i]` fires
    when its task of the iteration is back at the controller (its answer, or empty)."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.iteration = cluster.iteration
        self.acks = [cluster.env.event() for _ in cluster.learners]
        self.returned = [cluster.env.event() for _ in cluster.learners] if cluster.driver is not None else None

    @property
    def decode_first(self) -> bool:
        """On Ray the controller decodes, then acks; the seed acks, then decodes."""
        return self.returned is not None

    def send(self):
        """A process: ack every learner, learner 0 first."""
        cluster = self.cluster
        if self.returned is not None:  # Ray: one call after another on the controller's thread
            for ack in self.acks:
                yield cluster.controller_computes(cluster.driver.ack, message=True)
                ack.succeed()
            return
        sends = [cluster.network.send(CONTROLLER, lambda _arrival, ack=ack: ack.succeed(), ACK_NBYTES)
                 for ack in self.acks]
        if cluster.network.shared:
            yield cluster.env.all_of(sends)  # the seed's blocking sends

    def came_back(self, learner: int, iteration: int) -> None:
        """On Ray: `learner`'s task of `iteration` is back at the controller's process."""
        if self.returned is not None and iteration == self.iteration and not self.returned[learner].triggered:
            self.returned[learner].succeed()

    def wait_for_learners(self, taken: int):
        """A process: the next iteration waits for every learner, acked and done computing (a learner whose
        work arrives after its ack drops it: it knows the iteration is over); on Ray, for every task to come
        back, the controller's thread taking in each of those it had not taken (all but `taken`)."""
        cluster = self.cluster
        yield cluster.env.all_of(self.acks)
        for learner in cluster.learners:
            if learner.computing is not None:
                yield learner.computing
        if self.returned is not None:
            yield cluster.env.all_of(self.returned)
            out = len(cluster.learners) - taken
            if out and cluster.driver.reply:
                yield cluster.controller_computes(out * cluster.driver.reply, message=True)
