"""Cost models: how many simulated seconds each piece of real work takes.

- `fixed`: configured seconds per agent update, per environment step and per decoded value. The
  simulated times depend on nothing but the config: the same run gives the same trace anywhere.
- `flops`: seconds = floating-point operations / `flops_rate`, with the operation counts taken
  from the real network sizes, so costs scale with agents and hidden units. Also reproducible.
- `measured`: the host time of the real computation (MADDPG updates, environment steps). Not
  reproducible; the run's summary says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simcode.config import CostConfig


@dataclass(frozen=True)
class HostTimes:
    """Host seconds the real computation of one iteration took (only `measured` reads them)."""

    env_seconds: float = 0.0
    update_seconds: Sequence[float] = ()  # per agent


class CostModel:
    """Simulated seconds of environment steps, agent updates and decoding."""

    reproducible = True

    def __init__(self, config: CostConfig, update_flops: Sequence[float], act_flops: Sequence[float]):
        self.config = config
        self.update_flops = list(update_flops)
        self.act_flops = list(act_flops)

    def env_seconds(self, steps: int, host: HostTimes) -> float:
        return steps * self.config.env_step

    def update_seconds(self, agents: Sequence[int], host: HostTimes) -> float:
        """Seconds for one learner to compute the updates of `agents`."""
        return len(agents) * self.config.update

    def decode_seconds(self, n_values: int) -> float:
        return n_values * self.config.decode


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


def make_cost(config: CostConfig, update_flops: Sequence[float], act_flops: Sequence[float]) -> CostModel:
    """The scenario's cost model (config.validate_scenario has checked that `measured` has real work)."""
    kind = {"fixed": CostModel, "flops": FlopsCost, "measured": MeasuredCost}[config.model]
    return kind(config, update_flops, act_flops)
