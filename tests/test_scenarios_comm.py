"""The communication scenarios (issue 15): shipped files that run coded and decode exactly, and
their evaluate measures (speaker-listener's final distance, crypto's bob against eve)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcode.cli import main
from simcode.config import EnvConfig, load_scenario
from simcode.marl.envs import make_env
from simcode.marl.evaluate import evaluate, random_policy_evaluation, scenario_measure
from simcode.mpe_scenarios import MPE_SCENARIOS

SHIPPED = {"simple": "simple", "reference": "simple_reference", "speaker_listener": "simple_speaker_listener",
           "crypto": "simple_crypto", "world_comm": "simple_world_comm"}
TINY = ["--set", "run.iterations=3", "--set", "maddpg.batch_size=16", "--set", "maddpg.hidden=8",
        "--set", "maddpg.steps_per_iteration=10", "--set", "maddpg.learning_starts=16"]


@pytest.mark.parametrize("name, code", [(name, "ldpc" if k % 2 else "mds") for k, name in enumerate(SHIPPED)])
def test_shipped_scenario_runs_coded_and_decodes_exactly(name, code, tmp_path, capsys):
    out = tmp_path / name
    assert main(["run", name, "--out", str(out), "--set", f"code.name={code}", *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheme"] == code and summary["workload"] == "maddpg"
    shipped = load_scenario(name)
    assert shipped.env.scenario == SHIPPED[name]
    assert summary["n_agents"] == len(make_env(shipped.env).possible_agents)
    assert summary["max_decode_error"] <= 1e-9


def _listener_final_distance(env) -> float:
    world = env.unwrapped.world
    listener, target = world.agents[1], world.agents[0].goal_b
    return float(np.linalg.norm(listener.state.p_pos - target.state.p_pos))


def test_speaker_listener_measure_is_the_listeners_distance_at_the_episodes_end(tmp_path, capsys):
    assert main(["run", "speaker_listener", "--out", str(tmp_path), *TINY]) == 0
    result = evaluate(tmp_path, episodes=2, seed=3)
    assert scenario_measure("simple_speaker_listener") == "mean_final_target_distance"
    # the same two episodes again, by hand: the listener's distance after the last step, averaged
    from simcode.marl.evaluate import _load_trainer
    from simcode.seeding import generator

    trainer = _load_trainer(tmp_path)
    rng, finals = generator(3, "evaluation"), []
    for _ in range(2):
        obs, _ = trainer.env.reset(seed=int(rng.integers(2**31 - 1)))
        while trainer.env.agents:
            _, soft = trainer.act(trainer._joint(obs), rng)
            obs, *_ = trainer.env.step(dict(zip(trainer.agent_names, trainer.env_actions(soft))))
        finals.append(_listener_final_distance(trainer.env))
    assert result["mean_final_target_distance"] == pytest.approx(np.mean(finals), rel=1e-12)


def _crypto_words(env, bob_says: int, eve_says: int) -> dict:
    """Soft actions: alice says symbol 0, bob and eve the one-hot words given."""
    words = {"alice_0": 0, "bob_0": bob_says, "eve_0": eve_says}
    return {name: np.eye(4, dtype=np.float32)[words[name]] for name in env.agents}


@pytest.mark.parametrize("engine", ["fast", "mpe2"])
def test_crypto_measure_says_whether_bob_decodes_better_than_eve(engine):
    from simcode.marl.evaluate import play_episode

    env = make_env(EnvConfig(scenario="simple_crypto", engine=engine, max_cycles=3))
    env.reset(seed=7)
    message = int(np.argmax(env.unwrapped.world.agents[0].goal_a.color))  # 0 or 1: one of 2 landmarks
    wrong = 1 - message
    _, bob_right = play_episode(env, lambda obs: _crypto_words(env, message, wrong), "simple_crypto", 7)
    assert bob_right == {"bob_error": 0.0, "eve_error": 2.0, "bob_decoded": 1.0, "eve_decoded": 0.0,
                         "bob_beats_eve": 1.0}
    _, eve_right = play_episode(env, lambda obs: _crypto_words(env, wrong, message), "simple_crypto", 7)
    assert eve_right["bob_beats_eve"] == 0.0 and eve_right["eve_decoded"] == 1.0
    _, both_right = play_episode(env, lambda obs: _crypto_words(env, message, message), "simple_crypto", 7)
    assert both_right["bob_beats_eve"] == 0.0  # a tie is not a win
    assert scenario_measure("simple_crypto") == "mean_bob_beats_eve"


@pytest.mark.parametrize("scenario", ["simple_reference", "simple_world_comm", "simple_speaker_listener"])
def test_random_policy_picks_each_component_and_soft_equals_hard(scenario):
    """A random policy picks a movement and a word (not one of their concatenation), and the soft
    one-hot vectors move the world as mpe2's composed Discrete index does: same episodes."""
    soft = random_policy_evaluation(EnvConfig(scenario=scenario, actions="soft"), episodes=3, seed=2)
    hard = random_policy_evaluation(EnvConfig(scenario=scenario, actions="hard"), episodes=3, seed=2)
    assert soft["rewards"] == pytest.approx(hard["rewards"], rel=1e-6)
    measure = scenario_measure(scenario)
    if measure is not None:
        assert soft[measure] == pytest.approx(hard[measure], rel=1e-6)


def test_every_scenario_measure_is_a_benchmark_key():
    for name, entry in MPE_SCENARIOS.items():
        if entry.measure is not None:
            env = make_env(EnvConfig(scenario=name))
            env.reset(seed=0)
            assert entry.measure in entry.benchmark(env.unwrapped.scenario, env.unwrapped.world)


# without --agents: the scenario's only count, or 3 where it scales (world_comm: 2 adversaries, 1 good)
BENCH_AGENTS = {"simple": 1, "simple_speaker_listener": 2, "simple_crypto": 3, "simple_reference": 2,
                "simple_world_comm": 3}


@pytest.mark.parametrize("scenario", list(BENCH_AGENTS))
def test_bench_envs_accepts_the_communication_scenarios(scenario, capsys):
    assert main(["bench", "envs", "--scenario", scenario, "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["scenario"] == scenario and result["agents"] == BENCH_AGENTS[scenario]
    assert result["fast_steps_per_s"] > 0 and result["mpe2_steps_per_s"] > 0


@pytest.mark.parametrize("name, measure", [("crypto", "mean_bob_beats_eve"),
                                           ("speaker_listener", "mean_final_target_distance")])
def test_train_then_evaluate_with_render_on_a_communication_scenario(name, measure, tmp_path, capsys):
    """`simcode train` and `simcode evaluate --render` (mpe2 draws what the agents say)."""
    out = tmp_path / "trained"
    assert main(["train", name, "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    gif = tmp_path / "episode.gif"
    assert main(["evaluate", str(out), "--episodes", "2", "--render", str(gif)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scenario"] == SHIPPED[name] and report["render"] == str(gif.resolve())
    assert gif.is_file() and gif.stat().st_size > 0
    assert np.isfinite(report[measure])
