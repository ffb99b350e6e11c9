"""One MADDPG update, batched over agents, pure, with its backward pass written out.

`Update(layout, cfg)(state, batch, agents)` reads all agents' stacked states and the agents'
minibatches and returns the new stacked states of `agents`; nothing is modified in place. The math is
reference.py's (its docstring, and `reference_update` in autograd; tests/test_marl_reference.py
checks the two agree). Any grouping of agents gives the same bits, and the Gumbel noise of agent j's
update comes from its own generator seeded by (seed, iteration, j).

An update of a group of agents is four stages, one method each: `targets`, `critic_step`,
`actor_step` (against the critic just updated, as the reference) and `soft_update`. Every gradient
is written by hand, with a one-line derivation that names the loss term it comes from; the layers'
own backward is fast.StackedMLP's. How all this is made fast, and bit-stable across groupings, is
fast.py (and fast_adam.py for Adam, clipping and the soft update): every speed trick is there, with
its reason.

An agent's action has one or more categorical components (movement, communication: the agent's
`act_parts`); its policy is a Gumbel-softmax per component, concatenated, as openai/maddpg's soft
multi-categorical (reference.py). An agent with one component is the plain case.

Names: M agents, k agents of the group being updated (the leading axis of every tensor here),
B minibatch rows, A actions per agent (Amax: the longest, to which actions are padded). `mine`: the
group's states; h1, h2 (`hidden`): a network's hidden layers after ReLU; d_x: the gradient of the
loss being minimised with respect to x; d_pre: gradients at the hidden layers' pre-activations
(first layer first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simcode.config import MaddpgConfig
from simcode.marl import fast, fast_adam
from simcode.marl.state import LAYERS, PARTS, Layout, net_names
from simcode.seeding import seed_sequence

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class Batch:
    """One minibatch per agent (leading axis = agent whose update uses it), float32 tensors."""

    obs: torch.Tensor       # (M, B, sum of obs dims): all agents' observations, concatenated
    act: torch.Tensor       # (M, B, sum of action sizes): all agents' (soft) actions, concatenated
    rew: torch.Tensor       # (M, B): the updating agent's reward
    next_obs: torch.Tensor  # (M, B, sum of obs dims)
    done: torch.Tensor      # (M, B): termination (not truncation) of the updating agent
    seed: int
    iteration: int

    def of(self, rows) -> Batch:
        """The minibatches of some agents (an index along the leading axis)."""
        return Batch(obs=self.obs[rows], act=self.act[rows], rew=self.rew[rows], next_obs=self.next_obs[rows],
                     done=self.done[rows], seed=self.seed, iteration=self.iteration)


def update_noise(seed: int, iteration: int, agent: int, shape: tuple[int, ...],
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Uniforms in (0, 1) for agent `agent`'s update at `iteration`, independent of other agents
    (written into `out` if given)."""
    base = seed_sequence(seed, "exploration")
    ss = np.random.SeedSequence(base.entropy, spawn_key=base.spawn_key + (1, iteration, agent))
    gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return torch.rand(shape, generator=gen, out=out).clamp_(min=1e-20)


def clip_groups(net: str) -> list[list[int]]:
    """Indices (in net_names order) of the reference's variables: a layer's weights are one variable
    (the critic's first layer is stored as two tensors), its bias another."""
    groups, at = [], 0
    for weights, _ in LAYERS[net]:
        groups += [list(range(at, at + len(weights))), [at + len(weights)]]
        at += len(weights) + 1
    return groups


def adam_clip(params, grads, m, v, t, cfg: MaddpgConfig, flat: fast_adam.FlatNet, out):
    """Clip each agent's gradient of each variable (a group of tensors) to norm cfg.grad_clip, then
    one Adam step. Every argument but `t` (k,) is one of a net's flat buffers (`flat`: each agent's
    entries of every tensor, so that each line below is one call for the whole net; per-variable and
    per-agent factors are expanded to each element). Writes new parameters, first and second moments
    into the flat buffers `out`; reads the others but `grads`, which it scales."""
    b1, b2 = ADAM_BETAS
    p_out, m_out, v_out = out
    scale = cfg.grad_clip / flat.norms().clamp_(min=cfg.grad_clip)  # (G, k): norms of flat.grad, `grads`
    g = grads.mul_(flat.each_variable(scale))
    v_correction, step_size = flat.each_agent(1 - b2 ** t), flat.each_agent(cfg.lr / (1 - b1 ** t))
    m_ = torch.mul(m, b1, out=m_out).add_(g, alpha=1 - b1)
    # v >= 0 always in plain training; a decoded state carries the decode's rounding, which can
    # leave a zero second moment at -1e-22. Clamping is the identity on exact states.
    v_ = torch.clamp(v, min=0, out=v_out).mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = torch.div(v_, v_correction).sqrt_().add_(ADAM_EPS)  # sqrt(v_hat) + eps
    torch.sub(params, torch.div(m_, denom).mul_(step_size), out=p_out)  # p - lr * m_hat / denom


def params(state: dict[str, torch.Tensor], net: str, part: str = "") -> dict[str, torch.Tensor]:
    """`net`'s tensors of one part of the state ("" parameters, "target_" target network), by net name."""
    return {n: state[part + n] for n in net_names(net)}


class Update:
    """Index tables of one layout, and the batched update of any group of agents."""

    def __init__(self, layout: Layout, cfg: MaddpgConfig):
        self.layout, self.cfg = layout, cfg
        s = layout.shapes
        m = s.n_agents
        self.scratch = fast.Scratch()
        self._flat: dict[tuple[str, int], fast_adam.FlatNet] = {}
        self._flat_states: dict[int, fast_adam.FlatState] = {}
        self._reg_factors: dict[tuple, torch.Tensor] = {}
        self.names = {(part, net): [part + n for n in net_names(net)] for part in PARTS for net in LAYERS}
        self.nets = fast.StackedMLP(self.scratch)
        self.own_obs = fast.OwnObservations(layout)
        self.actions = fast.Actions(layout)
        self.act_sizes = torch.tensor(s.act_dims, dtype=torch.float32)
        # A ddpg critic sees only its own observation and action: masks of its first layer's real columns.
        self.local = any(s.local_critic)
        self.obs_keep = torch.ones((m, s.obs_total))
        self.act_keep = torch.ones((m, s.act_total))
        for j in range(m):
            if s.local_critic[j]:
                self.obs_keep[j] = 0.0
                self.obs_keep[j, layout.own_obs_cols[j, :s.obs_dims[j]]] = 1.0
                self.act_keep[j] = 0.0
                self.act_keep[j, layout.own_act(j)] = 1.0

    def __call__(self, state: dict[str, torch.Tensor], batch: Batch, agents: list[int]):
        """New stacked states (k = len(agents) rows, in order) from all agents' `state`."""
        rows = batch.obs.shape[1]
        return fast.in_groups(agents, rows, fast.scratch_bytes_per_agent(self.layout, rows),
                              lambda group: self.group(state, batch, group))

    def group(self, state: dict[str, torch.Tensor], batch: Batch, agents: list[int]) -> dict[str, torch.Tensor]:
        """The update of one group of agents, computed together."""
        # The new state, written in place: its tensors by name, and the flat block (fast_adam) of each
        # part ("" parameters, "target_", "m_", "v_") of each net. Made outside inference mode (fast.py):
        # the caller gets ordinary tensors.
        new, out = self.flat_state(len(agents)).new()
        with torch.inference_mode():
            m, a, b = self.layout.n_agents, self.layout.act_max, batch.obs.shape[1]
            rows = fast.rows(agents)
            if agents == list(range(m)):  # everyone: the state itself (a view of each of its tensors costs a call)
                mine, data = state, batch
            else:
                mine, data = {n: t[rows] for n, t in state.items()}, batch.of(rows)
            # Gumbel noise -log(-log(u)) of each agent's update, from its own generator: (k, M + 1, B, Amax),
            # the M target actions', then the agent's own action's.
            gumbel = torch.empty((len(agents), m + 1, b, a))
            for r, j in enumerate(agents):
                update_noise(batch.seed, batch.iteration, j, (m + 1, b, a), out=gumbel[r])
            gumbel.log_().neg_().log_().neg_()
            y = self.targets(state, mine, data, gumbel[:, :m])
            self.critic_step(mine, data, y, agents, out)
            self.actor_step(mine, params(new, "critic"), data, gumbel[:, m], agents, out)
            self.soft_update(mine, out)
        return {n: new[n] for n in state}

    def targets(self, state, mine, data: Batch, gumbel_next: torch.Tensor) -> torch.Tensor:
        """y = r + gamma (1 - done) Q'_j(x', a'_1..a'_M), a'_i = softmax(mu'_i(o'_i) + gumbel) per
        component, (k, B).

        Every agent's target actor (from `state`, all agents) acts on each group member's minibatch."""
        own_next = self.own_obs.of_every_agent(data.next_obs)  # (k, M, B, Dmax)
        logits_next = self.nets.forward_each(params(state, "actor", "target_"), "actor", own_next, "target_actor")
        act_next = self.actions.joint(self.actions.softmax(logits_next.add_(gumbel_next)))
        q_next, _ = self.nets.forward(params(mine, "critic", "target_"), "critic", (data.next_obs, act_next),
                                      "target_critic")
        return data.rew + self.cfg.gamma * (1.0 - data.done) * q_next.squeeze(-1)

    def critic_step(self, mine, data: Batch, y: torch.Tensor, agents: list[int], out) -> None:
        """Critic loss L_Q = mean_B (Q_j(x, a) - y)^2; its clipped Adam step, into `out`."""
        b = data.obs.shape[1]
        critic, inputs = params(mine, "critic"), (data.obs, data.act)
        q, hidden = self.nets.forward(critic, "critic", inputs, "critic")
        d_q = (q.squeeze(-1) - y).mul_(2.0 / b).unsqueeze(-1)  # dL_Q/dQ = 2 (Q - y) / B
        grads = self.flat("critic", len(agents)).grads
        self.nets.gradients(critic, "critic", inputs, hidden, d_q, "critic", out=grads)
        if self.local:  # a ddpg critic's first layer sees only its own columns (its other weights stay 0)
            idx = torch.tensor(agents)
            grads[0].mul_(self.obs_keep[idx].unsqueeze(1))
            grads[1].mul_(self.act_keep[idx].unsqueeze(1))
        self.adam_step(mine, "critic", out)

    def actor_step(self, mine, critic, data: Batch, gumbel_own: torch.Tensor, agents: list[int], out) -> None:
        """Actor loss L_pi = -mean_B Q_j(x, a with a_j = softmax(l + gumbel) per component)
        + reg mean_{B,A_j} l^2, where l = mu_j(o_j) are agent j's logits (all its components') and Q_j is
        the updated `critic`; its clipped Adam step, into `out`."""
        k, b = data.obs.shape[:2]
        actor, own_obs = params(mine, "actor"), self.own_obs.of_rows(data.obs, agents)
        logits, actor_hidden = self.nets.forward(actor, "actor", (own_obs,), "actor")
        sample = self.actions.softmax(logits + gumbel_own, agents)  # a_j
        act_pi = self.actions.with_own(data.act, sample, agents, self.scratch("act_pi", *data.act.shape))
        _, critic_hidden = self.nets.forward(critic, "critic", (data.obs, act_pi), "critic", output=False)
        d_q = torch.full((k, b, 1), -1.0 / b)  # dL_pi/dQ = -1/B, from -mean_B Q
        d_critic_pre = self.nets.backward(critic, "critic", critic_hidden, d_q, "critic")
        # dL_pi/da_j = dL/dz1 W1a[:, j's columns]: a_j enters Q only through the first layer's action weights
        d_sample = self.actions.own_grad(d_critic_pre[0], critic["critic.W1a"], agents)
        # dL_pi/dl through each component c of a_j = softmax(.): Jacobian diag(a_c) - a_c a_c^T, so
        # a_c * (d_a - <a_c, d_a>) on c's columns
        d_logits = self.actions.softmax_backward(sample, d_sample, agents)
        # d(reg mean_{B,A_j} l^2)/dl = 2 reg l / (B A_j) (padded logits are 0, and get 0)
        if self.actions.one_part_each:
            d_logits.add_(logits, alpha=2.0 * self.cfg.policy_reg / (b * self.layout.act_max))
        else:
            d_logits.add_(logits * self.reg_factors(agents, b))
        self.nets.gradients(actor, "actor", (own_obs,), actor_hidden, d_logits, "actor",
                            out=self.flat("actor", k).grads)
        self.adam_step(mine, "actor", out)

    def soft_update(self, mine, out) -> None:
        """targets <- (1 - tau) targets + tau new parameters, and the shared Adam step count + 1, into
        `out` (the new parameters' blocks)."""
        for net in LAYERS:
            targets = self.flat(net, len(mine["step"])).of([mine[n] for n in self.names["target_", net]])
            torch.lerp(targets, out["", net], self.cfg.tau, out=out["target_", net])
        torch.add(mine["step"].view(-1), 1.0, out=out["step"])

    def adam_step(self, mine, net: str, out) -> None:
        """Clip per variable and take one Adam step on `net`'s gradients (its FlatNet's), into `out`'s
        blocks of `net`'s parameters and moments."""
        flat = self.flat(net, len(mine["step"]))
        p, m, v = (flat.of([mine[n] for n in self.names[part, net]]) for part in ("", "m_", "v_"))
        t = mine["step"].squeeze(-1) + 1.0
        adam_clip(p, flat.grad, m, v, t, self.cfg, flat, [out[part, net] for part in ("", "m_", "v_")])

    def reg_factors(self, agents: list[int], b: int) -> torch.Tensor:
        """2 reg / (B A_j) of each row's agent, (k, 1, 1) (kept by group: the same come back)."""
        key = (tuple(agents), b)
        if key not in self._reg_factors:
            self._reg_factors[key] = (2.0 * self.cfg.policy_reg / b / self.act_sizes[agents]).view(-1, 1, 1)
        return self._reg_factors[key]

    def flat(self, net: str, k: int) -> fast_adam.FlatNet:
        """`net`'s flat buffers for groups of k agents (kept: a group's size comes back every update)."""
        if (net, k) not in self._flat:
            shapes = [self.layout.param_shapes[n] for n in net_names(net)]
            self._flat[(net, k)] = fast_adam.FlatNet(shapes, clip_groups(net), k)
        return self._flat[(net, k)]

    def flat_state(self, k: int) -> fast_adam.FlatState:
        """New states of k agents (kept, as `flat`)."""
        if k not in self._flat_states:
            self._flat_states[k] = fast_adam.FlatState(self.layout, k)
        return self._flat_states[k]
