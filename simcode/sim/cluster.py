"""The SimPy clock model of one coded training run: a controller, N learners and a network.

One iteration, as the clock sees it (DESIGN.md):
1. the controller steps the environment (simulated by the cost model),
2. it sends the states and each learner's minibatches over the network,
3. learner i computes the updates of the agents in row i of the assignment matrix, encodes its
   row and sends it back; its busy time is the cost of its load plus its straggler delay,
4. after every arrival the controller checks whether the received rows decode; when they do it
   decodes, checks the decoded states against the direct ones, installs them and goes on.

The clock logic holds no torch and no file I/O: the real computation hides behind the workload
(`simcode.sim.workload`) and the records are plain dicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from simcode.config import NetworkConfig
from simcode.delays import busy_time
from simcode.errors import SimulationError
from simcode.sim.cost import CostModel, HostTimes
from simcode.sim.workload import IterationData, relative_error

# The longest a learner may be busy in one iteration (about 31,700 years): longer is a mistake of
# units, and sums and squares of such times stay far inside float64 (summary statistics).
MAX_BUSY_SECONDS = 1e12


@dataclass
class Task:
    iteration: int
    row: int        # which row of the matrix to compute (a re-sent task computes another's row)
    busy: float     # simulated seconds of computation, straggler delay included; inf: no answer


@dataclass
class Result:
    iteration: int
    row: int
    learner: int


class Network:
    """Point-to-point links: a message takes latency + bytes / bandwidth, with no contention."""

    def __init__(self, env: simpy.Environment, config: NetworkConfig):
        self.env = env
        self.latency = config.latency
        self.bandwidth = config.bandwidth

    def seconds(self, nbytes: float) -> float:
        return self.latency + nbytes / self.bandwidth

    def send(self, inbox: simpy.Store, message: object, nbytes: float):
        # A timeout whose callback delivers is lighter than a process per message.
        arrival = self.env.timeout(self.seconds(nbytes))
        arrival.callbacks.append(lambda _event: inbox.put(message))


class Learner:
    def __init__(self, cluster: Cluster, index: int):
        self.cluster = cluster
        self.index = index
        self.env = cluster.env
        self.inbox = simpy.Store(self.env)
        self.working_on: int | None = None
        self.process = self.env.process(self.work())

    def work(self):
        while True:
            task: Task = yield self.inbox.get()
            if self.cluster.cancel and task.iteration < self.cluster.iteration:
                continue  # the controller moved on while this task was on the wire
            if math.isinf(task.busy):
                continue  # failed: never answers this task
            self.working_on = task.iteration
            try:
                yield self.env.timeout(task.busy)
            except simpy.Interrupt:
                continue  # cancelled on decode
            finally:
                self.working_on = None
            self.cluster.network.send(self.cluster.results, Result(task.iteration, task.row, self.index),
                                      self.cluster.result_nbytes)


class Cluster:
    """Builds the learners and runs the controller; `records` gets one dict per iteration."""

    def __init__(self, *, code, n_learners: int, network: NetworkConfig, on_decode: str,
                 timeout: float | None, delay_model, delay_rng: np.random.Generator, cost: CostModel,
                 workload, steps_per_iteration: int, warmup_steps: int, iterations: int):
        self.env = simpy.Environment()
        self.code = code  # None: centralized, the controller computes every update itself
        self.n_agents = len(workload.shapes.state_sizes)
        self.n_learners = n_learners if code is not None else 0
        self.network = Network(self.env, network)
        self.cancel = on_decode == "cancel"
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
        self.learners = [Learner(self, i) for i in range(self.n_learners)]
        if code is not None:
            self.rows = [np.flatnonzero(code.matrix[i]).tolist() for i in range(code.matrix.shape[0])]
            # What learner i receives: every agent's state, and the minibatches of its agents.
            self.task_nbytes = [self.state_nbytes + sum(self.batch_nbytes(j) for j in row) for row in self.rows]
            self._fixed_compute: np.ndarray | None = None
        self._scratch: np.ndarray | None = None  # reused by the decode check
        self.iteration_done = [self.env.event() for _ in range(iterations)]
        self.env.process(self.controller())

    # ------------------------------------------------------------------ the controller
    def controller(self):
        self.workload.warmup()  # fills the replay buffer; its episodes are not iterations
        yield self.env.timeout(self.cost.env_seconds(self.warmup_steps, HostTimes()))
        self.warmup_seconds = self.env.now
        for k in range(self.iterations):
            self.iteration = k
            t_start = self.env.now
            data = self.workload.begin(k)
            yield self.env.timeout(self.cost.env_seconds(self.steps_per_iteration, data.host))
            t_sent = self.env.now
            delays = self.delay_model.sample(self.delay_rng)  # drawn every iteration, whatever the scheme
            if self.code is None:
                yield self.env.timeout(self.cost.update_seconds(range(self.n_agents), data.host))
                received, resent = {}, 0
            else:
                received, resent = yield from self.gather(k, delays, data)
                yield self.env.timeout(self.cost.decode_seconds(self.n_agents * self.padded_size))
            t_decoded = self.env.now
            if not math.isfinite(t_decoded):  # busy times are bounded, but a very long run may add up
                raise SimulationError(f"iteration {k}: the simulated clock left float64 range (t = {t_decoded}); "
                                      "allowed: times that add up to a finite number of seconds")
            decoded, error = self.decode(k, received, data)
            self.workload.install(k, decoded, error)
            if self.cancel:
                for learner in self.learners:
                    if learner.working_on == k:
                        learner.process.interrupt()
            self.records.append({
                "iteration": k, "t_start": t_start, "t_end": t_decoded, "duration": t_decoded - t_start,
                "n_received": len(received), "decode_error": error,
                "episode_reward": float(np.mean(data.rewards)) if data.rewards else math.nan,
                "episodes": len(data.rewards), "env_seconds": t_sent - t_start,
                "n_late": int(np.count_nonzero(delays > 0)) if self.code is not None else 0,
                "n_failed": int(np.count_nonzero(np.isinf(delays))) if self.code is not None else 0,
                "resent": resent,
            })
            # Pause here until whoever drives the clock resumes it: clocks sharing one training
            # (simcode.sim.runner.simulate_group) must all finish iteration k before k + 1 begins.
            yield self.iteration_done[k].succeed()

    def gather(self, k: int, delays: np.ndarray, data):
        """Send every learner its work and collect results until they decode: -> (received, resent).

        Every path ends decoded or in a SimulationError: the controller waits only while a result can
        still arrive. With a timeout, the rows still missing at the deadline are re-sent once to the
        learners that answered; if nobody has answered by then, at the first answer after it."""
        busy = self.busy_seconds(k, delays, data)
        for i, learner in enumerate(self.learners):
            self.network.send(learner.inbox, Task(k, i, float(busy[i])), self.task_nbytes[i])
        failed = int(np.count_nonzero(np.isinf(busy)))
        received: dict[int, Result] = {}
        answered: list[int] = []
        resent = 0
        deadline = self.env.now + self.timeout if self.timeout else math.inf
        while not self.code.can_decode(received):
            on_the_way = self.n_learners - failed - len(answered) + resent
            may_resend = not resent and deadline < math.inf
            if may_resend and answered and self.env.now >= deadline:
                resent = self.resend(k, received, answered, data)
                continue
            if on_the_way <= 0 and not (may_resend and answered):
                raise SimulationError(self.undecodable_message(k, received, failed))
            # Past the deadline with nobody to re-send to, the next answer is what we wait for.
            result = yield from self.next_result(deadline if may_resend and self.env.now < deadline else math.inf)
            if result is None or result.iteration != k:
                continue  # the deadline came first, or a straggler's answer to an earlier iteration
            answered.append(result.learner)
            received.setdefault(result.row, result)
        return received, resent

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

    def undecodable_message(self, k: int, received: dict, failed: int) -> str:
        if self.timeout is None:
            advice = "set cluster.timeout to re-send missing work to the learners that answered"
        else:
            advice = (f"cluster.timeout ({self.timeout:g} s) is set, but it re-sends missing work only once and only "
                      "to learners that answered, and too few did")
        return (f"iteration {k}: {self.code.name} cannot decode from the {len(received)} results that can "
                f"arrive ({failed} of {self.n_learners} learners failed; the scheme tolerates "
                f"{self.code.tolerance}); {advice}")

    def busy_seconds(self, k: int, delays: np.ndarray, data) -> np.ndarray:
        """Each learner's busy time; inf only for a failed learner (an infinite delay), never by overflow."""
        compute = self.compute_seconds(data)
        busy = busy_time(compute, delays, self.delay_model.mode)
        if busy.max() <= MAX_BUSY_SECONDS:
            return busy  # the common case, in one reduction
        too_long = np.isfinite(delays) & ~(busy <= MAX_BUSY_SECONDS)  # an infinite delay is a failed learner
        if too_long.any():
            culprit = "the cost model's compute time" if np.max(compute) > MAX_BUSY_SECONDS else \
                self.largest_delay_parameter()
            raise SimulationError(f"iteration {k}: a learner would be busy {busy[too_long][0]:.3g} s, more than "
                                  f"the {MAX_BUSY_SECONDS:g} s a simulated time may take; {culprit} is too large")
        return busy

    def largest_delay_parameter(self) -> str:
        """`delay.KEY=value` for the delay model's largest number (what made a delay too long)."""
        numbers = {key: value for key, value in self.delay_model.params.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if not numbers:
            return f"the delay model {self.delay_model.name!r}"
        key = max(numbers, key=lambda name: abs(numbers[name]))
        return f"delay.{key}={numbers[key]:g}"

    def compute_seconds(self, data) -> np.ndarray:
        """Each learner's compute time for its row this iteration (constant unless costs are measured)."""
        if self.cost.reproducible and self._fixed_compute is not None:
            return self._fixed_compute
        seconds = np.array([self.cost.update_seconds(row, data.host) for row in self.rows])
        if self.cost.reproducible:
            self._fixed_compute = seconds
        return seconds

    def resend(self, k: int, received: dict, answered: list[int], data) -> int:
        """After the timeout: the rows still missing go to learners that answered, round robin."""
        missing = [row for row in range(self.n_learners) if row not in received]
        helpers = sorted(set(answered))
        if not helpers:
            return 0
        for n, row in enumerate(missing):
            learner = self.learners[helpers[n % len(helpers)]]
            nbytes = sum(self.batch_nbytes(j) for j in self.rows[row])
            # Re-sent work is computed without a new straggler draw (documented simplification).
            self.network.send(learner.inbox, Task(k, row, self.cost.update_seconds(self.rows[row], data.host)),
                              nbytes)
        return len(missing)

    def batch_nbytes(self, agent: int) -> int:
        return self.workload.shapes.batch_nbytes[agent]

    def decode(self, k: int, received: dict, data: IterationData) -> tuple[np.ndarray | None, float]:
        """The decoded states (M, P) and the decode error relative to the direct ones (nan: no computation).

        A non-finite number stops the run: a NaN decode error would otherwise vanish from every max."""
        theta = data.theta
        if theta is None:
            return None, math.nan
        scheme = self.code.name if self.code is not None else "centralized"
        rewards_finite = all(math.isfinite(r) for r in data.rewards)
        if not (math.isfinite(data.theta_scale) and rewards_finite):
            # Inaccurate decodes installed earlier are the usual cause: say how inaccurate they were.
            worst = max((r["decode_error"] for r in self.records), default=0.0)
            raise SimulationError(f"iteration {k} ({scheme}): the MADDPG training diverged: "
                                  f"{'updated states' if rewards_finite else 'episode rewards'} are not finite"
                                  f" (worst decode error before: {worst:.3g})")
        if self.code is None:
            return theta, 0.0
        coded = {row: self.encode(row, theta) for row in received}
        decoded = self.code.decode(coded)
        if self._scratch is None or self._scratch.shape != theta.shape:
            self._scratch = np.empty_like(theta)
        error = relative_error(decoded, data, self._scratch)  # nan or inf exactly when decoded is not finite
        if not math.isfinite(error):
            raise SimulationError(f"iteration {k}: {scheme} decoded states that are not finite (decode error "
                                  f"{error}); the code cannot decode these results in float64")
        return decoded, error

    def encode(self, row: int, theta: np.ndarray) -> np.ndarray:
        """What learner `row` sends: its row of the matrix times the states."""
        agents = self.rows[row]
        coefficients = self.code.matrix[row]
        if len(agents) == 1 and coefficients[agents[0]] == 1.0:
            return theta[agents[0]]  # a systematic row is the agent's state itself
        if len(agents) == len(coefficients):
            return coefficients @ theta  # a dense row: no gathered copy of the states
        return coefficients[agents] @ theta[agents]
