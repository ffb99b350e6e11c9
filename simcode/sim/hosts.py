"""Host contention: computations that run at the same time on one machine share its cores.

`cluster.hosts` lists machines (`cores`, the `learners` each runs, `controller: true` on the
controller's). A host serves its computations by processor sharing: with n computations under way
on c cores, each advances at min(1, c / n) seconds of work per second, so a learner's compute time
stretches while its neighbours compute too. On Ray (`cluster.network.model: ray`) two measured
corrections apply (simcode.sim.calibrate_ray): Ray's own threads keep b of the c cores busy even when
idle (its raylet, each actor, the driver), so computations share c - b; and a crowded host (n > c)
loses its switches and cold caches: each computation then advances at `crowded` (c - b) / n, except
work whose price was measured amid such a crowd (Ray's messages: simcode.sim.calibrate_ray measures
them in gathers crowded with rows), which advances at (c - b) / n, not slowed twice. And a
process that wakes (the controller once an answer is in, an actor given a task, the raylet given a
message) runs its first `wake` seconds of work on a core at once, ahead of those sharing the cores:
Linux's scheduler (EEVDF) gives a woken task its slice before it queues behind the others (on this
2-core machine, 1 ms of work ran in 1 ms beside six busy processes, and 2 ms took 4 to 6 ms).
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
    """Processor sharing of one host's cores between the computations under way on it. Three measured
    corrections (`simcode calibrate --ray`), none by default: `busy`, the cores' worth of work that
    never stops (Ray's own threads, idle), which the computations do not get; `crowded`, the speed of
    each computation when there are more of them than cores (the scheduler's switches, cold caches);
    `wake`, the scheduler's slice for a process that wakes: Linux (EEVDF) runs a process that was
    asleep on a core at once, ahead of those sharing, for up to one slice of its work, and only then
    has it share the cores with the rest. A process's computations one right after another (its
    `owner` finished one at this very instant) are one burst: one slice for all of them.

    The host's CPU is the core time its computations held, as a CPU clock counts it: a computation on a
    crowded host holds its share of the cores for longer than its work (its work / `crowded`), and a
    cancelled one held them until it stopped. A computation's event fires with its own core time."""

    def __init__(self, env: simpy.Environment, cores: int, crowded: float = 1.0, busy: float = 0.0,
                 wake: float = 0.0):
        self.env = env
        self.cores = cores
        self.crowded = crowded
        self.free = cores - busy  # what the computations share
        self.used = 0.0  # core seconds its computations held: its CPU
        self.held: dict[simpy.Event, float] = {}  # computation -> core seconds it held so far
        self.wake = wake
        self.store = simpy.Resource(env, capacity=1)  # on Ray: the raylet's object store, one request at a time
        self.left: dict[simpy.Event, float] = {}  # computation -> seconds of work still to do
        self.ahead: dict[simpy.Event, float] = {}  # computation -> seconds of it still ahead of the sharing
        self.as_measured: dict[simpy.Event, float] = {}  # computation -> seconds of it not slowed by a crowd
        self.bursts: dict[object, tuple[float, float]] = {}  # owner -> (when its last work ended, slice left)
        self.owners: dict[simpy.Event, object] = {}
        self.updated = env.now
        self.generation = 0  # a timer set before the last change is stale

    def compute(self, seconds: float, owner: object = None, measured_crowded: float = 0.0) -> simpy.Event:
        """An event that fires once `seconds` of work are done on this host (`owner`: the process that
        computes it, which earns a slice ahead of the sharing when it wakes; None: no slice). The first
        `measured_crowded` seconds of it were measured amid a crowd (Ray's messages, measured amid the
        rows): a crowded host does not slow them again."""
        done = self.env.event()
        self.advance()
        self.left[done] = seconds
        self.held[done] = 0.0
        if measured_crowded > DONE_SECONDS:
            self.as_measured[done] = measured_crowded
        if owner is not None and self.wake > 0:
            ended, kept = self.bursts.get(owner, (-1.0, 0.0))
            ahead = kept if ended == self.env.now else self.wake  # the slice: this computation may end within it
            if ahead > DONE_SECONDS:
                self.ahead[done] = ahead
            self.owners[done] = owner
        self.reschedule()
        return done

    def cancel(self, done: simpy.Event) -> None:
        """Stop a computation (its learner was cancelled): the others speed up."""
        if done in self.left:
            self.advance()
            self.end(done)
            self.reschedule()

    def cpu_seconds(self, seconds: float) -> float:
        """The host's CPU over `seconds` of its life: the core time its computations held and Ray's idle
        threads' part."""
        return self.used + (self.cores - self.free) * seconds

    def end(self, done: simpy.Event) -> float:
        """Forget a computation: -> the core seconds it held."""
        del self.left[done]
        owner = self.owners.pop(done, None)
        if owner is not None:
            self.bursts[owner] = (self.env.now, max(self.ahead.get(done, 0.0), 0.0))
        self.ahead.pop(done, None)
        self.as_measured.pop(done, None)
        return self.held.pop(done)

    def rates(self) -> tuple[float, float, float]:
        """(speed of a computation ahead of the sharing, of one sharing what is left, of one sharing it
        whose work is priced as measured amid a crowd)."""
        n, first = len(self.left), len(self.ahead)
        fast = min(1.0, self.free / first) if first else 0.0
        shared, rest = n - first, self.free - first * fast
        if not shared:
            return fast, 0.0, 0.0
        plain = min(1.0, rest / shared)
        return fast, self.crowded * plain if n > self.cores else plain, plain

    def rate_of(self, job: simpy.Event, rates: tuple[float, float, float]) -> float:
        if job in self.ahead:
            return rates[0]
        return rates[2] if job in self.as_measured else rates[1]

    def advance(self) -> None:
        elapsed = self.env.now - self.updated
        self.updated = self.env.now
        if elapsed > 0 and self.left:
            rates = self.rates()
            for job in self.left:
                progress = elapsed * self.rate_of(job, rates)
                # Its share of the cores, slowed or not: a crowd slows the work, not the core time.
                held = elapsed * (rates[0] if job in self.ahead else rates[2])
                self.held[job] += held
                self.used += held
                self.left[job] -= progress
                for part in (self.ahead, self.as_measured):
                    if job in part:
                        part[job] -= progress

    def reschedule(self) -> None:
        self.generation += 1
        if not self.left:
            return
        generation, rates = self.generation, self.rates()
        waits = [min(self.ahead.get(job, left), self.as_measured.get(job, left), left) / speed
                 for job, left in self.left.items() if (speed := self.rate_of(job, rates)) > 0]
        wait = max(0.0, min(waits))
        self.env.timeout(wait).callbacks.append(lambda _event: self.finish(generation))

    def finish(self, generation: int) -> None:
        if generation != self.generation:
            return
        self.advance()
        for job, left in list(self.left.items()):
            if left <= DONE_SECONDS:
                job.succeed(self.end(job))
        for part in (self.ahead, self.as_measured):
            for job, seconds in list(part.items()):
                if seconds <= DONE_SECONDS:
                    del part[job]
        self.reschedule()


def computation(env: simpy.Environment, host: SharedCores | None, seconds: float, owner: object = None,
                measured_crowded: float = 0.0) -> simpy.Event:
    """`seconds` of work on `host` (SharedCores.compute), or on a machine of its own when `host` is None."""
    if host is None:
        return env.timeout(seconds)
    return host.compute(seconds, owner=owner, measured_crowded=measured_crowded)


class DriverThreads:
    """On Ray, Ray's threads in the driver process: they send each task and take each answer in, one
    message at a time, on the controller's host beside the controller's own thread (RayDriver.threads)."""

    def __init__(self, env: simpy.Environment, host, per_task: float):
        self.env = env
        self.host = host  # None: the controller has a machine of its own
        self.seconds = per_task / 2  # half sends the task, half takes its answer in
        self.turn = simpy.Resource(env, capacity=1)

    def handle(self, then):
        """A process: one message's work, then `then()`."""
        yield from one_at_a_time(self.env, self.turn, self.host, self.seconds, owner=self)
        then()


def one_at_a_time(env: simpy.Environment, turn: simpy.Resource, host, seconds: float, owner: object):
    """A process: `seconds` of `owner`'s work on `host`, once `turn` (a resource of capacity one: Ray's threads
    in the driver, a raylet's object store) serves it. Ray's messages: priced as measured amid a crowd."""
    with turn.request() as request:
        yield request
        yield computation(env, host, seconds, owner=owner, measured_crowded=seconds)


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
          background: Background = Background(),
          wake: float = 0.0) -> tuple[list[SharedCores | None], SharedCores | None]:
    """(each learner's host or None, the controller's host or None) from `cluster.hosts`."""
    learner_hosts: list[SharedCores | None] = [None] * n_learners
    controller = None
    for h, host in enumerate(hosts or []):
        cores = SharedCores(env, host.cores, crowded, min(background.of(host), 0.5 * host.cores), wake)
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
