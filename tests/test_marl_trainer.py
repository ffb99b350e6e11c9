"""Trainer checkpoints, the train command (resume is bit-identical) and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simcode.config import Scenario
from simcode.errors import BadInput
from simcode.marl.evaluate import evaluate, save_policy
from simcode.marl.train import checkpoints, train
from simcode.marl.trainer import Trainer


def tiny(env: dict | None = None, **run) -> Scenario:
    return Scenario.model_validate({
        "seed": 5, "env": env or {"scenario": "simple_spread", "n_agents": 3},
        "maddpg": {"batch_size": 32, "learning_starts": 60, "steps_per_iteration": 15},
        "run": {"iterations": 6, **run}})


def same(a: Trainer, b: Trainer) -> None:
    assert a.iteration == b.iteration and a.env_steps == b.env_steps and a.episodes == b.episodes
    assert all(np.array_equal(x, y) for x, y in zip(a.states(), b.states()))
    assert np.array_equal(a.obs, b.obs)
    assert a.episode_log == b.episode_log


@pytest.mark.parametrize("env", [None, {"scenario": "simple_tag"}, {"scenario": "simple_spread", "actions": "hard"}])
def test_checkpoint_round_trip_continues_bit_identically(tmp_path, env):
    """Restoring replays the current episode: soft vectors (the default) and argmax indices alike."""
    a = Trainer(tiny(env))
    a.warmup()
    for _ in range(2):
        a.step()
    a.collect()  # mid-episode, mid-iteration: the env must be restored exactly too
    a.save(tmp_path / "ckpt.pkl")
    b = Trainer.load(tmp_path / "ckpt.pkl")
    assert b.scenario.env.actions == (env or {}).get("actions", "soft")
    assert a.episode_actions and len(a.episode_actions) == len(b.episode_actions)
    same(a, b)
    for _ in range(3):
        assert a.step() == b.step()
    same(a, b)


def test_train_resume_equals_uninterrupted(tmp_path):
    assert tiny().env.actions == "soft"  # the default interface is the one resumed here
    full = train(tiny(checkpoint_every=2), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train(tiny(checkpoint_every=2).model_copy(update={"run": tiny(iterations=4).run}), part, progress=False)
    resumed = train(tiny(checkpoint_every=2), part, resume=True, progress=False)
    for key in ("iterations", "env_steps", "episodes", "mean_reward_last_100"):
        assert full[key] == resumed[key]
    a = Trainer.load(checkpoints(tmp_path / "full")[-1])
    b = Trainer.load(checkpoints(part)[-1])
    same(a, b)
    assert (tmp_path / "full" / "curve.csv").read_text() == (part / "curve.csv").read_text()
    for name in ("scenario.yaml", "curve.png", "summary.json", "policy.npz"):
        assert (part / name).is_file()
    assert json.loads((part / "summary.json").read_text())["iterations"] == 6


def test_resume_with_another_scenario_is_bad_input(tmp_path):
    train(tiny(), tmp_path, progress=False)
    other = tiny().model_copy(update={"seed": 9})
    with pytest.raises(BadInput):
        train(other, tmp_path, resume=True, progress=False)


@pytest.mark.parametrize("env", [{"scenario": "simple_adversary", "n_agents": 2}, {"scenario": "simple_push"}])
def test_envs_with_different_observation_sizes_train(tmp_path, env):
    summary = train(tiny(env, iterations=3), tmp_path, progress=False)
    assert summary["iterations"] == 3 and summary["episodes"] > 0


def test_evaluate_returns_reward_benchmark_and_gif(tmp_path):
    train(tiny(), tmp_path / "run", progress=False)
    gif = tmp_path / "episode.gif"
    out = evaluate(tmp_path / "run", episodes=3, render=gif, seed=1)
    assert np.isfinite(out["mean_reward"]) and len(out["rewards"]) == 3
    assert {"mean_collisions", "mean_min_dists", "mean_occupied_landmarks"} <= set(out)
    assert gif.is_file() and gif.read_bytes()[:3] == b"GIF"
    assert evaluate(tmp_path / "run", episodes=3, seed=1)["rewards"] == out["rewards"]


def test_evaluate_reads_a_policy_saved_by_the_simulator(tmp_path):
    trainer = Trainer(tiny({"scenario": "simple_tag"}))
    save_policy(trainer, tmp_path)
    out = evaluate(tmp_path, episodes=2)
    assert "mean_collisions" in out and out["iteration"] == 0


def test_evaluate_rejects_missing_or_empty_run_dir(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        evaluate(tmp_path / "nope")
    with pytest.raises(BadInput, match="no policy.npz or checkpoint"):
        evaluate(tmp_path)
