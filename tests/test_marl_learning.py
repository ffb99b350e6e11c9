"""MADDPG learns simple_spread (3 agents): the CI-sized version of benchmarks/bench_marl_learning.py."""

from __future__ import annotations

import pytest
import torch

from simcode.config import Scenario
from simcode.marl.evaluate import evaluate, random_policy_reward
from simcode.marl.train import train


@pytest.fixture
def one_thread():
    """Small matmuls: one thread is as fast, and never spins waiting for a busy second core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_maddpg_beats_random_on_simple_spread(tmp_path, one_thread):
    # Smaller minibatches and four updates per 100 steps, so that ~40 s of training shows learning.
    scenario = Scenario.model_validate({
        "seed": 0, "env": {"scenario": "simple_spread", "n_agents": 3},
        "maddpg": {"batch_size": 256, "learning_starts": 1000, "steps_per_iteration": 25},
        "run": {"iterations": 1000}})
    random_reward, _ = random_policy_reward(scenario.env, 100)
    summary = train(scenario, tmp_path, progress=False)
    trained = evaluate(tmp_path, episodes=100, seed=1)["mean_reward"]
    # Seen: random about -82, trained about -60 (last training episodes and evaluation).
    assert trained > random_reward + 12, (random_reward, trained, summary)
    assert summary["mean_reward_last_100"] > random_reward + 12
