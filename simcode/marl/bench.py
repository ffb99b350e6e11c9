"""`simcode bench updates`: batched MADDPG updates against a straightforward per-agent PyTorch loop.

Both do the same math on simple_spread with M agents (same sizes, random minibatches); the baseline
is what one writes first: an nn.Module actor and critic per agent, torch.optim.Adam, autograd.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from simcode.config import EnvConfig, MaddpgConfig
from simcode.marl.envs import Shapes, describe
from simcode.marl.maddpg import Batch, Update, gumbel_softmax, update_noise
from simcode.marl.state import Layout
from simcode.seeding import generator


def _proc_status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def random_batch(layout: Layout, batch: int, rng: np.random.Generator) -> Batch:
    s = layout.shapes
    m, a = s.n_agents, s.act_dims[0]

    def normal(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    act = torch.softmax(normal(m, batch, m, a), -1).reshape(m, batch, m * a)
    return Batch(obs=normal(m, batch, s.obs_total), act=act, rew=normal(m, batch),
                 next_obs=normal(m, batch, s.obs_total), done=torch.zeros(m, batch), seed=0, iteration=0)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class LoopAgent:
    """The baseline: one agent's networks and optimizers, updated on their own."""

    def __init__(self, obs_dim: int, critic_in: int, n_act: int, cfg: MaddpgConfig, local: bool = False):
        self.local = local  # ddpg: the critic sees only this agent's observation and action
        self.actor, self.critic = _mlp(obs_dim, cfg.hidden, n_act), _mlp(critic_in, cfg.hidden, 1)
        self.target_actor, self.target_critic = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)


def loop_update(agents: list[LoopAgent], j: int, obs_n, act_n, rew, next_obs_n, done, cfg: MaddpgConfig,
                noise: torch.Tensor):
    """Agent j's update, as the reference writes it; noise (M + 1, B, A): uniforms for the M target
    actions, then for agent j's own action."""
    me = agents[j]

    def critic_input(obs, acts):
        return torch.cat([obs[j], acts[j]] if me.local else obs + acts, 1)

    with torch.no_grad():
        next_act = [gumbel_softmax(ag.target_actor(o), u) for ag, o, u in zip(agents, next_obs_n, noise)]
        q_next = me.target_critic(critic_input(next_obs_n, next_act)).squeeze(1)
        y = rew + cfg.gamma * (1 - done) * q_next
    q = me.critic(critic_input(obs_n, act_n)).squeeze(1)
    critic_loss = ((q - y) ** 2).mean()
    me.critic_opt.zero_grad()
    critic_loss.backward()
    _clip_each(me.critic, cfg.grad_clip)
    me.critic_opt.step()
    logits = me.actor(obs_n[j])
    acts = list(act_n)
    acts[j] = gumbel_softmax(logits, noise[-1])
    actor_loss = -me.critic(critic_input(obs_n, acts)).mean() + cfg.policy_reg * (logits ** 2).mean()
    me.actor_opt.zero_grad()
    actor_loss.backward()
    _clip_each(me.actor, cfg.grad_clip)
    me.actor_opt.step()
    with torch.no_grad():
        for net, target in ((me.actor, me.target_actor), (me.critic, me.target_critic)):
            for p, tp in zip(net.parameters(), target.parameters()):
                tp.mul_(1 - cfg.tau).add_(cfg.tau * p)


def make_loop_agents(shapes: Shapes, cfg: MaddpgConfig) -> list[LoopAgent]:
    """The baseline's agents (nn.Module's default init draws from the global generator: restored)."""
    with torch.random.fork_rng():
        return [LoopAgent(d, shapes.critic_in(j), shapes.act_dims[j], cfg, local=shapes.local_critic[j])
                for j, d in enumerate(shapes.obs_dims)]


def loop_update_from_batch(agents: list[LoopAgent], j: int, data: Batch, shapes: Shapes, cfg: MaddpgConfig):
    """`loop_update` of agent j on its minibatch in `data`, split per agent, with the batched update's noise."""
    m, a = shapes.n_agents, shapes.act_dims[0]
    offs = np.cumsum((0,) + shapes.obs_dims)
    obs_n = [data.obs[j][:, offs[i]:offs[i + 1]] for i in range(m)]
    next_n = [data.next_obs[j][:, offs[i]:offs[i + 1]] for i in range(m)]
    act_n = [data.act[j][:, i * a:(i + 1) * a] for i in range(m)]
    noise = update_noise(data.seed, data.iteration, j, (m + 1, data.obs.shape[1], a))
    loop_update(agents, j, obs_n, act_n, data.rew[j], next_n, data.done[j], cfg, noise)


def _clip_each(net: nn.Module, max_norm: float) -> None:
    """The reference clips each gradient tensor on its own (tf.clip_by_norm per variable)."""
    for p in net.parameters():
        nn.utils.clip_grad_norm_([p], max_norm)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_updates(agents: int, batch: int = 1024, repeats: int = 5) -> dict:
    """ms per agent update: batched (all agents in one call) vs the per-agent loop; peak memory."""
    cfg = MaddpgConfig(batch_size=batch)
    shapes = describe(EnvConfig(scenario="simple_spread", n_agents=agents), cfg)
    layout = Layout(shapes)
    update = Update(layout, cfg)
    state = layout.initial_state(generator(0, "networks"))
    data = random_batch(layout, batch, generator(0, "minibatches"))
    everyone = list(range(agents))

    def batched_all():
        update(state, data, everyone)

    _reset_peak()
    rss_before = _proc_status_mb("VmRSS")
    for _ in range(2):  # warm-up; the first calls also pay for fresh memory pages
        batched_all()
    peak = _proc_status_mb("VmHWM")

    loop = make_loop_agents(shapes, cfg)

    def loop_all():
        for j in everyone:
            loop_update_from_batch(loop, j, data, shapes, cfg)

    for _ in range(2):
        loop_all()
    # Interleaved, so that both see the same load on a shared machine; the speedup is the median of
    # the ratios of neighbouring measurements, and the times are medians (robust to outliers).
    pairs = [(_seconds(batched_all), _seconds(loop_all)) for _ in range(repeats)]
    batched = float(np.median([b for b, _ in pairs])) * 1e3 / agents
    baseline = float(np.median([lp for _, lp in pairs])) * 1e3 / agents
    return {
        "agents": agents, "batch": batch, "repeats": repeats, "threads": torch.get_num_threads(),
        "ms_per_agent_update": batched, "baseline_ms_per_agent_update": baseline,
        "speedup": float(np.median([lp / b for b, lp in pairs])),
        "peak_memory_mb": peak, "peak_memory_delta_mb": peak - rss_before,
        "state_floats_per_agent": shapes.state_sizes[0], "batch_bytes_per_agent": shapes.batch_nbytes[0],
        "approx_gflops_per_agent_update": shapes.update_flops[0] / 1e9,
    }


def format_report(result: dict) -> str:
    r = result
    return "\n".join([
        f"MADDPG updates, simple_spread, {r['agents']} agents, batch {r['batch']}, "
        f"{r['threads']} torch threads, median of {r['repeats']} interleaved repeats",
        f"  batched:        {r['ms_per_agent_update']:8.2f} ms per agent update",
        f"  per-agent loop: {r['baseline_ms_per_agent_update']:8.2f} ms per agent update",
        f"  speedup:        {r['speedup']:8.2f}x",
        f"  peak memory:    {r['peak_memory_mb']:8.0f} MB resident "
        f"(+{r['peak_memory_delta_mb']:.0f} MB during the batched updates)",
        f"  state {r['state_floats_per_agent']} floats/agent, minibatch "
        f"{r['batch_bytes_per_agent'] / 2**20:.1f} MiB/agent, ~{r['approx_gflops_per_agent_update']:.2f} "
        "GFLOP/agent update",
    ])
