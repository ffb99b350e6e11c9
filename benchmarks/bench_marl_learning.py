"""Does MADDPG learn? simple_spread with 3 agents: a uniformly random policy against a trained one.

    python benchmarks/bench_marl_learning.py [--iterations 5000] [--out runs/bench-learning] [--threads 1]

Prints the random policy's mean episode reward (sum over agents, 25-step episodes, mpe2 defaults),
the trained policy's (evaluated on fresh episodes, and the last 100 training episodes) and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from simcode.config import Scenario
from simcode.marl.envs import make_env
from simcode.marl.evaluate import evaluate
from simcode.marl.train import train
from simcode.seeding import generator


def random_policy_reward(scenario: Scenario, episodes: int, seed: int = 0) -> tuple[float, float]:
    env = make_env(scenario.env)
    rng = generator(seed, "evaluation")
    totals = []
    for _ in range(episodes):
        env.reset(seed=int(rng.integers(2**31 - 1)))
        total = 0.0
        while env.agents:
            _, rew, *_ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
            total += sum(rew.values())
        totals.append(total)
    return float(np.mean(totals)), float(np.std(totals) / np.sqrt(episodes))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; small matmuls gain little from more, and spin when cores are shared")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scenario = Scenario.model_validate({"seed": args.seed, "env": {"scenario": "simple_spread", "n_agents": 3},
                                        "run": {"iterations": args.iterations, "checkpoint_every": 1000}})
    random_mean, random_se = random_policy_reward(scenario, args.episodes)
    start = time.perf_counter()
    summary = train(scenario, args.out, progress=False)
    seconds = time.perf_counter() - start
    trained = evaluate(args.out, episodes=args.episodes, seed=1)
    result = {"random_mean_reward": random_mean, "random_stderr": random_se,
              "trained_mean_reward": trained["mean_reward"],
              "trained_stderr": trained["std_reward"] / np.sqrt(args.episodes),
              "train_last_100_mean": summary["mean_reward_last_100"], "iterations": args.iterations,
              "env_steps": summary["env_steps"], "train_seconds": round(seconds, 1),
              "trained_benchmark": {k: v for k, v in trained.items() if k.startswith("mean_") and k != "mean_reward"}}
    print(f"random policy:  {random_mean:8.2f} +- {random_se:.2f} (mean episode reward, {args.episodes} episodes)")
    print(f"trained policy: {trained['mean_reward']:8.2f} +- {result['trained_stderr']:.2f} "
          f"after {args.iterations} iterations, {summary['env_steps']} env steps, {seconds:.0f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
