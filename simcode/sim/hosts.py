"""Host contention: computations that run at the same time on one machine share its cores.

`cluster.hosts` lists machines (`cores`, the `learners` each runs, `controller: true` on the
controller's). A host serves its computations by processor sharing: with n computations under way
on c cores, each advances at min(1, c / n) seconds of work per second, so a learner's compute time
stretches while its neighbours compute too. On Ray (`cluster.network.model: ray`) two measured
corrections apply (simcode.sim.calibrate_ray): Ray's own threads keep b of the c cores busy even when
idle (its raylet, each actor, the driver), so computations share c - b; and a crowded host (n > c)
loses its switches and cold caches: each computation then advances at `crowded` (c - b) / n.
Straggler delays are sleeps and take no core. Learners no host lists (and the controller, unless a
host names it) each have a machine of their own: today's behaviour, and the default with no
`cluster.hosts` at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import simpy

from simcode.errors import BadInput

# Work left below this is done: the float rounding of rates times elapsed times.
DONE_SECONDS = 1e-12


class SharedCores:
    """Processor sharing of one host's cores between the computations under way on it. Two measured
    corrections (`simcode calibrate --ray`), none by default: `busy`, the cores' worth of work that
    never stops (Ray's own threads, idle), which the computations do not get; `crowded`, the speed of
    each computation when there are more of them than cores (the scheduler's switches, cold caches)."""

    def __init__(self, env: simpy.Environment, cores: int, crowded: float = 1.0, busy: float = 0.0):
        self.env = env
        self.cores = cores
        self.crowded = crowded
        self.free = cores - busy  # what the computations share
        self.store = simpy.Resource(env, capacity=1)  # on Ray: the raylet's object store, one request at a time
        self.left: dict[simpy.Event, float] = {}  # computation -> seconds of work still to do
        self.updated = env.now
        self.generation = 0  # a timer set before the last change is stale

    def compute(self, seconds: float) -> simpy.Event:
        """An event that fires once `seconds` of work are done on this host."""
        done = self.env.event()
        self.advance()
        self.left[done] = seconds
        self.reschedule()
        return done

    def cancel(self, done: simpy.Event) -> None:
        """Stop a computation (its learner was cancelled): the others speed up."""
        if done in self.left:
            self.advance()
            del self.left[done]
            self.reschedule()

    def rate(self) -> float:
        n = len(self.left)
        if n <= self.cores:
            return min(1.0, self.free / n) if n else 1.0
        return self.crowded * self.free / n

    def advance(self) -> None:
        elapsed = self.env.now - self.updated
        self.updated = self.env.now
        if elapsed > 0 and self.left:
            progress = elapsed * self.rate()
            for job in self.left:
                self.left[job] -= progress

    def reschedule(self) -> None:
        self.generation += 1
        if not self.left:
            return
        generation = self.generation
        wait = max(0.0, min(self.left.values()) / self.rate())
        self.env.timeout(wait).callbacks.append(lambda _event: self.finish(generation))

    def finish(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.advance()
        for job, left in list(self.left.items()):
            if left <= DONE_SECONDS:
                del self.left[job]
                job.succeed()
        self.reschedule()


@dataclass(frozen=True)
class Background:
    """Cores' worth of work a host does whatever it computes (Ray's threads, idle): its daemons' (a raylet
    on every host), each learner process's and the controller's."""

    daemons: float = 0.0
    learner: float = 0.0
    controller: float = 0.0

    def of(self, host) -> float:
        return self.daemons + self.learner * len(host.learners) + (self.controller if host.controller else 0.0)


def place(env: simpy.Environment, hosts, n_learners: int, crowded: float = 1.0,
          background: Background = Background()) -> tuple[list[SharedCores | None], SharedCores | None]:
    """(each learner's host or None, the controller's host or None) from `cluster.hosts`."""
    learner_hosts: list[SharedCores | None] = [None] * n_learners
    controller = None
    for h, host in enumerate(hosts or []):
        cores = SharedCores(env, host.cores, crowded, min(background.of(host), 0.5 * host.cores))
        for i in host.learners:
            if i >= n_learners or learner_hosts[i] is not None:
                what = "not a learner" if i >= n_learners else "on two hosts"
                raise BadInput(f"cluster.hosts[{h}].learners", f"learner {i} is {what}; allowed: each learner "
                               f"index 0..{n_learners - 1} on at most one host")
            learner_hosts[i] = cores
        if host.controller:
            if controller is not None:
                raise BadInput(f"cluster.hosts[{h}].controller", "a second controller host; allowed: one host "
                               "with controller: true")
            controller = cores
    return learner_hosts, controller
