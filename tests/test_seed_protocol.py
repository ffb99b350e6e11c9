"""The seed's system in the clock: cancel_wait, the shared network, the profile cost model, and
`simcode calibrate`. Timelines are computed by hand from the scenario's numbers."""

import re

import numpy as np
import pytest
import simpy
import yaml

from simcode.cli import main
from simcode.config import NetworkConfig, scenario_from_dict
from simcode.errors import BadInput
from simcode.sim import calibrate as calibrate_module
from simcode.sim import profile as profile_module
from simcode.sim.acks import ACK_NBYTES
from simcode.sim.network import SharedNics
from simcode.sim.profile import Profile, load_profile
from simcode.sim.runner import build, simulate

LATENCY, BANDWIDTH, UPDATE = 0.01, 1e9, 0.1


def scenario(code, m, n, delay=None, cluster=None, cost=None, iterations=3):
    return scenario_from_dict({
        "env": {"n_agents": m},
        "cluster": {"n_learners": n, "network": {"latency": LATENCY, "bandwidth": BANDWIDTH}, **(cluster or {})},
        "code": {"name": code},
        "delay": delay or {"name": "none"},
        "cost": cost or {"model": "fixed", "update": UPDATE, "env_step": 0.0, "decode": 0.0},
        "run": {"iterations": iterations, "workload": "timing"},
        "maddpg": {"learning_starts": 0},
    })


def wire(nbytes):
    """Seconds a message of `nbytes` bytes is on a link."""
    return LATENCY + nbytes / BANDWIDTH


def sizes(sc):
    cluster = build(sc)
    return cluster.task_nbytes, cluster.result_nbytes, cluster.state_nbytes


# ---------------------------------------------------------------- cancel_wait
# mds with M=2, N=3: learners 0 and 1 compute one agent (UPDATE s), learner 2 both (2 UPDATE s).

def test_cancel_wait_next_iteration_waits_for_the_late_learners_computation():
    """Learner 2 is late; learners 0 and 1 decode first, but learner 2's computation (2 UPDATE) outlasts
    the decode and the ack: the next iteration starts when it ends, its extra 0.5 s cut short."""
    sc = scenario("mds", 2, 3, delay={"name": "persistent", "slow": [2], "delay": 0.5},
                  cluster={"on_decode": "cancel_wait"})
    task, result, _ = sizes(sc)
    decided = wire(task[0]) + UPDATE + wire(result)
    slow_done = wire(task[2]) + 2 * UPDATE
    assert slow_done > decided + wire(ACK_NBYTES)  # the case this test is about
    trace = simulate(sc).trace
    np.testing.assert_allclose(trace["duration"], slow_done, rtol=0, atol=1e-12)
    np.testing.assert_allclose(trace["t_decoded"] - trace["t_start"], decided, rtol=0, atol=1e-12)
    np.testing.assert_allclose(trace["t_start"][1:], trace["t_end"][:-1], rtol=0, atol=0)
    assert (trace["n_late"] == 1).all() and (trace["n_received"] == 2).all()
    cancel = simulate(scenario("mds", 2, 3, delay={"name": "persistent", "slow": [2], "delay": 0.5})).trace
    np.testing.assert_allclose(cancel["duration"], decided, rtol=0, atol=1e-12)  # cancel frees it at once


def test_cancel_wait_ack_cuts_the_late_learners_extra_wait_short():
    """Learner 0 is late by 0.5 s after its UPDATE s of computation; learners 1 and 2 decode, the ack
    reaches learner 0 during its extra wait, and it sends nothing: the next iteration starts then."""
    sc = scenario("mds", 2, 3, delay={"name": "persistent", "slow": [0], "delay": 0.5},
                  cluster={"on_decode": "cancel_wait"})
    task, result, _ = sizes(sc)
    decided = wire(task[2]) + 2 * UPDATE + wire(result)
    assert wire(task[0]) + UPDATE < decided < wire(task[0]) + UPDATE + 0.5  # the ack comes during the extra
    trace = simulate(sc).trace
    np.testing.assert_allclose(trace["duration"], decided + wire(ACK_NBYTES), rtol=0, atol=1e-12)
    np.testing.assert_allclose(trace["t_decoded"] - trace["t_start"], decided, rtol=0, atol=1e-12)
    assert (trace["n_late"] == 1).all()  # learner 0 never answered: the ack stopped it


def test_cancel_wait_with_a_failed_learner_is_freed_by_the_ack():
    sc = scenario("mds", 2, 3, delay={"name": "failure", "p_fail": 0.3, "max_failed": 1},
                  cluster={"on_decode": "cancel_wait"}, iterations=40)
    trace = simulate(sc).trace
    assert len(trace) == 40 and (trace["n_failed"] > 0).any()
    assert (trace.loc[trace["n_failed"] > 0, "n_late"] >= 1).all()


def test_n_late_counts_the_learners_that_had_not_answered_and_n_delayed_every_delay():
    sc = scenario("mds", 3, 5, delay={"name": "shifted_exponential", "shift": 0.01, "rate": 20.0}, iterations=50)
    trace = simulate(sc).trace
    assert (trace["n_delayed"] == 5).all()  # a continuous family delays everyone
    assert (trace["n_late"] == 2).all()  # any 3 of 5 decode: the 2 slowest had not answered
    uncoded = simulate(scenario("uncoded", 3, 3, delay={"name": "fixed_k", "k": 1, "delay": 0.3})).trace
    assert (uncoded["n_late"] == 0).all()  # uncoded waits for everyone: nobody is late at the decode


# ---------------------------------------------------------------- shared network

def test_shared_nic_sends_one_message_after_another_in_order():
    env = simpy.Environment()
    config = NetworkConfig(latency=0.002, bandwidth=1e6, model="shared")
    nics = SharedNics(env, config, overhead=lambda nbytes: 1e-4)
    arrivals = {}
    for learner in range(3):
        nics.send(-1, lambda _arrival, learner=learner: arrivals.setdefault(learner, env.now), 5000)
    nics.send(7, lambda _arrival: arrivals.setdefault("other sender", env.now), 5000)
    env.run()
    each = 0.002 + 5000 / 1e6 + 1e-4
    assert arrivals == pytest.approx({0: each, 1: 2 * each, 2: 3 * each, "other sender": each}, rel=1e-12)


@pytest.mark.parametrize("receivers, rounds", [(1, 1), (3, 2), (4, 3), (7, 3), (15, 4), (16, 5)])
def test_broadcast_is_a_binomial_tree_serialised_once(receivers, rounds):
    env = simpy.Environment()
    nics = SharedNics(env, NetworkConfig(latency=0.002, bandwidth=1e6, model="shared"), overhead=lambda n: n * 1e-8)
    done = nics.broadcast(-1, 5000, receivers)
    after = nics.send(-1, lambda _arrival: None, 5000)  # the controller's next message waits for the broadcast
    env.run()
    tree = 5000 * 1e-8 + rounds * (0.002 + 5000 / 1e6)
    assert done.value is None and env.now == pytest.approx(tree + 0.002 + 5000 / 1e6 + 5000 * 1e-8, rel=1e-12)
    assert after.triggered


def test_shared_network_iteration_is_the_serial_send_schedule():
    """uncoded, 3 learners: the states' broadcast (serialised once, a binomial tree over 4 nodes: 2
    rounds), then the environment, then the three minibatch messages one after another; the last
    learner's result decides."""
    env_step, steps = 1e-4, 100
    cost = {"model": "fixed", "update": UPDATE, "env_step": env_step, "decode": 0.0}
    per_message = 0.002
    shared = scenario("uncoded", 3, 3, cost=cost,
                      cluster={"network": {"latency": LATENCY, "bandwidth": BANDWIDTH, "model": "shared",
                                           "per_message": per_message}})
    task, result, state = sizes(shared)
    assert len(set(task)) == 1  # equal minibatch messages, without the states
    broadcast = per_message + 2 * wire(state)
    expected = broadcast + steps * env_step + 3 * (wire(task[0]) + per_message) + UPDATE + wire(result) + per_message
    trace = simulate(shared).trace
    np.testing.assert_allclose(trace["duration"], expected, rtol=1e-12)
    np.testing.assert_allclose(trace["env_seconds"], steps * env_step, rtol=1e-12)
    links = simulate(scenario("uncoded", 3, 3, cost=cost)).trace
    np.testing.assert_allclose(links["duration"], steps * env_step + wire(task[0] + state) + UPDATE + wire(result),
                               rtol=1e-12)


def test_shared_network_acks_leave_the_controller_in_learner_order():
    """cancel_wait on the shared network: learner 2 (late, no longer computing) gets the third ack."""
    cluster = {"on_decode": "cancel_wait", "network": {"latency": LATENCY, "bandwidth": BANDWIDTH, "model": "shared"}}
    sc = scenario("mds", 2, 3, delay={"name": "persistent", "slow": [2], "delay": 5.0}, cluster=cluster,
                  cost={"model": "fixed", "update": 0.001, "env_step": 0.0, "decode": 0.0})
    task, result, state = sizes(sc)
    broadcast = 2 * wire(state)  # a binomial tree over the controller and 3 learners: 2 rounds
    all_sent = broadcast + sum(map(wire, task))  # the controller receives once its sends are done
    second_answer = broadcast + wire(task[0]) + wire(task[1]) + 0.001 + wire(result)
    decided = max(second_answer, all_sent)
    assert all_sent + 0.001 < decided + wire(ACK_NBYTES)  # learner 2 is done computing before any ack arrives
    trace = simulate(sc).trace
    np.testing.assert_allclose(trace["duration"], decided + 3 * wire(ACK_NBYTES), rtol=1e-12)


# ---------------------------------------------------------------- profile cost

PROFILE = {
    "provenance": {"command": "simcode calibrate"},
    "update": {"intercept": 0.01, "per_gflop": 0.5},
    "env_step": {"simple_spread": {"c0": 1e-4, "c1": 2e-5, "c2": 1e-6}},
    "decode": {"intercept": 0.003, "per_copied_value": 1e-9, "per_solved_value": 2e-9},
    "rank_check": {"intercept": 0.001, "per_row_agent2": 1e-4},
    "serialize": {"per_message": 0.0005, "bytes_per_second": 1e9},
}


@pytest.fixture
def profile_file(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return path


def profiled(path, code, m, n, delay=None, iterations=4, **cost):
    return scenario(code, m, n, delay=delay, cost={"model": "profile", "profile": str(path), **cost},
                    iterations=iterations)


def hand_costs(sc):
    """Per-agent update seconds and an iteration's environment seconds, from the profile's formulas."""
    from simcode.sim.workload import shapes_of

    shapes = shapes_of(sc)
    m = sc.n_agents
    update = [0.01 + 0.5 * flops / 1e9 for flops in shapes.update_flops]
    env = 100 * (1e-4 + 2e-5 * m + 1e-6 * m * m)
    return update, env, shapes.padded_size


def test_profile_cost_uncoded_has_no_decode_cost(profile_file):
    sc = profiled(profile_file, "uncoded", 3, 3)
    update, env, _ = hand_costs(sc)
    task, result, _ = sizes(sc)
    expected = env + max(wire(task[i]) + update[i] for i in range(3)) + wire(result)
    np.testing.assert_allclose(simulate(sc).trace["duration"], expected, rtol=1e-12)


def test_profile_cost_mds_with_a_straggler_pays_the_decode(profile_file):
    """M=3, N=5, learner 0 (systematic) late: rows 1, 2 (copied) and 3 (parity, all agents) decode."""
    sc = profiled(profile_file, "mds", 3, 5, delay={"name": "persistent", "slow": [0], "delay": 1.0})
    update, env, values = hand_costs(sc)
    task, result, _ = sizes(sc)
    arrivals = [wire(task[1]) + update[1], wire(task[2]) + update[2], wire(task[3]) + sum(update)]
    decode = 0.003 + 1e-9 * 2 * values + 2e-9 * 1 * 1 * values
    trace = simulate(sc).trace
    np.testing.assert_allclose(trace["duration"], env + max(arrivals) + wire(result) + decode, rtol=1e-12)
    assert (trace["n_received"] == 3).all()


def test_rank_check_charges_the_controller_after_every_arrival(profile_file):
    """uncoded, 3 results arriving together: three checks, of 1, 2 and 3 rows of M=3 agents."""
    plain = simulate(profiled(profile_file, "uncoded", 3, 3)).trace["duration"]
    checked = simulate(profiled(profile_file, "uncoded", 3, 3, rank_check=True)).trace["duration"]
    np.testing.assert_allclose(checked - plain, sum(0.001 + 1e-4 * rows * 9 for rows in (1, 2, 3)), rtol=1e-9)


def test_profile_serialisation_is_the_shared_networks_per_message_cost(profile_file):
    shared = {"network": {"latency": LATENCY, "bandwidth": BANDWIDTH, "model": "shared"}}
    sc = scenario("uncoded", 3, 3, cluster=shared, cost={"model": "profile", "profile": str(profile_file)})
    cluster = build(sc)
    assert cluster.network.seconds(1e6) == pytest.approx(wire(1e6) + 0.0005 + 1e6 / 1e9, rel=1e-12)
    own = scenario("uncoded", 3, 3, cost={"model": "profile", "profile": str(profile_file)},
                   cluster={"network": {**shared["network"], "per_message": 0.25}})
    assert build(own).network.seconds(1e6) == pytest.approx(wire(1e6) + 0.25, rel=1e-12)
    assert build(scenario("uncoded", 3, 3, cost={"model": "profile", "profile": str(profile_file)})) \
        .network.seconds(1e6) == pytest.approx(wire(1e6), rel=1e-12)  # links: idealised, no serialisation


def test_the_profile_is_read_once_per_run(profile_file, monkeypatch):
    sc = profiled(profile_file, "mds", 3, 5, iterations=20)
    reads = []
    real = profile_module.load_profile
    monkeypatch.setattr(profile_module, "load_profile", lambda *a, **k: reads.append(1) or real(*a, **k))
    simulate(sc)
    assert len(reads) == 1


def test_profile_paths_resolve_beside_the_scenario_then_cwd(tmp_path, profile_file, monkeypatch):
    from simcode.config import load_scenario

    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump(PROFILE))
    (folder / "s.yaml").write_text("cost: {model: profile, profile: mine.yaml}\nrun: {workload: timing}\n")
    monkeypatch.chdir(tmp_path)
    assert load_scenario(folder / "s.yaml").cost.profile == str((folder / "mine.yaml").resolve())
    monkeypatch.chdir(profile_file.parent)
    assert load_scenario(folder / "s.yaml", {"cost.profile": "profile.yaml"}).cost.profile == \
        str(profile_file.resolve())


@pytest.mark.parametrize("cost, message", [
    ({"model": "profile"}, r"s\.yaml: cost\.profile: missing"),
    ({"model": "profile", "profile": "nowhere.yaml"}, r"s\.yaml: cost\.profile: nowhere\.yaml: file not found"),
    ({"model": "profile", "profile": "broken.yaml"}, r"s\.yaml: cost\.profile: .*broken\.yaml: update\.per_gflop"),
    ({"model": "profile", "profile": "tagless.yaml"}, r"s\.yaml: cost\.profile: .*'simple_tag'.*simple_spread"),
    ({"model": "fixed", "rank_check": True}, r"s\.yaml: cost\.rank_check: .*cost\.model: profile"),
    ({"model": "profile", "profile": "good.yaml", "rank_check": 1}, r"s\.yaml: cost\.rank_check: 1 is not a boolean"),
])
def test_bad_profiles_are_one_line_exit_2(tmp_path, capsys, cost, message):
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(PROFILE))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({**PROFILE, "update": {"intercept": 0.0, "per_gflop": -1}}))
    (tmp_path / "tagless.yaml").write_text(yaml.safe_dump(PROFILE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"env": {"scenario": "simple_tag" if "tagless" in str(cost)
                                                             else "simple_spread"}, "cost": cost}))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- simcode calibrate

def synthetic(monkeypatch):
    """The measurements, replaced by points from known costs (fast)."""
    from test_profile import synthetic_points

    updates, env, decodes, ranks, serialize = synthetic_points()
    monkeypatch.setattr(calibrate_module, "measure_updates", lambda batch, repeats: updates)
    monkeypatch.setattr(calibrate_module, "measure_env_steps", lambda steps, repeats: env)
    monkeypatch.setattr(calibrate_module, "measure_decodes", lambda repeats: decodes)
    monkeypatch.setattr(calibrate_module, "measure_rank_checks", lambda repeats: ranks)
    monkeypatch.setattr(calibrate_module, "measure_serialize", lambda repeats: serialize)


def test_calibrate_writes_a_profile_a_scenario_can_use(tmp_path, capsys, monkeypatch):
    synthetic(monkeypatch)
    out = tmp_path / "p.yaml"
    assert main(["calibrate", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("calibrate: measuring") == 5
    assert "relative RMS residual" in captured.out and str(out) in captured.out
    profile = load_profile(out)
    assert profile.provenance["command"] == "simcode calibrate"
    assert profile.update.seconds(2.0) == pytest.approx(5e-4 + 6e-3, rel=1e-6)
    sc = scenario("mds", 3, 5, cost={"model": "profile", "profile": str(out)})
    assert simulate(sc).summary["cost_model"] == "profile"
    assert main(["calibrate", "--out", str(out)]) == 0  # its own profile may be replaced


def test_calibrate_never_overwrites_a_file_it_did_not_write(tmp_path, capsys, monkeypatch):
    synthetic(monkeypatch)
    mine = tmp_path / "notes.yaml"
    mine.write_text("update: mine\n")
    assert main(["calibrate", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "did not write" in err
    assert mine.read_text() == "update: mine\n"
    assert main(["calibrate", "--out", str(tmp_path)]) == 2  # a directory
    assert list(tmp_path.iterdir()) == [mine]


def test_profile_model_dump_round_trips_through_the_written_file(tmp_path):
    profile = Profile.model_validate(PROFILE)
    calibrate_module.write_profile(profile, tmp_path / "p.yaml")
    assert (tmp_path / "p.yaml").read_text().startswith("# A cost profile written by `simcode calibrate`")
    assert load_profile(tmp_path / "p.yaml") == profile
    (tmp_path / "q.yaml").write_text("a: 1\n")
    with pytest.raises(BadInput, match="did not write"):
        calibrate_module.write_profile(profile, tmp_path / "q.yaml")
