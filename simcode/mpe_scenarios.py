"""The MPE scenarios simcode trains on, one entry each: the config, the environments and evaluate read them.

Adding an mpe2 scenario is one entry in `MPE_SCENARIOS` (plus an `EnvConfig` key if it needs a new
one, and its observations and rewards as arrays in `simcode.marl.fast_mpe.SCENARIO_STEPS`, for the
fast engine). Plain data and small functions: importing this module imports neither torch nor mpe2, so the
typed config can read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MpeScenario:
    module: str  # the mpe2 module whose raw_env builds the environment
    env_keys: dict[str, str] = field(default_factory=dict)  # raw_env keyword -> the EnvConfig key that sets it
    agent_keys: tuple[str, ...] = ()  # EnvConfig keys whose values add up to the learning agents...
    fixed_agents: int = 0  # ...plus the agents no key counts
    # (mpe2 scenario, world) -> this step's benchmark data, summed over agents where it is a count
    benchmark: Callable[[Any, Any], dict[str, float]] | None = None
    measure: str | None = None  # the benchmark key that says how well the scenario is solved, if any

    def n_agents(self, env_cfg: Any) -> int:
        return sum(int(getattr(env_cfg, key)) for key in self.agent_keys) + self.fixed_agents

    def counts_for(self, total: int) -> dict[str, int] | None:
        """EnvConfig keys giving `total` learning agents: every key after the first at 1 (one prey in
        simple_tag), the first the rest; None when the scenario cannot have that many."""
        if not self.agent_keys:
            return {} if total == self.fixed_agents else None
        rest = total - self.fixed_agents - (len(self.agent_keys) - 1)
        if rest < 1:
            return None
        return {self.agent_keys[0]: rest, **{key: 1 for key in self.agent_keys[1:]}}

    def raw_env_kwargs(self, env_cfg: Any) -> dict[str, Any]:
        return {keyword: getattr(env_cfg, key) for keyword, key in self.env_keys.items()}


def _spread_benchmark(scenario: Any, world: Any) -> dict[str, float]:
    rows = [scenario.benchmark_data(agent, world) for agent in world.agents]
    # Each row is (reward, collisions, min distances, occupied landmarks); a collision is counted by
    # both agents in it, hence the halving.
    return {"collisions": sum(row[1] for row in rows) / 2, "min_dists": rows[0][2],
            "occupied_landmarks": rows[0][3]}


def _tag_benchmark(scenario: Any, world: Any) -> dict[str, float]:
    return {"collisions": sum(scenario.benchmark_data(agent, world) for agent in world.agents)}


def _speaker_listener_benchmark(scenario: Any, world: Any) -> dict[str, float]:
    import numpy as np  # here: the config imports this module, and needs no numpy

    speaker = world.agents[0]  # its goal_a is the listener, its goal_b the target landmark
    offset = speaker.goal_a.state.p_pos - speaker.goal_b.state.p_pos
    # final_: evaluate keeps the episode's last step (where the listener ended up), not the mean
    return {"final_target_distance": float(np.sqrt(np.sum(np.square(offset))))}


def _crypto_benchmark(scenario: Any, world: Any) -> dict[str, float]:
    """How well bob (the listener) and eve (the eavesdropper) decode alice's message this step.

    mpe2's rewards score a listener by the squared error between what it says (its communication
    vector) and the message (the goal's one-hot colour): the errors here. A listener decodes the
    message when the largest component of what it says is the message's; `bob_beats_eve` is 1 when
    bob's error is below eve's (the step's communication is won by the good team), else 0."""
    import numpy as np

    eve, bob = world.agents[0], world.agents[1]
    message = eve.goal_a.color
    out = {}
    for name, agent in (("bob", bob), ("eve", eve)):
        out[f"{name}_error"] = float(np.sum(np.square(agent.state.c - message)))
        out[f"{name}_decoded"] = float(np.argmax(agent.state.c) == np.argmax(message))
    return {**out, "bob_beats_eve": float(out["bob_error"] < out["eve_error"])}


MPE_SCENARIOS: dict[str, MpeScenario] = {
    "simple_spread": MpeScenario("mpe2.simple_spread_v3", {"N": "n_agents", "local_ratio": "local_ratio"},
                                 agent_keys=("n_agents",), benchmark=_spread_benchmark),
    "simple_tag": MpeScenario("mpe2.simple_tag_v3", {"num_good": "n_good", "num_adversaries": "n_adversaries",
                                                     "num_obstacles": "n_obstacles"},
                              agent_keys=("n_adversaries", "n_good"), benchmark=_tag_benchmark),
    "simple_adversary": MpeScenario("mpe2.simple_adversary_v3", {"N": "n_agents"}, agent_keys=("n_agents",),
                                    fixed_agents=1),  # the adversary
    "simple_push": MpeScenario("mpe2.simple_push_v3", fixed_agents=2),  # one adversary, one good agent
    "simple": MpeScenario("mpe2.simple_v3", fixed_agents=1),  # one agent, one landmark
    "simple_reference": MpeScenario("mpe2.simple_reference_v3", {"local_ratio": "local_ratio"},
                                    fixed_agents=2),  # two agents that move and speak
    "simple_speaker_listener": MpeScenario("mpe2.simple_speaker_listener_v4", fixed_agents=2,  # speaker, listener
                                           benchmark=_speaker_listener_benchmark, measure="final_target_distance"),
    "simple_crypto": MpeScenario("mpe2.simple_crypto_v3", fixed_agents=3,  # eve (the adversary), bob, alice
                                 benchmark=_crypto_benchmark, measure="bob_beats_eve"),
    "simple_world_comm": MpeScenario("mpe2.simple_world_comm_v3",
                                     {"num_good": "n_good", "num_adversaries": "n_adversaries",
                                      "num_obstacles": "n_obstacles", "num_food": "n_food",
                                      "num_forests": "n_forests"},
                                     agent_keys=("n_adversaries", "n_good"), benchmark=_tag_benchmark),
}
