"""`simcode calibrate --ray`: measure what the real backend's Ray transport costs on this machine.

The profile's `ray` section (simcode.sim.profile.RayCost) prices, for scenarios whose network model
is `ray` (simcode.sim.cost.RayTransportCost):
- per_message: half the round trip of a no-op task on an actor (submission, scheduling, the reply);
- put: the driver's ray.put of the states (a list of float32 arrays) and of the minibatches (torch
  tensors), as `RealCluster.gather` puts them, against their bytes;
- fetch: what an actor task whose arguments are those two objects takes more than a no-op task: the
  actor fetches and deserialises them before it starts;
- learner: `LearnerActor.compute` itself on one torch thread (as the actors run it), for a row of one
  agent and a row of every agent at several M and minibatch sizes.
Each point is calibrate's lower quartile of repeats (simcode.sim.calibrate.quiet_seconds). A local Ray
of its own is started (and stopped) for the measurements.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from simcode.sim.calibrate import quiet_seconds

# (M, minibatch rows) of the measured points: the sizes sim_vs_real runs and larger ones.
RAY_POINTS = [(3, 256), (5, 256), (6, 512), (10, 256), (10, 1024)]


class _Probe:
    """An actor that does nothing with what it receives (wrapped by ray.remote)."""

    def noop(self) -> None:
        return None

    def receive(self, states, batch) -> int:
        return len(states) + len(batch)  # Ray fetched and deserialised both before the call


def _problem(m: int, batch: int):
    """(states and minibatches as the driver puts them, the MaddpgShapes) of simple_spread."""
    from simcode.marl.bench import spread_update
    from simcode.marl.state import Layout
    from simcode.sim.real import batch_arrays

    _, shapes, _, state, data = spread_update(m, batch)
    return Layout(shapes).pack(state, list(range(m))), batch_arrays(data), shapes


def nbytes_of(states: list[np.ndarray], batch: dict) -> tuple[int, int]:
    arrays = [value for value in batch.values() if isinstance(value, np.ndarray)]
    return sum(s.nbytes for s in states), sum(a.nbytes for a in arrays)


def measure_transport(ray, repeats: int) -> tuple[float, list[dict], list[dict]]:
    """(no-op round trip seconds, put points, fetch points) on one probe actor."""
    probe = ray.remote(num_cpus=1)(_Probe).remote()
    ray.get(probe.noop.remote())  # the actor process is up
    round_trip = quiet_seconds(lambda: ray.get(probe.noop.remote()), 20 * repeats)
    puts, fetches = [], []
    for m, rows in RAY_POINTS:
        states, batch, _ = _problem(m, rows)
        state_bytes, batch_bytes = nbytes_of(states, batch)
        for payload, nbytes in ((states, state_bytes), (batch, batch_bytes)):
            puts.append({"agents": m, "batch": rows, "bytes": nbytes,
                         "seconds": quiet_seconds(lambda payload=payload: ray.put(payload), 5 * repeats)})
        refs = ray.put(states), ray.put(batch)
        seconds = quiet_seconds(lambda refs=refs: ray.get(probe.receive.remote(*refs)), 5 * repeats)
        fetches.append({"agents": m, "batch": rows, "bytes": state_bytes + batch_bytes,
                        "seconds": max(seconds - round_trip, 1e-6)})  # positive: fits weigh by 1/seconds
    ray.kill(probe)
    return round_trip, puts, fetches


def measure_learner_rows(repeats: int) -> list[dict]:
    """LearnerActor.compute on one torch thread: a one-agent row and an every-agent row per size."""
    import torch

    from simcode.config import Scenario
    from simcode.sim.real import LearnerActor

    threads = torch.get_num_threads()
    points = []
    try:
        learner = LearnerActor()  # sets one torch thread, as in the actors
        for m, rows in RAY_POINTS:
            states, batch, shapes = _problem(m, rows)
            matrix = np.vstack([np.eye(1, m), np.ones((1, m))])  # row 0: agent 0 alone; row 1: every agent
            scenario = Scenario.model_validate({"env": {"scenario": "simple_spread", "n_agents": m},
                                                "maddpg": {"batch_size": rows}})
            learner.configure(scenario.to_dict(), 0, matrix, run=0)
            for row, agents in enumerate(([0], list(range(m)))):
                seconds = quiet_seconds(lambda row=row, s=states, b=batch: learner.compute(row, s, b), repeats)
                points.append({"agents": m, "batch": rows, "row_agents": len(agents),
                               "gflop": sum(shapes.update_flops[j] for j in agents) / 1e9,
                               "state_values": sum(shapes.state_sizes), "seconds": seconds})
    finally:
        torch.set_num_threads(threads)
    return points


@contextlib.contextmanager
def local_ray():
    """A local Ray of two CPUs for the measurements, stopped after."""
    try:
        import ray
    except ImportError:
        from simcode.errors import BadInput

        raise BadInput("--ray", "ray is not installed; allowed: pip install 'simcode[ray]', or calibrate "
                                "without --ray") from None
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def fit_ray(round_trip: float, puts: list[dict], fetches: list[dict], rows: list[dict], fit) -> dict:
    """The profile's ray section from the measurements; `fit(name, points, features, names, relative)`
    is calibrate's fit-and-report (simcode.sim.calibrate.fit_profile)."""
    def transfer(name, points):
        # Relative: a call's fixed cost (about a millisecond) dominates the megabytes of one iteration,
        # and an absolute fit would follow the largest, page-faulting point alone.
        line = fit(name, points, lambda p: (1.0, p["bytes"]), ("per_message", "per_byte"), True)
        return {"per_message": line["per_message"], "bytes_per_second": 1.0 / max(line["per_byte"], 1e-15)}

    learner = fit("ray learner row", rows, lambda p: (1.0, p["gflop"], p["state_values"]),
                  ("intercept", "per_gflop", "per_state_value"), True)
    return {"per_message": round_trip / 2, "put": transfer("ray put", puts),
            "fetch": transfer("ray fetch", fetches), "learner": learner}


def measure_ray(repeats: int) -> tuple[float, list[dict], list[dict], list[dict]]:
    """Every measurement of the ray section: (round trip, puts, fetches, learner rows)."""
    rows = measure_learner_rows(repeats)
    with local_ray() as ray:
        round_trip, puts, fetches = measure_transport(ray, repeats)
    return round_trip, puts, fetches, rows
