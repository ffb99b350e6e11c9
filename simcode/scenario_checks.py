"""Checks of a scenario that span sections or need the leaves: sizes that fit together and in memory
(checked before anything is built), and a code and delay model that can be built for these sizes.
`simcode.config.scenario_from_dict` runs them on every scenario it builds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcode import memory
from simcode.codes.show import count
from simcode.errors import BadInput

if TYPE_CHECKING:
    from simcode.config import Scenario


def validate_scenario(scenario: Scenario, file: str | None = None, keep_built: bool = False) -> None:
    """Cross-section checks: sizes that fit together and in memory (before anything is built), then
    the code and delay model are built for these sizes (and, with `keep_built`, kept for the run)."""
    if scenario.cost.model == "measured" and scenario.run.workload != "maddpg":
        raise BadInput("cost.model", "measured times real computation; allowed with run.workload: maddpg", file)
    if scenario.cluster.backend == "ray" and scenario.run.workload != "maddpg":
        # Real learners compute real updates: there is no timing-only work for them to do.
        raise BadInput("run.workload", f"{scenario.run.workload!r} with cluster.backend: ray; allowed: maddpg "
                       "(real learners train), or timing with cluster.backend: sim", file)
    _check_buffer(scenario, file)
    check_memory(scenario, file)
    n = scenario.cluster.n_learners
    for key, section, sizes in (("code", scenario.code, (scenario.n_agents, n, scenario.seed)),
                                ("delay", scenario.delay, (n,))):
        try:
            section.check_build(*sizes, keep=keep_built)
        except BadInput as exc:
            if exc.key == "n_learners":  # a size the scheme cannot take is the cluster's key, not the code's
                raise BadInput("cluster.n_learners", exc.message, file) from None
            raise exc.within(key, file) from None


def _check_buffer(scenario: Scenario, file: str | None) -> None:
    """The replay buffer holds at least what one iteration uses: a minibatch, an iteration's steps,
    the warm-up transitions."""
    m = scenario.maddpg
    needs = {"maddpg.batch_size": m.batch_size, "maddpg.steps_per_iteration": m.steps_per_iteration,
             "maddpg.learning_starts": scenario.learning_starts}
    key, largest = max(needs.items(), key=lambda item: item[1])
    if m.buffer_size < largest:
        raise BadInput("maddpg.buffer_size", f"{m.buffer_size} is smaller than {key} ({largest}); "
                                             f"allowed: at least {largest}", file)


def check_memory(scenario: Scenario, file: str | None = None, training: bool = False) -> None:
    """BadInput when the run (or, with `training`, the centralized training) cannot fit in memory."""
    agents = count(scenario.n_agents, "agent")
    if training:
        memory.check_fits(memory.training_parts(scenario), f"this training of {agents}", file)
    else:
        real = scenario.run.workload == "maddpg"
        memory.check_fits(memory.simulation_parts(scenario, real), f"this run of {agents}", file)
