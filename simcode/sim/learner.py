"""A learner of the SimPy cluster (simcode.sim.cluster): it takes tasks one at a time, is busy for
its computation (on its host's shared cores, simcode.sim.hosts) and its straggler delay, and sends its
result back over the network.

Cancelled on decode (`cluster.on_decode: cancel`), it stops at once, unless its computation cannot
be stopped: on Ray (`cluster.network.model: ray`) torch runs a started computation to its end, as
the real backend's learner does (simcode.sim.real), so only the straggler's sleep is cut short and
the next task waits for the computation. On Ray the raylet of the learner's host also serves the
task's arguments before it and seals its result after it, one learner's request at a time, and the
actor's CPU for the task comes around its row (receiving the task before, shipping the result after,
as calibrate measured); its answer carries the stamps of where its time went
(simcode.sim.protocol.Stamps), as a real learner's does.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import simpy

from simcode.sim.hosts import DONE_SECONDS, computation, one_at_a_time
from simcode.sim.protocol import Result, Stamps, Task

if TYPE_CHECKING:
    from simcode.sim.cluster import Cluster


class Learner:
    def __init__(self, cluster: Cluster, index: int):
        self.cluster = cluster
        self.index = index
        self.env = cluster.env
        self.inbox = simpy.Store(self.env)
        self.working_on: int | None = None
        self.computing: simpy.Event | None = None  # cancel_wait: the computation under way
        self.host = cluster.learner_hosts[index]  # None: a machine of its own
        self.row = (0.0, 0.0, 0.0)  # the current task's row: when it began and ended, its core seconds
        self.process = self.env.process(self.work())

    def work(self):
        """Take tasks one at a time. cancel_wait: see compute_then_wait. cancel and let_finish: busy for
        the whole busy time, unless cancelled on decode (inline, not delegated: the hot path of timing
        studies)."""
        while True:
            task: Task = yield self.inbox.get()
            taken = self.env.now  # it waited in the inbox from task.arrived, behind a late computation
            if self.cluster.wait_for_ack:
                yield from self.compute_then_wait(task, taken)
                continue
            if self.cluster.cancel and task.iteration < self.cluster.iteration:
                continue  # the controller moved on while this task was on the wire
            if math.isinf(task.busy):
                continue  # failed: never answers this task
            self.working_on = task.iteration
            begun = None  # when the computation began
            try:
                if self.cluster.store is not None:  # on Ray: the raylet serves the task's arguments first
                    yield from self.through_store(self.cluster.store[0])
                begun = self.env.now
                before, row, after = self.split(task)
                if self.host is None:
                    self.row = (begun + before, begun + before + row, row)
                    yield self.env.timeout(task.busy - after)
                else:
                    yield from self.compute_on_host(task)
            except simpy.Interrupt:  # cancelled on decode
                if self.cluster.runs_to_end and self.host is None and begun is not None:
                    yield self.env.timeout(max(0.0, begun + task.compute - after - self.env.now))
                continue
            finally:
                self.working_on = None
            stamps = self.stamps(task, taken)
            yield from self.ship(task)
            self.answer(task, stamps)

    def split(self, task: Task) -> tuple[float, float, float]:
        """(its actor's CPU before the row, the row, its actor's CPU after the row) of a task's computation: on
        Ray the actor receives the task and reads its arguments before, and ships its result after the
        straggler's wait (task_overhead, of which task_after after, as calibrate measured); otherwise the
        row alone."""
        overhead = min(self.cluster.task_overhead, task.compute)
        after = min(self.cluster.task_after, overhead)
        return overhead - after, task.compute - overhead, after

    def parts(self, task: Task) -> list[tuple[float, float]]:
        """The computations before the straggler's wait, one after another, as (seconds, of which priced as
        measured amid a crowd): the actor's part before the row (measured amid the rows: a crowd does not slow
        it again), then the row."""
        before, row, _ = self.split(task)
        if before <= DONE_SECONDS:
            return [(row, 0.0)]
        return [(before, before), (row, 0.0)]

    def ship(self, task: Task):
        """On Ray, once the answer leaves: the actor's part after the row ships the result, then the raylet
        seals it, before the controller can have it."""
        yield from self.actor_after(task)
        if self.cluster.store is not None:
            yield from self.through_store(self.cluster.store[1])

    def actor_after(self, task: Task):
        """The actor's part after the row, as the task returns (priced as measured amid the rows)."""
        after = self.split(task)[2]
        if after > DONE_SECONDS:
            yield computation(self.env, self.host, after, owner=self, measured_crowded=after)

    def through_store(self, seconds: float):
        """On Ray: `seconds` of the raylet's work for this learner, its host's object store serving one
        request at a time on the host's cores (a machine of its own: no queue)."""
        if self.host is None:
            yield self.env.timeout(seconds)
            return
        yield from one_at_a_time(self.env, self.host.store, self.host, seconds, owner=self.host.store)

    def compute_on_host(self, task: Task):
        """The computation shares the host's cores (`parts`); the straggler's extra time is a sleep, sharing
        nothing. Cancelled where torch cannot stop (on Ray), the part under way runs to its end; the row
        does not begin after the actor's part, as a real actor acked before its method begins skips it."""
        for seconds, measured in self.parts(task):
            begun = self.env.now
            job = computation(self.env, self.host, seconds, owner=self, measured_crowded=measured)
            try:
                cpu = yield job
            except simpy.Interrupt as stop:
                if self.cluster.runs_to_end:
                    yield job  # not interrupted again: the cluster interrupts only the current iteration's work
                else:
                    self.host.cancel(job)
                raise stop
        self.row = (begun, self.env.now, cpu)
        yield self.env.timeout(task.busy - task.compute)

    def run_parts(self, task: Task):
        """A process: the task's computations (`parts`) to their end; the row's stamps kept."""
        for seconds, measured in self.parts(task):
            begun = self.env.now
            cpu = yield computation(self.env, self.host, seconds, owner=self, measured_crowded=measured)
        self.row = (begun, self.env.now, seconds if cpu is None else cpu)  # a machine of its own: its work

    def compute_then_wait(self, task: Task, taken: float):
        """cancel_wait: the computation runs to its end; the straggler's extra wait (infinite for a
        failed learner) ends early when the ack comes, and then the result is not sent (on Ray the task
        returns empty)."""
        ack = self.cluster.ack_round.acks[self.index]
        if task.iteration < self.cluster.iteration or ack.triggered:
            yield from self.return_empty(task)  # an acked learner knows its iteration decoded: it drops the work
            return
        if self.cluster.store is not None:  # on Ray: the raylet serves the task's arguments first
            yield from self.through_store(self.cluster.store[0])
        self.computing = self.env.process(self.run_parts(task))
        yield self.computing
        self.computing = None
        extra = task.busy - task.compute
        if not ack.triggered and extra > 0:
            yield ack if math.isinf(extra) else ack | self.env.timeout(extra)
        if not ack.triggered:
            stamps = self.stamps(task, taken)
            yield from self.ship(task)
            self.answer(task, stamps)
        else:
            yield from self.return_empty(task)

    def return_empty(self, task: Task):
        """cancel_wait on Ray: an acked task still returns, with nothing in it: the actor's part after the row
        (no object for the raylet to seal), then Ray's threads in the driver take it in. Off Ray: nothing."""
        if self.cluster.driver is None:
            return
        yield from self.actor_after(task)
        self.cluster.take_in_empty(self.index, task.iteration)

    def stamps(self, task: Task, taken: float) -> Stamps | None:
        """On Ray, where the task's time went, as its answer leaves (after the straggler's wait): the learner
        has the task and its arguments (entered, as a real actor's method begins) once it has waited its
        turn in the inbox from its arrival until `taken` (queued before, not after, here), the raylet has
        served them and its actor has spent its CPU for the task. None off Ray."""
        if self.cluster.store is None:
            return None
        begun, ended, cpu = self.row
        queued = taken - task.arrived
        return Stamps(sent=task.sent, entered=begun - queued, begun=begun, compute=ended - begun, cpu=cpu,
                      left=self.env.now)

    def answer(self, task: Task, stamps: Stamps | None = None) -> None:
        result = Result(task.iteration, task.row, self.index, stamps)
        self.cluster.network.send(self.index, partial(self.cluster.take_in, result), self.cluster.result_nbytes)
