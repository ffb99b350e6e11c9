"""A real run's clock (simcode.sim.real): what it keeps off, and the CPU the run costs this machine.

The clock measures the protocol only: the decode checks (and the install of the decoded states that
follows them) run off it, so a real run's seconds are its simulated twin's. The CPU audit reads every
thread of the driver process and of its descendants (a local Ray: its daemons and the learner
actors) on a core (/proc/PID/task/*/schedstat, as simcode calibrate --ray does), from the first
iteration to the last, less the driver thread's CPU in the work kept off the clock: the CPU seconds
an iteration costs the machine, which the study sets against the simulated hosts' priced CPU
(simcode.sim.cluster.Cluster.cpu_per_iteration). A cluster's other machines are out of its sight.
"""

from __future__ import annotations

import contextlib
import time


class RealClock:
    def __init__(self):
        self.started = time.perf_counter()
        self.paused = 0.0  # wall seconds kept off the clock
        self.paused_cpu = 0.0  # the driver thread's CPU seconds in them
        self.audit = None  # (CpuClock, its first read, paused_cpu then) once the iterations begin

    def now(self) -> float:
        return time.perf_counter() - self.started - self.paused

    @contextlib.contextmanager
    def off(self):
        """Work the clock does not count (the decode checks)."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - wall
            self.paused_cpu += time.thread_time() - cpu

    def start_audit(self) -> None:
        from simcode.sim.calibrate_ray import CpuClock

        clock = CpuClock([])
        self.audit = (clock, clock.read(), self.paused_cpu)

    def cpu_seconds(self) -> float | None:
        """CPU seconds since start_audit on this machine, less the work kept off the clock (None: no audit)."""
        if self.audit is None:
            return None
        clock, first, paused_cpu = self.audit
        return sum(clock.used(first, clock.read()).values()) - (self.paused_cpu - paused_cpu)
