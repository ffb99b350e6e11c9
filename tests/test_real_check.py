"""A real run's decode checks, deferred until the run is over (simcode.sim.real_check)."""

from __future__ import annotations

import numpy as np
import pytest

from simcode.config import Scenario
from simcode.errors import SimulationError
from simcode.sim import real_check
from simcode.sim.real_check import DeferredChecks
from simcode.sim.workload import shapes_of, stack_states, unstack_states


@pytest.fixture(scope="module")
def scenario():
    return Scenario.model_validate({"env": {"scenario": "simple_spread", "n_agents": 3, "max_cycles": 25},
                                    "maddpg": {"batch_size": 32, "learning_starts": 64, "steps_per_iteration": 10}})


def trainer_of(scenario):
    from simcode.marl.trainer import Trainer

    trainer = Trainer(scenario)
    trainer.warmup()
    return trainer


def test_each_iteration_is_checked_against_the_update_from_its_own_starting_states(scenario):
    trainer, width = trainer_of(scenario), shapes_of(scenario).padded_size
    records, checks, expected = [], DeferredChecks(trainer_of(scenario), "mds", width, []), []
    checks.trainer, checks.records = trainer, records
    for iteration, error in enumerate([1e-12, 3e-7]):
        rewards, batch = trainer.collect(), trainer.sample()
        theta = stack_states(trainer.compute_updates(batch), width)
        decoded = theta.copy()
        decoded[0, 0] += error * np.max(np.abs(theta))  # a relative error of `error`
        checks.keep(iteration, rewards, batch, decoded)
        assert not checks.due
        trainer.install(unstack_states(decoded, trainer.state_sizes))  # the next iteration starts elsewhere
        records.append({"iteration": iteration, "decode_error": float("nan")})
        expected.append(error)
    checks.flush()
    assert [r["decode_error"] for r in records] == pytest.approx(expected, rel=1e-3)
    assert checks.kept == [] and checks.kept_bytes == 0


def test_a_decode_that_is_not_finite_stops_the_run_at_once(scenario):
    trainer = trainer_of(scenario)
    width = shapes_of(scenario).padded_size
    checks = DeferredChecks(trainer, "mds", width, [{"iteration": 0, "decode_error": 2e-9}])
    batch = trainer.sample()
    decoded = stack_states(trainer.compute_updates(batch), width)
    decoded[1, 2] = np.nan
    with pytest.raises(SimulationError, match=r"iteration 1 \(mds\).*diverged.*not finite.*2e-09"):
        checks.keep(1, [0.0], batch, decoded)


def test_the_checks_are_due_once_what_they_keep_passes_its_bound(scenario, monkeypatch):
    trainer = trainer_of(scenario)
    width = shapes_of(scenario).padded_size
    records = [{"iteration": k, "decode_error": float("nan")} for k in range(2)]
    checks = DeferredChecks(trainer, "mds", width, records)
    batch = trainer.sample()
    decoded = stack_states(trainer.compute_updates(batch), width)
    checks.keep(0, [0.0], batch, decoded)
    assert not checks.due
    one = checks.kept_bytes  # an iteration's states, minibatch and decode
    assert one > decoded.nbytes
    monkeypatch.setattr(real_check, "KEPT_BYTES", int(1.5 * one))
    checks.keep(1, [0.0], batch, decoded)
    assert checks.due
    checks.flush()  # the same decode, from the same starting states, twice: exact
    assert not checks.due and [r["decode_error"] for r in records] == [0.0, 0.0]
