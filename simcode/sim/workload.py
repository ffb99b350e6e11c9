"""What a learner's work is made of: the real MADDPG computation, or none at all.

The clock model asks a workload, once per iteration, for the episode rewards of the environment
steps and for the new agent states computed directly (`theta`, float64, one row per agent, padded
to the longest state). The coded results the learners return are combinations of those rows; the
controller decodes them and hands the decoded states back through `install`.

`SharedMaddpg` lets many clocks share one real training: runs that differ only in timing see the
same updates, so the computation is done once per iteration and each clock still encodes, decodes
and checks its own results. The shared training installs the direct states; a clock whose decoded
states differ from them by more than the decode's rounding (SHARED_TOLERANCE) is marked `diverged`
(its own training would no longer be the shared one) and must be run on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from simcode.config import Scenario
from simcode.sim.cost import HostTimes


@dataclass
class IterationData:
    rewards: list[float]
    theta: np.ndarray | None  # (M, P) float64, or None with no real computation
    host: HostTimes = field(default_factory=HostTimes)
    theta_scale: float = 1.0  # max |theta|: decode errors are relative to it

    def __post_init__(self) -> None:
        if self.theta is not None:
            self.theta_scale = float(np.max(np.abs(self.theta), initial=0.0)) or 1.0


@dataclass
class Shapes:
    state_sizes: list[int]
    batch_nbytes: list[int]
    update_flops: list[float]
    act_flops: list[float]

    @property
    def padded_size(self) -> int:
        return max(self.state_sizes)


def shapes_of(scenario: Scenario) -> Shapes:
    from simcode.marl.envs import describe

    maddpg = describe(scenario.env, scenario.maddpg)  # marl's MaddpgShapes: the problem's own sizes
    act_flops = [2.0 * maddpg.actor_params(j) for j in range(maddpg.n_agents)]  # one forward pass per step
    return Shapes(list(maddpg.state_sizes), list(maddpg.batch_nbytes), list(maddpg.update_flops), act_flops)


# A clock whose decoded states stay this close to the direct ones trains as the shared training
# does, up to the decode's rounding: float64 solves of well-conditioned codes stay far below it.
SHARED_TOLERANCE = 1e-9


def relative_error(decoded: np.ndarray, data: IterationData, scratch: np.ndarray | None = None,
                   agents: list[int] | None = None) -> float:
    """max |decoded - theta| / max |theta|: the decode's error relative to the states' scale (with
    `agents`, `decoded` holds those agents' rows only, compared with theirs).

    `scratch` (same shape as theta) spares a fresh allocation per call on the hot path."""
    diff = np.subtract(decoded, data.theta if agents is None else data.theta[agents], out=scratch)
    np.abs(diff, out=diff)
    return float(diff.max(initial=0.0)) / data.theta_scale


def stack_states(states: list[np.ndarray], width: int) -> np.ndarray:
    theta = np.zeros((len(states), width), dtype=np.float64)
    for j, s in enumerate(states):
        theta[j, : s.size] = s
    return theta


def unstack_states(theta: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return [theta[j, :size].astype(np.float32) for j, size in enumerate(sizes)]


class TimingWorkload:
    """The same clock with no computation: message sizes and flops still come from the real networks."""

    def __init__(self, scenario: Scenario):
        self.shapes = shapes_of(scenario)

    def warmup(self) -> list[float]:
        return []

    def begin(self, iteration: int) -> IterationData:
        return IterationData(rewards=[], theta=None)

    def install(self, iteration: int, decoded: np.ndarray | None, error: float,
                updated: list[int] | None = None) -> None:
        pass

    def leave(self) -> None:
        """The clock stopped for good (simcode.sim.runner.simulate_group); only a shared training cares."""


class MaddpgWorkload:
    """Real MADDPG: the controller's environment steps and every agent's update, on the host."""

    def __init__(self, scenario: Scenario):
        from simcode.marl.trainer import Trainer

        self.trainer = Trainer(scenario)
        self.shapes = shapes_of(scenario)
        self.direct: list[np.ndarray] = []

    def warmup(self) -> list[float]:
        return self.trainer.warmup()

    def begin(self, iteration: int) -> IterationData:
        t0 = time.perf_counter()
        rewards = self.trainer.collect()
        t1 = time.perf_counter()
        batch = self.trainer.sample()
        self.direct = self.trainer.compute_updates(batch)
        t2 = time.perf_counter()
        per_agent = (t2 - t1) / len(self.direct)
        host = HostTimes(env_seconds=t1 - t0, update_seconds=[per_agent] * len(self.direct))
        return IterationData(rewards, stack_states(self.direct, self.shapes.padded_size), host)

    def install(self, iteration: int, decoded: np.ndarray | None, error: float,
                updated: list[int] | None = None) -> None:
        """Install the decoded states (float64 rows, cast to float32), or the direct ones with None.
        With `updated` (a strategy that changes learning), only those agents' rows of `decoded`: every
        other agent keeps the state it had."""
        if decoded is None:
            self.trainer.install(self.direct)
        elif updated is None:
            self.trainer.install(unstack_states(decoded, self.shapes.state_sizes))
        else:
            states = self.trainer.states()
            for j in updated:
                states[j] = decoded[j, : self.shapes.state_sizes[j]].astype(np.float32)
            self.trainer.install(states)

    def leave(self) -> None:
        pass


class SharedMaddpg:
    """One real training for several clocks run in lock-step (see the module docstring)."""

    def __init__(self, scenario: Scenario, n_members: int):
        self.inner = MaddpgWorkload(scenario)
        self.shapes = self.inner.shapes
        self.n_members = n_members
        self._data: IterationData | None = None
        self._iteration = -1
        self._installed = 0
        self._warm: list[float] | None = None

    def member(self) -> _Member:
        return _Member(self)

    def _warmup(self) -> list[float]:
        if self._warm is None:
            self._warm = self.inner.warmup()
        return self._warm

    def _begin(self, iteration: int) -> IterationData:
        if iteration != self._iteration:
            if self._installed not in (0, self.n_members):
                raise RuntimeError("shared workload: clocks are not in lock-step")
            self._data = self.inner.begin(iteration)
            self._iteration = iteration
            self._installed = 0
        assert self._data is not None
        return self._data

    def _install(self, iteration: int) -> None:
        """One clock is done with this iteration; the last one installs the direct states."""
        self._installed += 1
        if self._installed == self.n_members:
            self.inner.install(iteration, None, 0.0)

    def _leave(self) -> None:
        """A clock stopped in the current iteration: the others go on without it, and when they were all
        done with the iteration already, its states are installed now."""
        self.n_members -= 1
        if self._iteration >= 0 and 0 < self.n_members == self._installed:
            self.inner.install(self._iteration, None, 0.0)


class _Member:
    def __init__(self, shared: SharedMaddpg):
        self.shared = shared
        self.shapes = shared.shapes
        self.diverged = False

    def warmup(self) -> list[float]:
        return self.shared._warmup()

    def begin(self, iteration: int) -> IterationData:
        return self.shared._begin(iteration)

    def install(self, iteration: int, decoded: np.ndarray | None, error: float,
                updated: list[int] | None = None) -> None:
        if updated is not None:  # simcode.sim.runner.simulate_group shares only exact runs
            raise RuntimeError("shared workload: a strategy that changes learning cannot share a training")
        self.shared._install(iteration)
        if error > SHARED_TOLERANCE:
            self.diverged = True

    def leave(self) -> None:
        self.shared._leave()
