"""Decode time at the simulator's largest size: M=30 agents, N=40 learners, P=50,000 float32 values.

Run: python benchmarks/bench_codes.py   (median of 20 repeats per scheme). For mds the first N - M
learners (systematic ones) straggle, so the decode solves a 10 x 10 system on parity rows and
subtracts 20 known agents; for the others `tolerance` random learners straggle. OpenBLAS is pinned
to one thread unless OPENBLAS_NUM_THREADS is set: these are small matrices, and on a loaded 2-core
host threaded BLAS made the same decode ~10x slower (measured 50 ms vs 5.5 ms for mds).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import statistics
import sys
import time

import numpy as np

from simcode.codes import make_code

M, N, P, REPEATS = 30, 40, 50_000, 20


def bench(name: str, received: list[int] | None = None, **params) -> tuple[float, float]:
    code = make_code(name, n_agents=M, n_learners=N, seed=0, **params)
    rng = np.random.default_rng(0)
    if received is None:
        received = sorted(rng.choice(N, N - code.tolerance, replace=False).tolist())
    theta = rng.standard_normal((M, P))
    results = {i: (code.matrix[i] @ theta).astype(np.float32) for i in received}
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        decoded = code.decode(results)
        times.append(time.perf_counter() - start)
    error = float(np.linalg.norm(decoded - theta) / np.linalg.norm(theta))
    return statistics.median(times) * 1e3, error


def main() -> None:
    print(f"$ python {' '.join(sys.argv)}  (M={M}, N={N}, P={P} float32 per agent, "
          f"median of {REPEATS}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']})")
    cases = [("mds", {"received": list(range(N - M, N))}), ("random_sparse", {"p": 0.3}),
             ("ldpc", {}), ("ldpc", {"decoder": "solve"})]
    for name, params in cases:
        ms, error = bench(name, **params)
        label = name + "".join(f" {k}={v}" for k, v in params.items() if k != "received")
        print(f"{label:24s} decode {ms:7.2f} ms   relative error {error:.2e}")


if __name__ == "__main__":
    main()
