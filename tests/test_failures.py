"""Numbers never hide a failure: a NaN, an overflow or an undecodable run stops with one line (or, in a
study, is marked failed while the other runs finish)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simcode.cli import main
from simcode.codes.base import Code
from simcode.codes.mds import MDS
from simcode.config import scenario_from_dict
from simcode.errors import SimulationError
from simcode.marl.trainer import Trainer
from simcode.sim.runner import simulate, simulate_group, write_run

ITERATIONS = 4


def tiny(code: str = "mds", n_learners: int = 5, **sections):
    """Real MADDPG, as small as it gets: a few seconds per run."""
    data = {
        "seed": 2,
        "env": {"scenario": "simple_spread", "n_agents": 3, "max_cycles": 25},
        "maddpg": {"batch_size": 32, "learning_starts": 60, "steps_per_iteration": 15, "hidden": 16},
        "cluster": {"n_learners": n_learners},
        "code": {"name": code},
        "run": {"iterations": ITERATIONS},
    }
    data.update(sections)
    return scenario_from_dict(data)


def poison_after_warmup(monkeypatch):
    """A NaN in one actor weight once the replay buffer is full: every update after it is NaN."""
    warmup = Trainer.warmup

    def poisoned(self):
        rewards = warmup(self)
        self.state["actor.W1"].view(-1)[0] = float("nan")
        return rewards

    monkeypatch.setattr(Trainer, "warmup", poisoned)


def nan_decodes_from(first_call: int):
    """A decoder that returns NaN from its `first_call`-th call on (as an ill-conditioned solve can)."""
    calls = itertools.count()
    decode = Code.decode

    def nan_decode(self, results):
        decoded = decode(self, results)
        if next(calls) >= first_call:
            decoded[:] = np.nan
        return decoded

    return nan_decode


@pytest.mark.parametrize(("actions", "seen_in"), [("hard", "updated states"), ("soft", "episode rewards")])
def test_trainer_step_stops_on_a_non_finite_parameter(monkeypatch, actions, seen_in):
    """Hard actions: the argmax of NaN is a valid action, the NaN shows in the update. Soft: the NaN
    vector reaches the environment, whose rewards show it first."""
    poison_after_warmup(monkeypatch)
    trainer = Trainer(tiny("centralized", env={"scenario": "simple_spread", "n_agents": 3, "actions": actions}))
    trainer.warmup()
    with pytest.raises(SimulationError, match=rf"^iteration 0: the MADDPG training diverged: {seen_in}"):
        trainer.step()
    assert trainer.iteration == 0  # nothing was installed


@pytest.mark.parametrize("code", ["centralized", "mds"])
def test_a_diverged_training_stops_the_simulated_run(monkeypatch, code):
    poison_after_warmup(monkeypatch)
    with pytest.raises(SimulationError, match=rf"^iteration 0 \({code}\): the MADDPG training diverged"):
        simulate(tiny(code))


def test_a_nan_decode_stops_the_run_naming_iteration_and_scheme(monkeypatch):
    monkeypatch.setattr(MDS, "decode", nan_decodes_from(2))
    with pytest.raises(SimulationError, match=r"^iteration 2: mds decoded states that are not finite"):
        simulate(tiny("mds"))


@pytest.mark.parametrize("failing_first", [True, False])
def test_a_failed_clock_leaves_a_shared_training_that_goes_on(monkeypatch, failing_first):
    """In lock-step, the clock whose decode fails is reported and the others train exactly as alone."""
    monkeypatch.setattr(MDS, "decode", nan_decodes_from(2))
    scenarios = [tiny("mds"), tiny("replication", n_learners=6)]
    if not failing_first:
        scenarios.reverse()
    results = {r.scenario.code.name: r for r in simulate_group(scenarios, keep_going=True)}
    assert results["mds"].error.startswith("iteration 2: mds decoded states that are not finite")
    assert results["mds"].summary == {} and len(results["mds"].trace) == 2
    alone = simulate(tiny("replication", n_learners=6))
    assert results["replication"].error is None
    for column in ("episode_reward", "decode_error", "duration"):
        np.testing.assert_array_equal(results["replication"].trace[column], alone.trace[column])


def timing_args(*sets: str) -> list[str]:
    return ["run", "scenarios/spread3.yaml", "--set", "run.workload=timing", "--set", "run.iterations=20",
            "--no-progress", *itertools.chain.from_iterable(("--set", s) for s in sets)]


@pytest.mark.parametrize("delay", ["1.7e+308", "1.0e+300", "1.0e+13"])  # YAML 1.1 floats
def test_a_delay_beyond_any_simulated_time_is_bad_input(tmp_path, capsys, delay):
    """A delay parameter has bounds (its model's Params): past them it is refused before any run."""
    out = tmp_path / "run"
    status = main([*timing_args("delay.k=3", f"delay.delay={delay}"), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "delay.delay: " in err and "is out of range; allowed: a finite number in [0, 1e9]" in err
    assert not out.exists()


def test_a_drawn_delay_that_would_overflow_the_clock_is_one_line_naming_the_key(tmp_path, capsys):
    """Parameters within bounds can still draw a delay too long to be a time (a heavy tail)."""
    out = tmp_path / "run"
    status = main([*timing_args("delay.name=lognormal", "delay.mu=20", "delay.sigma=10"), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert "iteration 0" in err and "delay.mu=20 is too large" in err
    assert not out.exists()


def test_summary_json_never_holds_nan_or_infinity(tmp_path):
    """The last line of defence: a non-finite summary value is refused, and no run directory appears."""
    result = simulate(scenario_from_dict({"env": {"n_agents": 3}, "cluster": {"n_learners": 5},
                                          "run": {"iterations": 3, "workload": "timing"}}))
    result.summary["mean_iteration"] = float("nan")
    with pytest.raises(ValueError):
        write_run(tmp_path / "run", result)
    assert not (tmp_path / "run").exists()
