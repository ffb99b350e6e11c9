"""The real backend (simcode.sim.real): the protocol driven by real time on Ray actors.

One local Ray session serves the whole module (starting Ray takes seconds); runs are tiny (3 agents,
small minibatches, a few iterations)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import numpy as np
import pytest

from simcode.cli import main
from simcode.config import Scenario
from simcode.errors import BadInput, SimulationError
from simcode.marl.trainer import Trainer

ray = pytest.importorskip("ray")

ITERATIONS = 3
SMALL = {
    "seed": 3,
    "env": {"scenario": "simple_spread", "n_agents": 3, "max_cycles": 25},
    "maddpg": {"batch_size": 32, "hidden": 16, "steps_per_iteration": 25, "learning_starts": 64},
    "cluster": {"n_learners": 4, "backend": "ray", "on_decode": "cancel"},
    "code": {"name": "mds"},
    "delay": {"name": "none"},
    "run": {"iterations": ITERATIONS},
}


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=5, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


def scenario(**sections) -> Scenario:
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in SMALL.items()}
    for key, value in sections.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return Scenario.model_validate(data)


class Alarm:
    """A test that would hang fails instead, after `seconds`."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __enter__(self):
        def fail(*_):
            raise TimeoutError(f"no answer within {self.seconds} s")
        self.previous = signal.signal(signal.SIGALRM, fail)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def centralized_states(sc: Scenario) -> list[np.ndarray]:
    trainer = Trainer(sc)
    trainer.warmup()
    for _ in range(sc.run.iterations):
        trainer.step()
    return trainer.states()


@pytest.mark.parametrize("scheme, learners", [("uncoded", 3), ("replication", 4), ("mds", 4),
                                              ("mds_vandermonde", 4), ("random_sparse", 4), ("ldpc", 4)])
def test_each_scheme_really_computes_and_decodes_the_centralized_update(ray_session, scheme, learners, monkeypatch):
    import torch
    from threadpoolctl import threadpool_info

    from simcode.sim.real import RealCluster, run_real

    sc = scenario(code={"name": scheme}, cluster={"n_learners": learners})
    threads, blas = torch.get_num_threads(), [pool["num_threads"] for pool in threadpool_info()]
    during = []
    iterate = RealCluster.iterate
    monkeypatch.setattr(RealCluster, "iterate",
                        lambda self, k: during.append(torch.get_num_threads()) or iterate(self, k))
    result = run_real(sc)
    assert set(during) == {1}
    # The driver ran on one thread of torch and of BLAS (real.one_core), and is given its threads back.
    assert torch.get_num_threads() == threads and [pool["num_threads"] for pool in threadpool_info()] == blas
    assert result.summary["backend"] == "ray" and len(result.trace) == ITERATIONS
    assert result.summary["max_decode_error"] <= 1e-9
    for real, direct in zip(result.final_states, centralized_states(sc)):
        np.testing.assert_allclose(real, direct, rtol=0, atol=1e-6)


def test_a_straggler_sleeps_for_real_and_delays_uncoded_not_mds(ray_session):
    from simcode.sim.real import run_real

    straggler = {"name": "fixed_k", "k": 1, "delay": 0.4, "mode": "add"}
    uncoded = run_real(scenario(code={"name": "uncoded"}, cluster={"n_learners": 3}, delay=straggler))
    mds = run_real(scenario(code={"name": "mds"}, delay=straggler))
    assert uncoded.trace["duration"].min() >= 0.4
    assert mds.trace["duration"].max() < 0.4
    assert (mds.trace["n_late"] == 1).all()


ONE_FAILED = {"name": "failure", "p_fail": 1.0, "permanent": True, "max_failed": 1}


@pytest.mark.parametrize("on_decode", ["cancel", "let_finish", "cancel_wait"])
def test_a_failed_learner_never_answers_and_a_tolerant_code_still_finishes(ray_session, on_decode):
    from simcode.sim.real import run_real

    with Alarm(60):
        result = run_real(scenario(delay=ONE_FAILED, cluster={"on_decode": on_decode}))
    assert (result.trace["n_failed"] == 1).all() and (result.trace["n_received"] == 3).all()
    assert result.summary["max_decode_error"] <= 1e-9


def test_a_timeout_resends_the_failed_row_to_a_learner_that_answered(ray_session):
    from simcode.sim.real import run_real

    with Alarm(60):
        result = run_real(scenario(code={"name": "uncoded"}, delay=ONE_FAILED,
                                   cluster={"n_learners": 3, "timeout": 0.2}))
    assert (result.trace["resent"] == 1).all() and (result.trace["duration"] >= 0.2).all()
    assert result.summary["max_decode_error"] <= 1e-9


def test_a_failed_learner_with_no_tolerance_is_one_error_not_a_hang(ray_session):
    from simcode.sim.real import run_real

    with Alarm(60), pytest.raises(SimulationError, match="uncoded cannot decode.*set cluster.timeout"):
        run_real(scenario(code={"name": "uncoded"}, cluster={"n_learners": 3}, delay=ONE_FAILED))


def test_an_unknown_backend_is_bad_input(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(scenario().to_yaml())
    assert main(["run", str(path), "--backend", "spark", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--backend" in err and "allowed: sim, ray" in err
    assert not (tmp_path / "run").exists()


def test_ray_not_installed_is_bad_input(monkeypatch):
    from simcode.sim.real import run_real

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(BadInput, match="ray is not installed"):
        run_real(scenario())


def raylets() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet"]


def test_an_unreachable_address_is_one_line_and_leaves_nothing(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(scenario().to_yaml())
    before = set(raylets())
    done = subprocess.run([sys.executable, "-m", "simcode.cli", "run", str(path), "--backend", "ray",
                           "--address", "127.0.0.1:9", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--address" in done.stderr and "allowed:" in done.stderr
    assert not (tmp_path / "run").exists()
    assert set(raylets()) <= before


def test_an_actor_that_dies_mid_run_is_one_error(ray_session):
    from simcode.sim.real import RealCluster, forget_learners

    cluster = RealCluster(scenario(), ray_session)
    cluster.trainer.warmup()
    cluster.iterate(0)
    ray_session.kill(cluster.learners[0])
    try:
        with Alarm(60), pytest.raises(SimulationError, match="learner 0 .*died"):
            for iteration in range(1, 3):
                cluster.iterate(iteration)
    finally:
        forget_learners(ray_session)


def test_a_real_run_that_cannot_go_on_exits_1_writes_nothing_and_stops_ray(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(scenario(code={"name": "uncoded"}, cluster={"n_learners": 3}, delay=ONE_FAILED).to_yaml())
    before = set(raylets())
    done = subprocess.run([sys.executable, "-m", "simcode.cli", "run", str(path), "--out", str(tmp_path / "run"),
                           "--no-progress"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot decode" in done.stderr
    assert not (tmp_path / "run").exists()
    assert set(raylets()) <= before


def test_a_study_runs_a_backend_axis_for_real_and_simulated(ray_session, tmp_path):
    import pandas as pd
    import yaml

    from simcode.study.runner import run_study

    base = tmp_path / "base.yaml"
    base.write_text(scenario().to_yaml())
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"base": "base.yaml", "set": {"run.iterations": 2},
                                     "axes": {"code.name": ["mds"], "cluster.backend": ["ray", "sim"]}}))
    root = run_study(str(study), out=tmp_path / "out", progress=False)
    results = pd.read_csv(root / "results.csv").set_index("cluster.backend")
    assert results.loc["ray", "backend"] == "ray" and results.loc["sim", "backend"] == "sim"
    assert results.loc["ray", "max_decode_error"] <= 1e-9


def test_a_late_ack_of_an_earlier_run_does_not_skip_the_next_runs_work():
    """A threaded actor may take an earlier run's ack after the next run's configure: it must be ignored
    (before run numbers, it marked the new run's first iterations as acked, and their tasks were skipped)."""
    from simcode.sim.real import LearnerActor, RunTask

    sc = scenario()
    code = sc.code.build(sc.n_agents, sc.cluster.n_learners, sc.seed)
    trainer = Trainer(sc)
    trainer.warmup()
    trainer.collect()
    learner = LearnerActor()
    learner.configure(sc.to_dict(), 0, code.matrix, run=1)
    learner.ack(5, run=0)  # run 0's release of its iteration 5, delivered late
    answer = learner.work(RunTask(0, 0, run=1), 0.0, "add", False, trainer.states(), trainer.sample())
    assert answer is not None and answer[:3] == (0, 0, 0)
    learner.ack(0, run=1)
    assert learner.work(RunTask(0, 0, run=1), 0.0, "add", False, trainer.states(), trainer.sample()) is None


def test_timing_workload_on_the_real_backend_is_bad_input(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(scenario(run={"workload": "timing"}).to_yaml())
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run.workload" in err and "allowed: maddpg" in err
    assert not (tmp_path / "run").exists()


def test_study_backend_ray_runs_every_run_for_real(ray_session, tmp_path):
    import pandas as pd
    import yaml

    from simcode.study.runner import run_study

    base = tmp_path / "base.yaml"
    base.write_text(scenario(cluster={"backend": "sim"}).to_yaml())
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"base": "base.yaml", "set": {"run.iterations": 2},
                                     "axes": {"code.name": ["mds"]}}))
    root = run_study(str(study), out=tmp_path / "out", progress=False, backend="ray")
    results = pd.read_csv(root / "results.csv")
    assert (results["backend"] == "ray").all() and results["max_decode_error"].max() <= 1e-9


def test_a_real_trace_says_where_the_time_went(ray_session):
    from simcode.sim.real import run_real

    trace = run_real(scenario()).trace
    parts = trace[["learner_compute", "ray_dispatch", "learner_queued", "ray_delivery"]]
    assert (parts >= 0).all().all() and (parts["learner_compute"] > 0).all()
    # The parts of one answer happen one after another between sending and decoding.
    assert (parts["learner_compute"] + parts["ray_dispatch"] <= trace["t_decoded"] - trace["t_start"]).all()
    # The computation's CPU on its thread: some, and at most its wall time (a core shared only takes away).
    assert (trace["learner_cpu"] > 0).all() and (trace["learner_cpu"] <= 1.05 * parts["learner_compute"] + 1e-4).all()


def test_a_real_run_reports_the_machines_pace_against_its_profiles(ray_session):
    """Before it starts, a real run times the speed probe; with a cost profile that has one, its
    machine_speed is the ratio (the shipped profile was calibrated on this kind of machine)."""
    from simcode.config import scenario_from_dict
    from simcode.sim.profile import load_profile
    from simcode.sim.real import run_real

    plain = run_real(scenario()).summary
    assert plain["machine_probe_seconds"] > 0 and plain["machine_speed"] is None
    sc = scenario_from_dict({**scenario().to_dict(), "cost": {"model": "profile", "profile": "epyc-2core.yaml"}})
    summary = run_real(sc).summary
    probe = load_profile(sc.cost.profile).ray.probe
    assert summary["machine_speed"] == pytest.approx(summary["machine_probe_seconds"] / probe)


def test_a_real_run_reports_the_cpu_an_iteration_cost_this_machine(ray_session):
    """The CPU audit sees the driver's own environment steps (one core busy for their wall time) and
    the learners' rows; it stays within what the machine's cores could give over the clocked time
    (with room for late rows still computing while the decode checks run off the clock)."""
    import os

    from simcode.sim.real import run_real

    result = run_real(scenario())
    cpu, trace = result.summary["cpu_per_iteration"], result.trace
    assert cpu > 0.8 * trace["env_seconds"].mean() + 0.5 * trace["learner_compute"].mean()
    assert cpu < 1.5 * (os.cpu_count() or 1) * trace["duration"].mean()
