"""The MADDPG update as it is specified (Lowe et al. 2017; the openai/maddpg reference), one agent at a
time, written the way one writes it first: nn.Module networks, autograd, torch.optim.Adam.

This is the specification the batched update (maddpg.py) computes fast: tests/test_marl_reference.py
checks that they agree, and `simcode bench updates` measures one against the other.

Per agent j, on its own minibatch (x, a, r, x', done) holding every agent i's observation o_i and
action a_i, with Gumbel noise g = -log(-log(u)) (u from maddpg.update_noise). An agent's action has
one or more categorical components (movement, communication); softmax_parts(l) is the softmax of each
component's logits, concatenated (openai/maddpg's SoftMultiCategoricalPd; one component: softmax):
    a'_i = softmax_parts(mu'_i(o'_i) + g_i)                  target actions of every agent i
    y    = r + gamma * (1 - done) * Q'_j(x', a'_1..a'_M)      no gradient; bootstraps through truncation
    L_Q  = mean_B (Q_j(x, a) - y)^2                           critic loss
    L_pi = -mean_B Q_j(x, a with a_j = softmax_parts(mu_j(o_j) + g)) + reg * mean_{B,A_j} mu_j(o_j)^2
                                                              actor loss, with the critic just updated;
                                                              the mean over all of j's logits, every
                                                              component's (openai/maddpg's p_reg)
    each loss: every variable's gradient clipped to norm grad_clip on its own (tf.clip_by_norm per
    variable), one Adam step; then targets <- (1 - tau) targets + tau parameters.
A ddpg agent's critic sees only its own observation and action. Unlike openai/maddpg, which updates
agents one after another (later agents see earlier agents' new target actors), every agent's update
reads the same pre-update states of the others, so that updates do not depend on each other (coded
training computes them apart).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from simcode.config import MaddpgConfig
from simcode.marl.envs import MaddpgShapes
from simcode.marl.maddpg import Batch, update_noise


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    """Two ReLU hidden layers (the layer list of state.LAYERS)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class ReferenceAgent:
    """One agent's networks, target networks and optimizers."""

    def __init__(self, obs_dim: int, critic_in: int, act_parts: tuple[int, ...], cfg: MaddpgConfig,
                 local: bool = False):
        self.local = local  # ddpg: the critic sees only this agent's observation and action
        self.act_parts = act_parts  # its action's categorical components
        self.actor, self.critic = mlp(obs_dim, cfg.hidden, sum(act_parts)), mlp(critic_in, cfg.hidden, 1)
        self.target_actor, self.target_critic = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)


def make_reference_agents(shapes: MaddpgShapes, cfg: MaddpgConfig) -> list[ReferenceAgent]:
    """Every agent's (nn.Module's default init draws from torch's global generator: restored after)."""
    with torch.random.fork_rng():
        return [ReferenceAgent(d, shapes.critic_in(j), shapes.act_parts[j], cfg, local=shapes.local_critic[j])
                for j, d in enumerate(shapes.obs_dims)]


def gumbel_softmax(logits: torch.Tensor, uniform: torch.Tensor, parts: tuple[int, ...]) -> torch.Tensor:
    """softmax_parts(logits + g), g = -log(-log(u)): a relaxed sample of each categorical component
    of the policy, concatenated. `uniform` may be wider than the logits (its first columns are used)."""
    noisy = logits - torch.log(-torch.log(uniform[..., :logits.shape[-1]]))
    return torch.cat([torch.softmax(x, dim=-1) for x in torch.split(noisy, parts, dim=-1)], dim=-1)


def descend(net: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float) -> None:
    """One Adam step on `loss`, each parameter's gradient clipped to `max_norm` on its own."""
    optimizer.zero_grad()
    loss.backward()
    for p in net.parameters():
        nn.utils.clip_grad_norm_([p], max_norm)
    optimizer.step()


def reference_update(agents: list[ReferenceAgent], j: int, obs_n, act_n, rew, next_obs_n, done,
                     cfg: MaddpgConfig, noise: torch.Tensor) -> None:
    """Agent j's update, in place (the module's math). obs_n, act_n, next_obs_n: one (B, .) tensor per
    agent; noise (M + 1, B, >= every A_i): uniforms for the M target actions, then for agent j's own."""
    me = agents[j]

    def q_value(critic: nn.Module, obs: list, acts: list) -> torch.Tensor:
        inputs = [obs[j], acts[j]] if me.local else [*obs, *acts]
        return critic(torch.cat(inputs, 1)).squeeze(1)

    with torch.no_grad():
        next_act = [gumbel_softmax(agent.target_actor(o), u, agent.act_parts)
                    for agent, o, u in zip(agents, next_obs_n, noise)]
        y = rew + cfg.gamma * (1 - done) * q_value(me.target_critic, next_obs_n, next_act)
    critic_loss = ((q_value(me.critic, obs_n, act_n) - y) ** 2).mean()
    descend(me.critic, me.critic_opt, critic_loss, cfg.grad_clip)

    logits = me.actor(obs_n[j])
    policy_act = [*act_n[:j], gumbel_softmax(logits, noise[-1], me.act_parts), *act_n[j + 1:]]
    actor_loss = -q_value(me.critic, obs_n, policy_act).mean() + cfg.policy_reg * (logits ** 2).mean()
    descend(me.actor, me.actor_opt, actor_loss, cfg.grad_clip)

    with torch.no_grad():
        for net, target in ((me.actor, me.target_actor), (me.critic, me.target_critic)):
            for p, target_p in zip(net.parameters(), target.parameters()):
                target_p.lerp_(p, cfg.tau)


def reference_update_from_batch(agents: list[ReferenceAgent], j: int, data: Batch, shapes: MaddpgShapes,
                                cfg: MaddpgConfig) -> None:
    """`reference_update` of agent j on its minibatch in the batched update's `data`, with its noise."""
    m = shapes.n_agents
    obs_n = torch.split(data.obs[j], shapes.obs_dims, dim=1)
    next_n = torch.split(data.next_obs[j], shapes.obs_dims, dim=1)
    act_n = list(torch.split(data.act[j], shapes.act_dims, dim=1))
    noise = update_noise(data.seed, data.iteration, j, (m + 1, data.obs.shape[1], max(shapes.act_dims)))
    reference_update(agents, j, obs_n, act_n, data.rew[j], next_n, data.done[j], cfg, noise)
