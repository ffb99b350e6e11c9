"""Real MADDPG inside the clock: coded training equals centralized training."""

import numpy as np
import pytest

from simcode.config import scenario_from_dict
from simcode.marl.trainer import Trainer
from simcode.sim.runner import build, simulate, simulate_group

ITERATIONS = 6


def small(code: str, n_learners: int = 6, **extra) -> object:
    data = {
        "seed": 11,
        "env": {"scenario": "simple_spread", "n_agents": 3, "max_cycles": 25},
        "maddpg": {"batch_size": 64, "learning_starts": 300, "steps_per_iteration": 50, "hidden": 16},
        "cluster": {"n_learners": 3 if code == "uncoded" else n_learners},
        "code": {"name": code},
        "delay": {"name": "fixed_k", "k": 1, "delay": 0.25},
        "run": {"iterations": ITERATIONS},
    }
    data.update(extra)
    return scenario_from_dict(data)


@pytest.fixture(scope="module")
def centralized():
    """The reference: the trainer's own loop, no simulator."""
    trainer = Trainer(small("centralized"))
    trainer.warmup()
    rewards = [float(np.mean(trainer.step())) for _ in range(ITERATIONS)]
    return rewards, trainer.states()


def run_states(scenario):
    cluster = build(scenario)
    cluster.env.run(until=cluster.iteration_done[-1])
    return [r["episode_reward"] for r in cluster.records], cluster.workload.trainer.states(), cluster.records


@pytest.mark.parametrize("code", ["centralized", "uncoded", "replication", "ldpc"])
def test_exact_schemes_train_bit_identically_to_centralized(centralized, code):
    rewards, states, records = run_states(small(code))
    assert rewards == centralized[0]
    for mine, reference in zip(states, centralized[1]):
        assert np.array_equal(mine, reference)
    assert max(r["decode_error"] for r in records) == 0.0


@pytest.mark.parametrize("code", ["mds", "random_sparse"])
def test_solved_schemes_train_identically_up_to_the_decodes_rounding(centralized, code):
    rewards, states, records = run_states(small(code))
    assert max(r["decode_error"] for r in records) < 1e-12
    np.testing.assert_allclose(rewards, centralized[0], rtol=1e-5)
    for mine, reference in zip(states, centralized[1]):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)


def test_shared_training_gives_each_clock_what_it_would_get_alone():
    # Two mds clocks decode the same results: each decodes and checks for itself, with the same outcome.
    scenarios = [small("mds"), small("ldpc"), small("replication", delay={"name": "none"}), small("mds")]
    together = simulate_group(scenarios)
    for scenario, shared in zip(scenarios, together):
        alone = simulate(scenario)
        assert not shared.diverged
        np.testing.assert_array_equal(shared.trace["duration"], alone.trace["duration"])
        np.testing.assert_array_equal(shared.trace["decode_error"], alone.trace["decode_error"])
        np.testing.assert_allclose(shared.trace["episode_reward"], alone.trace["episode_reward"], rtol=1e-5)


def test_ill_conditioned_decode_warns_in_the_summary():
    sc = small("mds_vandermonde", n_learners=13, env={"scenario": "simple_spread", "n_agents": 12},
               delay={"name": "fixed_k", "k": 1, "delay": 0.25})
    sc = sc.model_copy(update={"run": sc.run.model_copy(update={"iterations": 2})})
    with pytest.warns(RuntimeWarning):
        summary = simulate(sc).summary
    assert summary["decode_warning"] and summary["max_decode_error"] > 1e-4


def test_real_runs_write_byte_identical_traces(tmp_path):
    from simcode.sim.runner import write_run

    sc = small("mds", delay={"name": "shifted_exponential", "shift": 0.01, "rate": 10.0})
    write_run(tmp_path / "a", simulate(sc))
    write_run(tmp_path / "b", simulate(sc))
    assert (tmp_path / "a" / "trace.csv").read_bytes() == (tmp_path / "b" / "trace.csv").read_bytes()


def test_measured_cost_uses_host_time_and_says_it_is_not_reproducible():
    summary = simulate(small("mds", cost={"model": "measured"}, delay={"name": "none"})).summary
    assert summary["reproducible"] is False and summary["cost_model"] == "measured"
    assert summary["mean_iteration"] > 0


def test_flops_cost_grows_with_hidden_units():
    narrow = simulate(small("mds", cost={"model": "flops"}, delay={"name": "none"}))
    wide_sc = small("mds", cost={"model": "flops"}, delay={"name": "none"},
                    maddpg={"batch_size": 64, "learning_starts": 300, "steps_per_iteration": 50, "hidden": 64})
    wide = simulate(wide_sc)
    assert wide.summary["mean_iteration"] > narrow.summary["mean_iteration"]
