"""What MADDPG learns on every MPE scenario simcode ships, against a uniformly random policy.

    python benchmarks/bench_marl_learning.py [--scenario NAME ...] [--seeds 3] [--quick]
                                             [--budget-minutes 40] [--iterations N] [--episodes 100]
                                             [--actions soft]
                                             [--out runs/bench-learning] [--threads 1]

For each scenario (the env and maddpg sections of its shipped scenario file), one training per seed
0..seeds-1 in OUT/NAME/seed-S, each evaluated on `--episodes` fresh episodes; the uniformly random
policy (each action component picked uniformly, simcode.marl.evaluate.random_policy_evaluation) is
evaluated on as many episodes with each seed. The table gives, per scenario, the iterations trained,
the mean episode reward (summed over agents, 25-step episodes) of the random and of the trained
policies with the 95% confidence interval over seeds (Student's t over the seeds' means), whether
the trained policy beats random by more than both intervals, and the scenario's own measure where it
has one (speaker-listener: the listener's final distance to the target landmark; crypto: the share
of steps where bob, the listener, decodes alice's message better than eve, the eavesdropper).

Iterations: the full benchmark is budgeted at about 40 minutes of one core (`--budget-minutes`).
Each scenario gets an equal share of it over its seeds, divided by its seconds per training iteration (100 environment
steps and one update of every agent at batch 1024) measured on this machine with one thread
(ITERATION_SECONDS), rounded down to hundreds and capped at MAX_ITERATIONS; `--iterations` overrides
it for every scenario, `--quick` trains 30 (a check that everything runs, not a result).

A training already in OUT/NAME/seed-S is continued (or reused when complete), so an interrupted
benchmark picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from simcode.config import Scenario, load_scenario
from simcode.marl.evaluate import evaluate, random_policy_evaluation, scenario_measure
from simcode.marl.train import checkpoints, train

# shipped scenario file -> seconds per training iteration, one thread, a quiet moment of this 2-core
# machine (a busy one measured 2.6x these, all scenarios alike)
ITERATION_SECONDS = {"spread3": 0.035, "tag": 0.040, "adversary": 0.026, "push": 0.017, "simple": 0.012,
                     "reference": 0.016, "speaker_listener": 0.013, "crypto": 0.016, "world_comm": 0.040}
MAX_ITERATIONS = 6000
QUICK_ITERATIONS = 30


def iterations_for(name: str, seeds: int, budget_seconds: float) -> int:
    """The scenario's share of the budget (see the module's notes), in whole hundreds of iterations."""
    share = budget_seconds / len(ITERATION_SECONDS) / seeds
    return max(100, min(MAX_ITERATIONS, int(share / ITERATION_SECONDS[name]) // 100 * 100))


def ci95(values: list[float]) -> float:
    """Half-width of the 95% confidence interval of the mean of `values` (Student's t)."""
    n = len(values)
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "ci95": ci95(values), "per_seed": [float(v) for v in values]}


def trained(scenario: Scenario, out_dir: Path, episodes: int) -> dict:
    """Train (or continue the training in `out_dir`), then evaluate on `episodes` fresh episodes."""
    start = time.perf_counter()
    result = train(scenario, out_dir, resume=bool(checkpoints(out_dir)), progress=False)
    seconds = time.perf_counter() - start
    return {**evaluate(out_dir, episodes=episodes, seed=1000 + scenario.seed), "train_seconds": seconds,
            "train_last_100_mean": result["mean_reward_last_100"], "trained_iterations": result["iterations"]}


def bench_scenario(name: str, args: argparse.Namespace) -> dict:
    """Random and trained policies of one shipped scenario, over the seeds."""
    base = load_scenario(name)
    budgeted = iterations_for(name, args.seeds, 60 * args.budget_minutes)
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else budgeted)
    measure = scenario_measure(base.env.scenario)
    random_runs, trained_runs = [], []
    for seed in range(args.seeds):
        data = {"seed": seed, "env": {**base.env.model_dump(), "actions": args.actions},
                "maddpg": base.maddpg.model_dump(),
                "run": {"iterations": iterations, "checkpoint_every": min(1000, iterations)}}
        scenario = Scenario.model_validate(data)
        random_runs.append(random_policy_evaluation(scenario.env, args.episodes, seed=1000 + seed))
        trained_runs.append(trained(scenario, args.out / name / f"seed-{seed}", args.episodes))
        print(f"{name} seed {seed}: random {random_runs[-1]['mean_reward']:.2f}, trained "
              f"{trained_runs[-1]['mean_reward']:.2f} ({trained_runs[-1]['train_seconds']:.0f} s)", flush=True)
    # A training found longer than asked (an earlier run with fewer seeds had a larger share) is kept.
    trained_iterations = sorted({r["trained_iterations"] for r in trained_runs})
    row = {"scenario": base.env.scenario, "file": name, "iterations": "-".join(map(str, trained_iterations)),
           "seeds": args.seeds,
           "random": summary([r["mean_reward"] for r in random_runs]),
           "trained": summary([r["mean_reward"] for r in trained_runs]),
           "train_seconds": float(np.mean([r["train_seconds"] for r in trained_runs])), "measure": measure}
    if measure:
        row["random_measure"] = summary([r[measure] for r in random_runs])
        row["trained_measure"] = summary([r[measure] for r in trained_runs])
    low, high = sorted((row["random"], row["trained"]), key=lambda s: s["mean"])
    row["learned"] = row["trained"]["mean"] > row["random"]["mean"] and low["mean"] + low["ci95"] < high["mean"] - \
        high["ci95"]
    return row


def _cell(s: dict | None, digits: int = 2) -> str:
    return "" if s is None else f"{s['mean']:.{digits}f} +- {s['ci95']:.{digits}f}"


def table(rows: list[dict], episodes: int) -> str:
    lines = [f"{'scenario':<24}{'iters':>10}{'random':>18}{'trained':>18}{'beats':>7}  {'measure':<28}"
             f"{'random':>16}{'trained':>16}{'train s':>9}", "-" * 146]
    for r in rows:
        lines.append(f"{r['scenario']:<24}{r['iterations']:>10}{_cell(r['random']):>18}{_cell(r['trained']):>18}"
                     f"{'yes' if r['learned'] else 'no':>7}  {(r['measure'] or ''):<28}"
                     f"{_cell(r.get('random_measure'), 3):>16}{_cell(r.get('trained_measure'), 3):>16}"
                     f"{r['train_seconds']:>9.0f}")
    lines.append(f"(mean episode reward summed over agents, {episodes} evaluation episodes per seed; +- the 95% "
                 f"interval over {rows[0]['seeds'] if rows else 0} seeds; beats: trained above random by more "
                 "than both intervals)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", nargs="+", choices=list(ITERATION_SECONDS), default=list(ITERATION_SECONDS),
                        help="shipped scenario files to benchmark (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITERATIONS} iterations: a check, not a result")
    parser.add_argument("--budget-minutes", type=float, default=40.0,
                        help="one core's minutes for every scenario's trainings together (a quiet machine's)")
    parser.add_argument("--iterations", type=int, default=None, help="for every scenario (default: its budget)")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per seed")
    parser.add_argument("--actions", choices=("soft", "hard"), default="soft", help="env.actions")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; small matmuls gain little from more, and spin when cores are shared")
    args = parser.parse_args(argv)
    if args.quick and args.out == parser.get_default("out"):
        args.out = Path("runs/bench-learning-quick")
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.scenario:
        rows.append(bench_scenario(name, args))
        (args.out / "results.json").write_text(json.dumps({"episodes": args.episodes, "rows": rows}, indent=2))
    print(table(rows, args.episodes))
    return {"episodes": args.episodes, "rows": rows}


if __name__ == "__main__":
    main()
