"""The action interface (`env.actions`): soft vectors as the reference gives them, or their argmax.

mpe2's continuous actions turn an agent's 5-vector a into the force (a[2] - a[1], a[4] - a[3]) times
its acceleration; discrete action k is the one-hot vector e_k's force.
"""

from __future__ import annotations

import importlib
import json
import pickle

import numpy as np
import pytest
from gymnasium import spaces

from simcode.config import EnvConfig, Scenario, load_scenario
from simcode.errors import BadInput
from simcode.marl.envs import make_env
from simcode.marl.evaluate import POLICY_FILE, evaluate, random_policy_reward, save_policy
from simcode.marl.trainer import Trainer

ENVS = {"spread": {"scenario": "simple_spread", "n_agents": 3},
        "tag": {"scenario": "simple_tag", "n_adversaries": 2, "n_good": 1, "n_obstacles": 1}}
MPE2_KWARGS = {"spread": {"N": 3}, "tag": {"num_adversaries": 2, "num_good": 1, "num_obstacles": 1}}
MODULES = {"spread": "mpe2.simple_spread_v3", "tag": "mpe2.simple_tag_v3"}


def scenario(actions: str | None, env: dict | None = None) -> Scenario:
    env = {**(env or ENVS["spread"]), **({"actions": actions} if actions else {})}
    return Scenario.model_validate({"seed": 2, "env": env,
                                    "maddpg": {"batch_size": 16, "learning_starts": 30, "steps_per_iteration": 10}})


def soft_vectors(rng: np.random.Generator, agents: int) -> np.ndarray:
    logits = rng.normal(0.0, 2.0, (agents, 5))
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("name", list(ENVS))
def test_soft_actions_step_as_mpe2_continuous_actions(name):
    """Our soft env and mpe2's own continuous env (with its wrappers), same seeds and vectors: same run."""
    ours = make_env(EnvConfig(**ENVS[name], actions="soft"))
    theirs = importlib.import_module(MODULES[name]).parallel_env(continuous_actions=True, max_cycles=25,
                                                                 **MPE2_KWARGS[name])
    assert ours.action_space(ours.possible_agents[0]) == theirs.action_space(theirs.possible_agents[0])
    rng = np.random.default_rng(11)
    for step in range(100):
        if step % 25 == 0:
            seed = int(rng.integers(2**31))
            obs_ours, _ = ours.reset(seed=seed)
            obs_theirs, _ = theirs.reset(seed=seed)
        vectors = soft_vectors(rng, len(ours.agents))
        obs_ours, rew_ours, *_ = ours.step(dict(zip(ours.agents, vectors)))
        obs_theirs, rew_theirs, *_ = theirs.step(dict(zip(theirs.agents, vectors)))
        assert rew_ours == rew_theirs
        assert all(np.array_equal(obs_ours[a], obs_theirs[a]) for a in obs_theirs)


@pytest.mark.parametrize("actions", ["soft", "hard"])
def test_trainer_steps_the_env_with_the_vectors_its_buffer_stores(actions):
    """Replaying the buffer's first episode on a plain mpe2 env reproduces its transitions: soft gives
    mpe2 the stored vector (continuous actions), hard its argmax (discrete actions)."""
    trainer = Trainer(scenario(actions))
    assert trainer.shapes.act_dims == (5, 5, 5)
    first_episode_seed = trainer.episode_seed
    trainer.collect()
    trainer.collect()
    trainer.collect()  # 30 steps: the first 25-step episode is in the buffer
    env = importlib.import_module(MODULES["spread"]).parallel_env(continuous_actions=actions == "soft", N=3)
    env.reset(seed=first_episode_seed)
    data = trainer.buffer.gather(np.arange(25))
    for act, next_obs, rew in zip(data["act"], data["next_obs"], data["rew"]):
        vectors = act.reshape(3, 5)
        given = list(vectors) if actions == "soft" else [int(k) for k in vectors.argmax(axis=1)]
        obs, reward, *_ = env.step(dict(zip(env.agents, given)))
        assert np.array_equal(np.concatenate([obs[a] for a in trainer.agent_names]), next_obs)
        assert np.array_equal(np.array([reward[a] for a in trainer.agent_names], dtype=np.float32), rew)


def test_one_hot_soft_action_moves_as_its_discrete_action():
    """mpe2's continuous sign convention agrees with its discrete actions, so a uniformly random
    policy (one-hot vectors in soft mode) earns the same rewards either way."""
    hard = random_policy_reward(EnvConfig(**ENVS["tag"], actions="hard"), episodes=4, seed=3)
    soft = random_policy_reward(EnvConfig(**ENVS["tag"], actions="soft"), episodes=4, seed=3)
    assert hard == soft and hard[0] != 0.0


def test_env_actions_default_soft_and_refuse_other_values():
    assert EnvConfig().actions == "soft"
    assert isinstance(make_env(EnvConfig()).action_space("agent_0"), spaces.Box)
    assert isinstance(make_env(EnvConfig(actions="hard")).action_space("agent_0"), spaces.Discrete)
    with pytest.raises(BadInput, match=r"env\.actions: 'argmax' is not allowed; allowed: 'soft' or 'hard'"):
        load_scenario("scenarios/spread3.yaml", {"env.actions": "argmax"})


def without_actions_key(data: dict) -> dict:
    """A scenario mapping as simcode wrote it before `env.actions` existed."""
    data = json.loads(json.dumps(data))
    del data["env"]["actions"]
    return data


def test_a_saved_policy_without_actions_key_is_evaluated_with_hard_actions(tmp_path):
    trainer = Trainer(scenario("hard"))
    save_policy(trainer, tmp_path)
    with np.load(tmp_path / POLICY_FILE) as saved:
        arrays = {name: saved[name] for name in saved.files}
    written = json.loads(str(arrays["scenario"]))
    arrays["scenario"] = np.array(json.dumps(without_actions_key(written)))
    hard = evaluate(tmp_path, episodes=2)
    np.savez(tmp_path / POLICY_FILE, **arrays)
    old = evaluate(tmp_path, episodes=2)
    assert old["rewards"] == hard["rewards"]
    assert old["actions"] == hard["actions"] and "argmax" in old["actions"]


def test_a_checkpoint_without_actions_key_resumes_with_hard_actions(tmp_path):
    trainer = Trainer(scenario("hard"))
    trainer.warmup()
    trainer.step()
    trainer.collect()  # mid-episode: restoring replays the episode's discrete actions
    trainer.save(tmp_path / "ckpt.pkl")
    with open(tmp_path / "ckpt.pkl", "rb") as f:
        data = pickle.load(f)
    data["scenario"] = without_actions_key(data["scenario"])
    with open(tmp_path / "old.pkl", "wb") as f:
        pickle.dump(data, f)
    restored = Trainer.load(tmp_path / "old.pkl")
    assert restored.scenario.env.actions == "hard"
    assert isinstance(restored.env.action_space(restored.agent_names[0]), spaces.Discrete)
    assert np.array_equal(restored.obs, trainer.obs)
    assert trainer.step() == restored.step()
    assert all(np.array_equal(a, b) for a, b in zip(trainer.states(), restored.states()))


def test_soft_and_hard_train_differently_from_the_same_seed():
    """The mode reaches the environment: same seed, same first actions sampled, other trajectories."""
    runs = {}
    for actions in ("soft", "hard"):
        trainer = Trainer(scenario(actions))
        trainer.collect()
        runs[actions] = trainer.buffer.gather(np.arange(10))
    assert np.array_equal(runs["soft"]["obs"][0], runs["hard"]["obs"][0])
    assert not np.array_equal(runs["soft"]["next_obs"], runs["hard"]["next_obs"])

