"""`simcode calibrate --ray`, the computations beside Ray's messages (simcode.sim.calibrate_ray has the
messages): a learner actor's row on one torch thread, the controller's own update of every agent on one
thread (what a centralized real run computes), a crowded host's speed, Ray's idle CPU, and the
controller's environment steps and minibatch sampling as a real run's driver does them, right after
a gather of real rows (the actors' computations have just left the caches cold and Ray's threads in
the driver are still tidying up: on this machine that makes them about 10% slower than alone).
"""

from __future__ import annotations

import os
import time

import numpy as np

from simcode.sim.calibrate import quiet_seconds
from simcode.sim.calibrate_ray import RAY_POINTS, CpuClock, _cpu_seconds, _problem, gather_once, start_probes
from simcode.sim.ray_pool import settle

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
    """The controller's update of every agent on one torch thread, as a centralized real run's driver
    computes it (Trainer.compute_updates: update, then pack the new states), under real.one_core as it does."""
    from simcode.marl.bench import spread_update
    from simcode.marl.state import Layout
    from simcode.sim.real import one_core

    points = []
    with one_core():
        for m, rows in RAY_POINTS:
            _, shapes, update, state, data = spread_update(m, rows)
            layout, agents = Layout(shapes), list(range(m))
            seconds = quiet_seconds(lambda u=update, s=state, d=data, a=agents, lay=layout: lay.pack(u(s, d, a), a),
                                    repeats)
            points.append({"agents": m, "batch": rows, "gflop": sum(shapes.update_flops) / 1e9, "seconds": seconds})
    return points


class _Rower:
    """A learner actor's row, computed over and over (wrapped by ray.remote): the crowded host's measure."""

    def __init__(self, m: int, rows: int):
        self.learner = configured_learner(m, rows, np.ones((1, m)))
        self.states, self.batch, _ = _problem(m, rows)

    def pid(self) -> int:
        return os.getpid()

    def rows(self, seconds: float) -> int:
        """Rows computed in `seconds` of wall time."""
        done, until = 0, time.perf_counter() + seconds
        while time.perf_counter() < until:
            self.learner.compute(0, self.states, self.batch)
            done += 1
        return done


def measure_crowding(ray, seconds: float) -> tuple[float, float]:
    """CPU seconds per row (M = 3, minibatch 256, every agent) of one actor alone, and of three actors
    a core computing at once."""
    crowd = 3 * (os.cpu_count() or 1)
    rowers = [ray.remote(num_cpus=0)(_Rower).remote(3, 256) for _ in range(crowd)]
    pids = ray.get([rower.pid.remote() for rower in rowers])
    ray.get([rower.rows.remote(0.2) for rower in rowers])  # warm
    settle()

    def cpu_per_row(k: int) -> float:
        before = [_cpu_seconds(pid) for pid in pids[:k]]
        done = sum(ray.get([rower.rows.remote(seconds) for rower in rowers[:k]]))
        return sum(_cpu_seconds(pid) - b for pid, b in zip(pids[:k], before)) / max(done, 1)

    alone, crowded = cpu_per_row(1), cpu_per_row(crowd)
    for rower in rowers:
        ray.kill(rower)
    return alone, crowded


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
    process collects them (the lower quartile of `4 * repeats`: a burst of the machine only adds)."""
    return sum(float(np.percentile([_timed(trainer.collect) for _ in range(4 * repeats)], 25))
               for trainer in (_trainer(3, 256), _trainer(5, 256)))


def measure_driver(ray, probes: list, repeats: int) -> tuple[float, list[dict]]:
    """(seconds of 100 environment steps, M = 3 and 5 summed, and seconds of each SAMPLE_POINTS
    minibatch draw), each measured right after a gather in which every probe computes a real row, as a
    real run's driver steps and samples (the lower quartile of `4 * repeats`, as env_steps_seconds)."""
    steps, samples = 0.0, []
    for m, rows in SAMPLE_POINTS:
        trainer = _trainer(m, rows)
        states, batch, shapes = _problem(m, rows)
        ray.get([probe.load.remote(m, rows) for probe in probes])
        width = max(shapes.state_sizes)
        collected, drawn = [], []
        for _ in range(4 * repeats):
            gather_once(ray, probes, states, batch, width)
            collected.append(_timed(trainer.collect))
            drawn.append(_timed(trainer.sample))
        if rows == 256:
            steps += float(np.percentile(collected, 25))
        samples.append({"agents": m, "batch": rows, "seconds": float(np.percentile(drawn, 25))})
    return steps, samples


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def measure_host(ray, repeats: int) -> dict:
    """The ray section's measurements beside the messages that need a running Ray, by name: crowding,
    idle, and the busy driver's environment steps ("steps", seconds) and minibatch draws ("sample")."""
    crowding = measure_crowding(ray, 0.5 * repeats)
    probes = start_probes(ray)
    idle = measure_idle(ray, probes, 0.5 * repeats)
    settle()
    steps, samples = measure_driver(ray, probes, repeats)
    for probe in probes:
        ray.kill(probe)
    return {"crowding": crowding, "idle": idle, "steps": steps, "sample": samples}
