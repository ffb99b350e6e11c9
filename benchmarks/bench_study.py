"""Study benchmark. Run: python benchmarks/bench_study.py

Host time of the quick straggler sweep (every scheme x every k x 3 seeds, sharing one real
training per seed) against one single run of the same iterations. Goal: the sweep's runs cost at
most 1.5x a single run per training they need (one per seed: different seeds train differently).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from simcode.sim.runner import simulate
from simcode.study.runner import execute, run_study
from simcode.study.spec import load_study
from simcode.study.store import StudyStore

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
        t0 = time.perf_counter()  # the same study again in a fresh directory: the runs alone
        execute(study, StudyStore(Path(tmp) / "runs-only"), progress=False)
        runs_s = time.perf_counter() - t0
    result = {"runs": len(study.runs), "seeds": len(seeds), "single_run_s": single_s, "sweep_s": sweep_s,
              "runs_only_s": runs_s,
              "sweep_per_training_over_single": sweep_s / len(seeds) / single_s,
              "runs_per_training_over_single": runs_s / len(seeds) / single_s}
    print(f"quick straggler sweep: {len(study.runs)} runs, {len(seeds)} trainings (one per seed), "
          f"{sweep_s:.1f} s host end to end, {runs_s:.1f} s of it the runs (the rest: validation, plots, report)")
    print(f"single run of the same iterations: {single_s:.1f} s; per training, the runs cost "
          f"{result['runs_per_training_over_single']:.2f}x a single run (goal <= 1.5x), end to end "
          f"{result['sweep_per_training_over_single']:.2f}x")
    print("measured by: python benchmarks/bench_study.py")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
