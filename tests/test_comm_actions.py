"""Agents whose actions have several categorical components (movement, communication) and differ in
size between agents: shapes from mpe2, acting, the batched update's invariances, coded training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simcode.config import EnvConfig, MaddpgConfig, Scenario, scenario_from_dict
from simcode.marl.bench import random_batch
from simcode.marl.envs import describe
from simcode.marl.maddpg import Update, params
from simcode.marl.state import Layout, net_names
from simcode.marl.trainer import Trainer
from simcode.seeding import generator

MIXED = {  # action components differ between agents in each
    "speaker_listener": {"scenario": "simple_speaker_listener"},  # (3,) and (5,)
    "world_comm": {"scenario": "simple_world_comm", "n_adversaries": 2},  # (5, 4), (5,), (5,): 2 + 1 good
    "reference": {"scenario": "simple_reference"},  # (5, 10) twice: two components each
}


def test_action_components_follow_mpe2():
    parts = {name: describe(EnvConfig.model_validate({**env, "actions": actions}), MaddpgConfig()).act_parts
             for name, env in MIXED.items() for actions in ("soft", "hard")}
    assert parts["speaker_listener"] == ((3,), (5,))
    assert parts["world_comm"] == ((5, 4), (5,), (5,))  # the leader, an adversary, a good agent
    assert parts["reference"] == ((5, 10), (5, 10))
    crypto = describe(EnvConfig(scenario="simple_crypto", actions="hard"), MaddpgConfig())
    assert crypto.act_parts == ((4,),) * 3 and crypto.act_dims == (4, 4, 4)


def _update_and_state(env: dict, policy: str = "maddpg", hidden: int = 32):
    cfg = MaddpgConfig(good_policy=policy, hidden=hidden)
    layout = Layout(describe(EnvConfig.model_validate(env), cfg))
    return layout, Update(layout, cfg), layout.initial_state(generator(0, "networks"))


@pytest.mark.parametrize("name,policy", [("speaker_listener", "maddpg"), ("world_comm", "ddpg"),
                                         ("reference", "maddpg")])
def test_mixed_action_sizes_give_the_same_bits_in_any_grouping(name, policy, monkeypatch):
    from simcode.marl import fast

    layout, update, state = _update_and_state(MIXED[name], policy)
    m = layout.n_agents
    everyone = list(range(m))
    for b in (1, 3, 5, 33):
        batch = random_batch(layout, b, generator(b, "minibatches"))
        together = layout.pack(update(state, batch, everyone), everyone)
        backwards = layout.pack(update(state, batch, everyone[::-1]), everyone[::-1])[::-1]
        for j in everyone:
            alone = layout.pack(update(state, batch, [j]), [j])[0]
            assert np.array_equal(together[j], alone), (b, j)
            assert np.array_equal(together[j], backwards[j]), (b, j)
    monkeypatch.setattr(fast, "MAX_CHUNK_BYTES", 1)  # groups of two, a lone one as a pair
    split = layout.pack(update(state, batch, everyone), everyone)
    assert all(np.array_equal(a, c) for a, c in zip(together, split))


def test_padded_actor_outputs_stay_zero_and_each_component_is_a_distribution():
    layout, update, state = _update_and_state(MIXED["world_comm"])
    everyone = list(range(layout.n_agents))
    for it in range(3):
        batch = random_batch(layout, 16, generator(it, "minibatches"))
        batch.iteration = it
        state = update(state, batch, everyone)
    assert torch.count_nonzero(state["actor.W3"][1:, 5:]) == 0  # the 5-move agents' rows 5..8
    assert torch.count_nonzero(state["actor.b3"][1:, 5:]) == 0
    sample = update.actions.softmax(torch.randn(3, 7, 9), everyone)  # (k, B, Amax)
    torch.testing.assert_close(sample[0, :, :5].sum(-1), torch.ones(7))  # the leader's movement
    torch.testing.assert_close(sample[0, :, 5:].sum(-1), torch.ones(7))  # ... and its 4 symbols
    torch.testing.assert_close(sample[1:, :, :5].sum(-1), torch.ones(2, 7))
    assert torch.count_nonzero(sample[1:, :, 5:]) == 0


@pytest.mark.parametrize("name", list(MIXED))
def test_flat_states_hold_only_real_entries_and_round_trip_exactly(name):
    layout, update, state = _update_and_state(MIXED[name], "ddpg")
    everyone = list(range(layout.n_agents))
    state = update(state, random_batch(layout, 8, generator(0, "minibatches")), everyone)
    flats = layout.pack(state, everyone)
    assert [len(f) for f in flats] == layout.shapes.state_sizes  # as the simulator's arithmetic has them
    again = layout.unpack(flats)
    assert all(torch.equal(again[n], state[n]) for n in state)  # padding is zero, and stays zero


def _trainer(env: dict, actions: str = "soft", **maddpg) -> Trainer:
    m = {"batch_size": 32, "learning_starts": 100, "steps_per_iteration": 10, "hidden": 16, **maddpg}
    return Trainer(Scenario.model_validate({"seed": 5, "env": {**env, "actions": actions}, "maddpg": m}))


@pytest.mark.parametrize("name", list(MIXED))
def test_acting_is_a_gumbel_softmax_per_component_of_the_update_forward_pass(name):
    trainer = _trainer(MIXED[name], actions="hard")
    rng = generator(7, "networks")
    for n in net_names("actor"):  # random biases too: every term shows
        trainer.state[n] = torch.from_numpy(rng.normal(0.0, 0.5, trainer.state[n].shape).astype(np.float32))
    shapes, width = trainer.shapes, trainer.layout.act_max
    for joint in rng.normal(0.0, 1.0, (3, shapes.obs_total)).astype(np.float32):
        own = trainer.updater.own_obs.of_every_agent(torch.from_numpy(joint).view(1, 1, -1))[0]  # (M, 1, D)
        logits, _ = trainer.updater.nets.forward(params(trainer.state, "actor"), "actor", (own,), "test")
        seed = int(rng.integers(2**31))
        indices, soft = trainer.act(joint, np.random.default_rng(seed))
        noisy = logits.squeeze(1) + torch.from_numpy(
            np.random.default_rng(seed).gumbel(size=(shapes.n_agents, width)).astype(np.float32))
        for j, parts in enumerate(shapes.act_parts):
            pieces = torch.split(noisy[j, :sum(parts)], parts)
            expected = torch.cat([torch.softmax(p, -1) for p in pieces])
            torch.testing.assert_close(torch.from_numpy(soft[j, :sum(parts)]), expected, rtol=1e-5, atol=1e-6)
            assert not soft[j, sum(parts):].any()  # padding
            # mpe2's Discrete index: movement (or the only component) varies fastest
            argmaxes = [int(p.argmax()) for p in pieces]
            assert indices[j] == (argmaxes[0] + parts[0] * argmaxes[1] if len(parts) == 2 else argmaxes[0])
        assert trainer.env_actions(soft) == indices


@pytest.mark.parametrize("env", [MIXED["reference"], MIXED["speaker_listener"], {"scenario": "simple_crypto"}])
@pytest.mark.parametrize("actions", ["soft", "hard"])
def test_communication_scenarios_train_with_either_action_interface(env, actions):
    trainer = _trainer({**env, "engine": "mpe2"}, actions=actions)
    given = trainer.env_actions(trainer.act(trainer.obs, generator(0, "exploration"))[1])
    if actions == "soft":  # every component's vector, no padding
        assert [len(v) for v in given] == list(trainer.shapes.act_dims)
    else:  # within mpe2's Discrete spaces
        assert all(0 <= a < int(np.prod(p)) for a, p in zip(given, trainer.shapes.act_parts))
    trainer.warmup()
    before = trainer.states()
    trainer.step()
    assert all(not np.array_equal(a, b) for a, b in zip(before, trainer.states()))
    stored = trainer.buffer.data["act"][:len(trainer.buffer)]  # the critics' joint actions: every component's
    parts = [size for agent_parts in trainer.shapes.act_parts for size in agent_parts]
    for component in np.split(stored, np.cumsum(parts)[:-1], axis=1):
        np.testing.assert_allclose(component.sum(1), 1.0, rtol=1e-5)


def _speaker_listener(code: str, n_learners: int = 4):
    return scenario_from_dict({
        "seed": 11, "env": {"scenario": "simple_speaker_listener"},
        "maddpg": {"batch_size": 32, "learning_starts": 200, "steps_per_iteration": 25, "hidden": 16},
        "cluster": {"n_learners": 2 if code == "uncoded" else n_learners}, "code": {"name": code},
        "delay": {"name": "fixed_k", "k": 1, "delay": 0.25}, "run": {"iterations": 4},
    })


def test_coded_training_equals_centralized_training_on_a_communication_scenario():
    from simcode.sim.runner import build

    centralized = Trainer(_speaker_listener("centralized"))
    centralized.warmup()
    for _ in range(4):
        centralized.step()
    for code in ("mds", "replication"):
        cluster = build(_speaker_listener(code))
        cluster.env.run(until=cluster.iteration_done[-1])
        assert max(r["decode_error"] for r in cluster.records) < 1e-12
        for mine, reference in zip(cluster.workload.trainer.states(), centralized.states()):
            if code == "replication":
                assert np.array_equal(mine, reference)
            else:
                np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def test_bench_updates_takes_a_scenario(capsys):
    from simcode.cli import main

    assert main(["bench", "updates", "--scenario", "simple_speaker_listener", "--batch", "8", "--repeats", "1",
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert "simple_speaker_listener, 2 agents (action components 3, 5)" in out
    for args, key in ((["--scenario", "simple_nope"], "--scenario"),
                      (["--scenario", "simple_crypto", "--agents", "4"], "--agents")):
        assert main(["bench", "updates", *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"simcode: {key}: "), lines
