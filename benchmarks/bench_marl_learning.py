"""What MADDPG learns on simple_spread (3 agents) with each action interface, against a random policy.

    python benchmarks/bench_marl_learning.py [--iterations 5000] [--episodes 200] [--actions soft hard]
                                             [--out runs/bench-learning] [--seed 0] [--threads 1]

Trains one policy per action interface (`env.actions`: soft gives mpe2 each agent's Gumbel-softmax
vector, as the reference does; hard gives its argmax) from the same seed, in OUT/soft and OUT/hard,
then prints a table: the uniformly random policy (the same episodes under both interfaces), and each
trained policy evaluated on fresh episodes; mean episode reward (sum over agents, 25-step episodes,
mpe2 defaults) with its 95% confidence interval, the mean of the last 100 training episodes and the
training's wall time. A training already in OUT/MODE for the same scenario is continued (or reused
when it is complete), so an interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from simcode.config import Scenario
from simcode.marl.evaluate import evaluate, random_policy_reward
from simcode.marl.train import checkpoints, train

ACTIONS = ("soft", "hard")


def ci95(stderr: float, n: int) -> float:
    """Half-width of the 95% confidence interval of a mean of n episodes (Student's t)."""
    return float(stats.t.ppf(0.975, n - 1) * stderr) if n > 1 else float("nan")


def trained(scenario: Scenario, out_dir: Path, episodes: int) -> dict:
    """Train (or continue the training in `out_dir`), then evaluate on `episodes` fresh episodes."""
    start = time.perf_counter()
    summary = train(scenario, out_dir, resume=bool(checkpoints(out_dir)), progress=False)
    seconds = time.perf_counter() - start
    result = evaluate(out_dir, episodes=episodes, seed=1)
    stderr = float(np.std(result["rewards"]) / np.sqrt(episodes))
    return {"mean_reward": result["mean_reward"], "ci95": ci95(stderr, episodes),
            "train_last_100_mean": summary["mean_reward_last_100"], "env_steps": summary["env_steps"],
            "train_seconds": round(seconds, 1),
            "benchmark": {k: v for k, v in result.items() if k.startswith("mean_") and k != "mean_reward"}}


def table(rows: dict[str, dict], episodes: int) -> str:
    lines = [f"{'policy':<16}{'mean episode reward':>21}{'95% CI':>10}{'last 100 train':>16}{'train s':>9}",
             "-" * 72]
    for name, row in rows.items():
        last = row.get("train_last_100_mean")
        lines.append(f"{name:<16}{row['mean_reward']:>21.2f}{'+- ' + format(row['ci95'], '.2f'):>10}"
                     f"{'' if last is None else format(last, '.2f'):>16}"
                     f"{'' if 'train_seconds' not in row else format(row['train_seconds'], '.0f'):>9}")
    lines.append(f"(evaluated on {episodes} episodes; reward summed over agents)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=200, help="evaluation episodes")
    parser.add_argument("--actions", nargs="+", choices=ACTIONS, default=list(ACTIONS),
                        help="the action interfaces to train")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; small matmuls gain little from more, and spin when cores are shared")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = {"seed": args.seed, "env": {"scenario": "simple_spread", "n_agents": 3},
            "run": {"iterations": args.iterations, "checkpoint_every": 1000}}
    random_mean, random_se = random_policy_reward(Scenario.model_validate(base).env, args.episodes)
    rows = {"random": {"mean_reward": random_mean, "ci95": ci95(random_se, args.episodes)}}
    for actions in args.actions:
        scenario = Scenario.model_validate({**base, "env": {**base["env"], "actions": actions}})
        rows[f"trained, {actions}"] = trained(scenario, args.out / actions, args.episodes)
    result = {"iterations": args.iterations, "episodes": args.episodes, "seed": args.seed, "policies": rows}
    print(table(rows, args.episodes))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
