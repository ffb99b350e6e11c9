"""One MADDPG update (Lowe et al. 2017; the openai/maddpg reference), batched over agents, pure.

`Update(layout, cfg)(state, batch, agents)` reads all agents' stacked states and the agents'
minibatches and returns the new stacked states of `agents`; nothing is modified in place. Every
agent's update reads the same pre-iteration states of the others (the reference updates agents one
after another, so later agents see earlier agents' new target actors; coded training needs updates
that do not depend on each other). Any grouping of agents gives the same bits: batched matmuls give
each matrix of a batch the same kernel (a lone agent is computed as a pair, see `__call__`) as long
as every weight is used as a transposed (out, in) matrix and minibatches have 4 rows or more (below,
agents are computed one at a time; tests/test_marl.py scans batch sizes), and the Gumbel noise of
agent j's update comes from its own generator seeded by (seed, iteration, j).

Per agent j with its own minibatch (x, a, r, x', done) holding every agent's obs and actions:
    a'_i  = softmax(mu'_i(o'_i) + gumbel)                 target actions of every agent i
    y     = r + gamma * (1 - done) * Q'_j(x', a'_1..a'_M)  bootstraps through truncation
    critic: minimise mean (Q_j(x, a) - y)^2
    actor:  minimise -mean Q_j(x, a with a_j = softmax(mu_j(o_j) + gumbel)) + 1e-3 mean(logits^2),
            against the critic just updated (the reference's order)
    each variable's gradient clipped to norm 0.5 (tf.clip_by_norm per variable; the critic's first
    layer is one variable stored as two tensors), Adam, then targets <- (1 - tau) targets + tau params.

The backward pass is written out (no autograd): it skips what autograd would compute and throw away
(the one-column outer products of the critic's output, the critic's gradient for every action
column when the actor needs agent j's five), and it writes intermediates into scratch tensors kept
between calls, since at batch 1024 first-touch page faults on fresh tensors cost more than the
matmuls that filled them. tests/test_marl_reference.py checks it against a per-agent nn.Module loop
with autograd and torch.optim.Adam.
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
SMALL_BATCH = 4  # below this minibatch size each agent is updated alone (see tests/test_marl.py)


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


class Scratch:
    """Intermediate float32 tensors kept between calls, by name and shape.

    A fresh multi-megabyte tensor costs a page fault per 4 KiB page on first touch, which at batch
    1024 took longer than the matmul writing it. One `Update` owns one Scratch: not for concurrent
    use from several threads.
    """

    def __init__(self) -> None:
        self._tensors: dict[tuple, torch.Tensor] = {}

    def __call__(self, name: str, *shape: int) -> torch.Tensor:
        key = (name, shape)
        t = self._tensors.get(key)
        if t is None:
            t = self._tensors[key] = torch.empty(shape)
        return t


def gumbel_softmax(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """The reference's sample: softmax(logits - log(-log(u)))."""
    return softmax(logits - torch.log(-torch.log(uniform)))


def softmax(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))  # torch.softmax is slow over 5 actions on CPU
    return e / e.sum(dim=-1, keepdim=True)


def relu_backward(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """In place: grad *= (out > 0), where out = relu(x) (aten's own kernel: masked_fill_ is 30x slower)."""
    return torch.ops.aten.threshold_backward.grad_input(grad, out, 0.0, grad_input=grad)


def update_noise(seed: int, iteration: int, agent: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniforms in (0, 1) for agent `agent`'s update at `iteration`, independent of other agents."""
    base = seed_sequence(seed, "exploration")
    ss = np.random.SeedSequence(base.entropy, spawn_key=base.spawn_key + (1, iteration, agent))
    gen = torch.Generator().manual_seed(int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return torch.rand(shape, generator=gen).clamp_(min=1e-20)


def adam_clip(params, grads, m, v, t, cfg: MaddpgConfig, clip_groups: list[list[int]]):
    """Clip gradients to norm cfg.grad_clip per agent and per group of tensors, then one Adam step.

    A group is one variable of the reference (the critic's first layer is stored as two tensors,
    observation and action columns, and clipped as one). `grads` are scaled in place; returns new
    parameters, first and second moments.
    """
    b1, b2 = ADAM_BETAS
    for group in clip_groups:
        # Per-agent norms one agent at a time: a batched reduction may sum in a different order.
        def norm(i: int, group=group) -> torch.Tensor:
            norms = [torch.linalg.vector_norm(grads[n][i]) for n in group]
            return norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))

        scale = cfg.grad_clip / torch.stack([norm(i) for i in range(grads[group[0]].shape[0])]).clamp(
            min=cfg.grad_clip)
        for n in group:
            grads[n].mul_(scale.view(-1, *[1] * (grads[n].dim() - 1)))
    new_p, new_m, new_v = [], [], []
    for p, g, m_, v_ in zip(params, grads, m, v):
        per_agent = (-1, *[1] * (g.dim() - 1))
        m_ = torch.mul(m_, b1).add_(g, alpha=1 - b1)
        # v >= 0 always in plain training; a decoded state carries the decode's rounding, which can
        # leave a zero second moment at -1e-22. Clamping is the identity on exact states.
        v_ = torch.clamp(v_, min=0).mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = torch.div(v_, (1 - b2 ** t).view(per_agent)).sqrt_().add_(ADAM_EPS)  # sqrt(v_hat) + eps
        step = torch.div(m_, denom).mul_((cfg.lr / (1 - b1 ** t)).view(per_agent))  # lr * m_hat / denom
        new_p.append(torch.sub(p, step))
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
        self.scratch = Scratch()
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

    def __call__(self, state: dict[str, torch.Tensor], batch: Batch, agents: list[int]):
        """New stacked states (k = len(agents) rows, in order) from all agents' `state`."""
        shapes, b = self.layout.shapes, batch.obs.shape[1]
        # Per agent: target and policy actions and their noise, the hidden layers of three networks and
        # their gradients, and padded copies of the observations when their sizes differ.
        padded = 0 if self.same_obs else 2 * shapes.n_agents * self.layout.obs_max
        per_agent = 4 * b * (4 * shapes.act_total + 24 * shapes.hidden + padded)
        groups = -(-len(agents) // max(2, MAX_CHUNK_BYTES // per_agent))
        chunk = -(-len(agents) // groups)  # groups of equal size: a batched matmul splits them over threads
        if b < SMALL_BATCH:
            chunk = 1  # MKL rounds batched matmuls of 2 or 3 rows by their company: one agent at a time
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
        if len(parts) == 1:
            return parts[0]
        return {n: torch.cat([p[n] for p in parts]) for n in parts[0]}

    # ------------------------------------------------------------------ forward and backward by hand

    def forward(self, p: dict[str, torch.Tensor], net: str, x: torch.Tensor, x_act: torch.Tensor | None = None,
                tag: str = ""):
        """Two ReLU hidden layers over a stack of networks; returns (output, h1, h2) in scratch
        tensors named by `tag` (valid until the next call with that tag)."""
        n, b, hidden = x.shape[0], x.shape[1], p[f"{net}.b1"].shape[-1]
        h1 = self.scratch(tag + "h1", n, b, hidden)
        h1.copy_(p[f"{net}.b1"].unsqueeze(1).expand_as(h1))
        if x_act is not None:  # a critic: observation and action columns of the first layer
            h1.baddbmm_(x_act, p[f"{net}.W1a"].transpose(1, 2))
            h1.baddbmm_(x, p[f"{net}.W1o"].transpose(1, 2))
        else:
            h1.baddbmm_(x, p[f"{net}.W1"].transpose(1, 2))
        h1.relu_()
        h2 = self.scratch(tag + "h2", n, b, hidden)
        h2.copy_(p[f"{net}.b2"].unsqueeze(1).expand_as(h2)).baddbmm_(h1, p[f"{net}.W2"].transpose(1, 2)).relu_()
        # Few outputs: W3 @ h2^T, (n, out, B), is twice as fast as h2 @ W3^T; the caller sees (n, B, out).
        w3 = p[f"{net}.W3"]
        out = self.scratch(tag + "out", n, w3.shape[1], b)
        out.copy_(p[f"{net}.b3"].unsqueeze(-1).expand_as(out)).baddbmm_(w3, h2.transpose(1, 2))
        return out.transpose(1, 2), h1, h2

    def backward(self, p, net: str, h1, h2, d_out, tag: str = ""):
        """Gradients at the two hidden layers' pre-activations from d loss / d output."""
        w3 = p[f"{net}.W3"]
        d2 = self.scratch(tag + "d2", *h2.shape)
        if w3.shape[1] == 1:  # one output: an outer product, cheaper as a broadcast multiply
            torch.mul(d_out, w3, out=d2)
        else:
            torch.bmm(d_out, w3, out=d2)
        relu_backward(d2, h2)
        d1 = self.scratch(tag + "d1", *h1.shape)
        return relu_backward(torch.bmm(d2, p[f"{net}.W2"], out=d1), h1), d2

    @staticmethod
    def weight_grads(inputs, h1, h2, d_out, d1, d2) -> list[torch.Tensor]:
        """Gradients of (the first layer's weights on each of `inputs`, b1, W2, b2, W3, b3)."""
        first = [torch.bmm(d1.transpose(1, 2), x) for x in inputs]
        return first + [d1.sum(1), torch.bmm(d2.transpose(1, 2), h1), d2.sum(1),
                        torch.bmm(d_out.transpose(1, 2), h2), d_out.sum(1)]

    def group(self, state, batch: Batch, agents: list[int]):
        cfg, m, a = self.cfg, self.layout.n_agents, self.act_dim
        k, b = len(agents), batch.obs.shape[1]
        idx = torch.tensor(agents, dtype=torch.long)
        # A run of consecutive agents is a view; any other group is gathered (the same values).
        rows = slice(agents[0], agents[-1] + 1) if agents == list(range(agents[0], agents[-1] + 1)) else idx
        s = {n: t[rows] for n, t in state.items()}
        obs, act, next_obs = batch.obs[rows], batch.act[rows], batch.next_obs[rows]
        rew, done = batch.rew[rows], batch.done[rows]
        # Gumbel noise -log(-log(u)), from each agent's own generator.
        gumbel = torch.stack([update_noise(batch.seed, batch.iteration, j, (m + 1, b, a)) for j in agents])
        gumbel.log_().neg_().log_().neg_()

        # Target: every agent's target policy on each minibatch's next observations (one minibatch
        # at a time, so that every matmul has the same shape whatever k), then j's target critic.
        target_actor = {n: state[f"target_{n}"] for n in net_names("actor")}
        own_next = self.own_obs(next_obs, torch.arange(m))  # (k, B, M, Dmax)
        logits_next = self.scratch("logits_next", k, m, b, a)
        for r in range(k):
            logits, _, _ = self.forward(target_actor, "actor", own_next[r].transpose(0, 1), tag="target_actor.")
            logits_next[r] = logits
        act_next = softmax(logits_next.add_(gumbel[:, :m])).transpose(1, 2).reshape(k, b, m * a)
        q_next, _, _ = self.forward({n: s[f"target_{n}"] for n in net_names("critic")}, "critic", next_obs,
                                    act_next, tag="target_critic.")
        y = rew + cfg.gamma * (1.0 - done) * q_next.squeeze(-1)

        # Critic: minimise mean (Q - y)^2.
        critic = {n: s[n] for n in net_names("critic")}
        q, h1, h2 = self.forward(critic, "critic", obs, act, tag="critic.")
        d_q = (q.squeeze(-1) - y).mul_(2.0 / b).unsqueeze(-1)
        d1, d2 = self.backward(critic, "critic", h1, h2, d_q, tag="critic.")
        grads = self.weight_grads((obs, act), h1, h2, d_q, d1, d2)
        if self.local:  # a ddpg critic's first layer sees only its own columns (its other weights are 0)
            grads[0].mul_(self.obs_keep[idx].unsqueeze(1))
            grads[1].mul_(self.act_keep[idx].unsqueeze(1))
        new = self.step(s, "critic", grads)

        # Actor, against the updated critic: -mean Q(x, a with a_j = j's sample) + reg * mean logits^2.
        actor = {n: s[n] for n in net_names("actor")}
        x_own = self.own_obs_rows(obs, agents)
        logits, a1, a2 = self.forward(actor, "actor", x_own, tag="actor.")
        sample = softmax(logits + gumbel[:, m])
        act_pi = self.scratch("act_pi", k, b, m * a)
        act_pi.copy_(act)
        for r, j in enumerate(agents):
            act_pi[r, :, j * a:(j + 1) * a] = sample[r]
        critic = {n: new[n] for n in net_names("critic")}
        _, h1, h2 = self.forward(critic, "critic", obs, act_pi, tag="critic.")
        d1, _ = self.backward(critic, "critic", h1, h2, torch.full((k, b, 1), -1.0 / b), tag="critic.")
        # d loss / d a_j needs only agent j's action columns of the first layer, gathered as (k, A, H)
        # and used transposed, as every weight here: MKL rounds a batched (B x H) @ (H x A) with
        # contiguous (H, A) matrices differently in other company at most B (tests/test_marl.py).
        w_mine = new["critic.W1a"].view(k, -1, m, a).permute(0, 2, 3, 1)[torch.arange(k), idx].contiguous()
        d_sample = torch.bmm(d1, w_mine.transpose(1, 2))
        d_logits = sample * (d_sample - (sample * d_sample).sum(-1, keepdim=True))  # through the softmax
        d_logits.add_(logits, alpha=2.0 * cfg.policy_reg / (b * a))
        d1, d2 = self.backward(actor, "actor", a1, a2, d_logits, tag="actor.")
        new.update(self.step(s, "actor", self.weight_grads((x_own,), a1, a2, d_logits, d1, d2)))

        # Soft target updates and the shared Adam step count.
        for net in ("actor", "critic"):
            for n in net_names(net):
                new[f"target_{n}"] = torch.lerp(s[f"target_{n}"], new[n], cfg.tau)
        new["step"] = s["step"] + 1.0
        return {n: new[n] for n in state}

    def own_obs_rows(self, obs: torch.Tensor, agents: list[int]) -> torch.Tensor:
        """(k, B, S) -> (k, B, Dmax): row r's own observation of agent agents[r]."""
        d = self.layout.obs_max
        if self.same_obs and agents == list(range(agents[0], agents[0] + len(agents))):
            # Row r's block starts d columns further on than row r - 1's: a strided view, no copy.
            st = obs.stride()
            return obs.as_strided((*obs.shape[:2], d), (st[0] + d * st[2], st[1], st[2]),
                                  obs.storage_offset() + agents[0] * d * st[2])
        idx = torch.tensor(agents)
        cols = self.own_cols[idx].unsqueeze(1).expand(-1, obs.shape[1], -1)
        return torch.gather(obs, 2, cols) * self.own_mask[idx].unsqueeze(1)

    def step(self, s, net: str, grads):
        """Clip and Adam; the critic's first layer (two tensors here) is one variable of the reference."""
        names = net_names(net)
        first = [0, 1] if net == "critic" else [0]
        groups = [first] + [[i] for i in range(len(first), len(names))]
        t = s["step"].squeeze(-1) + 1.0
        p, m_, v_ = adam_clip([s[n] for n in names], grads, [s[f"m_{n}"] for n in names],
                              [s[f"v_{n}"] for n in names], t, self.cfg, groups)
        out = {}
        for n, pn, mn, vn in zip(names, p, m_, v_):
            out[n], out[f"m_{n}"], out[f"v_{n}"] = pn, mn, vn
        return out
