"""`simcode bench updates`: batched MADDPG updates against a straightforward per-agent PyTorch loop.

Both do the same math on one MPE scenario's sizes (simple_spread with M agents unless told; random
minibatches); the baseline is the specification, reference.py: what one writes first, an nn.Module
actor and critic per agent, torch.optim.Adam, autograd.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from simcode.config import EnvConfig, MaddpgConfig
from simcode.marl.envs import MaddpgShapes, describe
from simcode.marl.maddpg import Batch, Update
from simcode.marl.reference import make_reference_agents, reference_update_from_batch
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
    """Random observations and rewards, and actions that are softmax vectors of each component."""
    s = layout.shapes
    m = s.n_agents

    def normal(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    parts = [size for agent_parts in s.act_parts for size in agent_parts]
    if len(set(parts)) == 1:  # one softmax over every component at once
        act = torch.softmax(normal(m, batch, len(parts), parts[0]), -1).reshape(m, batch, s.act_total)
    else:
        act = torch.cat([torch.softmax(x, -1) for x in torch.split(normal(m, batch, s.act_total), parts, -1)], -1)
    return Batch(obs=normal(m, batch, s.obs_total), act=act, rew=normal(m, batch),
                 next_obs=normal(m, batch, s.obs_total), done=torch.zeros(m, batch), seed=0, iteration=0)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread_update(agents: int, batch: int) -> tuple[MaddpgConfig, MaddpgShapes, Update, dict, Batch]:
    """What timing the batched update needs: simple_spread with `agents` agents, seeded initial states
    and one random minibatch per agent (shared by `bench updates` and `simcode calibrate`)."""
    return scenario_update(EnvConfig(scenario="simple_spread", n_agents=agents), batch)


def scenario_update(env: EnvConfig, batch: int) -> tuple[MaddpgConfig, MaddpgShapes, Update, dict, Batch]:
    """`spread_update` for any scenario's sizes."""
    cfg = MaddpgConfig(batch_size=batch)
    shapes = describe(env, cfg)
    layout = Layout(shapes)
    state = layout.initial_state(generator(0, "networks"))
    return cfg, shapes, Update(layout, cfg), state, random_batch(layout, batch, generator(0, "minibatches"))


def bench_env(scenario: str, agents: int | None) -> EnvConfig:
    """The scenario with `agents` learning agents, or its default agents (None); BadInput naming the
    option for a scenario simcode does not know or a count it cannot have."""
    from simcode.marl.bench_envs import bench_config
    from simcode.mpe_scenarios import MPE_SCENARIOS

    if agents is None and scenario in MPE_SCENARIOS:
        return EnvConfig(scenario=scenario)
    return bench_config(scenario, agents)


def bench_updates(agents: int | None, batch: int = 1024, repeats: int = 5, scenario: str = "simple_spread") -> dict:
    """ms per agent update: batched (all agents in one call) vs the per-agent loop; peak memory."""
    cfg, shapes, update, state, data = scenario_update(bench_env(scenario, agents), batch)
    agents = shapes.n_agents
    everyone = list(range(agents))

    def batched_all():
        update(state, data, everyone)

    _reset_peak()
    rss_before = _proc_status_mb("VmRSS")
    for _ in range(2):  # warm-up; the first calls also pay for fresh memory pages
        batched_all()
    peak = _proc_status_mb("VmHWM")

    loop = make_reference_agents(shapes, cfg)

    def loop_all():
        for j in everyone:
            reference_update_from_batch(loop, j, data, shapes, cfg)

    for _ in range(2):
        loop_all()
    # Interleaved, so that both see the same load on a shared machine; the speedup is the median of
    # the ratios of neighbouring measurements, and the times are medians (robust to outliers).
    pairs = [(_seconds(batched_all), _seconds(loop_all)) for _ in range(repeats)]
    batched = float(np.median([b for b, _ in pairs])) * 1e3 / agents
    baseline = float(np.median([lp for _, lp in pairs])) * 1e3 / agents
    return {
        "scenario": scenario, "agents": agents, "act_parts": [list(p) for p in shapes.act_parts],
        "batch": batch, "repeats": repeats, "threads": torch.get_num_threads(),
        "ms_per_agent_update": batched, "baseline_ms_per_agent_update": baseline,
        "speedup": float(np.median([lp / b for b, lp in pairs])),
        "peak_memory_mb": peak, "peak_memory_delta_mb": peak - rss_before,
        "state_floats_per_agent": round(float(np.mean(shapes.state_sizes))),
        "batch_bytes_per_agent": shapes.batch_nbytes[0],
        "approx_gflops_per_agent_update": float(np.mean(shapes.update_flops)) / 1e9,
    }


def format_report(result: dict) -> str:
    r = result
    return "\n".join([
        f"MADDPG updates, {r['scenario']}, {r['agents']} agents (action components "
        f"{', '.join('+'.join(map(str, p)) for p in r['act_parts'])}), batch {r['batch']}, "
        f"{r['threads']} torch threads, median of {r['repeats']} interleaved repeats",
        f"  batched:        {r['ms_per_agent_update']:8.2f} ms per agent update",
        f"  per-agent loop: {r['baseline_ms_per_agent_update']:8.2f} ms per agent update",
        f"  speedup:        {r['speedup']:8.2f}x",
        f"  peak memory:    {r['peak_memory_mb']:8.0f} MB resident "
        f"(+{r['peak_memory_delta_mb']:.0f} MB during the batched updates)",
        f"  state {r['state_floats_per_agent']} floats/agent (mean), minibatch "
        f"{r['batch_bytes_per_agent'] / 2**20:.1f} MiB/agent, ~{r['approx_gflops_per_agent_update']:.2f} "
        "GFLOP/agent update",
    ])
