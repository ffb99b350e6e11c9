"""Study benchmark (issue 5). Run: python benchmarks/bench_study.py

Host time of the quick straggler sweep (every scheme x every k x 3 seeds, sharing one real
training per seed) against one single run of the same iterations. Goal: the sweep costs at most
1.5x a single run per training it needs (one per seed).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from simcode.sim.runner import simulate
from simcode.study.runner import run_study
from simcode.study.spec import load_study

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)  # what a study worker uses
    study = load_study(str(ROOT / "studies" / "straggler_sweep.yaml"), quick=True)
    seeds = sorted({spec.scenario.seed for spec in study.runs})
    single = next(s for s in study.runs if s.scenario.code.name == "mds").scenario
    t0 = time.perf_counter()
    simulate(single)
    single_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_study(str(ROOT / "studies" / "straggler_sweep.yaml"), quick=True, out=Path(tmp) / "s", progress=False)
        sweep_s = time.perf_counter() - t0
    per_training = sweep_s / len(seeds)
    result = {"runs": len(study.runs), "seeds": len(seeds), "single_run_s": single_s, "sweep_s": sweep_s,
              "sweep_per_training_over_single": per_training / single_s}
    print(f"quick straggler sweep: {len(study.runs)} runs, {len(seeds)} trainings, {sweep_s:.1f} s host "
          "(plots and report included)")
    print(f"single run of the same iterations: {single_s:.1f} s; sweep per training / single run = "
          f"{per_training / single_s:.2f}x (goal <= 1.5x)")
    print("measured by: python benchmarks/bench_study.py")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
