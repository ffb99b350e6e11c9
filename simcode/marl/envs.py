"""The MPE environments of mpe2 (parallel API) and the sizes MADDPG derives from them.

Which scenarios exist and how each is built is `simcode.mpe_scenarios`; `env.actions` chooses mpe2's
continuous actions (soft: each agent gives its 5-vector, turned into the force (a[2] - a[1], a[4] - a[3])
times its acceleration) or its discrete ones (hard: an index in 0..4).

`describe` answers every size question (state length, minibatch bytes, flops of one agent update) by
arithmetic, so the simulator's timing-only workload never builds a network.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import lru_cache

from pettingzoo.utils.conversions import aec_to_parallel

from simcode.config import EnvConfig, MaddpgConfig
from simcode.marl.fast_mpe import SCENARIO_STEPS, FastMpeEnv
from simcode.mpe_scenarios import MPE_SCENARIOS


def make_env(env_cfg: EnvConfig, render_mode: str | None = None, benchmark_data: bool = False):
    """The scenario's environment, parallel API: mpe2's Box(0, 1, (n,)) actions when `env_cfg.actions`
    is soft, its Discrete ones when hard. `env_cfg.engine` fast: simcode.marl.fast_mpe (mpe2's
    numbers, array operations) for the scenarios it steps (`fast_mpe.SCENARIO_STEPS`), mpe2 itself for
    the others (the same numbers, slower: the fast engine is a speed-up, never a requirement); mpe2:
    mpe2 itself, which is also what renders (`render_mode`) and what fills infos with the scenario's
    data (`benchmark_data`), whatever the engine."""
    reference = _mpe2_raw_env(env_cfg, render_mode, benchmark_data)
    if not fast_engine_steps(env_cfg) or render_mode is not None or benchmark_data:
        return aec_to_parallel(reference)
    return FastMpeEnv(reference, env_cfg.scenario)


def fast_engine_steps(env_cfg: EnvConfig) -> bool:
    """Whether `make_env` steps this config with the fast engine (else mpe2 itself)."""
    return env_cfg.engine == "fast" and env_cfg.scenario in SCENARIO_STEPS


def _mpe2_raw_env(env_cfg: EnvConfig, render_mode: str | None, benchmark_data: bool):
    entry = MPE_SCENARIOS[env_cfg.scenario]
    module = importlib.import_module(entry.module)
    # mpe2's parallel_env wraps raw_env in checking wrappers (step order, action bounds: clipping to
    # [0, 1] when continuous) before the parallel conversion; our actions are always valid (softmax
    # vectors, or indices), and without the wrappers a step is a third faster.
    return module.raw_env(max_cycles=env_cfg.max_cycles, continuous_actions=env_cfg.actions == "soft",
                          render_mode=render_mode, benchmark_data=benchmark_data,
                          **entry.raw_env_kwargs(env_cfg))


@dataclass(frozen=True)
class MaddpgShapes:
    """Sizes of one MADDPG problem: each agent's observation and action, the networks' hidden width,
    the minibatch. Agent order is the environment's `possible_agents`. (The simulator's
    `sim.workload.Shapes` is what it derives from these: state sizes, message bytes, flops.)"""

    agent_names: tuple[str, ...]
    obs_dims: tuple[int, ...]
    act_dims: tuple[int, ...]  # each agent's action length: the sum of its components
    adversary: tuple[bool, ...]
    local_critic: tuple[bool, ...]  # ddpg: the critic sees only the agent's own obs and action
    hidden: int
    batch_size: int
    # Each agent's categorical action components, in mpe2's order: movement (5) if it moves, then
    # communication (the scenario's dim_c symbols) if it speaks. Its policy is a Gumbel-softmax per
    # component, concatenated (openai/maddpg's soft multi-categorical).
    act_parts: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.act_parts:  # one categorical component per agent
            object.__setattr__(self, "act_parts", tuple((a,) for a in self.act_dims))
        if tuple(sum(p) for p in self.act_parts) != tuple(self.act_dims) or not all(map(all, self.act_parts)):
            raise ValueError(f"action components {self.act_parts} do not add up to the actions {self.act_dims}")

    @property
    def n_agents(self) -> int:
        return len(self.agent_names)

    @property
    def obs_total(self) -> int:
        return sum(self.obs_dims)

    @property
    def act_total(self) -> int:
        return sum(self.act_dims)

    def critic_in(self, j: int) -> int:
        if self.local_critic[j]:
            return self.obs_dims[j] + self.act_dims[j]
        return self.obs_total + self.act_total

    def actor_params(self, j: int) -> int:
        h, d, a = self.hidden, self.obs_dims[j], self.act_dims[j]
        return d * h + h + h * h + h + h * a + a

    def critic_params(self, j: int) -> int:
        h = self.hidden
        return self.critic_in(j) * h + h + h * h + h + h + 1

    @property
    def state_sizes(self) -> list[int]:
        """Flat state length: (actor + critic) x (params, targets, Adam m, Adam v) + the Adam step."""
        return [4 * (self.actor_params(j) + self.critic_params(j)) + 1 for j in range(self.n_agents)]

    @property
    def batch_nbytes(self) -> list[int]:
        """One agent's minibatch message: all agents' obs, next obs and actions, its reward and done flag."""
        per_row = 2 * self.obs_total + self.act_total + 2
        return [4 * self.batch_size * per_row] * self.n_agents

    @property
    def update_flops(self) -> list[float]:
        """Approximate floating-point operations of one agent update (as `maddpg.Update` computes it)."""
        h, b, m = self.hidden, self.batch_size, self.n_agents
        actor_macs = max(self.obs_dims) * h + h * h + h * max(self.act_dims)
        out = []
        for j in range(m):
            critic_macs = (self.obs_total + self.act_total) * h + h * h + h
            macs = b * (m * actor_macs      # target actions of every agent
                        + critic_macs       # target critic
                        + 3 * critic_macs   # critic forward and backward
                        + 3 * actor_macs    # actor forward and backward
                        + critic_macs)      # critic forward in the actor loss
            out.append(2.0 * macs + 12.0 * (self.actor_params(j) + self.critic_params(j)))
        return out


def action_parts(agent, world) -> tuple[int, ...]:
    """An mpe2 agent's action components, as mpe2's SimpleEnv has them: movement (none and two
    directions per axis) if it moves, then communication (one of dim_c symbols) if it speaks. mpe2's
    Box is their concatenation; its Discrete their product, indexed movement-first."""
    parts = ((2 * world.dim_p + 1,) if agent.movable else ()) + ((world.dim_c,) if not agent.silent else ())
    if not parts:
        raise ValueError(f"agent {agent.name} neither moves nor speaks: it has no action to learn")
    return parts


def discrete_index(parts: tuple[int, ...], picks: list[int]) -> int:
    """mpe2's Discrete index of one pick per action component: their product space, the first
    component (movement) varying fastest, as mpe2's SimpleEnv decodes it."""
    index, scale = 0, 1
    for size, pick in zip(parts, picks):
        index, scale = index + pick * scale, scale * size
    return index


@lru_cache(maxsize=64)
def _describe(env_json: str, hidden: int, batch_size: int, good_policy: str, adv_policy: str) -> MaddpgShapes:
    env = make_env(EnvConfig.model_validate(json.loads(env_json)))
    names = tuple(env.possible_agents)
    world = env.unwrapped.world
    adversary = tuple(bool(getattr(a, "adversary", False)) for a in world.agents)
    local = tuple((adv_policy if adv else good_policy) == "ddpg" for adv in adversary)
    parts = tuple(action_parts(agent, world) for agent in world.agents)
    shapes = MaddpgShapes(
        agent_names=names,
        obs_dims=tuple(int(env.observation_space(a).shape[0]) for a in names),
        act_dims=tuple(sum(p) for p in parts), act_parts=parts,
        adversary=adversary, local_critic=local, hidden=hidden, batch_size=batch_size,
    )
    return shapes  # not closed: env.close() quits pygame for every env in the process


def describe(env_cfg: EnvConfig, maddpg_cfg: MaddpgConfig) -> MaddpgShapes:
    """Sizes of the problem (cached: one cheap environment construction per distinct config)."""
    return _describe(json.dumps(env_cfg.model_dump(mode="json"), sort_keys=True), maddpg_cfg.hidden,
                     maddpg_cfg.batch_size, maddpg_cfg.good_policy, maddpg_cfg.adv_policy)
