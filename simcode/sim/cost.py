"""Cost models: how many simulated seconds each piece of real work takes.

- `fixed`: configured seconds per agent update, per environment step and per decoded value. The
  simulated times depend on nothing but the config: the same run gives the same trace anywhere.
- `flops`: seconds = floating-point operations / `flops_rate`, with the operation counts taken
  from the real network sizes, so costs scale with agents and hidden units. Also reproducible.
- `measured`: the host time of the real computation (MADDPG updates, environment steps). Not
  reproducible; the run's summary says so.
- `profile`: the costs a calibrated profile (`simcode calibrate`, simcode.sim.profile) gives for the
  work's own sizes: a machine's measured speed, yet the same trace on any machine. It also prices
  the seed's rank check after every arrival (`cost.rank_check`) and, on the shared network, the
  serialisation of every message.
- `profile` with `cluster.network.model: ray` (RayTransportCost): what the real backend pays on Ray,
  from the profile's ray section, as CPU on the hosts: the controller puts the states and the
  minibatch, then submits the tasks one after another and takes each answer in (RayDriver), while
  Ray's threads in its process send each task and receive its answer; the raylet of a learner's host
  serves its arguments before and seals its result after, one request at a time (`store`); each
  learner's computation is its actor's CPU per task plus its row on one torch thread (as the actors
  run it). All of it shares the host's cores with its neighbours under `cluster.hosts`. Centralized
  has no learners: the controller's update of every agent is on one torch thread, as the real driver
  computes it (RayControllerCost). On Ray the controller also pays its draw of the minibatches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simcode.codes import CENTRALIZED
from simcode.config import CostConfig, NetworkConfig
from simcode.sim.hosts import Background

if TYPE_CHECKING:
    from simcode.config import Scenario


@dataclass(frozen=True)
class HostTimes:
    """Host seconds the real computation of one iteration took (only `measured` reads them)."""

    env_seconds: float = 0.0
    update_seconds: Sequence[float] = ()  # per agent


@dataclass(frozen=True)
class DecodeWork:
    """What one decode has to do, from the rows it received."""

    n_agents: int
    values: int     # values per agent state (the padded state size)
    copied: int     # agents whose row arrived alone (a unit row): their state is copied
    rows_used: int  # received rows that combine several agents: the others are solved from them

    @property
    def solved(self) -> int:
        return self.n_agents - self.copied


class CostModel:
    """Simulated seconds of environment steps, agent updates and decoding."""

    reproducible = True
    # What only a profile's ray section prices (RayProfileCost): none here.
    driver: RayDriver | None = None  # the controller's CPU for Ray's messages
    crowded: float = 1.0  # the speed of work on a crowded host (simcode.sim.hosts)
    wake: float = 0.0  # seconds of work a woken process runs ahead of the sharing (simcode.sim.hosts)
    background: Background = Background()  # cores' worth of CPU hosts spend whatever they compute
    store: tuple[float, float] | None = None  # a task's raylet work before and after it
    task_overhead: float = 0.0  # a learner's CPU per task beside its row (on Ray: its actor's)
    task_after: float = 0.0  # of which after its row (on Ray: shipping the result)

    def __init__(self, config: CostConfig, update_flops: Sequence[float], act_flops: Sequence[float]):
        self.config = config
        self.update_flops = list(update_flops)
        self.act_flops = list(act_flops)

    def env_seconds(self, steps: int, host: HostTimes) -> float:
        return steps * self.config.env_step

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        """Seconds for one learner to compute the updates of `agents`."""
        return len(agents) * self.config.update

    def sample_seconds(self) -> float:
        """Seconds of the controller's draw of every agent's minibatch, after its environment steps
        (priced by a profile's ray section only)."""
        return 0.0

    def decode_seconds(self, work: DecodeWork) -> float:
        # fixed and flops price every value of every agent, copied or solved
        return work.n_agents * work.values * self.config.decode

    def message_overhead(self, network: NetworkConfig) -> Callable[[float], float] | None:
        """Seconds added to a message of so many bytes (None: nothing): `per_message` when set."""
        if network.per_message is None:
            return None
        per_message = network.per_message
        return lambda _nbytes: per_message


class FlopsCost(CostModel):
    def env_seconds(self, steps: int, host: HostTimes) -> float:
        # Acting runs every agent's actor once per step, on top of the simulator's own step.
        return steps * (self.config.env_step + sum(self.act_flops) / self.config.flops_rate)

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        return sum(self.update_flops[j] for j in agents) / self.config.flops_rate


class MeasuredCost(CostModel):
    reproducible = False

    def env_seconds(self, steps: int, host: HostTimes) -> float:
        return host.env_seconds

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        return sum(host.update_seconds[j] for j in agents)


class ProfileCost(CostModel):
    """Costs from a profile file, read once when the run is built."""

    def __init__(self, config: CostConfig, update_flops: Sequence[float], act_flops: Sequence[float],
                 env_scenario: str, n_agents: int):
        from simcode.sim.profile import load_profile

        super().__init__(config, update_flops, act_flops)
        assert config.profile is not None  # config._check_cost requires it
        self.profile = load_profile(config.profile)
        self.agent_update_seconds = [self.profile.update.seconds(flops / 1e9) for flops in self.update_flops]
        self.env_step_seconds = self.profile.env_step_seconds(env_scenario, n_agents)

    def env_seconds(self, steps: int, host: HostTimes) -> float:
        return steps * self.env_step_seconds

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        return sum(self.agent_update_seconds[j] for j in agents)

    def decode_seconds(self, work: DecodeWork) -> float:
        return self.profile.decode.seconds(work.copied, work.solved, work.rows_used, work.values)

    def rank_check_seconds(self, rows: int, n_agents: int) -> float:
        """The seed's rank check of `rows` received rows of M agents, after an arrival."""
        return self.profile.rank_check.seconds(rows, n_agents)

    def message_overhead(self, network: NetworkConfig) -> Callable[[float], float] | None:
        # Serialisation is what a shared interface waits for; idealised links leave it out.
        if network.per_message is None and network.model == "shared":
            return self.profile.serialize.seconds
        return super().message_overhead(network)


class RayProfileCost(ProfileCost):
    """A profile's costs on Ray (cluster.network.model: ray): its hosts pay Ray's idle threads and slow
    down when crowded, as the profile's ray section measured (simcode.sim.hosts)."""

    def __init__(self, scenario: Scenario, update_flops: Sequence[float], act_flops: Sequence[float]):
        from simcode.sim.workload import shapes_of

        super().__init__(scenario.cost, update_flops, act_flops, scenario.env.scenario, scenario.n_agents)
        assert self.profile.ray is not None  # profile.check_cost requires it
        self.ray = self.profile.ray
        self.shapes = shapes_of(scenario)
        self.state_values = sum(self.shapes.state_sizes)
        self.n_agents, self.batch = scenario.n_agents, scenario.maddpg.batch_size
        self.draw = self.ray.sample.seconds(self.n_agents, self.batch) if self.ray.sample else 0.0
        # Centralized: the driver steps between its own updates, no gather between (measured apart: real
        # centralized runs' steps took 12.2 to 12.7 ms at M = 3 where the coded runs' took 13.9 to 14.6).
        alone = scenario.code.name == CENTRALIZED and self.ray.alone is not None
        self.steps_factor = self.ray.alone if alone else self.ray.driver
        self.crowded = self.ray.crowded
        self.wake = self.ray.wake or 0.0
        idle = self.ray.idle
        self.background = Background(daemons=idle.daemons, learner=idle.learner, controller=idle.controller)

    def env_seconds(self, steps: int, host: HostTimes) -> float:
        return super().env_seconds(steps, host) * self.steps_factor  # the driver shares its interpreter with Ray

    def sample_seconds(self) -> float:
        return self.draw

    def row_seconds(self, agents: Sequence[int]) -> float:
        """A row of `agents` on one torch thread: unpack every state, update, pack, combine."""
        return self.ray.learner.row_seconds(self.n_agents, self.batch, sum(self.update_flops[j] for j in agents) / 1e9,
                                            self.state_values)


class RayControllerCost(RayProfileCost):
    """Centralized on Ray: no messages, and the controller's update of every agent is what the real
    driver computes, on one torch thread as the actors do (simcode.sim.real.one_core): the profile's
    measure of it (`ray.controller`), or a learner's row of every agent when the profile has none."""

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        if self.ray.controller is None:
            return self.row_seconds(agents)
        return self.ray.controller.seconds(len(agents), sum(self.update_flops[j] for j in agents) / 1e9, self.batch)


class RayTransportCost(RayProfileCost):
    """The learners' work and Ray's messages priced as the real backend runs them: CPU on the hosts
    (simcode.sim.calibrate_ray), no delay of their own beyond the network's wire."""

    def __init__(self, scenario: Scenario, update_flops: Sequence[float], act_flops: Sequence[float]):
        super().__init__(scenario, update_flops, act_flops)
        # Every actor receives every state and the whole minibatch (sim.real.RealCluster.gather), and
        # returns one padded float64 state.
        state_bytes, batch_bytes = 4 * self.state_values, sum(self.shapes.batch_nbytes)
        result_bytes = 8 * self.shapes.padded_size
        self.task_overhead = self.ray.task.seconds(state_bytes + batch_bytes + result_bytes)
        # The actor's part after the row, shipping the result: the share calibrate measured (an earlier profile
        # has none: all of it before the row, where the actor receives the task and reads its arguments).
        before = self.ray.task_before
        self.task_after = 0.0 if before is None else (1.0 - before) * self.task_overhead
        # The raylet's part: half its per-task cost and the arguments' bytes before the row, the rest after.
        raylet = self.ray.raylet
        self.store = (raylet.per_message / 2 + (state_bytes + batch_bytes) / raylet.bytes_per_second,
                      raylet.per_message / 2 + result_bytes / raylet.bytes_per_second)
        send = self.ray.send  # measured as a real gather begins: the states packed, then both put
        put = (send.seconds(self.state_values, self.n_agents, self.batch) if send
               else self.ray.put.seconds(state_bytes) + self.ray.put.seconds(batch_bytes))
        self.driver = RayDriver.split(put=put,
                                      per_task=self.ray.submit.seconds(result_bytes), ack=self.ray.ack,
                                      thread=self.ray.thread)

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        return self.task_overhead + self.row_seconds(agents)

    def decode_seconds(self, work: DecodeWork) -> float:
        """The decode reads every row it uses (copied, or solved from) where Ray delivered it, as calibrate
        measured (`ray.delivered`), then solves what it must; a profile without it prices rows in memory."""
        delivered = self.ray.delivered
        if delivered is None:
            return super().decode_seconds(work)
        solve = self.profile.decode.seconds(0, work.solved, work.rows_used, work.values)  # 0 when it only copies
        return delivered.per_decode + delivered.per_value * (work.copied + work.rows_used) * work.values + solve

    def message_overhead(self, network: NetworkConfig) -> Callable[[float], float] | None:
        return None if network.per_message is None else super().message_overhead(network)


@dataclass(frozen=True)
class RayDriver:
    """The controller's CPU for Ray's messages on its host (sim.cluster.send_tasks): its own thread's, one
    after another, and Ray's threads in the driver process, beside it, one message at a time."""

    put: float     # seconds to pack and put an iteration's states and minibatch in the object store
    submit: float  # seconds of the driver's thread per task sent
    ack: float     # seconds per acknowledgement of a late learner (sim.cluster.release)
    reply: float = 0.0    # seconds of the driver's thread per answer taken
    threads: float = 0.0  # seconds of Ray's threads per task: half sends it, half takes its answer in

    @classmethod
    def split(cls, put: float, per_task: float, ack: float, thread) -> RayDriver:
        """`per_task`, the driver's whole CPU per task, split as the profile's `thread` measured it (None:
        all of it the driver thread's, at the submit)."""
        if thread is None:
            return cls(put=put, submit=per_task, ack=ack)
        submit = min(thread.submit, per_task)
        reply = min(thread.reply, per_task - submit)
        return cls(put=put, submit=submit, ack=ack, reply=reply, threads=per_task - submit - reply)


def make_cost(scenario: Scenario, update_flops: Sequence[float], act_flops: Sequence[float]) -> CostModel:
    """The scenario's cost model (the scenario checks made sure that `measured` has real work and
    that a profile exists and covers the environment)."""
    config = scenario.cost
    if config.model == "profile" and scenario.cluster.network.model == "ray":
        kind = RayControllerCost if scenario.code.name == CENTRALIZED else RayTransportCost
        return kind(scenario, update_flops, act_flops)
    if config.model == "profile":
        return ProfileCost(config, update_flops, act_flops, scenario.env.scenario, scenario.n_agents)
    kind = {"fixed": CostModel, "flops": FlopsCost, "measured": MeasuredCost}[config.model]
    return kind(config, update_flops, act_flops)
