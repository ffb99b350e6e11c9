"""The fast engine (simcode.marl.fast_mpe) against mpe2 itself: same seeds and actions, same numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcode.cli import main

from simcode.config import EnvConfig, Scenario
from simcode.marl.envs import make_env
from simcode.marl.fast_mpe import SCENARIO_STEPS, FastMpeEnv
from simcode.marl.trainer import Trainer
from simcode.mpe_scenarios import MPE_SCENARIOS
from simcode.seeding import generator

# Every scenario at M = 3 and M = 10 learning agents where it scales (simple_push has 2).
WORLDS = {
    "spread-3": {"scenario": "simple_spread", "n_agents": 3},
    "spread-10": {"scenario": "simple_spread", "n_agents": 10},
    "tag-3": {"scenario": "simple_tag", "n_adversaries": 2, "n_good": 1},
    "tag-10": {"scenario": "simple_tag", "n_adversaries": 7, "n_good": 3, "n_obstacles": 3},
    "adversary-3": {"scenario": "simple_adversary", "n_agents": 2},
    "adversary-10": {"scenario": "simple_adversary", "n_agents": 9},
    "push-2": {"scenario": "simple_push"},
    "simple-1": {"scenario": "simple"},
    "speaker_listener-2": {"scenario": "simple_speaker_listener"},
    "crypto-3": {"scenario": "simple_crypto"},
    "reference-2": {"scenario": "simple_reference", "local_ratio": 0.3},
    "world_comm-6": {"scenario": "simple_world_comm", "n_adversaries": 4, "n_good": 2, "n_obstacles": 1,
                     "n_food": 2, "n_forests": 2},
    "world_comm-10": {"scenario": "simple_world_comm", "n_adversaries": 6, "n_good": 4, "n_obstacles": 2,
                      "n_food": 3, "n_forests": 4},
}
# Steps compared: 40 episodes of 25 with soft actions (resets with new seeds, goals and colours);
# hard actions change only the action forces, and mpe2 itself is the slow half of this test.
STEPS = {"soft": 1000, "hard": 250}
# mpe2 steps world_comm-10 (19 entities) in 15 ms: 12 episodes of it cover forests, catches and food
SHORTER = {"world_comm-10": 300}
RELATIVE = 1e-9


def _close(fast, reference, what: str) -> None:
    fast, reference = np.asarray(fast, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    assert fast.shape == reference.shape, what
    np.testing.assert_allclose(fast, reference, rtol=RELATIVE, atol=0, err_msg=what)


def _random_actions(env, soft: bool, rng: np.random.Generator) -> dict:
    """Each agent's action of its own space: soft, a random point of the simplex per component (its
    movement, then its word), float32 as the trainer gives it; hard, an index of mpe2's Discrete."""
    if not soft:
        return {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
    world = env.unwrapped.world
    actions = {}
    for agent, name in zip(world.agents, env.agents):
        parts = ([5] if agent.movable else []) + ([world.dim_c] if not agent.silent else [])
        actions[name] = np.concatenate([rng.dirichlet(np.ones(n)) for n in parts]).astype(np.float32)
    return actions


def _same_reset(fast, reference, seed: int) -> None:
    fast_obs, _ = fast.reset(seed=seed)
    reference_obs, _ = reference.reset(seed=seed)
    assert list(fast_obs) == list(reference_obs)
    for agent, obs in reference_obs.items():
        assert fast_obs[agent].dtype == obs.dtype
        _close(fast_obs[agent], obs, f"reset observation of {agent}")


@pytest.mark.parametrize("actions", ["soft", "hard"])
@pytest.mark.parametrize("world", list(WORLDS))
def test_fast_engine_steps_as_mpe2_over_episodes(world, actions):
    cfg = EnvConfig(**WORLDS[world], actions=actions)
    fast, reference = make_env(cfg), make_env(cfg.model_copy(update={"engine": "mpe2"}))
    assert isinstance(fast, FastMpeEnv) and not isinstance(reference, FastMpeEnv)
    rng = generator(0, "evaluation")
    for step in range(min(STEPS[actions], SHORTER.get(world, STEPS[actions]))):
        if step == 0 or not reference.agents:
            _same_reset(fast, reference, seed=int(rng.integers(2**31 - 1)))
        picks = _random_actions(reference, actions == "soft", rng)
        fast_out, reference_out = fast.step(picks), reference.step(picks)
        for name, fast_part, reference_part in zip(("obs", "reward"), fast_out, reference_out):
            assert list(fast_part) == list(reference_part)
            for agent in reference_part:
                _close(fast_part[agent], reference_part[agent], f"step {step}: {name} of {agent}")
        assert fast_out[2] == dict(reference_out[2]) and fast_out[3] == dict(reference_out[3])
        assert fast.agents == reference.agents


@pytest.mark.parametrize("env", [{"scenario": "simple_spread"}, {"scenario": "simple_tag", "actions": "hard"},
                                 {"scenario": "simple_speaker_listener"},
                                 {"scenario": "simple_reference", "actions": "hard"}])  # move x word indices
def test_training_is_the_same_with_either_engine(env):
    """The trajectory (episode rewards, every agent's state) does not depend on the engine."""
    trained = {}
    for engine in ("fast", "mpe2"):
        scenario = Scenario.model_validate({"seed": 5, "env": {**env, "engine": engine}, "maddpg": {
            "batch_size": 32, "learning_starts": 100, "steps_per_iteration": 25}})
        trainer = Trainer(scenario)
        trainer.warmup()
        for _ in range(3):
            trainer.step()
        trained[engine] = trainer
    fast, reference = trained["fast"], trained["mpe2"]
    assert [e["rewards"] for e in fast.episode_log] == [e["rewards"] for e in reference.episode_log]
    for mine, theirs in zip(fast.states(), reference.states()):
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))


def test_every_scenario_has_a_fast_step():
    assert set(SCENARIO_STEPS) == set(MPE_SCENARIOS)


def test_a_scenario_without_a_fast_step_falls_back_to_mpe2(monkeypatch):
    """The default engine (fast) must work for a scenario added to the registry before the fast
    engine knows it: mpe2 steps it (simcode.marl.envs.make_env)."""
    monkeypatch.delitem(SCENARIO_STEPS, "simple_crypto")
    env = make_env(EnvConfig(scenario="simple_crypto"))
    assert not isinstance(env, FastMpeEnv)
    env.reset(seed=0)
    env.step({name: np.full(env.action_space(name).shape, 0.25, dtype=np.float32) for name in env.agents})


def test_engine_defaults_to_fast_and_rendering_uses_mpe2():
    assert isinstance(make_env(EnvConfig()), FastMpeEnv)
    assert not isinstance(make_env(EnvConfig(), render_mode="rgb_array"), FastMpeEnv)


def test_unwrapped_world_holds_the_fast_engines_positions():
    """evaluate reads benchmark data from env.unwrapped.world: it must be the state after the steps."""
    cfg = EnvConfig()
    fast, reference = make_env(cfg), make_env(cfg.model_copy(update={"engine": "mpe2"}))
    for env in (fast, reference):
        env.reset(seed=1)
        for _ in range(5):
            env.step({a: np.eye(5, dtype=np.float32)[2] for a in env.agents})
    fast_world, reference_world = fast.unwrapped.world, reference.unwrapped.world
    for mine, theirs in zip(fast_world.agents, reference_world.agents):
        np.testing.assert_array_equal(mine.state.p_pos, theirs.state.p_pos)
        np.testing.assert_array_equal(mine.state.p_vel, theirs.state.p_vel)


def test_bench_envs_prints_both_engines_steps_per_second_as_json(capsys):
    assert main(["bench", "envs", "--scenario", "simple_push", "--agents", "2", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"scenario", "agents", "mpe2_steps_per_s", "fast_steps_per_s", "speedup"} <= set(result)
    assert result["scenario"] == "simple_push" and result["agents"] == 2
    assert result["mpe2_steps_per_s"] > 0 and result["fast_steps_per_s"] > 0


@pytest.mark.parametrize("args", [["--scenario", "simple_push", "--agents", "3"], ["--scenario", "nope"],
                                  ["--agents", "0"]])
def test_bench_envs_bad_input_is_one_line_exit_2(args, capsys):
    assert main(["bench", "envs", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simcode: ")


def test_bench_config_refuses_a_count_beyond_the_configs_bound_in_one_line():
    """bench updates reaches bench_config with any --agents: a count EnvConfig cannot hold is bad
    input naming --agents, not a validation traceback."""
    from simcode.errors import BadInput
    from simcode.marl.bench_envs import bench_config

    with pytest.raises(BadInput) as info:
        bench_config("simple_spread", 10**12)
    assert info.value.key == "--agents" and "env.n_agents" in info.value.message
