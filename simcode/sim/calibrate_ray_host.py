"""`simcode calibrate --ray`, the computations beside Ray's messages (simcode.sim.calibrate_ray has the
messages): a learner actor's row on one torch thread, the controller's own update of every agent on
one thread between its environment steps (what a centralized real run computes), a woken process's
slice, a speed probe, Ray's idle CPU, and the controller's environment steps and minibatch
sampling as a real run's driver does them, right after a gather of real rows (the actors'
computations have just left the caches cold and Ray's threads in the driver are still tidying up: on
this machine that makes them about 10% slower than alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import partial

import numpy as np

from simcode.sim.calibrate import quiet_seconds, typical_seconds
from simcode.sim.calibrate_ray import RAY_POINTS, CpuClock, _problem, gather_once, start_probes
from simcode.sim.ray_pool import put_arguments, settle

# (M, minibatch rows) of the sampling measure: the sizes sim_vs_real runs and a larger minibatch.
SAMPLE_POINTS = [(3, 256), (5, 256), (3, 1024), (5, 1024)]


def configured_learner(m: int, rows: int, matrix: np.ndarray):
    """A LearnerActor (not an actor: its body, here) set up for simple_spread with M = m, minibatches of
    `rows`, and the coding matrix `matrix`; it sets one torch and one BLAS thread, as in the actors."""
    from simcode.config import Scenario
    from simcode.sim.real import LearnerActor

    learner = LearnerActor()
    scenario = Scenario.model_validate({"env": {"scenario": "simple_spread", "n_agents": m},
                                        "maddpg": {"batch_size": rows}})
    learner.configure(scenario.to_dict(), 0, matrix, run=0)
    return learner


def measure_learner_rows(repeats: int) -> list[dict]:
    """LearnerActor.compute on one torch thread and one BLAS thread (real.one_core, as in the actors): a
    one-agent row and an every-agent row per size."""
    from simcode.sim.real import one_core

    points = []
    with one_core():
        for m, rows in RAY_POINTS:
            states, batch, shapes = _problem(m, rows)
            # row 0: agent 0 alone; row 1: every agent
            learner = configured_learner(m, rows, np.vstack([np.eye(1, m), np.ones((1, m))]))
            for row, agents in enumerate(([0], list(range(m)))):
                seconds = quiet_seconds(lambda row=row, s=states, b=batch, lr=learner: lr.compute(row, s, b), repeats)
                points.append({"agents": m, "batch": rows, "row_agents": len(agents),
                               "gflop": sum(shapes.update_flops[j] for j in agents) / 1e9,
                               "state_values": sum(shapes.state_sizes), "seconds": seconds})
    return points


def measure_controller(repeats: int) -> list[dict]:
    """The controller's update of every agent as a centralized real run's driver computes it, iteration
    after iteration: step the environment, draw the minibatch, update on one torch thread
    (Trainer.compute_updates, under real.one_core as a real run), install the new states. Called in a
    Ray driver, as a real run's. typical_seconds of `4 * repeats` updates per point: between two
    updates the steps and the draw have left the networks' weights and the allocator cold, which makes
    an update here 0.3 to 0.7 ms slower than the same update repeated back to back (measured on this
    machine; a real run's centralized updates paid it). Each point's `steps` is the environment steps'
    seconds in that loop: the driver's own steps between its own updates, no gather before them."""
    from simcode.sim.real import one_core

    points = []
    with one_core():
        for m, rows in RAY_POINTS:
            trainer = _trainer(m, rows)
            seconds, steps = [], []
            for _ in range(4 * repeats):
                steps.append(_timed(trainer.collect))
                batch = trainer.sample()
                started = time.perf_counter()
                states = trainer.compute_updates(batch)
                seconds.append(time.perf_counter() - started)
                trainer.install(states)
            points.append({"agents": m, "batch": rows, "gflop": sum(trainer.shapes.update_flops) / 1e9,
                           "seconds": typical_seconds(seconds), "steps": typical_seconds(steps)})
    return points


def measure_idle(ray, probes: list, seconds: float) -> dict[str, float]:
    """Cores' worth of CPU a local Ray takes while nothing is sent: its daemons, each of the idle
    `probes` actors and the driver, in CPU seconds per second."""
    clock = CpuClock(ray.get([probe.pid.remote() for probe in probes]))
    settle()  # the actors' start-up (and the last measure's actors' exit) is over
    before = clock.read()
    time.sleep(seconds)
    used = {group: cpu / seconds for group, cpu in clock.used(before, clock.read()).items()}
    return {"daemons": used["daemons"], "learner": used["actors"] / len(probes), "controller": used["driver"]}


def _trainer(m: int, rows: int):
    """A warmed-up controller's trainer of simple_spread (M = m, minibatches of `rows`, 100 steps an iteration)."""
    from simcode.config import Scenario
    from simcode.marl.trainer import Trainer

    trainer = Trainer(Scenario.model_validate({
        "env": {"scenario": "simple_spread", "n_agents": m},
        "maddpg": {"batch_size": rows, "learning_starts": max(512, rows), "steps_per_iteration": 100}}))
    trainer.warmup()
    return trainer


def env_steps_seconds(repeats: int) -> float:
    """Seconds of 100 environment steps of cooperative navigation (M = 3 and 5, summed), as a plain
    process collects them (typical_seconds of `4 * repeats`: the mean, bursts left out)."""
    return sum(typical_seconds([_timed(trainer.collect) for _ in range(4 * repeats)])
               for trainer in (_trainer(3, 256), _trainer(5, 256)))


def speed_probe(repeats: int = 8) -> float:
    """How fast this machine runs now: seconds of 100 environment steps of cooperative navigation (M =
    3) on one thread, typical_seconds of `repeats` (about 0.3 s in all). calibrate --ray keeps the
    median of three in the profile (`ray.probe`), and each real run takes one before it starts: their
    ratio (machine_speed) says how much slower the machine ran then than when it was calibrated."""
    from simcode.sim.real import one_core

    with one_core():
        return quiet_seconds(_trainer(3, 256).collect, repeats)


def speed_columns(scenario, probe: float) -> dict[str, float]:
    """A real run's summary columns for its speed probe: machine_probe_seconds, and machine_speed (its
    probe over its cost profile's, when the scenario names a profile that has one; None otherwise)."""
    from simcode.sim.profile import load_profile

    columns = {"machine_probe_seconds": probe, "machine_speed": None}
    if scenario.cost.model == "profile" and scenario.cost.profile:
        ray = load_profile(scenario.cost.profile).ray
        if ray is not None and ray.probe:
            columns["machine_speed"] = probe / ray.probe
    return columns


def measure_driver(ray, probes: list, repeats: int) -> tuple[float, list[dict], list[dict]]:
    """(seconds of 100 environment steps, M = 3 and 5 summed; seconds of each SAMPLE_POINTS minibatch
    draw; seconds of each SAMPLE_POINTS put of the packed states and the minibatch), each measured
    right after a gather in which every probe computes a real row, as a real run's driver steps,
    samples and puts (typical_seconds of `4 * repeats`, as env_steps_seconds)."""
    steps, samples, sends = 0.0, [], []
    for m, rows in SAMPLE_POINTS:
        trainer = _trainer(m, rows)
        states, batch, shapes = _problem(m, rows)
        ray.get([probe.load.remote(m, rows) for probe in probes])
        width = max(shapes.state_sizes)
        collected, drawn, sent = [], [], []
        for _ in range(4 * repeats):
            gather_once(ray, probes, states, batch, width)
            collected.append(_timed(trainer.collect))
            seconds, drawn_batch = _timed_value(trainer.sample)
            drawn.append(seconds)
            sent.append(_timed(partial(put_arguments, ray, trainer, drawn_batch)))
        if rows == 256:
            steps += typical_seconds(collected)
        point = {"agents": m, "batch": rows, "state_values": sum(s.size for s in trainer.states())}
        samples.append({**point, "seconds": typical_seconds(drawn)})
        sends.append({**point, "seconds": typical_seconds(sent)})
    return steps, samples, sends


# Bursts of work (seconds) tried by measure_wake, shortest first.
WAKE_BURSTS = [0.25e-3 * k for k in range(1, 13)]


def measure_wake(trials: int) -> float:
    """The scheduler's slice for a process that wakes on a host whose cores are all busy: the longest
    burst of WAKE_BURSTS that a process, woken after 20 ms asleep, finishes at full speed (its median
    wall time within 1.2 times its CPU time) beside three spinning processes a core. On this machine
    bursts up to 1.25 ms ran at once, and 1.5 ms took 4 to 6 ms (the rest of the burst queues behind
    the spinners' slices)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        time.sleep(0.3)  # the spinners are up
        slice_seconds = 0.0
        for burst in WAKE_BURSTS:
            walls = []
            for _ in range(trials):
                time.sleep(0.02)
                walls.append(_burst(burst))
            if float(np.median(walls)) > 1.2 * burst:
                break
            slice_seconds = burst
        return slice_seconds
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _burst(cpu: float) -> float:
    """Wall seconds to spin `cpu` seconds of this thread's CPU."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    while time.thread_time() - cpu_started < cpu:
        sum(range(200))
    return time.perf_counter() - started


def _timed_value(work) -> tuple[float, object]:
    """(wall seconds of `work()`, what it returned)."""
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def _timed(work) -> float:
    return _timed_value(work)[0]


def measure_host(ray, repeats: int) -> dict:
    """The ray section's measurements beside the messages that need a running Ray, by name: idle, and
    the busy driver's environment steps ("steps", seconds), minibatch draws ("sample") and puts of an
    iteration's arguments ("send")."""
    probes = start_probes(ray)
    idle = measure_idle(ray, probes, 0.5 * repeats)
    settle()
    steps, samples, sends = measure_driver(ray, probes, repeats)
    for probe in probes:
        ray.kill(probe)
    return {"idle": idle, "steps": steps, "sample": samples, "send": sends}
