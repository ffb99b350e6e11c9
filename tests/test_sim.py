"""The clock model: reproducible traces, common random numbers, failures, cancel vs let_finish."""

import re

import numpy as np
import pytest

from simcode.config import scenario_from_dict
from simcode.errors import SimulationError
from simcode.sim.cluster import Cluster
from simcode.sim.runner import simulate, write_run


def timing(code="mds", m=3, n=5, delay=None, iterations=200, seed=3, **sections):
    data = {
        "seed": seed,
        "env": {"n_agents": m},
        "cluster": {"n_learners": n},
        "code": code if isinstance(code, dict) else {"name": code},
        "delay": delay or {"name": "fixed_k", "k": 1, "delay": 0.25},
        "run": {"iterations": iterations, "workload": "timing"},
        "maddpg": {"learning_starts": 0},
    }
    data.update(sections)
    return scenario_from_dict(data)


def test_same_scenario_and_seed_give_byte_identical_trace(tmp_path):
    sc = timing(delay={"name": "shifted_exponential", "shift": 0.01, "rate": 20.0})
    write_run(tmp_path / "a", simulate(sc))
    write_run(tmp_path / "b", simulate(sc))
    assert (tmp_path / "a" / "trace.csv").read_bytes() == (tmp_path / "b" / "trace.csv").read_bytes()
    other = simulate(timing(delay={"name": "shifted_exponential", "shift": 0.01, "rate": 20.0}, seed=4))
    assert not np.array_equal(other.trace["duration"], simulate(sc).trace["duration"])


def test_schemes_see_the_same_stragglers():
    """Common random numbers: the number of delayed learners per iteration does not depend on the scheme."""
    delayed = {name: simulate(timing(name, delay={"name": "bimodal", "p_slow": 0.3, "slowdown": 0.2}))
               .trace["n_delayed"].to_numpy() for name in ("mds", "random_sparse", "replication")}
    assert delayed["mds"].any()
    assert np.array_equal(delayed["mds"], delayed["random_sparse"])
    assert np.array_equal(delayed["mds"], delayed["replication"])


def test_mds_ignores_up_to_tolerance_stragglers_and_uncoded_does_not():
    base = {"update": 0.01, "env_step": 0.0005, "decode": 0.0}
    mds = simulate(timing("mds", 3, 5, delay={"name": "fixed_k", "k": 2, "delay": 0.25}, cost=base)).summary
    unc = simulate(timing("uncoded", 3, 3, delay={"name": "fixed_k", "k": 2, "delay": 0.25}, cost=base)).summary
    assert mds["max_decode_error"] is None  # timing workload: nothing to check
    assert mds["mean_iteration"] < 0.25 < unc["mean_iteration"]


def test_an_iteration_that_can_never_decode_stops_with_a_clear_error():
    sc = timing("uncoded", 3, 3, delay={"name": "failure", "p_fail": 0.5}, iterations=50)
    with pytest.raises(SimulationError, match=r"iteration \d+: uncoded cannot decode.*tolerates 0"):
        simulate(sc)


def test_timeout_resends_missing_work_to_learners_that_answered():
    sc = timing("uncoded", 3, 3, delay={"name": "failure", "p_fail": 0.3, "max_failed": 2}, iterations=50,
                cluster={"n_learners": 3, "timeout": 1.0})
    result = simulate(sc)
    trace = result.trace
    assert len(trace) == 50
    stuck = trace[trace["n_failed"] > 0]
    assert not stuck.empty and (stuck["resent"] > 0).all()
    assert (stuck["duration"] > 1.0).all()  # waited for the timeout before re-sending


def test_let_finish_keeps_stragglers_busy_into_the_next_iteration():
    delay = {"name": "fixed_k", "k": 1, "delay": 0.3}
    cancel = simulate(timing("mds", 3, 4, delay=delay)).summary["mean_iteration"]
    keep = simulate(timing("mds", 3, 4, delay=delay, cluster={"n_learners": 4, "on_decode": "let_finish"}))
    # With let_finish a straggler is still busy when the next iteration starts: sometimes two learners
    # are late at once, more than a 3-of-4 code survives.
    assert keep.summary["mean_iteration"] > cancel


def test_trace_and_summary_have_the_contract_columns():
    result = simulate(timing(iterations=5))
    for column in ("iteration", "t_start", "t_end", "duration", "n_received", "decode_error", "episode_reward"):
        assert column in result.trace.columns
    for key in ("iterations", "sim_seconds", "mean_iteration", "p99_iteration", "host_seconds", "max_decode_error"):
        assert key in result.summary
    assert result.summary["iterations"] == 5
    assert np.allclose(result.trace["duration"], result.trace["t_end"] - result.trace["t_start"])


@pytest.mark.parametrize("code, n", [("mds", 5), ("uncoded", 3), ("replication", 6)])
@pytest.mark.parametrize("p_fail", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_timeout_before_the_first_arrival_never_deadlocks(code, n, p_fail, seed):
    """A result takes >= 0.01 s; the deadline (0.005 s) passes before anyone answers. The run either
    finishes, having re-sent what was missing once someone answered, or stops because every learner
    failed at once: nothing else can leave it undecodable."""
    sc = timing(code, 3, n, delay={"name": "failure", "p_fail": p_fail}, iterations=30, seed=seed,
                cluster={"n_learners": n, "timeout": 0.005})
    try:
        result = simulate(sc)
    except SimulationError as exc:
        failed = re.search(rf"^iteration \d+: {code} cannot decode .* \((\d+) of (\d+) learners failed", str(exc))
        assert failed and failed[1] == failed[2] == str(n), str(exc)
        return
    trace = result.trace
    assert len(trace) == 30
    beyond_tolerance = trace[trace["n_failed"] > result.summary["tolerance"]]
    assert (beyond_tolerance["resent"] > 0).all()


def test_the_deadlock_case_of_the_issue_stops_with_one_clear_error():
    sc = timing("mds", 3, 5, delay={"name": "failure", "p_fail": 0.5}, iterations=200, seed=0,
                cluster={"n_learners": 5, "timeout": 0.005})
    with pytest.raises(SimulationError, match=r"^iteration \d+: mds cannot decode .*\(5 of 5 learners failed"):
        simulate(sc)


def test_a_clock_with_no_event_left_is_a_simulation_error_naming_the_iteration(monkeypatch):
    """Whatever leaves the controller waiting on nothing, the driver says which iteration stalled."""
    def wait_forever(self, k, delays, data):
        if k == 3:
            yield self.env.event()  # never triggered
        return (yield from gather(self, k, delays, data))

    gather = Cluster.gather
    monkeypatch.setattr(Cluster, "gather", wait_forever)
    with pytest.raises(SimulationError, match=r"^iteration 3 \(mds\): the simulated cluster ran out of events"):
        simulate(timing(iterations=10))
