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
    assert "Speed-up over `uncoded`" in report and "plots/00-line.png" in report and "scenario_hash" in report
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
