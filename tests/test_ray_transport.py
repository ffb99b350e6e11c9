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

PUT, PUT_RATE, PUT_DAEMONS = 1.5e-3, 1e9, 0.4  # per call, bytes per second, the raylet's share
SUBMIT, SUBMIT_RATE, TASK, TASK_RATE, ACK = 1e-3, 5e8, 3e-3, 4e9, 2e-4
RAYLET, RAYLET_RATE = 1.2e-3, 9e9  # the raylet's CPU per task and its bytes per second
LEARNER = (4e-3, 2e-2, 7e-9)  # intercept, per GFLOP of the row, per value of all states
CROWDED = 0.8  # a row's speed in a gather of three a core (6 tasks, 2 cores) against alone
IDLE = {"daemons": 0.02, "learner": 0.01, "controller": 0.05}  # cores' worth of Ray's own CPU
DRIVER = 1.1  # environment steps in a Ray driver over alone
ALONE = 1.04  # the same in a Ray driver with no learners, between its own updates (centralized)
CONTROLLER = (1.1e-3, 1.5e-2)  # the controller's update of every agent on one thread: per agent, per GFLOP
SAMPLE = (1e-4, 2e-7)  # the driver's draw of the minibatches: per call, per agent x row
THREAD = (2e-4, 1e-4)  # the driver's own thread per task submitted, per answer taken in
SEND = (5e-4, 6e-9, 3e-7)  # the driver's pack and put of an iteration's arguments: per call, state value, agent x row
DELIVERED = (5e-5, 3.6e-9)  # the decode of rows Ray delivered: per decode, per value read


def ray_points():
    """calibrate_ray.measure_ray's measurements (CPU seconds by process group), made from known costs."""
    sizes = [(3, 7e5, 4e5, 4.6e5), (5, 1.7e6, 1.7e6, 7e5), (6, 2.6e6, 5.7e6, 8e5), (10, 8.7e6, 1.3e7, 1.4e6)]
    rows = [{"agents": m, "batch": 256, "row_agents": k, "gflop": g, "state_values": v,
             "seconds": LEARNER[0] + LEARNER[1] * g + LEARNER[2] * v}
            for m, k, g, v in ((3, 1, 0.04, 1.7e5), (3, 3, 0.12, 1.7e5), (5, 1, 0.07, 4.4e5), (10, 10, 6.9, 2.2e6))]
    alone = {p["agents"]: p["seconds"] for p in rows if p["row_agents"] == 1}  # M = 3 and 5
    puts, gathers = [], []
    for m, states, batch, returned in sizes:
        put = [PUT + states / PUT_RATE, PUT + batch / PUT_RATE]
        puts += [{"agents": m, "batch": 256, "bytes": b, "seconds": c, "daemons": PUT_DAEMONS * c}
                 for b, c in zip((states, batch), put)]
        for n in (2, 6):
            task = TASK + (states + batch + returned) / TASK_RATE
            raylet = RAYLET + (states + batch + returned) / RAYLET_RATE
            gathers.append({"agents": m, "batch": 256, "tasks": n, "received": states + batch, "returned": returned,
                            "driver": (1 - PUT_DAEMONS) * sum(put) + n * (SUBMIT + returned / SUBMIT_RATE),
                            "daemons": PUT_DAEMONS * sum(put) + n * raylet, "actors": n * task,
                            "rows": n * alone.get(m, 0.01) / (CROWDED if n == 6 else 0.95),
                            "submit": n * THREAD[0], "reply": n * THREAD[1]})
    controller = [{"agents": m, "batch": 256, "gflop": g, "seconds": CONTROLLER[0] * m + CONTROLLER[1] * g}
                  for m, g in ((3, 0.12), (5, 0.35), (10, 6.9))]
    sample = [{"agents": m, "batch": b, "seconds": SAMPLE[0] + SAMPLE[1] * m * b} for m, b in ((3, 256), (5, 1024))]
    send = [{"agents": m, "batch": b, "state_values": v, "seconds": SEND[0] + SEND[1] * v + SEND[2] * m * b}
            for m, v, b in ((3, 1.7e5, 256), (5, 4.4e5, 256), (3, 1.7e5, 1024), (5, 4.4e5, 1024))]
    split = [{"agents": m, "batch": 256, "before": b} for m, b in ((3, 0.46), (5, 0.52))]  # the actor's share before
    delivered = [{"rows": r, "values": v, "seconds": DELIVERED[0] + DELIVERED[1] * r * v}
                 for r, v in ((3, 57625), (5, 87833), (6, 120000))]
    return {"puts": puts, "gathers": gathers, "ack": ACK, "rows": rows, "idle": IDLE, "driver": DRIVER,
            "alone": ALONE, "controller": controller, "sample": sample, "send": send, "split": split,
            "delivered": delivered}


@pytest.fixture
def profile_file(tmp_path):
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump()))
    return path


def test_fit_profile_recovers_the_ray_section():
    profile, report = fit_profile(*synthetic_points(), ray=ray_points())
    ray = profile.ray
    assert ray.put.seconds(3e6) == pytest.approx(PUT + 3e6 / PUT_RATE, rel=1e-5)
    assert ray.submit.seconds(7e5) == pytest.approx(SUBMIT + 7e5 / SUBMIT_RATE, rel=1e-5)
    assert ray.task.seconds(3e6) == pytest.approx(TASK + 3e6 / TASK_RATE, rel=1e-5)
    assert ray.raylet.seconds(3e6) == pytest.approx(RAYLET + 3e6 / RAYLET_RATE, rel=1e-5)
    assert ray.ack == ACK
    assert (ray.thread.submit, ray.thread.reply) == pytest.approx(THREAD)
    assert ray.send.seconds(3e5, 4, 512) == pytest.approx(SEND[0] + SEND[1] * 3e5 + SEND[2] * 4 * 512, rel=1e-5)
    assert ray.crowded == pytest.approx(CROWDED)
    assert ray.idle.model_dump() == IDLE and (ray.driver, ray.alone) == (DRIVER, ALONE)
    assert ray.learner.seconds(0.5, 1e6) == pytest.approx(LEARNER[0] + LEARNER[1] * 0.5 + LEARNER[2] * 1e6, rel=1e-5)
    assert ray.controller.seconds(4, 2.0) == pytest.approx(4 * CONTROLLER[0] + 2.0 * CONTROLLER[1], rel=1e-5)
    assert ray.sample.seconds(4, 512) == pytest.approx(SAMPLE[0] + SAMPLE[1] * 4 * 512, rel=1e-5)
    assert ray.task_before == pytest.approx(0.49)  # the mean of the measured sizes' shares
    assert (ray.delivered.per_decode, ray.delivered.per_value) == pytest.approx(DELIVERED, rel=1e-5)
    assert any(line.startswith("ray learner row") for line in report)
    assert any(line.startswith("ray submit") for line in report)


def scenario(profile, network_model="ray", code="uncoded", **cost) -> Scenario:
    from simcode.config import scenario_from_dict

    return scenario_from_dict({
        "env": {"n_agents": 3}, "maddpg": {"batch_size": 64},
        "cluster": {"n_learners": 3, "network": {"model": network_model, "latency": 0.0, "bandwidth": 1e18}},
        "code": {"name": code}, "delay": {"name": "none"},
        "cost": {"model": "profile", "profile": str(profile), **cost},
        "run": {"iterations": 3, "workload": "timing"},
    })


@pytest.mark.parametrize("earlier", [False, True])
def test_an_iteration_pays_the_drivers_puts_and_submits_then_the_task_and_the_row(tmp_path, earlier):
    """Without hosts (a machine each): the controller packs and puts the arguments (send), submits the 3
    tasks one after another; the last learner's work (its raylet's before and after, its actor's CPU
    and its row) then decides when uncoded decodes. The driver's own thread submits (s a task) and
    takes each answer in (c), and Ray's threads in the driver, one message at a time, send each task
    and receive each answer (h each, the rest of the driver's CPU per task): h > s, so the third task
    leaves after s + 3h, and its answer needs h more, then c. A profile calibrated earlier, without
    `thread` and `send`, has the whole of the driver's CPU per task at the submit, and two puts."""
    profile = fit_profile(*synthetic_points(), ray=ray_points())[0]
    data = profile.model_dump()
    if earlier:
        del data["ray"]["thread"], data["ray"]["send"]
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    sc, ray = scenario(path), profile.ray
    shapes = shapes_of(sc)
    states, batch, result = 4 * sum(shapes.state_sizes), sum(shapes.batch_nbytes), 8 * shapes.padded_size
    per_task = ray.submit.seconds(result)
    submit, reply = THREAD
    h = (per_task - submit - reply) / 2
    assert h > submit and h > reply  # neither the controller's thread nor Ray's ever waits for the other
    if earlier:
        driver = ray.put.seconds(states) + ray.put.seconds(batch) + 3 * per_task
    else:
        driver = ray.send.seconds(sum(shapes.state_sizes), 3, 64) + submit + 4 * h + reply
    moved = states + batch + result
    row = ray.learner.seconds(shapes.update_flops[0] / 1e9, sum(shapes.state_sizes))
    work = ray.raylet.seconds(moved) + ray.task.seconds(moved) + row
    decode = ray.delivered.per_decode + ray.delivered.per_value * 3 * shapes.padded_size  # uncoded copies 3 rows
    trace = simulate(sc).trace
    after_env = trace["t_decoded"] - trace["t_start"] - trace["env_seconds"]
    assert after_env.to_numpy() == pytest.approx(driver + work + decode, rel=1e-9)


def test_centralized_on_ray_computes_every_agents_update_on_one_thread(profile_file):
    """No messages; the controller's update is what the real driver computes on one torch thread (the
    profile's `controller` measure), after its environment steps and its draw of the minibatches."""
    sc = scenario(profile_file, "ray", "centralized")
    shapes = shapes_of(sc)
    update = 3 * CONTROLLER[0] + CONTROLLER[1] * sum(shapes.update_flops) / 1e9
    trace = simulate(sc).trace
    assert (trace["t_decoded"] - trace["t_start"] - trace["env_seconds"]).to_numpy() == pytest.approx(update, rel=1e-5)
    links = simulate(scenario(profile_file, "links", "centralized")).trace
    assert not (links["t_decoded"] - links["t_start"] - links["env_seconds"]).to_numpy() == pytest.approx(update)
    # The driver's environment steps take the measured factor longer than in a plain process (that of
    # a driver with no learners, `alone`; a coded run's driver steps after a gather, `driver`), and it
    # draws every agent's minibatch (3 agents, 64 rows) after them; off Ray the draw is not priced.
    draw = SAMPLE[0] + SAMPLE[1] * 3 * 64
    assert trace["env_seconds"].to_numpy() == pytest.approx(ALONE * links["env_seconds"].to_numpy() + draw,
                                                            rel=1e-5)
    coded = simulate(scenario(profile_file, "ray", "mds")).trace
    assert coded["env_seconds"].to_numpy()[0] == pytest.approx(DRIVER * links["env_seconds"].to_numpy()[0] + draw,
                                                                rel=1e-5)


def test_a_ray_section_without_controller_or_sample_keeps_its_old_prices(tmp_path):
    """A profile calibrated before `controller`, `sample` and `alone` were measured: centralized pays a
    learner's row of every agent, no draw, and the steps of a driver that gathers."""
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    data = profile.model_dump()
    del data["ray"]["controller"], data["ray"]["sample"], data["ray"]["alone"]
    path = tmp_path / "earlier.yaml"
    path.write_text(yaml.safe_dump(data))
    sc = scenario(path, "ray", "centralized")
    shapes = shapes_of(sc)
    row = profile.ray.learner.seconds(sum(shapes.update_flops) / 1e9, sum(shapes.state_sizes))
    trace = simulate(sc).trace
    assert (trace["t_decoded"] - trace["t_start"] - trace["env_seconds"]).to_numpy() == pytest.approx(row, rel=1e-9)
    links = simulate(scenario(path, "links", "centralized")).trace
    assert trace["env_seconds"].to_numpy() == pytest.approx(DRIVER * links["env_seconds"].to_numpy(), rel=1e-12)


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


def _learner_on_one_core(runs_to_end: bool):
    """A learner alone on a one-core host, fed by hand: -> (env, host, learner, [(row, answered at)])."""
    from types import SimpleNamespace

    import simpy

    from simcode.sim.hosts import SharedCores
    from simcode.sim.learner import Learner

    env = simpy.Environment()
    host = SharedCores(env, 1)
    answers = []
    network = SimpleNamespace(send=lambda _sender, deliver, _nbytes: answers.append((deliver.args[0].row, env.now)))
    cluster = SimpleNamespace(env=env, learner_hosts=[host], wait_for_ack=False, cancel=True, iteration=0,
                              runs_to_end=runs_to_end, network=network, take_in=lambda *a: None,
                              result_nbytes=8, store=None, task_overhead=0.0, task_after=0.0)
    return env, host, Learner(cluster, 0), answers


@pytest.mark.parametrize("runs_to_end, second_answer", [(False, 1.5), (True, 2.0)])
def test_a_cancelled_computation_on_ray_runs_to_its_end_and_the_next_task_waits(runs_to_end, second_answer):
    from simcode.sim.protocol import Task

    env, host, learner, answers = _learner_on_one_core(runs_to_end)
    learner.inbox.put(Task(iteration=0, row=0, busy=1.0, compute=1.0))

    def controller():
        yield env.timeout(0.5)
        learner.process.interrupt()  # the iteration decoded without this learner
        learner.cluster.iteration = 1
        learner.inbox.put(Task(iteration=1, row=1, busy=1.0, compute=1.0))
        yield env.timeout(0.1)
        assert len(host.left) == 1  # one computation on the core: the old one, or the new one alone
    env.process(controller())
    env.run(until=5)
    assert answers == [(1, pytest.approx(second_answer))]  # the cancelled task never answers


def test_a_profile_with_an_earlier_ray_section_is_one_clear_line(tmp_path):
    from simcode.sim.profile import load_profile

    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    data = profile.model_dump()
    data["ray"] = {"per_message": 3e-4, "fetch": {"per_message": 1e-3, "bytes_per_second": 1e9}}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BadInput, match="earlier simcode.*calibrate --ray"):
        load_profile(path)


@pytest.mark.parametrize("jobs, crowded, busy, done_at", [
    (2, 0.8, 0.0, 1.0), (3, 1.0, 0.0, 1.5), (3, 0.8, 0.0, 1.5 / 0.8),  # crowded only with more jobs than cores
    (1, 1.0, 0.4, 1.0), (2, 1.0, 0.4, 2 / 1.6), (3, 0.8, 0.4, 3 / 1.6 / 0.8),  # busy: what Ray's threads keep
])
def test_a_host_works_at_its_measured_speed(jobs, crowded, busy, done_at):
    """Processor sharing of 2 cores, less Ray's idle threads' share; crowded when jobs outnumber cores."""
    import simpy

    from simcode.sim.hosts import SharedCores

    env = simpy.Environment()
    host = SharedCores(env, 2, crowded, busy)
    done = [host.compute(1.0) for _ in range(jobs)]
    env.run(until=env.all_of(done))
    assert env.now == pytest.approx(done_at)


@pytest.mark.parametrize("measured, done_at", [
    (1.0, [1.5, 1.7, 1.7]),  # 2/3 of a core each, the plain ones crowded to 0.8 of it; then a core each
    (0.5, [0.75 + 0.5 / (0.8 * 2 / 3), 0.75 + 0.5 / (0.8 * 2 / 3) + 0.1, 0.75 + 0.5 / (0.8 * 2 / 3) + 0.1]),
])
def test_work_measured_amid_a_crowd_is_not_slowed_by_it_again(measured, done_at):
    """Three jobs of 1 s on 2 cores (crowded 0.8): the first `measured` seconds of job 0 were measured
    amid such a crowd (Ray's messages), so they advance at the plain share; the rest is crowded."""
    import simpy

    from simcode.sim.hosts import SharedCores

    env = simpy.Environment()
    host = SharedCores(env, 2, 0.8)
    done = [host.compute(1.0, measured_crowded=measured), host.compute(1.0), host.compute(1.0)]
    ended = {}
    for n, event in enumerate(done):
        event.callbacks.append(lambda _e, n=n: ended.setdefault(n, env.now))
    env.run(until=env.all_of(done))
    assert [ended[n] for n in range(3)] == pytest.approx(done_at)


def test_ray_scenarios_use_the_profiles_crowded_speed_and_idle_cpu_on_their_hosts(profile_file):
    from simcode.config import HostConfig, scenario_from_dict
    from simcode.sim.cost import make_cost
    from simcode.sim.workload import shapes_of as shapes

    sc = scenario(profile_file)
    flops = shapes(sc).update_flops
    cost = make_cost(sc, flops, flops)
    assert cost.crowded == pytest.approx(CROWDED)
    host = HostConfig(cores=2, learners=[0, 1, 2], controller=True)
    assert cost.background.of(host) == pytest.approx(IDLE["daemons"] + 3 * IDLE["learner"] + IDLE["controller"])
    links = scenario_from_dict({**sc.to_dict(), "cluster": {**sc.to_dict()["cluster"], "network": {"model": "links"}}})
    assert make_cost(links, flops, flops).crowded == 1.0 and make_cost(links, flops, flops).background.of(host) == 0


def test_real_runs_wait_for_a_quiet_machine_before_their_clock_starts(monkeypatch):
    """ray_pool.settle: busy windows (a fresh Ray starting) are waited out; a quiet one ends the wait."""
    import os
    import time
    from collections import namedtuple

    import psutil

    from simcode.sim.ray_pool import settle

    Times = namedtuple("Times", "user idle iowait guest guest_nice")
    clock = {"now": 0.0, "busy": 0.0}
    cores_busy = iter([0.6, 0.5, 0.1])  # of 2 cores, in each window: 30%, 25%, then 5% busy

    def sleep(seconds):
        clock["now"] += seconds
        clock["busy"] += next(cores_busy) * seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(psutil, "cpu_times", lambda: Times(clock["busy"], 100.0, 1.0, 0.0, 0.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert settle(quiet=0.9, window=0.2) == pytest.approx(0.6)  # two busy windows, then a quiet one


def test_the_raylet_serves_one_learners_request_at_a_time():
    """Two learners on a 2-core host: their rows run side by side, their raylet work one after the other."""
    from types import SimpleNamespace

    import simpy

    from simcode.sim.hosts import SharedCores
    from simcode.sim.learner import Learner
    from simcode.sim.protocol import Task

    env = simpy.Environment()
    host = SharedCores(env, 2)
    answers = []
    network = SimpleNamespace(send=lambda _sender, deliver, _nbytes: answers.append((deliver.args[0].row, env.now)))
    cluster = SimpleNamespace(env=env, learner_hosts=[host, host], wait_for_ack=False, cancel=True, iteration=0,
                              runs_to_end=True, network=network, take_in=lambda *a: None, result_nbytes=8,
                              store=(0.1, 0.2), task_overhead=0.0, task_after=0.0)
    learners = [Learner(cluster, i) for i in range(2)]
    for i, learner in enumerate(learners):
        learner.inbox.put(Task(iteration=0, row=i, busy=1.0, compute=1.0))
    env.run(until=5)
    # fetches at 0-0.1 and 0.1-0.2; rows 0.1-1.1 and 0.2-1.2 (2 cores); seals 1.1-1.3 and 1.3-1.5
    assert answers == [(0, pytest.approx(1.3)), (1, pytest.approx(1.5))]


def test_a_learner_of_its_own_cancelled_while_its_raylet_serves_it_takes_the_next_task():
    from types import SimpleNamespace

    import simpy

    from simcode.sim.learner import Learner
    from simcode.sim.protocol import Task

    env = simpy.Environment()
    answers = []
    network = SimpleNamespace(send=lambda _sender, deliver, _nbytes: answers.append((deliver.args[0].row, env.now)))
    cluster = SimpleNamespace(env=env, learner_hosts=[None], wait_for_ack=False, cancel=True, iteration=0,
                              runs_to_end=True, network=network, take_in=lambda *a: None, result_nbytes=8,
                              store=(0.5, 0.1), task_overhead=0.0, task_after=0.0)
    learner = Learner(cluster, 0)
    learner.inbox.put(Task(iteration=0, row=0, busy=1.0, compute=1.0))

    def controller():
        yield env.timeout(0.2)  # during the raylet's fetch: no computation has begun
        learner.process.interrupt()
        cluster.iteration = 1
        learner.inbox.put(Task(iteration=1, row=1, busy=1.0, compute=1.0))
    env.process(controller())
    env.run(until=5)
    assert answers == [(1, pytest.approx(0.2 + 0.5 + 1.0 + 0.1))]


def test_the_controllers_update_is_timed_between_its_environment_steps_as_a_real_driver(monkeypatch):
    """calibrate --ray's controller measure times each update in the driver's loop (steps, draw, update,
    install), not the same update over and over on warm caches."""
    from simcode.marl.trainer import Trainer
    from simcode.sim import calibrate_ray_host

    calls = []
    for name in ("collect", "sample", "compute_updates", "install"):
        method = getattr(Trainer, name)
        def spy(self, *args, _method=method, _name=name, **kwargs):
            calls.append(_name)
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(Trainer, name, spy)
    monkeypatch.setattr(calibrate_ray_host, "RAY_POINTS", [(3, 32)])
    monkeypatch.setattr(calibrate_ray_host, "_trainer", lambda m, rows: _small_trainer(m, rows))
    [point] = calibrate_ray_host.measure_controller(repeats=2)
    assert point["agents"] == 3 and point["batch"] == 32 and point["seconds"] > 0
    assert calls[-32:] == ["collect", "sample", "compute_updates", "install"] * 8  # 4 * repeats iterations


def _small_trainer(m: int, rows: int):
    from simcode.marl.trainer import Trainer

    trainer = Trainer(Scenario.model_validate({
        "env": {"scenario": "simple_spread", "n_agents": m, "max_cycles": 25},
        "maddpg": {"batch_size": rows, "learning_starts": 64, "steps_per_iteration": 10}}))
    trainer.warmup()
    return trainer


def _host_run(wake: float, bursts: list[float], gap: float = 0.0) -> tuple[list[float], float]:
    """Two 2-second jobs with no owner from t = 0 on a 2-core host, beside one process computing
    `bursts` one after another (`gap` seconds asleep between them): -> (when each burst ended, when the
    long jobs ended)."""
    import simpy

    from simcode.sim.hosts import SharedCores

    env = simpy.Environment()
    host = SharedCores(env, 2, wake=wake)
    long_jobs = [host.compute(2.0), host.compute(2.0)]
    ended = []

    def process():
        for i, seconds in enumerate(bursts):
            if i and gap:
                yield env.timeout(gap)
            yield host.compute(seconds, owner="driver")
            ended.append(env.now)

    env.process(process())
    env.run(until=env.all_of(long_jobs))
    return ended, env.now


@pytest.mark.parametrize("wake, bursts, gap, ended, long_end", [
    # No slice: three jobs share two cores (2/3 each) until the short one is done.
    (0.0, [0.4], 0.0, [0.6], 2.2),
    # Woken, it runs on a core of its own for its slice; the long jobs share the other core.
    (0.5, [0.4], 0.0, [0.4], 2.2),
    # Past its slice (0.5 at full speed, then 0.5 at 2/3), it shares as the others.
    (0.5, [1.0], 0.0, [1.25], 2.5),
    # Back to back, two computations are one burst: the second has what the first left of the slice.
    (0.5, [0.3, 0.3], 0.0, [0.3, 0.65], 2.3),
    # Asleep in between, it wakes with a whole slice again.
    (0.5, [0.3, 0.3], 0.1, [0.3, 0.7], 2.3),
])
def test_a_process_that_wakes_runs_its_slice_ahead_of_the_sharing(wake, bursts, gap, ended, long_end):
    assert _host_run(wake, bursts, gap) == (pytest.approx(ended), pytest.approx(long_end))


@pytest.mark.parametrize("wake, probe", [(None, None), (0.0015, 0.012)])
def test_the_measured_wake_slice_and_speed_probe_reach_the_runs_and_an_earlier_profile_has_neither(
        tmp_path, wake, probe):
    from simcode.sim.calibrate_ray_host import speed_columns
    from simcode.sim.cost import make_cost

    points = {**ray_points(), **({"wake": wake, "probe": probe} if wake is not None else {})}
    profile, _ = fit_profile(*synthetic_points(), ray=points)
    assert (profile.ray.wake, profile.ray.probe) == (wake, probe)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump()))
    sc = scenario(path)
    flops = shapes_of(sc).update_flops
    assert make_cost(sc, flops, flops).wake == (wake or 0.0)
    assert make_cost(scenario(path, "links"), flops, flops).wake == 0.0  # the slice is Ray's hosts' alone
    # A real run's probe of 0.018 s against the profile's: its machine_speed (none without a profile probe).
    speed = speed_columns(sc, 0.018)
    assert speed["machine_probe_seconds"] == 0.018
    assert speed["machine_speed"] == (pytest.approx(0.018 / probe) if probe else None)


def test_the_speed_probe_is_the_mean_of_its_timings_without_the_bursts(monkeypatch):
    from types import SimpleNamespace

    from simcode.sim import calibrate, calibrate_ray_host

    # The clock calibrate.quiet_seconds reads: each timed collection starts a second after the last.
    timings = [0.04, 0.01, 0.03, 0.02, 0.5]  # 0.5: a burst, over twice the median 0.03
    clock = iter([t for k, took in enumerate(timings) for t in (k, k + took)])
    monkeypatch.setattr(calibrate, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    monkeypatch.setattr(calibrate_ray_host, "_trainer", lambda m, rows: _small_trainer(m, rows))
    assert calibrate_ray_host.speed_probe(repeats=5) == pytest.approx(0.025)


def test_a_row_of_a_measured_problem_is_priced_from_its_measured_rows_and_the_rest_by_the_fit():
    from simcode.sim.profile import LearnerCost

    fit = {"intercept": 4e-3, "per_gflop": 2e-2, "per_state_value": 7e-9}
    # M = 5, minibatch 256: one agent's row took 8 ms, every agent's 13 ms (the fit says 7.4 and 11.6).
    measured = [{"agents": 5, "batch": 256, "state_values": 439165, "gflop": g, "seconds": s}
                for g, s in ((0.0655, 8e-3), (0.3277, 13e-3))]
    learner = LearnerCost(**fit, points=measured)
    three_agents = 0.0655 * 3
    assert learner.row_seconds(5, 256, three_agents, 439165) == pytest.approx(8e-3 + 5e-3 * (3 * 0.0655 - 0.0655)
                                                                              / (0.3277 - 0.0655))
    assert learner.row_seconds(5, 256, 0.3277, 439165) == pytest.approx(13e-3)
    for other in [(5, 1024, three_agents, 439165), (3, 256, 0.04, 172875), (5, 256, three_agents, 1000)]:
        assert learner.row_seconds(*other) == pytest.approx(learner.seconds(other[2], other[3]))
    assert LearnerCost(**fit).row_seconds(5, 256, 0.3277, 439165) == pytest.approx(learner.seconds(0.3277, 439165))


def test_the_controllers_update_of_a_measured_problem_is_priced_as_measured_and_the_rest_by_the_fit():
    from simcode.sim.profile import ControllerCost

    fit = {"per_agent": 1.2e-3, "per_gflop": 1.3e-2}
    controller = ControllerCost(**fit, points=[{"agents": 5, "batch": 256, "gflop": 0.3277, "seconds": 10.1e-3}])
    assert controller.seconds(5, 0.3277, 256) == pytest.approx(10.1e-3)
    for other in [(5, 0.3277, 1024), (5, 0.5, 256), (3, 0.3277, 256)]:
        assert controller.seconds(*other) == pytest.approx(1.2e-3 * other[0] + 1.3e-2 * other[1])


def test_the_cpu_clock_times_every_call_and_takes_the_rows_off_the_actors():
    """CpuClock.per_call: CPU seconds per call of the work by process group (every call made, one untimed
    first); with parts, what the work timed itself is a group of its own and its rows leave the actors'."""
    from simcode.sim.calibrate_ray import CpuClock

    class Clock(CpuClock):
        def __init__(self):
            self.cpu = {"driver": 0.0, "actors": 0.0, "daemons": 0.0}
            self.calls = 0

        def read(self):
            return {pid: (group, self.cpu[group]) for pid, group in enumerate(self.cpu)}

    clock = Clock()

    def work():
        clock.calls += 1
        for group, seconds in (("driver", 1e-3), ("actors", 5e-3), ("daemons", 2e-3)):
            clock.cpu[group] += seconds
        return {"rows": 4e-3, "submit": 3e-4}

    parts = clock.per_call(work, repeats=10, parts=True)
    assert clock.calls == 1 + 5 * 10
    assert parts == pytest.approx({"driver": 1e-3, "actors": 1e-3, "daemons": 2e-3, "rows": 4e-3, "submit": 3e-4})
    assert clock.per_call(work, repeats=10) == pytest.approx({"driver": 1e-3, "actors": 5e-3, "daemons": 2e-3})
    assert clock.calls == 2 * (1 + 5 * 10)


def test_a_driver_alones_steps_are_those_measure_controller_timed_at_the_plain_steps_sizes():
    """`alone` sets the steps of measure_controller's loop against env_steps_seconds', which sums
    M = 3 and 5 on minibatches of 256: the same problems, and no others, are summed."""
    from simcode.sim.calibrate_ray import alone_steps

    points = [{"agents": m, "batch": b, "steps": s} for m, b, s in ((3, 256, 0.012), (5, 256, 0.014),
                                                                   (6, 512, 0.02), (10, 256, 0.03))]
    assert alone_steps(points) == pytest.approx(0.026)


def test_the_seeds_cancel_wait_on_ray_acks_after_the_decode_and_takes_every_task_back(profile_file):
    """mds, 3 agents on 4 learners (machines of their own), learner 3 always 5 s late: the rows of 0-2 decode;
    then, as the real backend does, the controller's thread acks the 4 learners one after another (a each),
    learner 3's wait ends at the fourth ack and its task comes back empty: its actor's part after the row,
    then Ray's threads in the driver take it in (h); the controller's thread takes in the one task it had
    not taken (c). The next iteration begins then."""
    from simcode.config import scenario_from_dict
    from simcode.sim.runner import build

    sc = scenario_from_dict({
        "env": {"n_agents": 3}, "maddpg": {"batch_size": 64},
        "cluster": {"n_learners": 4, "on_decode": "cancel_wait",
                    "network": {"model": "ray", "latency": 0.0, "bandwidth": 1e18}},
        "code": {"name": "mds"}, "delay": {"name": "persistent", "slow": [3], "delay": 5.0},
        "cost": {"model": "profile", "profile": str(profile_file)},
        "run": {"iterations": 3, "workload": "timing"},
    })
    cluster = build(sc)
    a, c, h = cluster.driver.ack, cluster.driver.reply, cluster.driver_threads.seconds
    assert cluster.task_after > 0 and a > 0 and c > 0 and h > 0
    trace = simulate(sc).trace
    after_decode = (trace["t_end"] - trace["t_decoded"]).to_numpy()
    assert after_decode == pytest.approx(4 * a + cluster.task_after + h + c, rel=1e-9)
    assert (trace["duration"] < 1.0).all()  # learner 3's 5 s cut short every iteration


def test_calibrate_reports_each_problems_crowd_and_crowded_is_their_mean():
    """A row's speed in the largest gather against quiet, per measured problem (calibrate prints them: they
    spread 0.76 to 0.93 over problems and calibrations here); `crowded` is their mean."""
    from simcode.sim.calibrate_ray import crowd_speeds, crowding_in_gathers

    quiet = {(3, 256): 5e-3, (5, 256): 8e-3, (3, 1024): 1e-2}
    speed = {(3, 256): 0.8, (5, 256): 0.7, (3, 1024): 0.9}
    points = {"rows": [{"agents": m, "batch": b, "row_agents": 1, "seconds": s} for (m, b), s in quiet.items()],
              "gathers": [{"agents": m, "batch": b, "tasks": n, "rows": n * s / (speed[m, b] if n == 6 else 1.0)}
                          for (m, b), s in quiet.items() for n in (2, 6)]}
    assert crowd_speeds(points) == pytest.approx(speed)
    assert crowding_in_gathers(points) == pytest.approx(0.8)
