"""The batched update against its specification, simcode.marl.reference: one nn.Module actor and
critic per agent, autograd and torch.optim.Adam, on the same states and noise."""

from __future__ import annotations

import pytest
import torch

from simcode.config import EnvConfig, MaddpgConfig
from simcode.marl.bench import random_batch
from simcode.marl.envs import describe
from simcode.marl.maddpg import Update
from simcode.marl.reference import ReferenceAgent, make_reference_agents, reference_update_from_batch
from simcode.marl.state import Layout, net_names
from simcode.seeding import generator


def _modules(agent: ReferenceAgent, net: str):
    return (agent.actor, agent.target_actor) if net == "actor" else (agent.critic, agent.target_critic)


def _as_params(state: dict, net: str, j: int, layout: Layout, prefix: str = "") -> list[torch.Tensor]:
    """Agent j's tensors of `net` in nn.Sequential's parameter order."""
    p = {n.split(".")[1]: state[prefix + n][j] for n in net_names(net)}
    s = layout.shapes
    if net == "actor":  # inputs padded to the longest observation, outputs to the longest action
        a = s.act_dims[j]
        return [p["W1"][:, :s.obs_dims[j]], p["b1"], p["W2"], p["b2"], p["W3"][:a], p["b3"][:a]]
    w_obs, w_act = p["W1o"], p["W1a"]
    if s.local_critic[j]:  # only agent j's own observation and action columns are real
        off = layout.obs_offsets[j]
        w_obs, w_act = w_obs[:, off:off + s.obs_dims[j]], w_act[:, layout.own_act(j)]
    return [torch.cat([w_obs, w_act], 1), p["b1"], p["W2"], p["b2"], p["W3"], p["b3"]]


def reference_agents(state: dict, layout: Layout, cfg: MaddpgConfig) -> list[ReferenceAgent]:
    """The reference's agents holding `state`: networks, targets and Adam moments."""
    agents = make_reference_agents(layout.shapes, cfg)
    for j, agent in enumerate(agents):
        step = float(state["step"][j, 0])
        for net, opt in (("actor", agent.actor_opt), ("critic", agent.critic_opt)):
            module, target = _modules(agent, net)
            with torch.no_grad():
                for dst, src in zip(module.parameters(), _as_params(state, net, j, layout)):
                    dst.copy_(src)
                for dst, src in zip(target.parameters(), _as_params(state, net, j, layout, "target_")):
                    dst.copy_(src)
            if step > 0:
                for prm, m, v in zip(module.parameters(), _as_params(state, net, j, layout, "m_"),
                                     _as_params(state, net, j, layout, "v_")):
                    opt.state[prm] = {"step": torch.tensor(step), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
    return agents


@pytest.mark.parametrize("env,policy", [({"scenario": "simple_spread", "n_agents": 3}, "maddpg"),
                                        ({"scenario": "simple_tag"}, "maddpg"),
                                        ({"scenario": "simple_push"}, "ddpg"),
                                        # a speaker (3 symbols) and a listener (5 moves): actions of two sizes
                                        ({"scenario": "simple_speaker_listener"}, "maddpg"),
                                        # eve, bob and alice each say one of 4 symbols
                                        ({"scenario": "simple_crypto"}, "maddpg"),
                                        # agents that move and speak: two components each (5 + 10)
                                        ({"scenario": "simple_reference"}, "ddpg"),
                                        # a leader that moves and speaks (5 + 4) among agents that only move
                                        ({"scenario": "simple_world_comm", "n_adversaries": 2}, "ddpg")])
def test_batched_update_equals_the_reference_autograd_update(env, policy):
    cfg = MaddpgConfig(batch_size=64, hidden=32, good_policy=policy)
    shapes = describe(EnvConfig.model_validate(env), cfg)
    layout = Layout(shapes)
    update = Update(layout, cfg)
    m, b = shapes.n_agents, cfg.batch_size
    state = layout.initial_state(generator(1, "networks"))
    rng = generator(1, "minibatches")
    worst = {}
    for it in range(3):  # the later iterations start from non-zero Adam moments
        data = random_batch(layout, b, rng)
        data.iteration = it
        new = update(state, data, list(range(m)))
        for j in range(m):
            agents = reference_agents(state, layout, cfg)
            reference_update_from_batch(agents, j, data, shapes, cfg)
            for net, opt in (("actor", agents[j].actor_opt), ("critic", agents[j].critic_opt)):
                module, target = _modules(agents[j], net)
                for kind, got, ref in (
                    ("params", list(module.parameters()), _as_params(new, net, j, layout)),
                    ("targets", list(target.parameters()), _as_params(new, net, j, layout, "target_")),
                    ("m", [opt.state[p]["exp_avg"] for p in module.parameters()],
                     _as_params(new, net, j, layout, "m_")),
                    ("v", [opt.state[p]["exp_avg_sq"] for p in module.parameters()],
                     _as_params(new, net, j, layout, "v_")),
                ):
                    for x, y in zip(got, ref):
                        err = (x.detach() - y).abs().max()
                        if kind in ("m", "v"):  # the gradients' moments: relative to their size
                            err = err / (y.abs().max() + 1e-30)
                        worst[(net, kind)] = max(worst.get((net, kind), 0.0), float(err))
        state = new
    # Gradients agree to float32 rounding; parameters to 1% of one Adam step (lr), which is where a
    # gradient entry within rounding of zero can move the other way.
    assert all(worst[(net, kind)] < 1e-4 for net in ("actor", "critic") for kind in ("m", "v")), worst
    assert all(worst[(net, kind)] < 0.01 * cfg.lr for net in ("actor", "critic") for kind in ("params", "targets")), \
        worst
