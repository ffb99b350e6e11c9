"""The real backend: the iteration's protocol (simcode.sim.protocol) driven by real time on Ray.

Each learner is a Ray actor (`cluster.ray.num_cpus` CPUs each) that really computes its row: the
batched MADDPG update of the agents in its row of the assignment matrix, on their minibatches, then
the float64 combination of their new states. The controller is the driver: it steps the
environment, puts the states and the minibatches in Ray's object store once per iteration (each
learner reads them from there), sends every learner its task, and decodes from the first results
that decode. Straggler delays are real sleeps, drawn from the same delay model, stream and seed as
the simulation (`busy_time` of the measured compute time); a failed learner (infinite delay) never
answers. Late work (`cluster.on_decode`):

- cancel: the controller acks the late learners at once: a sleep is cut short and a task of an acked
  iteration not yet started is skipped (a computation under way runs to its end: torch cannot be
  interrupted mid-step, so the learner's next task waits for it);
- let_finish: late results are ignored; only failed learners are released (so they take the next work);
- cancel_wait (the seed's): every learner is acked; the ack cuts the wait, not the computation, and
  the next iteration starts when every learner is free.

Times are real seconds measured by the controller. The decode check (the direct update, to compare
the decoded states with) is no part of the protocol: it runs after the run (simcode.sim.real_check).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from simcode.codes import CENTRALIZED
from simcode.config import Scenario
from simcode.delays import busy_time
from simcode.errors import BadInput, SimulationError
from simcode.seeding import generator
from simcode.sim import protocol
from simcode.sim.ray_pool import batch_from_arrays, forget_learners, learner_pool, put_arguments, ray_session, settle
from simcode.sim.real_check import DeferredChecks
from simcode.sim.real_clock import RealClock
from simcode.sim.strategy import exact_columns
from simcode.sim.workload import shapes_of, stack_states, unstack_states


@dataclass(frozen=True)
class RunTask:
    iteration: int
    row: int  # which row of the matrix to compute (a re-sent task computes another's row)
    run: int  # the run it belongs to (LearnerActor.configure)


# Run numbers of this driver process: its learner actors serve its runs one after another.
_RUN_NUMBERS = itertools.count()


class LearnerActor:
    """A learner's body (wrapped by ray.remote): one task at a time; `ack` comes in on a second thread."""

    def __init__(self):
        import torch

        torch.set_num_threads(1)  # one core per learner, as the cluster it stands for
        one_blas_thread()  # numpy's too (it combines the row), for the actor's lifetime
        self.acked_changed = threading.Condition()
        self.one_task = threading.Lock()
        self.run = -1  # no run yet

    def configure(self, scenario: dict, index: int, matrix: np.ndarray, run: int) -> int:
        """Become learner `index` of run number `run` (an actor serves the runs of one Ray session in
        turn). A threaded actor does not keep one caller's calls in order, so a late ack or task of an
        earlier run may come after this: every message names its run, and another run's is ignored."""
        from simcode.marl.envs import describe
        from simcode.marl.maddpg import Update
        from simcode.marl.state import Layout

        sc = Scenario.model_validate(scenario)
        self.index = index
        self.layout = Layout(describe(sc.env, sc.maddpg))
        self.update = Update(self.layout, sc.maddpg)
        self.matrix = matrix
        self.rows = protocol.row_agents(matrix)
        self.width = max(self.layout.shapes.state_sizes)
        with self.acked_changed:
            self.run = run
            self.acked = -1  # the latest iteration of this run the controller acknowledged
            self.acked_changed.notify_all()  # a task of an earlier run still waiting gives up
        return index

    def ack(self, iteration: int, run: int) -> None:
        with self.acked_changed:
            if run == self.run:
                self.acked = max(self.acked, iteration)
                self.acked_changed.notify_all()

    def work(self, task: RunTask, delay: float, mode: str, compute_first: bool, states, batch):
        """-> (iteration, row, learner, message, compute seconds, (entered, started, left) on the wall
        clock, the computation's CPU seconds on its thread), or None when acked first (no answer)."""
        entered = time.time()  # Ray has delivered the task and its arguments
        with self.one_task:
            if task.run != self.run or self.acked >= task.iteration:
                return None  # the controller moved on (or to another run) while this task waited: skipped
            begun = time.time()  # an earlier task's computation, still running, is over
            started, cpu = time.perf_counter(), time.thread_time()
            message = None
            if compute_first or math.isfinite(delay):
                message = self.compute(task.row, states, batch)
            compute, cpu = time.perf_counter() - started, time.thread_time() - cpu
            extra = float(busy_time(compute, np.array([delay]), mode)[0]) - compute
            if self.wait_unless_acked(task, extra) or message is None:
                return None
            return task.iteration, task.row, self.index, message, compute, (entered, begun, time.time()), cpu

    def compute(self, row: int, states: list[np.ndarray], batch) -> np.ndarray:
        if isinstance(batch, dict):
            batch = batch_from_arrays(batch)
        agents = self.rows[row]
        new = self.layout.pack(self.update(self.layout.unpack(states), batch, agents), agents)
        return protocol.learner_result(self.matrix[row], agents, new, self.width)

    def wait_unless_acked(self, task: RunTask, seconds: float) -> bool:
        """Sleep `seconds` (inf: until acked or another run begins); True when either came first."""
        deadline = time.monotonic() + seconds
        with self.acked_changed:
            while self.acked < task.iteration and self.run == task.run:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.acked_changed.wait(None if math.isinf(left) else left)
        return True


def one_blas_thread():
    """Numpy's BLAS (OpenBLAS) on one thread from now on, or while the returned context is open.

    The controller and each learner stand for one core of work. OpenBLAS's idle threads spin for a while
    after every call: in the driver, after the decode and the combinations, they burnt 50-85 ms of CPU
    per 90 ms iteration (measured per thread with /proc/PID/task/*/schedstat), a core taken from the
    learners."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise BadInput("--backend", "threadpoolctl is not installed; allowed: pip install 'simcode[ray]'") from None
    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def one_core():
    """The driver on one thread of torch and of numpy's BLAS while a real run lasts, as the actors are.

    With two torch threads the driver's idle OpenMP worker spun after each of its updates (the decode
    check's): 20-30 ms of CPU per 60 ms iteration on two cores, taken from the learners (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            yield
    finally:
        torch.set_num_threads(threads)


class RealCluster:
    """The controller of one real run; `records` gets one dict per iteration, as the SimPy cluster's."""

    def __init__(self, scenario: Scenario, ray, audit: bool = True):
        """`audit`: this machine runs every process of the run (a local Ray), whose CPU the run reports."""
        from simcode.marl.trainer import Trainer

        self.ray = ray
        self.audit = audit
        self.scenario = scenario
        n_learners = scenario.cluster.n_learners
        self.code = scenario.code.build(scenario.n_agents, n_learners, scenario.seed)  # None: centralized
        self.delay_model = scenario.delay.build(n_learners)
        self.delay_model.reset()
        self.delay_rng = generator(scenario.seed, "delays")
        self.on_decode = scenario.cluster.on_decode
        self.timeout = scenario.cluster.timeout
        self.trainer = Trainer(scenario)
        self.width = shapes_of(scenario).padded_size
        self.decoded: np.ndarray | None = None  # the decode's buffer, reused every iteration
        self.n_learners = n_learners if self.code is not None else 0
        self.records: list[dict] = []
        scheme = self.code.name if self.code else CENTRALIZED
        self.checks = DeferredChecks(self.trainer, scheme, self.width, self.records)
        self.outstanding: list = []  # the last iteration's tasks not collected (late or failed learners)
        self.run_number = next(_RUN_NUMBERS)
        self.learners = self.start_learners(scenario)
        settle()  # a fresh Ray (or a new actor) still starting on this machine's cores is not this run's work
        self.clock = RealClock()  # it starts once every learner is up, as the simulated one

    def start_learners(self, scenario: Scenario) -> list:
        if self.code is None:
            return []
        learners = learner_pool(self.ray, self.n_learners, scenario.cluster.ray.num_cpus, LearnerActor)
        matrix, data = self.ray.put(self.code.matrix), scenario.to_dict()
        self.get(learners, [learner.configure.remote(data, i, matrix, self.run_number)
                            for i, learner in enumerate(learners)])
        return learners

    def stop(self) -> None:
        """Release every learner (a failed one waits for an ack) and wait until all are free for the next run."""
        final = self.scenario.run.iterations
        self.ray.get([learner.ack.remote(final, self.run_number) for learner in self.learners])
        self.ray.get(self.outstanding)

    def now(self) -> float:
        return self.clock.now()

    def get(self, learners: list, refs: list) -> list:
        """ray.get, a dead actor's error turned into a SimulationError naming the learner."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayActorError as exc:
            dead = next((i for i, ref in enumerate(refs) if _failed(self.ray, ref)), "?")
            raise SimulationError(f"learner {dead} (a Ray actor) died during the run: "
                                  f"{str(exc).splitlines()[0][:160]}") from None
        except self.ray.exceptions.RayTaskError as exc:
            raise SimulationError(f"a learner failed: {str(exc).splitlines()[0][:200]}") from None

    def run(self, on_iteration=None) -> None:
        self.trainer.warmup()
        self.warmup_seconds = self.now()
        if self.audit:
            self.clock.start_audit()
        for iteration in range(self.scenario.run.iterations):
            self.records.append(self.iterate(iteration))
            if self.checks.due:
                self.run_checks()
            if on_iteration:
                on_iteration(iteration)
        self.cpu_seconds = self.clock.cpu_seconds()
        self.run_checks()

    def iterate(self, iteration: int) -> dict:
        t_start = self.now()
        rewards = self.trainer.collect()
        batch = self.trainer.sample()
        t_sent = self.now()
        self.timings: list[tuple[float, ...]] = []  # per answer: compute, Ray's dispatch, queued, Ray's delivery
        delays = self.delay_model.sample(self.delay_rng)  # drawn every iteration, whatever the scheme
        if self.code is None:
            direct = self.trainer.compute_updates(batch)
            received, resent, pending = {}, 0, {}
        else:
            received, resent, pending = self.gather(iteration, delays, batch)
        # Into the same buffer every iteration, as a controller that installs the states it decodes would; the
        # deferred check keeps a copy, off the clock (a new array each time paid 0.5 ms of page faults at M = 3).
        decoded = self.code.decode(received, out=self.decoded) if self.code is not None else None
        self.decoded = decoded
        t_decoded = self.now()
        answered_late = self.release(iteration, delays, pending)
        t_end = self.now()
        with self.clock.off():
            if self.code is None:
                decoded, error = self.checks.finite(iteration, rewards, stack_states(direct, self.width)), 0.0
            else:  # its decode_error comes with the deferred check (simcode.sim.real_check)
                self.checks.keep(iteration, rewards, batch, decoded.copy())
                error = math.nan
            self.trainer.install(unstack_states(decoded, self.trainer.state_sizes))
        record = protocol.trace_record(
            iteration=iteration, t_start=t_start, t_end=t_end, env_seconds=t_sent - t_start, t_decoded=t_decoded,
            received=len(received), error=error, rewards=rewards, n_late=answered_late,
            delays=delays if self.code is not None else None, resent=resent)
        return {
            **record,
            **protocol.timing_means(self.timings),  # where its answers' time went
            **exact_columns(self.trainer.n_agents),  # the real backend runs the exact strategy only
        }

    def cpu_per_iteration(self) -> float | None:
        """CPU seconds an iteration cost this machine (simcode.sim.real_clock; None: no audit)."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.scenario.run.iterations

    def run_checks(self) -> None:  # the coded iterations' deferred decode checks, off the clock
        with self.clock.off():
            self.checks.flush()

    def gather(self, iteration: int, delays: np.ndarray, batch):
        """Send every learner its task; collect results until they decode: -> (messages by row, re-sent
        rows, {ref: learner} still pending)."""
        self.sent_at: dict = {}  # task ref -> when it was sent (wall clock, as the actors' timestamps)
        states, batch_ref = put_arguments(self.ray, self.trainer, batch)
        pending = {self.send(RunTask(iteration, i, self.run_number), float(delays[i]), states, batch_ref): i
                   for i in range(self.n_learners)}
        failed = int(np.count_nonzero(np.isinf(delays)))
        received: dict[int, np.ndarray] = {}
        answered: list[int] = []
        resent = 0
        deadline = self.now() + self.timeout if self.timeout else math.inf
        while not self.code.can_decode(received):
            move = protocol.next_move(n_learners=self.n_learners, failed=failed, answered=len(answered),
                                      resent=resent, timeout_set=deadline < math.inf,
                                      past_deadline=self.now() >= deadline)
            if move == "resend":
                for row, helper in protocol.resend_plan(self.n_learners, received, answered):
                    pending[self.send(RunTask(iteration, row, self.run_number), 0.0, states, batch_ref,
                                      helper)] = helper
                    resent += 1
                continue
            if move == "fail":
                raise SimulationError(protocol.undecodable_message(iteration, self.code, self.timeout, len(received),
                                                                   failed, self.n_learners))
            # Past the deadline with nobody to re-send to, the next answer is what we wait for.
            wait = deadline - self.now() if not resent and self.now() < deadline < math.inf else None
            # Never block in Ray's C++ wait for long: the driver's Python signal handlers (Ctrl-C, a
            # test's alarm) only run between calls.
            done, _ = self.ray.wait(list(pending), num_returns=1, timeout=min(wait, 1.0) if wait else 1.0)
            for ref in done:
                learner = pending.pop(ref)
                answer = self.get([learner], [ref])[0]
                answered.append(learner)
                if answer is not None:
                    received.setdefault(answer[1], answer[3])
                    entered, begun, left = answer[5]
                    stamps = protocol.Stamps(sent=self.sent_at[ref], entered=entered, begun=begun, compute=answer[4],
                                             cpu=answer[6], left=left)
                    self.timings.append(protocol.answer_timings(stamps, time.time()))
        return received, resent, pending

    def send(self, task: RunTask, delay: float, states, batch, learner: int | None = None):
        learner = task.row if learner is None else learner
        compute_first = self.on_decode == "cancel_wait"  # the seed's failed learner computes, then waits
        ref = self.learners[learner].work.remote(task, delay, self.delay_model.mode, compute_first, states, batch)
        self.sent_at[ref] = time.time()
        return ref

    def release(self, iteration: int, delays: np.ndarray, pending: dict) -> int:
        """Late work, as `cluster.on_decode` says (module docstring): -> how many learners had not answered."""
        late = sorted(set(pending.values()))
        if self.on_decode == "let_finish":
            to_ack = [i for i in late if math.isinf(delays[i])]
        else:
            to_ack = late if self.on_decode == "cancel" else range(self.n_learners)
        for i in to_ack:
            self.learners[i].ack.remote(iteration, self.run_number)
        if self.on_decode == "cancel_wait":
            self.get(self.learners, list(pending))  # every learner free before the next broadcast
        self.outstanding = list(pending)
        return len(late)


def _failed(ray, ref) -> bool:
    try:
        ray.get(ref, timeout=0)
    except ray.exceptions.RayActorError:
        return True
    except Exception:  # not ready, or failed otherwise: not the dead actor's
        return False
    return False


def run_real(scenario: Scenario, address: str | None = None, progress: bool = False):
    """Run `scenario` for real on Ray: -> a RunResult like the simulator's (times in real seconds)."""
    import pandas as pd

    from simcode.progress import progress_bar
    from simcode.sim.calibrate_ray_host import speed_columns, speed_probe
    from simcode.sim.runner import RunResult, summarize

    started = time.perf_counter()
    with one_core(), ray_session(scenario.cluster.n_learners, scenario.cluster.ray.num_cpus, address) as ray:
        try:
            probe = speed_probe()  # how fast the machine runs now (the run's machine_speed)
            cluster = RealCluster(scenario, ray, audit=address is None)
            with progress_bar(scenario.run.iterations, f"running {scenario.code.name} on Ray",
                              enabled=progress) as advance:
                cluster.run(on_iteration=lambda _k: advance(1))
            cluster.stop()
        except BaseException:
            forget_learners(ray)
            raise
    trace = pd.DataFrame.from_records(cluster.records)
    summary = {**summarize(scenario, cluster, trace, time.perf_counter() - started), **speed_columns(scenario, probe)}
    return RunResult(scenario, trace, summary, final_states=cluster.trainer.states())
