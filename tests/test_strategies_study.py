"""The learning measures of a study (simcode.study.learning) and the strategies study that uses them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simcode.cli import main
from simcode.errors import BadInput
from simcode.study.learning import (Learning, cell_summary, curve_at, final_reward, first_reach, reward_curve,
                                    t_interval)
from simcode.study.spec import load_study
from test_study import FAILING, write_study

ROOT = Path(__file__).resolve().parents[1]


def trace(t_end, rewards) -> pd.DataFrame:
    return pd.DataFrame({"iteration": range(len(t_end)), "t_end": t_end, "episode_reward": rewards})


def test_t_interval_on_known_data():
    # 1..5: mean 3, sample sd sqrt(2.5), t(0.975, 4) = 2.776445 (tables): half-width 2.776445 * sqrt(2.5 / 5).
    mean, half = t_interval([1, 2, 3, 4, 5])
    assert mean == 3 and half == pytest.approx(2.776445 * np.sqrt(0.5), rel=1e-6)
    assert np.isnan(t_interval([7.0])[1]) and t_interval([7.0])[0] == 7.0  # one run: no interval
    assert all(np.isnan(t_interval([1.0, float("nan"), 3.0])))  # a broken run is not averaged away


def test_time_to_threshold_on_a_hand_made_trace():
    # Fewer than 20 iterations: the rolling window is one iteration, the curve is the rewards themselves.
    times, curve = reward_curve(trace([1.0, 2.0, 3.5, 4.0, 6.0], [-90, -80, np.nan, -60, -50]))
    assert list(times) == [1.0, 2.0, 4.0, 6.0] and list(curve) == [-90, -80, -60, -50]  # no reward: no point
    assert first_reach(times, curve, -65) == 4.0      # the first iteration at or above it, at its end time
    assert first_reach(times, curve, -80) == 2.0      # reaching exactly counts
    assert np.isnan(first_reach(times, curve, -40))   # never reached: NaN, not the last time
    assert final_reward(trace(np.arange(1.0, 21), np.arange(-100.0, -80))) == -81.5  # last 10%: 2 iterations


def test_the_rolling_window_smooths_before_the_threshold_is_tested():
    # 40 iterations: a window of 2. One lucky episode at t=3 does not reach -60; two in a row do.
    rewards = [-90.0] * 40
    rewards[2], rewards[10], rewards[11] = -40.0, -50.0, -50.0
    times, curve = reward_curve(trace(np.arange(1.0, 41), rewards))
    assert first_reach(times, curve, -60) == 12.0
    # A lucky first iteration alone is no point of the curve: its window is not full.
    times, curve = reward_curve(trace(np.arange(1.0, 41), [-10.0] + [-90.0] * 39))
    assert times[0] == 2.0 and curve[0] == -50.0 and np.isnan(first_reach(times, curve, -40))


def test_curve_at_holds_the_latest_value_and_is_blank_before_the_first():
    values = curve_at(np.array([1.0, 2.0]), np.array([-5.0, -3.0]), np.array([0.5, 1.0, 1.5, 9.0]))
    assert np.isnan(values[0]) and list(values[1:]) == [-5.0, -5.0, -3.0]


def learning_of(rows: list[dict]) -> Learning:
    runs = pd.DataFrame(rows)
    runs["reached"] = runs["time_to_threshold"].notna()
    return Learning(runs=runs, curves={}, thresholds=pd.DataFrame(), by=["scheme"], fraction=0.5)


def test_a_run_that_never_reaches_is_counted_not_dropped():
    learning = learning_of([
        {"scheme": "a", "status": "ok", "final": -50.0, "time_to_threshold": 10.0, "end_time": 40.0},
        {"scheme": "a", "status": "ok", "final": -52.0, "time_to_threshold": 20.0, "end_time": 40.0},
        {"scheme": "a", "status": "ok", "final": -70.0, "time_to_threshold": np.nan, "end_time": 60.0},
        {"scheme": "b", "status": "failed", "final": np.nan, "time_to_threshold": np.nan, "end_time": np.nan},
        {"scheme": "b", "status": "ok", "final": -60.0, "time_to_threshold": np.nan, "end_time": 30.0},
    ])
    a, b = (row for _, row in cell_summary(learning, ["scheme"]).iterrows())
    assert (a["runs"], a["failed"], a["reached"]) == (3, 0, 2)
    assert a["time"] == 15.0                              # over the runs that reached
    assert a["time_bound"] == pytest.approx(30.0)         # (10 + 20 + 60) / 3: the third at its end
    assert a["final"] == pytest.approx(-172 / 3)          # every finished run's final reward
    assert (b["runs"], b["failed"], b["reached"]) == (2, 1, 0) and np.isnan(b["time"]) and b["time_bound"] == 30.0
    from simcode.study.learning import cell_table

    table = cell_table(learning)
    assert list(table["reached"]) == ["2/3", "0/1"] and list(table["runs"]) == ["3", "1 (1 failed)"]
    assert list(table["to threshold (simulated s)"]) == ["15.0 ± 63.5", "never"]
    assert list(table["mean if the rest reached at their end"]) == ["≥ 30.0", "≥ 30.0"]


# test_study's study with a failing scheme, training for real (tiny networks) and asking for the learning outputs.
TINY = FAILING.split("plots:")[0].replace("run: {iterations: 30, workload: timing}", "run.iterations: 30").replace(
    "maddpg.learning_starts: 0", "maddpg: {batch_size: 32, learning_starts: 64, hidden: 16, steps_per_iteration: 25}"
) + """tables:
  learning: {by: [code.name]}
plots:
  - {kind: reward_band, col: code.name, file: band.png}
  - {kind: frontier, file: frontier.png}
"""


def test_the_report_has_the_learning_tables_and_counts_failed_runs(tmp_path, capsys):
    """uncoded cannot decode once a learner fails (both its runs fail); mds survives and learns."""
    out = tmp_path / "out"
    assert main(["study", str(write_study(tmp_path, TINY)), "--out", str(out), "--no-progress"]) == 1
    report = (out / "report.md").read_text()
    assert "## Learning per simulated second" in report
    assert "| environment | random policy | best cell's final reward | threshold |" in report
    assert "| code.name | runs | final reward | reached | to threshold (simulated s) |" in report
    assert "| uncoded | 0 (2 failed) | – | 0/0 | – |" in report
    mds = next(line for line in report.splitlines() if line.startswith("| mds | 2 |"))
    assert " ± " in mds and "/2 |" in mds
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == ["band.png", "frontier.png"]


def test_a_study_without_learning_outputs_reads_no_traces_for_them(tmp_path, monkeypatch):
    import simcode.study.report as report

    monkeypatch.setattr(report, "measure", lambda *a: pytest.fail("measured a study that asked for nothing"))
    body = TINY.split("tables:")[0].replace("failure, p_fail: 0.3, max_failed: 1", "none")
    assert main(["study", str(write_study(tmp_path, body)), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "Learning per simulated second" not in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("body, key", [
    ("tables: {learning: {by: [nope]}}", "tables.learning.by"),
    ("tables: {learning: {fraction: 1.5}}", "tables.learning.fraction"),
    ("tables: {learning: {threshold: 3}}", "tables.learning"),
    ("tables: {}", "tables"),
    ("plots: [{kind: frontier, x: seed}]", "plots[0].x"),
    ("plots: [{kind: reward_band, col: nope}]", "plots[0].col"),
])
def test_bad_learning_outputs_are_bad_input_naming_the_key(tmp_path, body, key):
    path = write_study(tmp_path, "axes:\n  seed: [0, 1]\n" + body + "\n")
    with pytest.raises(BadInput) as exc:
        load_study(str(path))
    assert exc.value.key == key


SHIPPED = ROOT / "simcode" / "data" / "studies" / "strategies.yaml"


def test_the_shipped_study_is_the_issue_grid():
    study = load_study("strategies", studies_dir=ROOT / "studies")
    cells = {(s.values["tail"], s.values["code.name"], s.values["waiting"]) for s in study.runs}
    assert {t for t, _, _ in cells} == {"fixed_k", "pareto"}
    assert {c for _, c, _ in cells} == {"uncoded", "replication", "mds", "ldpc"}
    strategies = [s.scenario.cluster for s in study.runs]
    assert {c.strategy for c in strategies} == {"exact", "deadline", "stale"}
    assert len({c.deadline for c in strategies if c.strategy == "deadline"}) == 2
    assert len({s.scenario.seed for s in study.runs}) >= 3 and study.learning is not None
    assert all(s.scenario.env.scenario == "simple_spread" and 3 <= s.scenario.n_agents <= 5 for s in study.runs)
    quick = load_study("strategies", quick=True, studies_dir=ROOT / "studies")
    assert [s.values for s in quick.runs] == [s.values for s in study.runs]  # the same grid, shorter


def test_strategies_quick_end_to_end_on_a_slice(tmp_path):
    """`simcode study strategies --quick` on one seed, two schemes and 12 iterations (the whole quick
    grid is 75 trainings): every strategy and both delay families, through results, report and plots."""
    import yaml

    data = yaml.safe_load(SHIPPED.read_text())
    data["base"] = str(ROOT / "scenarios" / "spread3.yaml")
    data["axes"]["seed"] = [0]
    data["axes"]["scheme"] = [s for s in data["axes"]["scheme"] if s["code.name"] in ("uncoded", "mds")]
    data["quick"]["run.iterations"] = 12
    path = tmp_path / "strategies.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    assert main(["study", str(path), "--quick", "--out", str(out), "--no-progress"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 2 * len(data["axes"]["strategy"]) and (results["status"] == "ok").all()
    exact = results[results["strategy"] == "exact"]
    assert (exact["mean_updated_fraction"] == 1).all()
    # uncoded under fixed_k waits for nobody past a deadline: the late learners' agents lose updates.
    cut = results[(results["code.name"] == "uncoded") & (results["tail"] == "fixed_k")
                  & (results["strategy"] != "exact")]
    assert (cut["mean_updated_fraction"] < 1).all()
    report = (out / "report.md").read_text()
    table = report.split("## Learning per simulated second")[1]
    rows = [line for line in table.splitlines() if line.startswith(("| fixed_k |", "| pareto |"))]
    assert len(rows) == len(results)  # one row per cell: one seed here
    assert {p.name for p in (out / "plots").glob("*.png")} >= {"reward_time.png", "frontier.png"}
