"""Simulator benchmarks. Run: python benchmarks/bench_sim.py [--quick]

1. Host-time overhead of `simcode run` (uncoded, no stragglers) over `simcode train` for the same
   iterations: the clock, encoding, decoding and the per-iteration decode check (goal <= 1.05x).
2. Simulated seconds per host second in the paper's setting (fixed_k, 0.25 s, real MADDPG).
3. The `timing` workload's iterations per host second at M=15, N=20 (goal >= 2,000).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from simcode.config import load_scenario
from simcode.marl.train import train
from simcode.marl.trainer import Trainer
from simcode.sim.runner import simulate

ROOT = Path(__file__).resolve().parents[1]


def spread3(**overrides):
    return load_scenario(ROOT / "scenarios" / "spread3.yaml", overrides)


def overhead(iterations: int, repeats: int) -> dict:
    common = {"run.iterations": iterations, "maddpg.learning_starts": 2048}
    sim_sc = spread3(**common, **{"code.name": "uncoded", "cluster.n_learners": 3, "delay.name": "none"})
    train_times, loop_times, sim_times = [], [], []
    for _ in range(repeats):  # interleaved, best of: the machine is shared and noisy
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(sim_sc, Path(tmp) / "train", progress=False)
            train_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        trainer = Trainer(sim_sc)  # the bare computation: no files, no clock
        trainer.warmup()
        for _ in range(iterations):
            trainer.step()
        loop_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        simulate(sim_sc)
        sim_times.append(time.perf_counter() - t0)
    return {"train_host_s": min(train_times), "trainer_loop_host_s": min(loop_times), "run_host_s": min(sim_times),
            "run_over_train": min(sim_times) / min(train_times),
            "run_over_trainer_loop": min(sim_times) / min(loop_times)}


def paper_setting(iterations: int) -> dict:
    sc = spread3(**{"run.iterations": iterations, "maddpg.learning_starts": 2048})
    t0 = time.perf_counter()
    result = simulate(sc)
    host = time.perf_counter() - t0
    return {"sim_seconds": result.summary["sim_seconds"], "host_seconds": host,
            "sim_seconds_per_host_second": result.summary["sim_seconds"] / host}


def timing_rate(iterations: int) -> dict:
    out = {}
    for name in ("uncoded", "replication", "mds", "random_sparse", "ldpc"):
        n = 15 if name == "uncoded" else 20
        sc = spread3(**{"env.n_agents": 15, "cluster.n_learners": n, "code.name": name, "delay.k": 2,
                        "run.workload": "timing", "run.iterations": iterations, "maddpg.learning_starts": 0})
        t0 = time.perf_counter()
        simulate(sc)
        out[name] = iterations / (time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    n = 20 if args.quick else 100
    result = {
        "overhead": overhead(n, 1 if args.quick else 3),
        "paper_setting": paper_setting(n),
        "timing_iterations_per_host_second_M15_N20": timing_rate(500 if args.quick else 5000),
    }
    o = result["overhead"]
    print(f"run vs train, {n} iterations: train {o['train_host_s']:.2f} s, run {o['run_host_s']:.2f} s, "
          f"ratio {o['run_over_train']:.3f}x (goal <= 1.05x); against the bare Trainer loop "
          f"({o['trainer_loop_host_s']:.2f} s, no files) {o['run_over_trainer_loop']:.3f}x")
    p = result["paper_setting"]
    print(f"paper setting (mds, fixed_k 0.25 s): {p['sim_seconds_per_host_second']:.2f} simulated s per host s")
    for name, rate in result["timing_iterations_per_host_second_M15_N20"].items():
        print(f"timing workload M=15 N=20 {name:14s} {rate:8.0f} iterations per host second (goal >= 2000)")
    print("measured by: python benchmarks/bench_sim.py" + (" --quick" if args.quick else ""))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
