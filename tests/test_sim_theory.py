"""The clock against closed forms: with the timing workload, i.i.d. shifted-exponential delays,
no compute, network or decode cost, and cancel on decode, an iteration lasts exactly as long as
the order statistic the scheme waits for. Mean iteration times must match theory within 1%."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from simcode.config import scenario_from_dict
from simcode.sim.runner import simulate

SHIFT, RATE = 1.0, 2.0
ITERATIONS = 20_000


def timing_scenario(code: dict, n_agents: int, n_learners: int, seed: int = 7):
    return scenario_from_dict({
        "seed": seed,
        "env": {"scenario": "simple_spread", "n_agents": n_agents},
        "cluster": {"n_learners": n_learners, "network": {"latency": 0.0, "bandwidth": 1e18}},
        "code": code,
        "delay": {"name": "shifted_exponential", "shift": SHIFT, "rate": RATE},
        "cost": {"model": "fixed", "update": 0.0, "env_step": 0.0, "decode": 0.0},
        "maddpg": {"learning_starts": 0},
        "run": {"iterations": ITERATIONS, "workload": "timing"},
    })


def mean_iteration(code: dict, m: int, n: int) -> float:
    return simulate(timing_scenario(code, m, n)).summary["mean_iteration"]


def expected_kth_of_n(k: int, n: int) -> float:
    """E[k-th smallest of n i.i.d. shift + Exp(rate)] (Renyi's representation)."""
    return SHIFT + sum(1.0 / ((n - i) * RATE) for i in range(k))


def test_uncoded_waits_for_the_maximum_of_m():
    m = 5
    assert mean_iteration({"name": "uncoded"}, m, m) == pytest.approx(expected_kth_of_n(m, m), rel=0.01)


@pytest.mark.parametrize("name", ["mds", "mds_vandermonde"])
def test_mds_waits_for_the_mth_order_statistic_of_n(name):
    m, n = 4, 8
    assert mean_iteration({"name": name}, m, n) == pytest.approx(expected_kth_of_n(m, n), rel=0.01)


def test_replication_waits_for_the_max_over_agents_of_the_min_over_replicas():
    m, n = 3, 8  # agents get 3, 3 and 2 copies: integrate numerically over the actual placement
    from simcode.codes import make_code

    code = make_code("replication", n_agents=m, n_learners=n, seed=7)
    replicas = np.count_nonzero(code.matrix, axis=0)
    assert sorted(replicas) == [2, 3, 3]
    delay = stats.expon(loc=SHIFT, scale=1 / RATE)

    def survival_of_max(t: float) -> float:  # P(max_j min_{i holds j} X_i > t), disjoint replicas
        return 1.0 - math.prod(1.0 - delay.sf(t) ** r for r in replicas)

    expected = SHIFT + integrate.quad(survival_of_max, SHIFT, math.inf)[0]
    assert mean_iteration({"name": "replication"}, m, n) == pytest.approx(expected, rel=0.01)


def test_centralized_ignores_stragglers_and_pays_for_every_update():
    sc = timing_scenario({"name": "centralized"}, 3, 5)
    sc = sc.model_copy(update={"cost": sc.cost.model_copy(update={"update": 0.01, "env_step": 0.001}),
                               "run": sc.run.model_copy(update={"iterations": 10})})
    durations = simulate(sc).trace["duration"].to_numpy()
    np.testing.assert_allclose(durations, 3 * 0.01 + 100 * 0.001)
