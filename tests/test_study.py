"""Studies: grid expansion, bad study files, resume after kill -9, and executors that agree."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from simcode.cli import main
from simcode.errors import BadInput
from simcode.study.runner import group_runs, run_study
from simcode.study.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
HOST_COLUMNS = ["host_seconds"]


def write_study(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"base: {ROOT / 'scenarios' / 'spread3.yaml'}\n" + body)
    return path


TIMING = """
set:
  run: {iterations: 40, workload: timing}
  maddpg.learning_starts: 0
axes:
  scheme:
    - {code.name: uncoded, cluster.n_learners: 3}
    - {code.name: mds}
    - {code.name: replication, cluster.n_learners: 6}
  delay.k: [0, 1, 2, 3]
  seed: [0, 1]
exclude:
  - {code.name: uncoded, delay.k: 3}
plots:
  - {kind: line, x: delay.k, y: mean_iteration}
  - {kind: distribution, x: delay.k}
"""


def test_grid_is_the_product_of_axes_with_zipped_values_and_exclusions(tmp_path):
    study = load_study(str(write_study(tmp_path, TIMING)))
    assert len(study.runs) == 3 * 4 * 2 - 2
    assert study.axis_keys == ["code.name", "cluster.n_learners", "delay.k", "seed"]
    by_scheme = {r.scenario.code.name: r.scenario.cluster.n_learners for r in study.runs}
    assert by_scheme == {"uncoded": 3, "mds": 5, "replication": 6}
    assert all(r.scenario.delay.params()["k"] == r.values["delay.k"] for r in study.runs)
    assert len({r.run_id for r in study.runs}) == len(study.runs)


def test_quick_applies_its_overrides(tmp_path):
    path = write_study(tmp_path, "axes: {seed: [0]}\nquick: {run.iterations: 7}\n")
    assert load_study(str(path), quick=True).runs[0].scenario.run.iterations == 7
    assert load_study(str(path)).runs[0].scenario.run.iterations == 200


def test_runs_that_train_alike_share_one_group(tmp_path):
    path = write_study(tmp_path, """
set: {run.iterations: 3}
axes:
  code.name: [mds, ldpc, random_sparse]
  delay.k: [0, 1]
  seed: [0, 1]
""")
    groups = group_runs(load_study(str(path)).runs)
    assert sorted(len(g) for g in groups) == [6, 6]
    assert all(len({r.scenario.seed for r in g}) == 1 for g in groups)


@pytest.mark.parametrize("body, key", [
    ("axes: {code.name: [mds, nope]}\n", "code.name"),
    ("axes: {delay.k: [1, 9]}\n", "delay.k"),
    ("axes: {seed: []}\n", "axes.seed"),
    ("axis: {seed: [0]}\n", "axis"),
    ("axes: {seed: [0]}\nplots: [{kind: pie}]\n", "plots[0].kind"),
    ("axes: {seed: [0]}\nexclude: [{seed: 0}]\n", "axes"),
])
def test_bad_study_file_is_bad_input_naming_the_key(tmp_path, body, key):
    path = write_study(tmp_path, body)
    with pytest.raises(BadInput) as info:
        load_study(str(path))
    assert info.value.key == key and info.value.file == str(path)


def test_bad_study_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    path = write_study(tmp_path, "axes: {code.name: [mds, nope]}\n")
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "code.name" in err[0]
    assert not out.exists()
    assert main(["study", "no_such_study", "--out", str(out)]) == 2
    assert main(["study", str(path), "--executor", "spark", "--out", str(out)]) == 2


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=HOST_COLUMNS)


def test_study_writes_results_plots_and_report(tmp_path):
    out = run_study(str(write_study(tmp_path, TIMING)), out=tmp_path / "out", progress=False)
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 22
    for column in ("code.name", "delay.k", "seed", "mean_iteration", "p99_iteration", "sim_seconds"):
        assert column in results.columns
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == ["00-line.png", "01-distribution.png"]
    report = (out / "report.md").read_text()
    assert "Speed-up over `uncoded`" in report and "plots/00-line.png" in report
    assert "[provenance.md](provenance.md)" in report and "scenario_hash" in (out / "provenance.md").read_text()
    # Running again does nothing and gives the same results.
    again = run_study(str(write_study(tmp_path, TIMING)), out=tmp_path / "out", progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(again / "results.csv"), results)


def test_resume_after_kill_9_equals_an_uninterrupted_study(tmp_path):
    body = TIMING.replace("iterations: 40", "iterations: 1500")
    path = write_study(tmp_path, body)
    reference = run_study(str(path), out=tmp_path / "reference", progress=False)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "simcode.cli", "study", str(path), "--out", str(killed), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "runs").glob("run-*"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list((killed / "runs").glob("run-*")))
    assert 3 <= finished < 22, "the kill should land mid-study"
    run_study(str(path), out=killed, progress=False)
    assert len(list((killed / "runs").glob("run-*"))) == 22
    assert not list((killed / "runs").glob(".run-*"))
    pd.testing.assert_frame_equal(comparable(pd.read_csv(killed / "results.csv")),
                                  comparable(pd.read_csv(reference / "results.csv")))


def test_local_pool_and_dask_give_the_same_results_as_in_process(tmp_path):
    pytest.importorskip("dask.distributed")
    path = write_study(tmp_path, TIMING)
    base = comparable(pd.read_csv(run_study(str(path), out=tmp_path / "a", progress=False) / "results.csv"))
    pool = run_study(str(path), out=tmp_path / "b", jobs=2, progress=False)
    pd.testing.assert_frame_equal(comparable(pd.read_csv(pool / "results.csv")), base)
    dask = run_study(str(path), out=tmp_path / "c", jobs=2, executor="dask", progress=False)
    pd.testing.assert_frame_equal(comparable(pd.read_csv(dask / "results.csv")), base)


def test_ray_gives_the_same_results_as_in_process(tmp_path):
    pytest.importorskip("ray")
    path = write_study(tmp_path, TIMING)
    base = comparable(pd.read_csv(run_study(str(path), out=tmp_path / "a", progress=False) / "results.csv"))
    ray = run_study(str(path), out=tmp_path / "r", jobs=2, executor="ray", progress=False)
    pd.testing.assert_frame_equal(comparable(pd.read_csv(ray / "results.csv")), base)


def test_ctrl_c_stops_cleanly_keeps_finished_runs_and_resumes(tmp_path):
    path = write_study(tmp_path, TIMING.replace("iterations: 40", "iterations: 1500"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "simcode.cli", "study", str(path), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "runs").glob("run-*"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    kept = len(list((out / "runs").glob("run-*")))
    assert 2 <= kept < 22
    run_study(str(path), out=out, progress=False)
    assert len(pd.read_csv(out / "results.csv")) == 22


def test_real_training_studies_give_the_same_results_in_a_process_pool(tmp_path):
    path = write_study(tmp_path, """
set:
  run.iterations: 4
  maddpg: {batch_size: 32, learning_starts: 64, hidden: 16, steps_per_iteration: 25}
  cluster.n_learners: 5
axes:
  code.name: [mds, ldpc, replication]
  delay.k: [0, 2]
  seed: [0, 1]
""")
    base = pd.read_csv(run_study(str(path), out=tmp_path / "a", progress=False) / "results.csv")
    pool = pd.read_csv(run_study(str(path), out=tmp_path / "b", jobs=2, progress=False) / "results.csv")
    assert base["final_reward"].notna().all()
    pd.testing.assert_frame_equal(comparable(pool), comparable(base))


FAILING = """
set:
  run: {iterations: 30, workload: timing}
  maddpg.learning_starts: 0
  delay: {name: failure, p_fail: 0.3, max_failed: 1}
axes:
  scheme:
    - {code.name: uncoded, cluster.n_learners: 3}
    - {code.name: mds}
  seed: [0, 1]
plots:
  - {kind: line, x: seed, y: mean_iteration}
  - {kind: distribution}
"""


def test_a_failed_run_is_marked_and_the_study_finishes_the_others(tmp_path, capsys):
    """uncoded (no tolerance, no timeout) cannot decode once a learner fails; mds survives one failure."""
    path = write_study(tmp_path, FAILING)
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    results = pd.read_csv(out / "results.csv")
    failed = results[results["code.name"] == "uncoded"]
    assert len(results) == 4 and set(failed["status"]) == {"failed"}
    assert set(results.loc[results["code.name"] == "mds", "status"]) == {"ok"}
    assert failed["mean_iteration"].isna().all() and failed["error"].str.contains("cannot decode").all()
    assert results.loc[results["status"] == "ok", "mean_iteration"].notna().all()
    assert sorted(p.name for p in (out / "runs").glob("run-*")) == sorted(results.loc[results["status"] == "ok",
                                                                                         "run_id"])
    assert len(err) == 1 and all(run_id in err[0] for run_id in failed["run_id"])
    assert "exclude: [{code.name: uncoded, cluster.n_learners: 3, seed: 0}" in err[0]
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and all(run_id in report for run_id in failed["run_id"])
    assert "| uncoded | –[^failed] | –[^failed] |" in report and "\n[^failed]: Runs with these values failed" in report
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == ["00-line.png", "01-distribution.png"]
    # A failed run is not done: running again retries it (and fails the same way), nothing else.
    assert main(["study", str(path), "--out", str(out), "--no-progress"]) == 1
    assert "resuming: 2 of 4 runs already done" in capsys.readouterr().err


def test_plots_are_byte_identical_across_runs_and_matplotlib_versions(tmp_path, monkeypatch):
    import matplotlib

    path = write_study(tmp_path, TIMING.replace("iterations: 40", "iterations: 10"))
    first = run_study(str(path), out=tmp_path / "a", progress=False)
    # Another build of matplotlib: what the PNG Software stamp records.
    monkeypatch.setattr(matplotlib, "__version__", f"{matplotlib.__version__}.post1")
    second = run_study(str(path), out=tmp_path / "b", progress=False)
    names = sorted(p.name for p in (first / "plots").glob("*.png"))
    assert names == ["00-line.png", "01-distribution.png"]
    for name in names:
        assert (first / "plots" / name).read_bytes() == (second / "plots" / name).read_bytes(), name


def test_report_footnotes_explain_blank_cells(tmp_path):
    out = run_study(str(write_study(tmp_path, TIMING)), out=tmp_path / "out", progress=False)
    report = (out / "report.md").read_text()
    uncoded = next(line for line in report.splitlines() if line.startswith("| uncoded |"))
    assert uncoded.endswith("| –[^excluded] |")  # delay.k=3 is excluded for uncoded
    assert "\n[^excluded]: No run has these values: the study file's `exclude` leaves them out." in report


def test_every_time_axis_names_its_unit_the_same_way():
    from simcode.study.plots import LABELS

    for key in ("mean_iteration", "p99_iteration", "median_iteration", "sim_seconds", "duration", "t_end"):
        assert LABELS[key].endswith(" (simulated s)"), key


def test_equal_lines_are_drawn_side_by_side():
    """Two schemes with the same values at every x: the p99 plot must not draw one over the other."""
    import matplotlib.pyplot as plt

    from simcode.study.plots import _line

    data = pd.DataFrame({"code.name": ["mds", "ldpc"] * 3, "delay.k": [0, 0, 1, 1, 2, 2],
                         "p99_iteration": [0.1, 0.1, 0.3, 0.3, 0.3, 0.3]})
    fig, ax = plt.subplots()
    _line(ax, data, "delay.k", "p99_iteration", "code.name", ["mds", "ldpc"])
    drawn = [line for line in ax.lines if len(line.get_xdata()) == 3 and line.get_marker() not in (None, "None")]
    plt.close(fig)
    assert len(drawn) == 2
    assert set(drawn[0].get_xdata()).isdisjoint(drawn[1].get_xdata())
    assert drawn[0].get_marker() != drawn[1].get_marker()


def test_a_scheme_with_constant_times_is_visible_in_the_distribution_plot():
    import matplotlib.pyplot as plt
    import numpy as np

    from simcode.study.plots import _distribution

    traces = pd.DataFrame({"code.name": ["centralized"] * 20 + ["mds"] * 20,
                           "duration": [0.09] * 20 + list(np.linspace(0.06, 0.3, 20))})
    fig, ax = plt.subplots()
    _distribution(ax, traces, None, "code.name", ["centralized", "mds"])
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 20]
    plt.close(fig)
    assert any(np.allclose(p[:, 1], 0.09) for p in points)  # every constant iteration drawn as a point


TABLES = """
set:
  run: {iterations: 30, workload: timing}
  maddpg.learning_starts: 0
  delay: {name: fixed_k, k: 0, delay: 0.25}
axes:
  run:
    - {env.n_agents: 2, M: 2, code.name: uncoded, cluster.n_learners: 2}
    - {env.n_agents: 2, M: 2, code.name: mds, cluster.n_learners: 5}
    - {env.n_agents: 3, M: 3, code.name: uncoded, cluster.n_learners: 3}
    - {env.n_agents: 3, M: 3, code.name: mds, cluster.n_learners: 5}
  delay.k: [0, 1]
  seed: [0]
exclude:
  - {M: 3, delay.k: 1}
tables:
  rows: [M, delay.k]
"""


def test_tables_rows_give_one_row_per_combination_and_a_column_per_scheme(tmp_path):
    root = run_study(str(write_study(tmp_path, TABLES)), out=tmp_path / "out", progress=False)
    results = pd.read_csv(root / "results.csv")
    report = (root / "report.md").read_text()
    assert "| M | delay.k | uncoded | mds |" in report
    mean = results.groupby(["M", "delay.k", "code.name"])["mean_iteration"].mean()
    ratio = mean[(2, 1, "uncoded")] / mean[(2, 1, "mds")]
    assert ratio > 1.5  # one straggler of 0.25 s stalls uncoded, not mds
    assert f"| 2 | 1 | 1.00 | {ratio:.2f} |" in report
    assert "| 3 | 0 | " in report and "| 3 | 1 |" not in report  # an excluded combination has no row


def test_tables_rows_must_be_axes(tmp_path):
    body = "axes: {seed: [0], code.name: [mds]}\ntables: {rows: [delay.k]}\n"
    with pytest.raises(BadInput, match="tables.rows"):
        load_study(str(write_study(tmp_path, body)))
    body = "axes: {seed: [0]}\ntables: {rows: []}\n"
    with pytest.raises(BadInput, match="tables.rows"):
        load_study(str(write_study(tmp_path, body)))
