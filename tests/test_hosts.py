"""cluster.hosts: computations under way at once on one host share its cores (processor sharing)."""

from __future__ import annotations

import pytest

from simcode.config import Scenario
from simcode.errors import BadInput
from simcode.sim.runner import simulate

UPDATE = 0.1  # seconds per agent update (fixed cost)


def mean_iteration(hosts=None, delay=None, on_decode="cancel") -> float:
    sc = Scenario.model_validate({
        "env": {"n_agents": 3},
        "cluster": {"n_learners": 3, "hosts": hosts, "on_decode": on_decode,
                    "network": {"latency": 0.0, "bandwidth": 1e18}},
        "code": {"name": "uncoded"}, "delay": delay or {"name": "none"},
        "cost": {"model": "fixed", "update": UPDATE, "env_step": 0.0, "decode": 0.0},
        "run": {"iterations": 3, "workload": "timing"},
    })
    return simulate(sc).summary["mean_iteration"]


def test_without_hosts_every_learner_has_its_own_machine():
    assert mean_iteration() == pytest.approx(UPDATE)


@pytest.mark.parametrize("cores, expected", [(1, 3 * UPDATE), (2, 1.5 * UPDATE), (3, UPDATE), (8, UPDATE)])
def test_learners_on_one_host_share_its_cores(cores, expected):
    assert mean_iteration([{"cores": cores, "learners": [0, 1, 2]}]) == pytest.approx(expected)


def test_a_straggler_sleep_takes_no_core():
    # Learner 2 sleeps 1 s after its work; the other two then share nothing and finish together.
    delay = {"name": "fixed_k", "k": 1, "delay": 1.0, "mode": "add"}
    one_core = [{"cores": 1, "learners": [0, 1, 2]}]
    assert mean_iteration(one_core, delay) == pytest.approx(3 * UPDATE + 1.0)


@pytest.mark.parametrize("on_decode", ["let_finish", "cancel_wait"])
def test_every_late_work_semantics_shares_the_cores(on_decode):
    assert mean_iteration([{"cores": 1, "learners": [0, 1, 2]}], on_decode=on_decode) == pytest.approx(3 * UPDATE)


def test_a_learner_on_two_hosts_is_bad_input():
    with pytest.raises(BadInput, match=r"cluster.hosts\[1\].learners.*on two hosts"):
        mean_iteration([{"cores": 1, "learners": [0, 1]}, {"cores": 1, "learners": [1, 2]}])


def summary_of(hosts, delay=None):
    sc = Scenario.model_validate({
        "env": {"n_agents": 3},
        "cluster": {"n_learners": 3, "hosts": hosts, "network": {"latency": 0.0, "bandwidth": 1e18}},
        "code": {"name": "uncoded"}, "delay": delay or {"name": "none"},
        "cost": {"model": "fixed", "update": UPDATE, "env_step": 0.0, "decode": 0.0},
        "run": {"iterations": 3, "workload": "timing"},
    })
    return simulate(sc).summary


@pytest.mark.parametrize("cores", [1, 2, 8])
def test_the_hosts_cpu_per_iteration_is_the_work_priced_on_them(cores):
    """Three updates an iteration on the learners' host, whatever its cores; sleeps take none; no
    cluster.hosts, no CPU to report."""
    assert summary_of([{"cores": cores, "learners": [0, 1, 2]}])["cpu_per_iteration"] == pytest.approx(3 * UPDATE)
    late = {"name": "fixed_k", "k": 1, "delay": 1.0, "mode": "add"}
    assert summary_of([{"cores": cores, "learners": [0, 1, 2]}], late)["cpu_per_iteration"] == pytest.approx(3 * UPDATE)
    assert summary_of(None)["cpu_per_iteration"] is None


def test_a_cancelled_computation_costs_its_host_what_it_did():
    import simpy

    from simcode.sim.hosts import SharedCores

    env = simpy.Environment()
    host = SharedCores(env, 1)
    job = host.compute(1.0)
    env.run(until=0.3)
    host.cancel(job)
    assert host.cpu_seconds(0.3) == pytest.approx(0.3)
