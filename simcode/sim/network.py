"""The network between the controller and the learners (`cluster.network.model`).

- `links` (the default): every message has a link of its own. It arrives latency + bytes / bandwidth
  (+ the per-message overhead) after it is sent, whatever else is on the wire, and its sender does
  not wait for it.
- `shared`: every node (the controller, each learner) has one network interface, a SimPy resource
  of capacity 1. A message holds its sender's interface for latency + bytes / bandwidth + overhead
  and arrives when it lets go, so the messages of one sender leave one after another in the order
  they were sent, as the seed's blocking MPI sends do. A sender that wants to know when its last
  message has left waits for the events `send` returns. Receiving costs nothing: only senders queue.
  The states' broadcast at the start of an iteration is MPI's (`broadcast`): serialised once, then a
  binomial tree, so it costs log2 of the nodes in message times, not one per learner.

The per-message overhead (serialisation) is `cluster.network.per_message` seconds when the scenario
sets it; with `cost.model: profile` and the shared network, the profile's serialisation cost of the
message's bytes; otherwise none.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from simcode.config import NetworkConfig

CONTROLLER = -1  # the sender id of the controller; learners are 0 .. N-1
Deliver = Callable[[simpy.Event], object]  # what a message's arrival does, given the event that ended its trip


class Links:
    """Point-to-point links: no contention, and a sender never waits."""

    shared = False

    def __init__(self, env: simpy.Environment, config: NetworkConfig, overhead: Callable[[float], float] | None):
        self.env = env
        self.latency = config.latency
        self.bandwidth = config.bandwidth
        self.overhead = overhead

    def seconds(self, nbytes: float) -> float:
        """How long a message of `nbytes` bytes is on the wire."""
        if self.overhead is None:
            return self.latency + nbytes / self.bandwidth
        return self.latency + nbytes / self.bandwidth + self.overhead(nbytes)

    def send(self, sender: int, deliver: Deliver, nbytes: float) -> simpy.Event:
        """Send a message; `deliver(event)` runs when it arrives, which is when the returned event fires."""
        # A timeout whose callback delivers is lighter than a process per message.
        arrival = self.env.timeout(self.seconds(nbytes))
        arrival.callbacks.append(deliver)
        return arrival


class SharedNics(Links):
    """One network interface per node: a sender's messages leave one at a time, in order."""

    shared = True

    def __init__(self, env: simpy.Environment, config: NetworkConfig, overhead: Callable[[float], float] | None):
        super().__init__(env, config, overhead)
        self.nics: dict[int, simpy.Resource] = {}

    def nic(self, sender: int) -> simpy.Resource:
        if sender not in self.nics:
            self.nics[sender] = simpy.Resource(self.env, capacity=1)
        return self.nics[sender]

    def send(self, sender: int, deliver: Deliver, nbytes: float) -> simpy.Event:
        return self.env.process(self.transmit(self.nic(sender), self.seconds(nbytes), deliver))

    def broadcast(self, sender: int, nbytes: float, receivers: int) -> simpy.Event:
        """One message to `receivers` nodes as MPI's broadcast sends it (the seed's `comm.bcast`): pickled
        once at the root, then a binomial tree, ceil(log2(receivers + 1)) rounds of latency + bytes /
        bandwidth, during which the sender's interface is busy."""
        rounds = math.ceil(math.log2(receivers + 1))
        seconds = rounds * (self.latency + nbytes / self.bandwidth)
        if self.overhead is not None:
            seconds += self.overhead(nbytes)
        return self.env.process(self.transmit(self.nic(sender), seconds))

    def transmit(self, nic: simpy.Resource, seconds: float, deliver: Deliver | None = None):
        """Hold `nic` for `seconds`, then deliver (if anything is to be delivered)."""
        with nic.request() as turn:  # requests are served first come, first served
            yield turn
            on_the_wire = self.env.timeout(seconds)
            yield on_the_wire
        if deliver is not None:
            deliver(on_the_wire)


def make_network(env: simpy.Environment, config: NetworkConfig,
                 overhead: Callable[[float], float] | None) -> Links:
    return (SharedNics if config.model == "shared" else Links)(env, config, overhead)
