"""`simcode bench envs`: environment steps per second, the fast engine against mpe2 itself.

Both engines run the same episodes (same reset seeds, the same random soft actions, drawn before
timing), resets included, as training steps them. The repeats alternate between the engines so that
both see the same load on a shared machine; the speedup is the median of the paired ratios.
"""

from __future__ import annotations

import time

import numpy as np

from simcode.config import EnvConfig
from simcode.errors import BadInput
from simcode.params import MAX_COUNT
from simcode.marl.envs import make_env
from simcode.mpe_scenarios import MPE_SCENARIOS
from simcode.seeding import generator

ENGINES = ("mpe2", "fast")


DEFAULT_AGENTS = 3


def bench_config(scenario: str, agents: int | None) -> EnvConfig:
    """The scenario with `agents` learning agents (simcode.mpe_scenarios.MpeScenario.counts_for);
    None: DEFAULT_AGENTS, or the scenario's own count where it has only one."""
    if scenario not in MPE_SCENARIOS:
        raise BadInput("--scenario", f"unknown scenario {scenario!r}; allowed: {', '.join(MPE_SCENARIOS)}")
    if agents is None:
        entry = MPE_SCENARIOS[scenario]
        agents = DEFAULT_AGENTS if entry.agent_keys else entry.fixed_agents
    counts = MPE_SCENARIOS[scenario].counts_for(agents)
    if counts is None:
        fixed = MPE_SCENARIOS[scenario].fixed_agents
        allowed = f"{fixed}" if not MPE_SCENARIOS[scenario].agent_keys else f"at least {fixed + 1}"
        raise BadInput("--agents", f"{scenario} cannot have {agents} agents; allowed: {allowed}")
    too_many = {key: count for key, count in counts.items() if count > MAX_COUNT}
    if too_many:  # EnvConfig's own bound, said as the option that set it
        raise BadInput("--agents", f"{agents} agents would need env.{', env.'.join(too_many)} above its bound; "
                                   f"allowed: at most {MAX_COUNT:,} per key")
    return EnvConfig(scenario=scenario, **counts)


def _steps_per_second(env, seeds: list[int], actions: list[list[dict]]) -> float:
    """Run one episode per seed with the given soft actions (per episode, per step, by agent)."""
    start = time.perf_counter()
    for seed, episode in zip(seeds, actions):
        env.reset(seed=seed)
        for joint in episode:
            env.step(joint)
    return len(actions) * len(actions[0]) / (time.perf_counter() - start)


def _soft_actions(env, rng: np.random.Generator, episodes: int, steps: int) -> list[list[dict]]:
    """Random soft actions: for each agent, a point of the simplex of its own action length."""
    drawn = {name: rng.dirichlet(np.ones(env.action_space(name).shape[0]), size=(episodes, steps)).astype(np.float32)
             for name in env.possible_agents}
    return [[{name: drawn[name][e, t] for name in drawn} for t in range(steps)] for e in range(episodes)]


def bench_envs(scenario: str = "simple_spread", agents: int | None = None, repeats: int = 7,
               episodes: int = 8) -> dict:
    """Steps per second of both engines (medians over interleaved repeats) and the median speedup."""
    cfg = bench_config(scenario, agents)
    envs = {engine: make_env(cfg.model_copy(update={"engine": engine})) for engine in ENGINES}
    rng = generator(0, "evaluation")
    seeds = [int(s) for s in rng.integers(2**31 - 1, size=episodes)]
    actions = _soft_actions(envs["mpe2"], rng, episodes, cfg.max_cycles)
    agents = len(envs["mpe2"].possible_agents)
    for env in envs.values():  # warm-up: first calls pay for imports and caches
        _steps_per_second(env, seeds[:1], actions[:1])
    rates = {engine: [] for engine in ENGINES}
    for _ in range(repeats):
        for engine in ENGINES:
            rates[engine].append(_steps_per_second(envs[engine], seeds, actions))
    ratios = [fast / reference for fast, reference in zip(rates["fast"], rates["mpe2"])]
    return {"scenario": scenario, "agents": agents, "repeats": repeats, "steps_per_repeat": episodes * cfg.max_cycles,
            "mpe2_steps_per_s": float(np.median(rates["mpe2"])),
            "fast_steps_per_s": float(np.median(rates["fast"])), "speedup": float(np.median(ratios))}


def format_report(result: dict) -> str:
    r = result
    return "\n".join([
        f"MPE environment steps, {r['scenario']}, {r['agents']} agents, soft actions, resets included, "
        f"median of {r['repeats']} interleaved repeats of {r['steps_per_repeat']} steps",
        f"  mpe2:    {r['mpe2_steps_per_s']:10.0f} steps/s",
        f"  fast:    {r['fast_steps_per_s']:10.0f} steps/s",
        f"  speedup: {r['speedup']:10.2f}x (median of paired ratios)",
    ])
