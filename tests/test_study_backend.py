"""`simcode study --backend sim|ray [--address]`, and real runs refused where they cannot be timed."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from simcode.cli import main

BASE = {
    "env": {"scenario": "simple_spread", "n_agents": 3, "max_cycles": 25},
    "maddpg": {"batch_size": 32, "hidden": 16, "steps_per_iteration": 25, "learning_starts": 64},
    "cluster": {"n_learners": 4, "backend": "ray"},
    "code": {"name": "mds"}, "delay": {"name": "none"}, "run": {"iterations": 2},
}


def write_study(tmp_path, axes) -> str:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "axes": axes}))
    return str(path)


def one_line_exit_2(capsys, args, *needles) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(needle in err for needle in needles), err
    return err


def test_backend_sim_runs_a_real_study_simulated(tmp_path, capsys):
    study = write_study(tmp_path, {"code.name": ["mds", "replication"]})
    assert main(["study", study, "--backend", "sim", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (results["backend"] == "sim").all() and len(results) == 2


def test_an_unknown_backend_is_bad_input_and_nothing_is_written(tmp_path, capsys):
    study = write_study(tmp_path, {"code.name": ["mds"]})
    one_line_exit_2(capsys, ["study", study, "--backend", "spark", "--out", str(tmp_path / "out")],
                    "--backend", "allowed: sim, ray")
    assert not (tmp_path / "out").exists()


def test_backend_with_a_backend_axis_is_bad_input(tmp_path, capsys):
    study = write_study(tmp_path, {"cluster.backend": ["ray", "sim"]})
    one_line_exit_2(capsys, ["study", study, "--backend", "sim", "--out", str(tmp_path / "out")],
                    "--backend", "cluster.backend axis", "allowed:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, key", [(["--jobs", "2"], "--jobs"), (["--executor", "dask"], "--executor")])
def test_real_runs_in_parallel_workers_are_refused(tmp_path, capsys, options, key):
    study = write_study(tmp_path, {"code.name": ["mds", "replication"]})
    one_line_exit_2(capsys, ["study", study, *options, "--out", str(tmp_path / "out")],
                    key, "one at a time", "allowed:")
    assert not (tmp_path / "out").exists()


def test_an_address_without_real_runs_is_bad_input(tmp_path, capsys):
    study = write_study(tmp_path, {"code.name": ["mds"]})
    one_line_exit_2(capsys, ["study", study, "--backend", "sim", "--address", "127.0.0.1:6379",
                             "--out", str(tmp_path / "out")], "--address", "allowed:")
