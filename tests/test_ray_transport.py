"""cluster.network.model: ray: the simulated clock prices the real backend's Ray transport and learner
rows from the profile's ray section (`simcode calibrate --ray`); calibrate's fit recovers known costs."""

from __future__ import annotations

import pytest
import yaml

from simcode.cli import main
from simcode.config import Scenario
from simcode.errors import BadInput
from simcode.sim.calibrate import fit_profile
from simcode.sim.runner import simulate
from simcode.sim.workload import shapes_of
from test_profile import synthetic_points

ROUND_TRIP, PUT, PUT_RATE, FETCH, FETCH_RATE = 6e-4, 1.5e-3, 1e9, 4e-4, 2e9
LEARNER = (4e-3, 2e-2, 7e-9)  # intercept, per GFLOP of the row, per value of all states


def ray_points():
    """calibrate_ray.measure_ray's measurements, made from known costs."""
    sizes = [(3, 4e5), (5, 1.7e6), (6, 5.7e6), (10, 8.7e6)]
    puts = [{"agents": m, "bytes": b, "seconds": PUT + b / PUT_RATE} for m, b in sizes]
    fetches = [{"agents": m, "bytes": b, "seconds": FETCH + b / FETCH_RATE} for m, b in sizes]
    rows = [{"agents": m, "row_agents": k, "gflop": g, "state_values": v,
             "seconds": LEARNER[0] + LEARNER[1] * g + LEARNER[2] * v}
            for m, k, g, v in ((3, 1, 0.04, 1.7e5), (3, 3, 0.12, 1.7e5), (5, 1, 0.07, 4.4e5), (10, 10, 6.9, 2.2e6))]
    return ROUND_TRIP, puts, fetches, rows


@pytest.fixture
def profile_file(tmp_path):
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump()))
    return path


def test_fit_profile_recovers_the_ray_section():
    profile, report = fit_profile(*synthetic_points(), ray=ray_points())
    ray = profile.ray
    assert ray.per_message == pytest.approx(ROUND_TRIP / 2)
    assert ray.put.seconds(3e6) == pytest.approx(PUT + 3e6 / PUT_RATE, rel=1e-5)
    assert ray.fetch.seconds(3e6) == pytest.approx(FETCH + 3e6 / FETCH_RATE, rel=1e-5)
    assert ray.learner.seconds(0.5, 1e6) == pytest.approx(LEARNER[0] + LEARNER[1] * 0.5 + LEARNER[2] * 1e6, rel=1e-5)
    assert any(line.startswith("ray learner row") for line in report)


def scenario(profile, network_model="ray", code="uncoded", **cost) -> Scenario:
    from simcode.config import scenario_from_dict

    return scenario_from_dict({
        "env": {"n_agents": 3}, "maddpg": {"batch_size": 64},
        "cluster": {"n_learners": 3, "network": {"model": network_model, "latency": 0.0, "bandwidth": 1e18}},
        "code": {"name": code}, "delay": {"name": "none"},
        "cost": {"model": "profile", "profile": str(profile), **cost},
        "run": {"iterations": 3, "workload": "timing"},
    })


def test_an_iteration_pays_the_ray_messages_and_the_learner_row_as_the_actors_run_it(profile_file):
    sc = scenario(profile_file)
    ray = fit_profile(*synthetic_points(), ray=ray_points())[0].ray
    shapes = shapes_of(sc)
    states = 4 * sum(shapes.state_sizes)
    task = ray.per_message + ray.put.seconds(states + shapes.batch_nbytes[0])  # states and its agent's batch
    row = ray.fetch.seconds(states + sum(shapes.batch_nbytes)) + ray.learner.seconds(
        shapes.update_flops[0] / 1e9, sum(shapes.state_sizes))  # each actor fetches the whole batch
    result = ray.per_message + ray.put.seconds(8 * shapes.padded_size)
    trace = simulate(sc).trace
    after_env = trace["t_decoded"] - trace["t_start"] - trace["env_seconds"]  # uncoded decodes by copying
    assert after_env.to_numpy() == pytest.approx(task + row + result, rel=1e-9)


def test_centralized_keeps_the_profiles_update_cost(profile_file):
    links = simulate(scenario(profile_file, "links", "centralized")).summary["mean_iteration"]
    assert simulate(scenario(profile_file, "ray", "centralized")).summary["mean_iteration"] == links


def test_ray_transport_needs_a_profile_with_a_ray_section(tmp_path):
    profile, _ = fit_profile(*synthetic_points())
    without = tmp_path / "old.yaml"
    without.write_text(yaml.safe_dump(profile.model_dump()))
    with pytest.raises(BadInput, match="cluster.network.model.*calibrate --ray"):
        scenario(without)
    with pytest.raises(BadInput, match="cluster.network.model.*cost.model is fixed"):
        scenario(without, model="fixed")


def test_ray_transport_without_a_ray_profile_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"cluster": {"network": {"model": "ray"}}}))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cluster.network.model" in err and "calibrate --ray" in err
    assert not (tmp_path / "run").exists()
