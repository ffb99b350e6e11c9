"""cluster.strategy deadline and stale in the simulated clock: what each installs, when, and that a run
whose strategy changes learning never shares a training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simcode.cli import main
from simcode.config import scenario_from_dict
from simcode.errors import BadInput
from simcode.marl.trainer import Trainer
from simcode.sim.runner import simulate, simulate_group
from simcode.study.runner import group_runs
from simcode.study.spec import load_study, training_key

ROOT = Path(__file__).resolve().parents[1]
SPREAD3 = str(ROOT / "scenarios" / "spread3.yaml")
SMALL_MADDPG = {"batch_size": 32, "learning_starts": 64, "steps_per_iteration": 10, "hidden": 16}


def scenario(code="uncoded", n=3, delay=None, iterations=6, workload="maddpg", seed=3, **cluster):
    return scenario_from_dict({
        "seed": seed, "env": {"n_agents": 3}, "cluster": {"n_learners": n, **cluster}, "code": {"name": code},
        "delay": delay or {"name": "persistent", "slow": [1], "delay": 0.25},
        "run": {"iterations": iterations, "workload": workload},
        "maddpg": SMALL_MADDPG if workload == "maddpg" else {"learning_starts": 0},
        "cost": {"update": 0.01, "env_step": 0.0005, "decode": 0.0},
    })


@pytest.mark.parametrize("code, n, delay, workload", [
    ("mds", 5, {"name": "shifted_exponential", "shift": 0.01, "rate": 20.0}, "maddpg"),
    ("uncoded", 3, {"name": "fixed_k", "k": 1, "delay": 0.25}, "timing"),
])
def test_a_deadline_longer_than_any_delay_is_exact_bit_for_bit(code, n, delay, workload):
    exact = simulate(scenario(code, n, delay, workload=workload))
    late = simulate(scenario(code, n, delay, workload=workload, strategy="deadline", deadline=1000.0))
    assert exact.trace.equals(late.trace)
    assert (exact.trace["n_updated"] == 3).all() and (exact.trace["stale_agents"] == "").all()
    for a, b in zip(exact.final_states or [], late.final_states or []):
        assert np.array_equal(a, b)
    assert (exact.final_states is None) == (workload == "timing")
    assert late.summary["strategy"] == "deadline" and late.summary["mean_updated_fraction"] == 1.0


def test_uncoded_deadline_updates_the_others_and_leaves_the_late_agent_as_it_was():
    """Learner 1 is always 0.25 s late; the deadline is 0.1 s: agents 0 and 2 get every update."""
    result = simulate(scenario(strategy="deadline", deadline=0.1))
    assert list(result.trace["n_updated"]) == [2] * 6
    assert list(result.trace["stale_agents"]) == ["1"] * 6
    assert list(result.trace["staleness"]) == [""] * 6
    assert result.summary["mean_updated_fraction"] == pytest.approx(2 / 3)

    reference = Trainer(result.scenario)  # the same training, by hand: agent 1 never installed
    reference.warmup()
    initial = reference.states()
    for _ in range(6):
        reference.collect()
        new = reference.compute_updates(reference.sample())
        reference.install([new[0], reference.states()[1], new[2]])
    assert np.array_equal(result.final_states[1], initial[1])
    for agent in range(3):
        assert np.array_equal(result.final_states[agent], reference.states()[agent])


def test_a_deadline_survives_failed_learners_that_exact_cannot():
    failing = {"name": "failure", "p_fail": 0.5}
    result = simulate(scenario(delay=failing, iterations=30, workload="timing", strategy="deadline", deadline=0.1))
    assert result.trace["n_updated"].min() < 3 and (result.trace["n_updated"] == 3).any()
    assert result.summary["iterations"] == 30


def test_a_quantile_deadline_waits_for_the_decode_first_then_cuts_at_the_quantile():
    """Learner 1 of 3 is always slow: the median response is a fast one, the 0.9-quantile the slow one."""
    median = simulate(scenario(workload="timing", strategy="deadline", deadline={"quantile": 0.5})).trace
    assert list(median["n_updated"]) == [3, 2, 2, 2, 2, 2]  # no history before the first iteration
    assert list(median["stale_agents"])[1:] == ["1"] * 5
    high = simulate(scenario(workload="timing", strategy="deadline", deadline={"quantile": 0.9})).trace
    assert list(high["n_updated"]) == [3] * 6


def expected_ages(trace, busy, max_staleness):
    """Closed form: learner 1 works off its queue (let_finish) one task of `busy` seconds after another,
    its result of iteration k arrives when it finishes (no network time here); the controller reads it in
    the iteration whose end follows, and installs the newest one read that is at most max_staleness old."""
    finish = 0.0
    arrival_iteration = []
    for k in range(len(trace)):
        sent = trace["t_start"][k] + trace["env_seconds"][k]
        finish = max(sent, finish) + busy
        arrival_iteration.append(int(np.searchsorted(trace["t_end"].to_numpy(), finish)))
    ages = {}
    for k, read_in in enumerate(arrival_iteration):
        if read_in < len(trace) and 0 < read_in - k <= max_staleness:
            ages[read_in] = min(ages.get(read_in, max_staleness + 1), read_in - k)
    return [f"1:{ages[k]}" if k in ages else "" for k in range(len(trace))]


@pytest.mark.parametrize("max_staleness", [1, 2, 3])
def test_stale_applies_late_results_as_specified_and_never_beyond_max_staleness(max_staleness):
    """Learner 1 takes 0.21 s a task, an iteration lasts 0.15 s: its backlog grows, each result is
    later than the one before, from 1 iteration late to far beyond max_staleness."""
    result = simulate(scenario(delay={"name": "persistent", "slow": [1], "delay": 0.2}, iterations=20,
                               workload="timing", strategy="stale", deadline=0.1, on_decode="let_finish",
                               max_staleness=max_staleness, network={"latency": 0.0, "bandwidth": 1e18}))
    trace = result.trace
    staleness = list(trace["staleness"])
    assert staleness == expected_ages(trace, 0.21, max_staleness)
    ages = [int(entry.split(":")[1]) for entry in staleness if entry]
    assert ages and max(ages) <= max_staleness
    assert max_staleness == 3 or len(ages) < len(expected_ages(trace, 0.21, 3)) - 1  # some were too old
    applied = trace["staleness"] != ""
    assert list(trace["n_updated"]) == [2 + int(a) for a in applied]
    assert list(trace["stale_agents"]) == ["" if a else "1" for a in applied]


def test_stale_installs_the_state_computed_from_the_old_states():
    """Each late update of agent 1 is the one computed in its own iteration, installed ages later."""
    result = simulate(scenario(delay={"name": "persistent", "slow": [1], "delay": 0.12}, iterations=8,
                               strategy="stale", deadline=0.05, on_decode="let_finish", max_staleness=3))
    staleness = list(result.trace["staleness"])
    assert any(staleness)
    reference = Trainer(result.scenario)
    reference.warmup()
    computed = []
    for k in range(8):
        reference.collect()
        new = reference.compute_updates(reference.sample())
        computed.append(new[1])
        agent1 = computed[k - int(staleness[k].split(":")[1])] if staleness[k] else reference.states()[1]
        reference.install([new[0], agent1, new[2]])
    for agent in range(3):
        assert np.array_equal(result.final_states[agent], reference.states()[agent])


def test_training_key_separates_runs_whose_strategy_changes_learning():
    exact = [scenario("mds", 5, {"name": "fixed_k", "k": k, "delay": 0.25}) for k in (1, 2)]
    assert training_key(exact[0]) == training_key(exact[1])  # exact: timing only, one training
    deadline = [scenario("mds", 5, {"name": "fixed_k", "k": k, "delay": 0.25}, strategy="deadline", deadline=0.1)
                for k in (1, 2)]
    other_code = scenario("ldpc", 5, {"name": "fixed_k", "k": 1, "delay": 0.25}, strategy="deadline", deadline=0.1)
    other_deadline = scenario("mds", 5, {"name": "fixed_k", "k": 1, "delay": 0.25}, strategy="deadline",
                              deadline=0.2)
    keys = {training_key(s) for s in [exact[0], *deadline, other_code, other_deadline]}
    assert len(keys) == 5


def test_a_study_never_groups_deadline_runs_that_differ(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {SPREAD3}\n" + """
set: {run.iterations: 3}
axes:
  strategy:
    - {cluster.strategy: exact}
    - {cluster.strategy: deadline, cluster.deadline: 0.1}
  code.name: [mds, ldpc]
  delay.k: [0, 1]
""")
    groups = group_runs(load_study(str(path)).runs)
    for group in groups:
        strategies = {spec.scenario.cluster.strategy for spec in group}
        assert len(strategies) == 1
        if strategies == {"deadline"}:
            assert len(group) == 1
    assert sorted(len(g) for g in groups) == [1, 1, 1, 1, 4]


def test_equal_deadline_runs_in_one_group_each_train_on_their_own():
    sc = scenario(strategy="deadline", deadline=0.1, iterations=2)
    alone = simulate(sc)
    together = simulate_group([sc, sc], shared=True)
    for result in together:
        assert result.trace.equals(alone.trace)
        for a, b in zip(result.final_states, alone.final_states):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("cluster, key", [
    ({"strategy": "deadline"}, "cluster.deadline"),
    ({"strategy": "deadline", "deadline": 0}, "cluster.deadline"),
    ({"strategy": "deadline", "deadline": {"quantile": 1.0}}, "cluster.deadline"),
    ({"strategy": "deadline", "deadline": {"q": 0.5}}, "cluster.deadline"),
    ({"deadline": 0.1}, "cluster.deadline"),
    ({"strategy": "deadline", "deadline": 0.1, "max_staleness": 2}, "cluster.max_staleness"),
    ({"strategy": "stale", "deadline": 0.1, "on_decode": "let_finish", "max_staleness": 0}, "cluster.max_staleness"),
    ({"strategy": "stale", "deadline": 0.1}, "cluster.on_decode"),
    ({"strategy": "deadline", "deadline": 0.1, "backend": "ray"}, "cluster.strategy"),
    ({"strategy": "later"}, "cluster.strategy"),
])
def test_bad_strategy_keys_name_the_key(cluster, key):
    with pytest.raises(BadInput) as error:
        scenario_from_dict({"cluster": cluster, "run": {"workload": "timing"}}, "s.yaml")
    assert error.value.key == key and "allowed" in error.value.message


def test_ray_backend_with_a_deadline_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "never"
    status = main(["run", SPREAD3, "--set", "cluster.backend=ray", "--set", "cluster.strategy=deadline",
                   "--set", "cluster.deadline=0.1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "not supported by the real backend yet" in err and not out.exists()


def test_every_trace_file_has_the_strategy_columns_after_the_clocks_own(tmp_path):
    import pandas as pd

    from simcode.sim.runner import TRACE_COLUMNS, write_run

    for name, result in (("exact", simulate(scenario(workload="timing", iterations=3))),
                         ("deadline", simulate(scenario(workload="timing", iterations=3, strategy="deadline",
                                                        deadline=0.1)))):
        write_run(tmp_path / name, result)
        trace = pd.read_csv(tmp_path / name / "trace.csv", keep_default_na=False)
        assert list(trace.columns[: len(TRACE_COLUMNS)]) == TRACE_COLUMNS
        assert list(trace.columns[-3:]) == ["n_updated", "stale_agents", "staleness"]
        expected = ([3] * 3, [""] * 3) if name == "exact" else ([2] * 3, ["1"] * 3)
        assert (list(trace["n_updated"]), list(trace["stale_agents"].astype(str))) == expected
        assert list(trace["staleness"]) == [""] * 3
