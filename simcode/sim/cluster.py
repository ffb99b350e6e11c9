"""The SimPy clock model of one coded training run: a controller, N learners and a network.

One iteration, as the clock sees it (DESIGN.md):
1. the controller steps the environment (simulated by the cost model),
2. it sends the states and each learner's minibatches over the network (simcode.sim.network; on
   the shared network the states go first, as the seed's broadcast, then the environment steps),
3. learner i computes the updates of the agents in row i of the assignment matrix, encodes its
   row and sends it back; its busy time is the cost of its load plus its straggler delay,
4. after every arrival the controller checks whether the received rows decode (with
   `cost.rank_check`, paying the seed's rank check each time); when they do it decodes, checks the
   decoded states against the direct ones, installs them and goes on. With `cluster.strategy`
   deadline or stale it stops waiting at the deadline too, and installs what simcode.sim.strategy says.

What late learners do once the iteration decodes, or a deadline strategy stops waiting (`cluster.on_decode`):
- `cancel`: the controller frees them at once; they take the next work as it comes (on Ray, with
  `cluster.network.model: ray`, a computation under way runs to its end first, as torch's does).
- `let_finish`: they finish the late work first; the next work waits in their inbox.
- `cancel_wait`, the seed's protocol: a learner's busy time is its computation plus an extra
  straggler wait (busy - compute, whatever the delay mode). Once the rows decode the controller sends
  every learner an acknowledgement; the ack cuts the extra wait short (the learner then sends
  nothing) but the computation always runs to its end. The iteration ends, and the next begins,
  when the decode is done and every learner is free: acked and no longer computing. On Ray the
  controller acks after the decode and takes back every task, as the real backend does (simcode.sim.acks).

The clock logic holds no torch and no file I/O: the real computation hides behind the workload
(`simcode.sim.workload`) and the records are plain dicts.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import simpy

from simcode.codes import CENTRALIZED
from simcode.config import NetworkConfig
from simcode.errors import SimulationError
from simcode.sim.busy import busy_seconds
from simcode.sim.cost import CostModel, DecodeWork, HostTimes
from simcode.sim import protocol
from simcode.sim.acks import AckRound
from simcode.sim.hosts import DriverThreads, computation, place
from simcode.sim.learner import Learner
from simcode.sim.network import CONTROLLER, make_network
from simcode.sim.protocol import Result, Task
from simcode.sim.strategy import Strategy, exact_columns
from simcode.sim.workload import IterationData

class Cluster:
    """Builds the learners and runs the controller; `records` gets one dict per iteration."""

    def __init__(self, *, code, n_learners: int, network: NetworkConfig, on_decode: str,
                 timeout: float | None, delay_model, delay_rng: np.random.Generator, cost: CostModel,
                 workload, steps_per_iteration: int, warmup_steps: int, iterations: int, hosts=None,
                 strategy: Strategy | None = None):
        self.env = simpy.Environment()
        self.strategy = strategy  # None: exact; deadline or stale (simcode.sim.strategy) otherwise
        self.code = code  # None: centralized, the controller computes every update itself
        self.n_agents = len(workload.shapes.state_sizes)
        self.n_learners = n_learners if code is not None else 0
        self.learner_hosts, self.controller_host = place(self.env, hosts, n_learners, cost.crowded,
                                                         cost.background, cost.wake)  # centralized: no learner's
        self.network = make_network(self.env, network, cost.message_overhead(network))
        self.cancel = on_decode == "cancel"
        self.driver = cost.driver  # the controller's CPU for Ray's messages (None: not on Ray)
        self.runs_to_end = self.driver is not None  # on Ray a started computation is not interrupted
        self.store = cost.store  # on Ray: a task's raylet work before and after it (None: not on Ray)
        self.task_overhead = cost.task_overhead  # on Ray: the actor's part of a learner's compute beside its row,
        self.task_after = cost.task_after  # of which after the row (the rest before)
        threads = self.driver.threads if self.driver is not None else 0.0
        self.driver_threads = DriverThreads(self.env, self.controller_host, threads) if threads > 0 else None
        self.wait_for_ack = on_decode == "cancel_wait"
        self.rank_check = cost.config.rank_check
        self.timeout = timeout
        self.delay_model = delay_model
        self.delay_rng = delay_rng
        self.cost = cost
        self.workload = workload
        self.steps_per_iteration = steps_per_iteration
        self.warmup_steps = warmup_steps
        self.iterations = iterations
        self.iteration = -1
        self.records: list[dict] = []
        shapes = workload.shapes
        self.padded_size = shapes.padded_size
        self.result_nbytes = 8 * self.padded_size  # a float64 combination of states
        self.state_nbytes = 4 * sum(shapes.state_sizes)
        self.results = simpy.Store(self.env)
        self.ack_round: AckRound | None = None  # cancel_wait: the current iteration's acknowledgements
        self.taken = 0  # answers the controller took in before the rows decoded
        self.answer_times = [math.inf] * self.n_learners  # when each learner's result first arrived
        self.decided_at = 0.0  # when the received rows were found to decode
        self.learners = [Learner(self, i) for i in range(self.n_learners)]
        if code is not None:
            self.rows = protocol.row_agents(code.matrix)
            self.unit_agent = [row[0] if len(row) == 1 else -1 for row in self.rows]
            # What learner i receives: its agents' minibatches, and every agent's state unless the
            # shared network broadcasts the states on their own.
            states = 0 if self.network.shared else self.state_nbytes
            self.task_nbytes = [states + sum(self.batch_nbytes(j) for j in row) for row in self.rows]
            self._fixed_compute: np.ndarray | None = None
        self._scratch: np.ndarray | None = None  # reused by the decode check
        self.iteration_done = [self.env.event() for _ in range(iterations)]
        self.env.process(self.controller())

    def through_driver(self, then):
        """`then()` once Ray's threads in the driver have handled its message (a process), or at once when the
        controller has none (not on Ray): -> the process, or what `then()` returns."""
        return then() if self.driver_threads is None else self.env.process(self.driver_threads.handle(then))

    def take_in(self, result: Result, _arrival: simpy.Event | None = None) -> None:
        """A result reaches the controller's process: on Ray, Ray's threads there take it in first."""
        self.through_driver(partial(self.result_arrived, result))

    def result_arrived(self, result: Result, _arrival: simpy.Event | None = None) -> None:
        if result.iteration == self.iteration and self.answer_times[result.learner] == math.inf:
            self.answer_times[result.learner] = self.env.now
        if self.ack_round is not None:
            self.ack_round.came_back(result.learner, result.iteration)
        self.results.put(result)

    def take_in_empty(self, learner: int, iteration: int) -> None:
        """cancel_wait on Ray: an acked learner's task comes back empty; Ray's threads take it in."""
        self.through_driver(partial(self.ack_round.came_back, learner, iteration))

    # ------------------------------------------------------------------ the controller
    def controller(self):
        self.workload.warmup()  # fills the replay buffer; its episodes are not iterations
        yield self.env.timeout(self.cost.env_seconds(self.warmup_steps, HostTimes()))
        self.warmup_seconds = self.env.now
        for iteration in range(self.iterations):
            self.iteration = iteration
            record = yield from self.iterate(iteration)
            self.records.append(record)
            # Pause here until whoever drives the clock resumes it: clocks sharing one training
            # (simcode.sim.runner.simulate_group) must all finish the iteration before the next begins.
            yield self.iteration_done[iteration].succeed()

    def iterate(self, iteration: int):
        """One iteration, from the environment steps to the installed states: -> its trace record."""
        t_start = self.env.now
        self.timings: list[tuple[float, ...]] = []  # on Ray: where each answer's time went (REAL_TIMINGS)
        data = self.workload.begin(iteration)
        if self.network.shared and self.code is not None:
            yield from self.broadcast_states()
        t_env = self.env.now
        yield self.controller_computes(self.cost.env_seconds(self.steps_per_iteration, data.host)
                                       + self.cost.sample_seconds())
        t_sent = self.env.now
        delays = self.delay_model.sample(self.delay_rng)  # drawn every iteration, whatever the scheme
        if self.code is None:
            yield self.controller_computes(self.cost.update_seconds(range(self.n_agents), data.host))
            received, resent = {}, 0
        else:
            received, resent = yield from self.gather(iteration, delays, data)
            if self.wait_for_ack and not self.ack_round.decode_first:
                yield from self.ack_round.send()
            yield self.controller_computes(self.cost.decode_seconds(self.decode_work(received)))
        t_decoded = self.env.now
        self.check_clock(iteration, t_decoded)
        if self.strategy is None:
            decoded, error = self.decode(iteration, received, data)
            self.workload.install(iteration, decoded, error)
            columns = exact_columns(self.n_agents)
        else:
            error, columns = self.settle(iteration, received, data)
        if self.cancel:
            yield from self.release(iteration)
        if self.wait_for_ack:
            if self.ack_round.decode_first:
                yield from self.ack_round.send()
            yield from self.ack_round.wait_for_learners(self.taken)
            self.check_clock(iteration, self.env.now)
        record = protocol.trace_record(
            iteration=iteration, t_start=t_start, t_end=self.env.now, env_seconds=t_sent - t_env,
            t_decoded=t_decoded, received=len(received), error=error, rewards=data.rewards,
            n_late=sum(t > self.decided_at for t in self.answer_times),
            delays=delays if self.code is not None else None, resent=resent)
        return {
            **record, **columns,
            **(protocol.timing_means(self.timings) if self.store is not None else {}),
        }

    def cpu_per_iteration(self) -> float | None:
        """CPU seconds an iteration costs the simulated hosts (None: no cluster.hosts): every computation
        on them and their idle Ray threads' part, from the first iteration on."""
        hosts = {id(host): host for host in [*self.learner_hosts, self.controller_host] if host is not None}
        if not hosts or not self.records:
            return None
        seconds = self.env.now - self.warmup_seconds
        return sum(host.cpu_seconds(seconds) for host in hosts.values()) / len(self.records)

    def controller_computes(self, seconds: float, message: bool = False) -> simpy.Event:
        """The controller's own computation, sharing its host's cores when `cluster.hosts` names one
        (`message`: Ray's, priced as measured amid a crowd, simcode.sim.hosts)."""
        return computation(self.env, self.controller_host, seconds, owner=self,
                           measured_crowded=seconds if message else 0.0)

    def check_clock(self, iteration: int, now: float) -> None:
        if not math.isfinite(now):  # busy times are bounded, but a very long run may add up
            raise SimulationError(f"iteration {iteration}: the simulated clock left float64 range (t = {now}); "
                                  "allowed: times that add up to a finite number of seconds")

    def broadcast_states(self):
        """Shared network: the seed's broadcast (`comm.bcast`) of every agent's state to every learner,
        a binomial tree from the controller's interface; the controller steps the environment once it is done."""
        yield self.network.broadcast(CONTROLLER, self.state_nbytes, len(self.learners))

    def gather(self, iteration: int, delays: np.ndarray, data):
        """Send every learner its work and collect results until they decode: -> (received, resent).

        Every path ends decoded, at a deadline strategy's deadline, or in a SimulationError: the
        controller waits only while a result can still arrive. With a timeout, the rows still missing at
        the deadline are re-sent once to the learners that answered; if nobody has answered by then, at
        the first answer after it."""
        t_sent = self.env.now
        compute = self.compute_seconds(data)
        busy = busy_seconds(iteration, compute, delays, self.delay_model)
        self.answer_times = [math.inf] * self.n_learners
        if self.wait_for_ack:
            self.ack_round = AckRound(self)
        sends = yield from self.send_tasks(iteration, busy, compute)
        if self.network.shared:
            yield self.env.all_of(sends)  # the seed's blocking sends, learner 0 first
        failed = int(np.count_nonzero(np.isinf(busy)))
        received: dict[int, Result] = {}
        answered: list[int] = []
        resent = 0
        deadline = self.env.now + self.timeout if self.timeout else math.inf
        wait_until = self.strategy_deadline(t_sent, busy)  # inf: exact waits for the decode
        while not self.code.can_decode(received) and self.env.now < wait_until:
            move = protocol.next_move(n_learners=self.n_learners, failed=failed, answered=len(answered),
                                      resent=resent, timeout_set=deadline < math.inf,
                                      past_deadline=self.env.now >= deadline)
            if move == "resend":
                resent = self.resend(iteration, received, answered, data)
                continue
            if move == "fail":
                if wait_until < math.inf:  # nothing more can come, which the controller cannot know
                    yield self.env.timeout(wait_until - self.env.now)
                    break
                raise SimulationError(protocol.undecodable_message(iteration, self.code, self.timeout, len(received),
                                                                   failed, self.n_learners))
            may_resend = not resent and deadline < math.inf
            # Past the deadline with nobody to re-send to, the next answer is what we wait for.
            resend_at = deadline if may_resend and self.env.now < deadline else math.inf
            result = yield from self.next_result(min(resend_at, wait_until))
            if result is None:
                continue  # the timeout or the strategy's deadline came first
            if result.iteration != iteration:  # a straggler's answer to an earlier iteration
                if self.strategy is not None:
                    self.strategy.late_result(result.iteration, result.row, iteration)
                continue
            if self.driver is not None and self.driver.reply:
                yield self.controller_computes(self.driver.reply, message=True)  # its own thread takes the answer
            if result.stamps is not None:
                self.timings.append(protocol.answer_timings(result.stamps, self.env.now))
            answered.append(result.learner)
            received.setdefault(result.row, result)
            if self.rank_check:  # the seed's matrix_rank of the rows received so far
                yield self.env.timeout(self.cost.rank_check_seconds(len(received), self.n_agents))
        self.decided_at = self.env.now
        self.taken = len(answered)
        return received, resent

    def send_tasks(self, iteration: int, busy: np.ndarray, compute: np.ndarray):
        """Every learner's task, learner 0 first: -> the sends. On Ray the controller first packs and puts
        the states and the minibatch in the object store, then its thread submits the tasks one after
        another (RayDriver), and Ray's threads in the driver send each (DriverThreads)."""
        sends = []
        if self.driver is not None:
            yield self.controller_computes(self.driver.put, message=True)
        for i, learner in enumerate(self.learners):
            if self.driver is not None:
                yield self.controller_computes(self.driver.submit, message=True)
            task = Task(iteration, i, float(busy[i]), float(compute[i]), sent=self.env.now)
            send = partial(self.network.send, CONTROLLER, _deliver(self.env, learner.inbox, task), self.task_nbytes[i])
            sends.append(self.through_driver(send))  # on Ray, Ray's threads send it once its thread submitted it
        return sends

    def release(self, iteration: int):
        """cancel: interrupt the learners still on this iteration's work (on Ray, the controller acks each
        late learner: a message, CPU on its host)."""
        if self.driver is not None:
            unanswered = sum(math.isinf(t) for t in self.answer_times)
            yield self.controller_computes(unanswered * self.driver.ack, message=True)
        for learner in self.learners:
            if learner.working_on == iteration:
                learner.process.interrupt()

    def strategy_deadline(self, t_sent: float, busy: np.ndarray) -> float:
        """When a deadline strategy stops waiting (inf: exact waits for the decode)."""
        if self.strategy is None:
            return math.inf
        network_seconds = [self.network.seconds(n) + self.network.seconds(self.result_nbytes) for n in self.task_nbytes]
        return t_sent + self.strategy.clock.wait_seconds(busy, network_seconds)

    def settle(self, iteration: int, received: dict, data: IterationData) -> tuple[float, dict]:
        """deadline or stale: install what the strategy recovers -> (decode error, trace columns)."""
        if data.theta is not None:
            protocol.check_trained(iteration, self.code.name, data, self.records)
        after_wait = []
        while self.strategy.stale and self.results.items:  # read now: stale applies them at this iteration's end
            result = self.results.get().value
            after_wait.append((result.iteration, result.row))
        settled = self.strategy.settle(iteration, sorted(received), data, self.encode, after_wait)
        self.workload.install(iteration, settled.states, settled.error, settled.updated)
        return settled.error, settled.columns

    def next_result(self, deadline: float):
        """The next result to arrive, or None when the simulated time `deadline` comes first."""
        get = self.results.get()
        if math.isinf(deadline):
            return (yield get)
        fired = yield get | self.env.timeout(deadline - self.env.now)
        if get in fired:
            return fired[get]
        get.cancel()
        return None

    def compute_seconds(self, data) -> np.ndarray:
        """Each learner's compute time for its row this iteration (constant unless costs are measured)."""
        if self.cost.reproducible and self._fixed_compute is not None:
            return self._fixed_compute
        seconds = np.array([self.cost.update_seconds(row, data.host) for row in self.rows])
        if self.cost.reproducible:
            self._fixed_compute = seconds
        return seconds

    def resend(self, iteration: int, received: dict, answered: list[int], data) -> int:
        """After the timeout: the rows still missing go to learners that answered (protocol.resend_plan)."""
        plan = protocol.resend_plan(self.n_learners, received, answered)
        for row, helper in plan:
            nbytes = sum(self.batch_nbytes(j) for j in self.rows[row])
            seconds = self.cost.update_seconds(self.rows[row], data.host)
            task = Task(iteration, row, seconds, seconds, sent=self.env.now)
            self.network.send(CONTROLLER, _deliver(self.env, self.learners[helper].inbox, task), nbytes)
        return len(plan)

    def batch_nbytes(self, agent: int) -> int:
        return self.workload.shapes.batch_nbytes[agent]

    def decode_work(self, received: dict) -> DecodeWork:
        """What decoding the received rows takes: agents copied from unit rows, rows to solve from."""
        copied = {self.unit_agent[row] for row in received if self.unit_agent[row] >= 0}
        rows_used = sum(1 for row in received if self.unit_agent[row] < 0)
        return DecodeWork(self.n_agents, self.padded_size, len(copied), rows_used)

    def decode(self, iteration: int, received: dict, data: IterationData) -> tuple[np.ndarray | None, float]:
        """The decoded states (M, P) and the decode error relative to the direct ones (nan: no computation).

        A non-finite number stops the run: a NaN decode error would otherwise vanish from every max."""
        theta = data.theta
        if theta is None:
            return None, math.nan
        protocol.check_trained(iteration, self.code.name if self.code is not None else CENTRALIZED, data,
                               self.records)
        if self.code is None:
            return theta, 0.0
        # The shared-training shortcut: every row encoded from the direct states, as its learner would.
        coded = {row: self.encode(row, theta) for row in received}
        if self._scratch is None or self._scratch.shape != theta.shape:
            self._scratch = np.empty_like(theta)
        return protocol.decode_and_check(iteration, self.code, coded, data, self._scratch)

    def encode(self, row: int, theta: np.ndarray) -> np.ndarray:
        """What learner `row` sends: its row of the matrix times the states."""
        return protocol.combine(self.code.matrix[row], self.rows[row], theta)


def _deliver(env: simpy.Environment, inbox: simpy.Store, task: Task):
    """What a task's arrival does: put it in its learner's inbox, noting when."""
    def arrive(_arrival) -> None:
        task.arrived = env.now
        inbox.put(task)
    return arrive

