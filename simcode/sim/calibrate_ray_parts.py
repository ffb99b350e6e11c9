"""Where a task's costs fall around its learner's row, for `simcode calibrate --ray`
(simcode.sim.calibrate_ray.measure_transport): the share of an actor's CPU per task before its method
begins (`measure_split`) and the driver's decode of rows as Ray delivers them
(`measure_delivered_decode`), each on the probe actors of simcode.sim.calibrate_ray."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simcode.sim.calibrate_ray import CpuClock


def measure_split(ray, probe, clock: CpuClock, states, batch, width: int, repeats: int) -> float:
    """Where an actor's CPU for a task falls around its row, on one quiet probe: its CPU per call of a task
    that only takes a gather's arguments (`take`: what comes before a row) and of one that only returns a
    learner's result (`give`: what comes after), each less half a call of nothing (`noop`: a task's fixed
    cost, half on each side) -> the share before (0.46 to 0.52 here, at every measured size).

    Not the raylet's: its CPU per task fell 0.27 before and 0.73 after here, but with the simulated raylet
    serving one request at a time, sealing that much after the rows queued the answers for 7 to 8 ms where
    real ones took 4 to 5 (sim_vs_real's stages): its half before, half after stays until its queue is
    understood."""
    states_ref, batch_ref = ray.put(states), ray.put(batch)
    calls = {"noop": lambda: ray.get(probe.noop.remote()),
             "take": lambda: ray.get(probe.take.remote(states_ref, batch_ref)),
             "give": lambda: ray.get(probe.give.remote(width))}
    cpu = {name: clock.per_call(call, repeats)["actors"] for name, call in calls.items()}
    before = max(cpu["take"] - cpu["noop"] / 2, 0.0)
    after = max(cpu["give"] - cpu["noop"] / 2, 0.0)
    return before / (before + after) if before + after > 0 else 0.5


def measure_delivered_decode(ray, probes: list, width: int, repeats: int) -> dict:
    """Uncoded's decode (a copy of every row) of rows as Ray delivers them to the driver, one from each probe,
    fresh every time, into one buffer, as the real backend decodes (RealCluster.iterate): -> {"rows",
    "values", "seconds"} (the mean without bursts). Here 0.26 ms for three rows of 57,625 values, where the
    same copy of rows in the driver's own memory took 0.07 to 0.12 ms."""
    from simcode.codes import make_code
    from simcode.sim.calibrate import typical_seconds

    code = make_code("uncoded", n_agents=len(probes), n_learners=len(probes), seed=0)
    seconds, out = [], None
    for _ in range(repeats + 1):  # the first one untimed
        rows = dict(enumerate(ray.get([probe.give.remote(width) for probe in probes])))
        started = time.perf_counter()
        out = code.decode(rows, out=out)
        seconds.append(time.perf_counter() - started)
    return {"rows": len(probes), "values": width, "seconds": typical_seconds(seconds[1:])}
