"""MADDPG state and update: exact packing, purity, agent-grouping invariance, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simcode.config import EnvConfig, MaddpgConfig, Scenario
from simcode.marl.envs import describe
from simcode.marl.state import Layout, net_names
from simcode.marl.trainer import Trainer
from simcode.seeding import generator

ENVS = {
    "spread": {"scenario": "simple_spread", "n_agents": 3},
    "tag": {"scenario": "simple_tag"},
    "adversary": {"scenario": "simple_adversary", "n_agents": 2},
    "push": {"scenario": "simple_push"},
}


def tiny(env: dict, **maddpg) -> Scenario:
    m = {"batch_size": 32, "learning_starts": 100, "steps_per_iteration": 10, **maddpg}
    return Scenario.model_validate({"seed": 3, "env": env, "maddpg": m})


def trained_a_little(scenario: Scenario, iterations: int = 2) -> Trainer:
    trainer = Trainer(scenario)
    trainer.warmup()
    for _ in range(iterations):
        trainer.step()
    return trainer


@pytest.mark.parametrize("name", list(ENVS))
def test_pack_unpack_round_trip_is_bit_exact(name):
    trainer = trained_a_little(tiny(ENVS[name], good_policy="ddpg"))
    states = trainer.states()
    assert [len(s) for s in states] == trainer.state_sizes
    assert all(s.dtype == np.float32 for s in states)
    again = trainer.layout.pack(trainer.layout.unpack(states), list(range(trainer.n_agents)))
    assert all(np.array_equal(a, b) for a, b in zip(states, again))
    for name_, t in trainer.layout.unpack(states).items():
        assert torch.equal(t, trainer.state[name_])


def test_state_sizes_match_describe_arithmetic():
    for env in ENVS.values():
        for policy in ("maddpg", "ddpg"):
            cfg = MaddpgConfig(good_policy=policy, hidden=16)
            shapes = describe(EnvConfig.model_validate(env), cfg)
            layout = Layout(shapes)  # asserts its mask counts equal shapes.state_sizes
            state = layout.initial_state(generator(0, "networks"))
            flats = layout.pack(state, list(range(shapes.n_agents)))
            assert [len(f) for f in flats] == shapes.state_sizes


def test_observation_sizes_differ_where_expected():
    sizes = {k: describe(EnvConfig.model_validate(v), MaddpgConfig()).obs_dims for k, v in ENVS.items()}
    assert sizes["tag"] == (16, 16, 16, 14)
    assert sizes["adversary"] == (8, 10, 10)
    assert sizes["push"] == (8, 19)
    assert describe(EnvConfig.model_validate(ENVS["tag"]), MaddpgConfig()).adversary == (True, True, True, False)


@pytest.mark.parametrize("name,policy", [("spread", "maddpg"), ("tag", "ddpg"), ("adversary", "maddpg"),
                                         ("push", "ddpg")])
def test_update_is_pure_and_independent_of_agent_grouping(name, policy):
    trainer = trained_a_little(tiny(ENVS[name], good_policy=policy, adv_policy="maddpg"))
    trainer.collect()
    batch = trainer.sample()
    before = trainer.states()
    batch_copy = {k: getattr(batch, k).clone() for k in ("obs", "act", "rew", "next_obs", "done")}
    together = trainer.compute_updates(batch)
    m = trainer.n_agents
    alone = [trainer.compute_updates(batch, [j])[0] for j in range(m)]
    backwards = trainer.compute_updates(batch, list(range(m))[::-1])[::-1]
    order = list(range(0, m, 2)) + list(range(1, m, 2))
    shuffled = trainer.compute_updates(batch, order)
    odd_even = [shuffled[order.index(j)] for j in range(m)]
    for j in range(m):
        assert np.array_equal(together[j], alone[j]), j
        assert np.array_equal(together[j], backwards[j]), j
        assert np.array_equal(together[j], odd_even[j]), j
        assert not np.array_equal(together[j], before[j])
    # inputs untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, trainer.states()))
    assert all(torch.equal(getattr(batch, k), v) for k, v in batch_copy.items())
    # and deterministic
    assert all(np.array_equal(a, b) for a, b in zip(together, trainer.compute_updates(batch)))


def test_full_batch_size_grouping_is_exact():
    """At the reference batch size the kernels differ from the tiny ones; check them too."""
    trainer = trained_a_little(tiny(ENVS["spread"], batch_size=1024, learning_starts=1100), iterations=1)
    batch = trainer.sample()
    together = trainer.compute_updates(batch)
    for j in range(trainer.n_agents):
        assert np.array_equal(together[j], trainer.compute_updates(batch, [j])[0])


def test_ddpg_critic_ignores_other_agents():
    trainer = trained_a_little(tiny(ENVS["push"], good_policy="ddpg", adv_policy="ddpg"), iterations=3)
    s = trainer.state
    shapes = trainer.shapes
    for j in range(2):
        own = trainer.layout.obs_offsets[j]
        w = s["critic.W1o"][j]
        outside = torch.ones(shapes.obs_total, dtype=torch.bool)
        outside[own:own + shapes.obs_dims[j]] = False
        assert torch.count_nonzero(w[:, outside]) == 0
        assert torch.count_nonzero(w[:, ~outside]) > 0
    # padded actor inputs stay zero (push: obs sizes 8 and 19)
    assert torch.count_nonzero(s["actor.W1"][0, :, 8:]) == 0


def test_install_of_computed_updates_equals_step():
    a = trained_a_little(tiny(ENVS["tag"]), iterations=1)
    b = trained_a_little(tiny(ENVS["tag"]), iterations=1)
    for _ in range(3):
        ra = a.step()
        rb = b.collect()
        b.install([s.astype(np.float32) for s in b.compute_updates(b.sample())])
        assert ra == rb
    assert a.iteration == b.iteration == 4
    assert all(np.array_equal(x, y) for x, y in zip(a.states(), b.states()))


def test_batch_nbytes_and_flops_are_positive():
    trainer = Trainer(tiny(ENVS["spread"]))
    s = trainer.shapes
    assert trainer.batch_nbytes() == [4 * 32 * (2 * 54 + 15 + 2)] * 3
    assert all(f > 0 for f in s.update_flops)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_grouping_invariance_holds_for_any_thread_count(threads):
    """A lone agent must not get a differently-threaded (differently rounded) matmul."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer = trained_a_little(tiny(ENVS["push"], good_policy="ddpg"), iterations=1)
        batch = trainer.sample()
        together = trainer.compute_updates(batch)
        for j in range(trainer.n_agents):
            assert np.array_equal(together[j], trainer.compute_updates(batch, [j])[0])
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["spread", "tag"])
def test_updates_split_into_memory_bounded_groups_equal_one_group(name, monkeypatch):
    from simcode.marl import fast

    trainer = trained_a_little(tiny(ENVS[name]), iterations=1)
    batch = trainer.sample()
    whole = trainer.compute_updates(batch)
    monkeypatch.setattr(fast, "MAX_CHUNK_BYTES", 1)  # groups of two (and a lone one computed as a pair)
    split = trainer.compute_updates(batch)
    assert all(np.array_equal(a, b) for a, b in zip(whole, split))


@pytest.mark.parametrize("name,policy", [("spread", "maddpg"), ("tag", "maddpg"), ("push", "ddpg")])
def test_grouping_invariance_holds_for_odd_batch_sizes(name, policy):
    """Batched matmuls may round a matrix differently with other company at some sizes and layouts."""
    from simcode.marl.bench import random_batch
    from simcode.marl.maddpg import Update

    cfg = MaddpgConfig(good_policy=policy, hidden=64)
    layout = Layout(describe(EnvConfig.model_validate(ENVS[name]), cfg))
    update = Update(layout, cfg)
    state = layout.initial_state(generator(0, "networks"))
    m = layout.n_agents
    for b in (1, 2, 3, 4, 5, 7, 13, 33, 100, 257):
        batch = random_batch(layout, b, generator(b, "minibatches"))
        together = layout.pack(update(state, batch, list(range(m))), list(range(m)))
        for j in range(m):
            assert np.array_equal(together[j], layout.pack(update(state, batch, [j]), [j])[0]), (b, j)


@pytest.mark.parametrize("env", [{"scenario": "simple_spread", "n_agents": 4},
                                 {"scenario": "simple_speaker_listener"},  # actions (3,) and (5,)
                                 {"scenario": "simple_world_comm", "n_adversaries": 2}])  # (5, 4), (5,), (5,)
def test_update_does_not_depend_on_the_thread_count(env):
    """Study workers use one thread, `simcode run` torch's default: both must train alike, with
    agents of one action size or of mixed sizes and components."""
    from simcode.marl.bench import random_batch
    from simcode.marl.maddpg import Update

    cfg = MaddpgConfig()
    layout = Layout(describe(EnvConfig.model_validate(env), cfg))
    state = layout.initial_state(generator(0, "networks"))
    everyone = list(range(layout.n_agents))
    before = torch.get_num_threads()
    try:
        for b in (64, 1024):
            batch = random_batch(layout, b, generator(b, "minibatches"))
            results = []
            for threads in (1, 2, 4):
                torch.set_num_threads(threads)
                results.append(layout.pack(Update(layout, cfg)(state, batch, everyone), everyone))
            for other in results[1:]:
                assert all(np.array_equal(a, c) for a, c in zip(results[0], other)), b
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["spread", "push"])  # push: observations of two sizes, padded
def test_acting_computes_the_update_forward_pass(name):
    """Trainer.act's numpy actor (greedy and sampled) equals the update's batched torch forward."""
    from simcode.marl.fast import softmax
    from simcode.marl.maddpg import params

    trainer = Trainer(tiny(ENVS[name]))
    rng = generator(7, "networks")
    for n in net_names("actor"):  # random biases too (they start at zero): every term shows
        trainer.state[n] = torch.from_numpy(rng.normal(0.0, 0.5, trainer.state[n].shape).astype(np.float32))
    m, a = trainer.n_agents, trainer.shapes.act_dims[0]
    for joint in rng.normal(0.0, 1.0, (5, trainer.shapes.obs_total)).astype(np.float32):
        # The update's target actions: every agent's actor on its own part of one joint observation.
        own = trainer.updater.own_obs.of_every_agent(torch.from_numpy(joint).view(1, 1, -1))[0]  # (M, 1, D)
        logits, _ = trainer.updater.nets.forward(params(trainer.state, "actor"), "actor", (own,), "test")
        logits = logits.squeeze(1)  # (M, A)
        torch.testing.assert_close(torch.from_numpy(trainer.actor_logits(joint)), logits, rtol=1e-5, atol=1e-5)
        actions, soft = trainer.act(joint, None, greedy=True)
        torch.testing.assert_close(torch.from_numpy(soft), softmax(logits), rtol=1e-5, atol=1e-6)
        assert actions == softmax(logits).argmax(-1).tolist()
        seed = int(rng.integers(2**31))
        actions, soft = trainer.act(joint, np.random.default_rng(seed))
        gumbel = np.random.default_rng(seed).gumbel(size=(m, a)).astype(np.float32)
        sampled = softmax(logits + torch.from_numpy(gumbel))
        torch.testing.assert_close(torch.from_numpy(soft), sampled, rtol=1e-5, atol=1e-6)
        assert actions == sampled.argmax(-1).tolist()


def test_clip_norms_are_each_agents_own_vector_norms_bit_for_bit():
    """fast_adam.FlatNet.norms (one _foreach_norm call over every agent's piece of every tensor) gives
    exactly linalg.vector_norm of agent i's tensors, and of the two norms of a two-tensor variable: the
    clip, and so the state, stay as before."""
    from simcode.marl.fast_adam import FlatNet

    rng = torch.Generator().manual_seed(7)
    grads = [torch.randn((3, 64, 14), generator=rng), torch.randn((3, 64, 8), generator=rng),
             torch.randn((3, 64), generator=rng)]
    flat = FlatNet([g.shape[1:] for g in grads], [[0, 1], [2]], k=3)
    for g, view in zip(grads, flat.grads):
        view.copy_(g)
    norms = flat.norms()  # (variables, agents)
    for i in range(3):
        pair = torch.stack([torch.linalg.vector_norm(grads[0][i]), torch.linalg.vector_norm(grads[1][i])])
        assert torch.equal(norms[0, i], torch.linalg.vector_norm(pair))
        assert torch.equal(norms[1, i], torch.linalg.vector_norm(grads[2][i]))
