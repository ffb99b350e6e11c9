"""One MADDPG update (Lowe et al. 2017; the openai/maddpg reference), batched over agents, pure.

`Update(layout, cfg)(state, batch, agents)` reads all agents' stacked states and the agents'
minibatches and returns the new stacked states of `agents`; nothing is modified in place. Every
agent's update reads the same pre-iteration states of the others (the reference updates agents one
after another, so later agents see earlier agents' new target actors; coded training needs updates
that do not depend on each other). Any grouping of agents gives the same bits: batched matmuls give
each matrix of a batch the same kernel (a lone agent is computed as a pair, see `__call__`), and the
Gumbel noise of agent j's update comes from its own generator seeded by (seed, iteration, j).

Per agent j with its own minibatch (x, a, r, x', done) holding every agent's obs and actions:
    a'_i  = softmax(mu'_i(o'_i) + gumbel)                 target actions of every agent i
    y     = r + gamma * (1 - done) * Q'_j(x', a'_1..a'_M)  bootstraps through truncation
    critic: minimise mean (Q_j(x, a) - y)^2
    actor:  minimise -mean Q_j(x, a with a_j = softmax(mu_j(o_j) + gumbel)) + 1e-3 mean(logits^2),
            against the critic just updated (the reference's order)
    each gradient tensor clipped to norm 0.5 (tf.clip_by_norm per variable), Adam, then
    targets <- (1 - tau) targets + tau params.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simcode.config import MaddpgConfig
from simcode.marl.state import Layout, net_names
from simcode.seeding import seed_sequence

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
MAX_CHUNK_BYTES = 256 * 2**20  # agents are updated in groups whose temporaries take about this


@dataclass
class Batch:
    """One minibatch per agent (leading axis = agent whose update uses it), float32 tensors."""

    obs: torch.Tensor       # (M, B, sum of obs dims): all agents' observations, concatenated
    act: torch.Tensor       # (M, B, M * A): all agents' (soft) actions
    rew: torch.Tensor       # (M, B): the updating agent's reward
    next_obs: torch.Tensor  # (M, B, sum of obs dims)
    done: torch.Tensor      # (M, B): termination (not truncation) of the updating agent
    seed: int
    iteration: int


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x (n, B, in), w (n, out, in), b (n, out) -> (n, B, out)."""
    return torch.bmm(x, w.transpose(1, 2)).add_(b.unsqueeze(1))  # in place: fewer large temporaries


def mlp(p: dict[str, torch.Tensor], net: str, x: torch.Tensor, x_act: torch.Tensor | None = None):
    """Two ReLU hidden layers; p[net.*] are stacked over agents; a critic takes (obs, actions)."""
    if net.endswith("critic"):
        pre = torch.baddbmm(linear(x_act, p[f"{net}.W1a"], p[f"{net}.b1"]), x, p[f"{net}.W1o"].transpose(1, 2))
    else:
        pre = linear(x, p[f"{net}.W1"], p[f"{net}.b1"])
    h = torch.relu_(pre)
    h = torch.relu_(linear(h, p[f"{net}.W2"], p[f"{net}.b2"]))
    out = linear(h, p[f"{net}.W3"], p[f"{net}.b3"])
    return out.squeeze(-1) if net.endswith("critic") else out


def gumbel_softmax(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The reference's sample: softmax(logits - log(-log(u)))."""
    x = logits - torch.log(-torch.log(uniform))
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))  # torch.softmax is slow over 5 actions on CPU
    return e / e.sum(dim=-1, keepdim=True)


def update_noise(seed: int, iteration: int, agent: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniforms in (0, 1) for agent `agent`'s update at `iteration`, independent of other agents."""
    base = seed_sequence(seed, "exploration")
    ss = np.random.SeedSequence(base.entropy, spawn_key=base.spawn_key + (1, iteration, agent))
    gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return torch.rand(shape, generator=gen).clamp_(min=1e-20)


def adam_clip(params, grads, m, v, t, cfg: MaddpgConfig):
    """Clip each gradient tensor (per agent) to norm cfg.grad_clip, then one Adam step; returns new tensors."""
    b1, b2 = ADAM_BETAS
    new_p, new_m, new_v = [], [], []
    for p, g, m_, v_ in zip(params, grads, m, v):
        # Per-agent norms one agent at a time: a batched reduction may sum in a different order.
        norm = torch.stack([torch.linalg.vector_norm(g[i]) for i in range(g.shape[0])])
        scale = cfg.grad_clip / torch.clamp(norm, min=cfg.grad_clip)
        g = g * scale.view(-1, *[1] * (g.dim() - 1))
        tt = t.view(-1, *[1] * (g.dim() - 1))
        m_ = b1 * m_ + (1 - b1) * g
        # v >= 0 always in plain training; a decoded state carries the decode's rounding, which can
        # leave a zero second moment at -1e-22. Clamping is the identity on exact states.
        v_ = b2 * v_.clamp(min=0) + (1 - b2) * g * g
        m_hat = m_ / (1 - b1 ** tt)
        v_hat = v_ / (1 - b2 ** tt)
        new_p.append(p - cfg.lr * m_hat / (torch.sqrt(v_hat) + ADAM_EPS))
        new_m.append(m_)
        new_v.append(v_)
    return new_p, new_m, new_v


class Update:
    """Index tables of one layout, and the batched update of any group of agents."""

    def __init__(self, layout: Layout, cfg: MaddpgConfig):
        self.layout, self.cfg = layout, cfg
        s = layout.shapes
        m, dmax, a = s.n_agents, layout.obs_max, s.act_dims[0]
        self.act_dim = a
        # Column of agent i's own observation in the concatenated obs (padding reads column 0, masked).
        self.own_cols = torch.zeros((m, dmax), dtype=torch.long)
        self.own_mask = torch.zeros((m, dmax))
        for i, (off, d) in enumerate(zip(layout.obs_offsets, s.obs_dims)):
            self.own_cols[i, :d] = torch.arange(off, off + d)
            self.own_mask[i, :d] = 1.0
        self.same_obs = len(set(s.obs_dims)) == 1
        self.local = any(s.local_critic)
        self.obs_keep = torch.ones((m, s.obs_total))  # ddpg critics see only their own columns
        self.act_keep = torch.ones((m, m * a))
        for j in range(m):
            if s.local_critic[j]:
                self.obs_keep[j] = 0.0
                self.obs_keep[j, self.own_cols[j, :s.obs_dims[j]]] = 1.0
                self.act_keep[j] = 0.0
                self.act_keep[j, j * a:(j + 1) * a] = 1.0

    def own_obs(self, obs: torch.Tensor, who: torch.Tensor) -> torch.Tensor:
        """(k, B, S) concatenated obs -> (k, B, len(who), Dmax) padded own observations of `who`."""
        if self.same_obs and len(who) == self.layout.n_agents:
            return obs.view(*obs.shape[:2], len(who), -1)  # no padding: a view
        return obs[:, :, self.own_cols[who]] * self.own_mask[who]

    def critic_inputs(self, obs, act, agents):
        if not self.local:
            return obs, act
        return obs * self.obs_keep[agents].unsqueeze(1), act * self.act_keep[agents].unsqueeze(1)

    def __call__(self, state: dict[str, torch.Tensor], batch: Batch, agents: list[int]):
        """New stacked states (k = len(agents) rows, in order) from all agents' `state`."""
        shapes, b = self.layout.shapes, batch.obs.shape[1]
        per_agent = 4 * b * (3 * shapes.obs_total + 2 * shapes.act_total + 16 * shapes.hidden)
        chunk = max(2, MAX_CHUNK_BYTES // per_agent)
        parts = []
        for i in range(0, len(agents), chunk):
            group = agents[i:i + chunk]
            if len(group) == 1:
                # torch's bmm gives each matrix of a batch one thread, but lets a batch of one use all
                # threads, where MKL may split a contraction and round differently: compute a lone
                # agent as a pair with itself, so its bits never depend on its company.
                parts.append({n: t[:1] for n, t in self.group(state, batch, group * 2).items()})
            else:
                parts.append(self.group(state, batch, group))
        return {n: torch.cat([p[n] for p in parts]) for n in parts[0]}

    def group(self, state, batch: Batch, agents: list[int]):
        cfg, m, a = self.cfg, self.layout.n_agents, self.act_dim
        k, b = len(agents), batch.obs.shape[1]
        idx = torch.tensor(agents, dtype=torch.long)
        # A run of consecutive agents is a view; any other group is gathered (the same values).
        rows = slice(agents[0], agents[-1] + 1) if agents == list(range(agents[0], agents[-1] + 1)) else idx
        s = {n: t[rows] for n, t in state.items()}
        obs, act, next_obs = batch.obs[rows], batch.act[rows], batch.next_obs[rows]
        rew, done = batch.rew[rows], batch.done[rows]
        noise = torch.stack([update_noise(batch.seed, batch.iteration, j, (m + 1, b, a)) for j in agents])

        # Target: every agent's target policy on its next observation, then agent j's target critic.
        with torch.no_grad():
            # Every agent's target policy on each minibatch (one minibatch at a time: cache-sized).
            targets = {n: state[f"target_{n}"] for n in net_names("actor")}
            logits_next = torch.stack([mlp(targets, "actor", x.transpose(0, 1).contiguous())
                                       for x in self.own_obs(next_obs, torch.arange(m))])  # (k, M, B, A)
            act_next = gumbel_softmax(logits_next, noise[:, :m]).permute(0, 2, 1, 3).reshape(k, b, m * a)
            q_next = mlp(s, "target_critic", *self.critic_inputs(next_obs, act_next, idx))
            y = rew + cfg.gamma * (1.0 - done) * q_next

        # Critic.
        x_obs, x_act = self.critic_inputs(obs, act, idx)
        critic = {n: s[n].detach().requires_grad_() for n in net_names("critic")}
        q = mlp(critic, "critic", x_obs, x_act)
        critic_loss = ((q - y) ** 2).mean(dim=1)
        grads = torch.autograd.grad(critic_loss.sum(), list(critic.values()))
        new = self.step(s, "critic", grads)

        # Actor, against the updated critic (its weights are constants here).
        actor = {n: s[n].detach().requires_grad_() for n in net_names("actor")}
        logits = mlp(actor, "actor", self.own_obs_rows(obs, idx))
        sample = gumbel_softmax(logits, noise[:, m])
        mine = torch.zeros((k, 1, m, 1), dtype=torch.bool)
        mine[torch.arange(k), 0, idx, 0] = True
        act_pi = torch.where(mine, sample.unsqueeze(2), act.reshape(k, b, m, a)).reshape(k, b, m * a)
        x_obs, x_act_pi = self.critic_inputs(obs, act_pi, idx)
        q_pi = mlp({n: new[n].detach() for n in net_names("critic")}, "critic", x_obs, x_act_pi)
        actor_loss = -q_pi.mean(dim=1) + cfg.policy_reg * (logits ** 2).mean(dim=(1, 2))
        grads = torch.autograd.grad(actor_loss.sum(), list(actor.values()))
        new.update(self.step(s, "actor", grads))

        # Soft target updates and the shared Adam step count.
        for net in ("actor", "critic"):
            for n in net_names(net):
                new[f"target_{n}"] = (1.0 - cfg.tau) * s[f"target_{n}"] + cfg.tau * new[n]
        new["step"] = s["step"] + 1.0
        return {n: new[n] for n in state}

    def own_obs_rows(self, obs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """(k, B, S) -> (k, B, Dmax): row r's own observation of agent idx[r]."""
        cols = self.own_cols[idx].unsqueeze(1).expand(-1, obs.shape[1], -1)
        return torch.gather(obs, 2, cols) * self.own_mask[idx].unsqueeze(1)

    def step(self, s, net: str, grads):
        names = net_names(net)
        t = s["step"].squeeze(-1) + 1.0
        p, m_, v_ = adam_clip([s[n] for n in names], [g.detach() for g in grads],
                              [s[f"m_{n}"] for n in names], [s[f"v_{n}"] for n in names], t, self.cfg)
        out = {}
        for n, pn, mn, vn in zip(names, p, m_, v_):
            out[n], out[f"m_{n}"], out[f"v_{n}"] = pn.detach(), mn.detach(), vn.detach()
        return out
