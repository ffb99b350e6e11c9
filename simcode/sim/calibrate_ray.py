"""`simcode calibrate --ray`: what the real backend's Ray transport costs on this machine, in CPU.

On one machine a Ray message costs next to no wire and a lot of CPU: the driver pickles and submits
every task and handles its reply, the raylet (with its object store) serves every put, every
argument an actor reads and every result it returns, and each actor receives its task and ships its
result. With six actors on two cores that CPU is shared with the learners' own computations (it
measured 4 to 6 ms per task, three times the round trip of a no-op task on an idle Ray), so the profile
holds CPU seconds, which the simulated hosts share (simcode.sim.hosts), not delays. The profile's
`ray` section (simcode.sim.profile.RayCost) prices, for scenarios whose network model is `ray`
(simcode.sim.cost.RayTransportCost):

- put: the driver's ray.put of the states (a list of float32 arrays) and of the minibatch (numpy
  arrays), driver and raylet CPU per call and per byte: work on the controller's host;
- submit: the driver's CPU per task sent (pickle and submit the call, take its reply), per byte of
  the reply: work on the controller's host; thread: what of it the driver's own thread spends
  submitting and taking each answer in (the rest is Ray's threads in the driver process, which send
  and receive beside it); ack: the driver's CPU per acknowledgement of a late learner;
- task: the CPU one task costs its actor beside the row itself (receive the task, read its arguments
  in place, ship its result), per byte received and returned: work on the learner's host;
- raylet: the CPU one task costs the raylet of the learner's host (its object store serves the
  arguments and seals the result), per byte received and returned: work on that host, one request
  at a time (its store runs on one thread);
- learner: `LearnerActor.compute` itself on one torch thread (as the actors run it), for a row of one
  agent and a row of every agent at several M and minibatch sizes (quiet wall seconds);
- controller: the controller's update of every agent on one torch thread, what a centralized real
  run's driver computes (no unpacking, no combining), per agent and per GFLOP;
- crowded: the quiet seconds of a one-agent row over its CPU seconds in the largest gather (three
  probes a core, each computing its row as a real gather's learners do: cold caches, shared cores,
  Ray's threads between them; 0.81 to 0.89 here), the speed of work on a host with more
  computations than cores (simcode.sim.hosts);
- idle: the CPU Ray's threads take while nothing is sent (the daemons, each actor, the driver:
  about 0.02, 0.008 and 0.009 cores here), taken from the hosts' cores;
- driver: how much longer the controller's environment steps take in a Ray driver, right after a
  gather, than in a plain process (Ray's threads in the driver share its interpreter, and the rows
  just computed left the caches cold), applied to the simulated controller's environment steps;
- send: the same driver's put of an iteration's arguments as a real gather begins (every agent's
  state packed, then put; the minibatch put), per call, per state value and per agent x row, which
  the simulated controller pays before its submits (where `put` alone missed the packing);
- sample: the same driver's draw of every agent's minibatch, per call and per agent x row, which the
  simulated controller pays after its environment steps;
- task_before: the share of `task` before the row (the actor receives the task and reads its
  arguments); the rest comes after it (the actor ships its result), on a quiet actor (measure_split);
- delivered: the controller's decode of rows as Ray delivers them, per decode and per value of the rows
  it reads (measure_delivered_decode): reading results in the object store makes it several times the
  copy of rows in its own memory, which `decode` measures.

put, submit, task and raylet come from the CPU time of each process of a local Ray (schedstat) over
repeated gathers shaped as the real backend's (RealCluster.gather) on actors that each compute a
real one-agent row, whose own CPU is taken off: Ray's part as it is amid the rows. The computations
beside the messages are measured in simcode.sim.calibrate_ray_host.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from pathlib import Path

import numpy as np

from simcode.sim.ray_pool import settle

# (M, minibatch rows) of the measured points: the sizes sim_vs_real runs, MADDPG's usual minibatch of 1024 at
# the same M (a one-agent row there costs 20 to 34% more than the fit through the others said), and larger ones.
RAY_POINTS = [(3, 256), (5, 256), (3, 1024), (5, 1024), (6, 512), (10, 256), (10, 1024)]
GATHER_TASKS = (2, max(6, 3 * (os.cpu_count() or 1)))  # learners per measured gather: the largest crowds


class _Probe:
    """A learner (wrapped by ray.remote) that reads its arguments, computes a one-agent row as a learner
    actor does (LearnerActor.compute, once `load` set its problem) and answers as a learner, with the
    row's CPU seconds (its thread's) where a learner puts its compute time. Loaded, a gather is shaped
    as a real one in what the machine does too: Ray's CPU per task then includes what it costs amid
    the rows (cold caches, a busy scheduler): here 1.3 to 1.6 times what a gather of idle actors
    measures, for the actor's part and the raylet's."""

    learner = None

    def pid(self) -> int:
        return os.getpid()

    def ack(self, iteration: int, run: int) -> None:
        return None

    def load(self, m: int, rows: int) -> None:
        from simcode.sim.calibrate_ray_host import configured_learner

        self.learner = configured_learner(m, rows, np.eye(1, m))

    def work(self, index: int, width: int, states, batch):
        started = time.thread_time()
        message = self.learner.compute(0, states, batch)
        return index, 0, index, message, time.thread_time() - started, (0.0, 0.0, 0.0)

    # What a task costs around its row (measure_split): nothing; taking a task's arguments; giving a result.
    def noop(self) -> int:
        return 0

    def take(self, states, batch) -> int:
        return 0

    def give(self, width: int) -> np.ndarray:
        if getattr(self, "result", None) is None or self.result.size != width:
            self.result = np.ones(width)  # a learner's result: one padded float64 state
        return self.result


def _problem(m: int, batch: int):
    """(states and minibatches as the driver puts them, the MaddpgShapes) of simple_spread."""
    from simcode.marl.bench import spread_update
    from simcode.marl.state import Layout
    from simcode.sim.ray_pool import batch_arrays

    _, shapes, _, state, data = spread_update(m, batch)
    return Layout(shapes).pack(state, list(range(m))), batch_arrays(data), shapes


def nbytes_of(states: list[np.ndarray], batch: dict) -> tuple[int, int]:
    arrays = [value for value in batch.values() if isinstance(value, np.ndarray)]
    return sum(s.nbytes for s in states), sum(a.nbytes for a in arrays)


class CpuClock:
    """CPU seconds of the driver, of given actor processes and of the rest of Ray (its daemons: raylet,
    object store, GCS): every thread's time on a core from /proc/PID/task/*/schedstat (nanoseconds;
    psutil's user + system time counts in 10 ms ticks, too coarse for a task's milliseconds)."""

    def __init__(self, actor_pids: list[int]):
        import psutil

        self.driver = psutil.Process()
        self.actor_pids = set(actor_pids)

    def read(self) -> dict[int, tuple[str, float]]:
        """{pid: (group, CPU seconds)} of the driver and its descendants now."""
        out = {self.driver.pid: ("driver", _cpu_seconds(self.driver.pid))}
        for child in self.driver.children(recursive=True):
            out[child.pid] = ("actors" if child.pid in self.actor_pids else "daemons", _cpu_seconds(child.pid))
        return out

    @staticmethod
    def used(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds by group between two reads, over the processes in both (one that exited or
        started in between, such as an actor being killed, counts for nothing)."""
        out = {"driver": 0.0, "actors": 0.0, "daemons": 0.0}
        for pid, (group, seconds) in after.items():
            if pid in before:
                out[group] += seconds - before[pid][1]
        return out

    def per_call(self, work, repeats: int, blocks: int = 5, parts: bool = False) -> dict[str, float]:
        """CPU seconds per call of `work` by group, after one untimed call: the median over `blocks`
        blocks of the mean over `repeats` calls. The median of blocks' means, as wall-clock measures take the
        mean without bursts (calibrate.typical_seconds): a run pays the mean, and the cache misses and
        late wake-ups a CPU time counts a real run pays too (real runs' CPU audits, cpu_per_iteration,
        measured 7 to 30% more CPU than a lower quartile priced). With `parts`,
        `work` returns CPU seconds it timed itself, by name, each given as a group of its own; its rows
        (the actors' rows) are taken off the actors' group, whose figure is then Ray's part alone."""
        work()
        means = []
        for _ in range(blocks):
            before, timed = self.read(), {}
            for _ in range(repeats):
                done = work()
                for name, seconds in (done.items() if parts else ()):
                    timed[name] = timed.get(name, 0.0) + seconds
            used = {**self.used(before, self.read()), **timed}
            used["actors"] -= timed.get("rows", 0.0)
            means.append({group: seconds / repeats for group, seconds in used.items()})
        return {group: float(np.median([m[group] for m in means])) for group in means[0]}


def _cpu_seconds(pid: int) -> float:
    """Seconds on a core of every thread of process `pid` (0 for threads or a process gone meanwhile)."""
    total = 0
    for task in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(task).read_text().split()[0])
    return total / 1e9


def gather_once(ray, probes: list, states, batch, width: int) -> dict[str, float]:
    """One iteration's messages, as RealCluster.gather sends and collects them: -> CPU seconds of the
    rows the probes computed (rows), and of the driver's own thread submitting the tasks (submit) and
    taking the answers in (reply)."""
    states_ref, batch_ref = ray.put(states), ray.put(batch)
    started = time.thread_time()
    pending = [probe.work.remote(i, width, states_ref, batch_ref) for i, probe in enumerate(probes)]
    submitted = time.thread_time()
    rows = 0.0
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        rows += ray.get(done[0])[4]
    return {"rows": rows, "submit": submitted - started, "reply": time.thread_time() - submitted}


def start_probes(ray) -> list:
    """As many probe actors as the largest measured gather has learners, each on a CPU of its own."""
    return [ray.remote(num_cpus=1, max_concurrency=2)(_Probe).remote() for _ in range(max(GATHER_TASKS))]


def measure_transport(ray, repeats: int) -> tuple[list[dict], list[dict], float, list[dict], list[dict]]:
    """(put points, gather points, ack, split points, decode points): CPU seconds per put and per gather of
    each size, by process group, the driver's per acknowledgement (RealCluster.release: a call it does not
    wait for), where a task's CPU falls around its row at each size (measure_split), and the decode of rows
    Ray delivered (measure_delivered_decode)."""
    probes = start_probes(ray)
    clock = CpuClock(ray.get([probe.pid.remote() for probe in probes]))
    settle()  # a fresh Ray's prestarted workers are up
    acks = clock.per_call(lambda: ray.get([probe.ack.remote(0, 0) for probe in probes]), 4 * repeats)
    from simcode.sim.calibrate_ray_parts import measure_delivered_decode, measure_split

    puts, gathers, splits, decodes = [], [], [], []
    for m, rows in RAY_POINTS:
        states, batch, shapes = _problem(m, rows)
        state_bytes, batch_bytes = nbytes_of(states, batch)
        for payload, nbytes in ((states, state_bytes), (batch, batch_bytes)):
            cpu = clock.per_call(lambda payload=payload: ray.put(payload), 4 * repeats)
            puts.append({"agents": m, "batch": rows, "bytes": nbytes, "seconds": cpu["driver"] + cpu["daemons"],
                         "daemons": cpu["daemons"]})
        width = max(shapes.state_sizes)  # a result: one padded float64 state (sim.real.LearnerActor)
        splits.append({"agents": m, "batch": rows,
                       "before": measure_split(ray, probes[0], clock, states, batch, width, 4 * repeats)})
        decodes.append(measure_delivered_decode(ray, probes[:min(m, len(probes))], width, 4 * repeats))
        ray.get([probe.load.remote(m, rows) for probe in probes])
        for n in GATHER_TASKS:
            cpu = clock.per_call(lambda n=n, s=states, b=batch, w=width: gather_once(ray, probes[:n], s, b, w),
                                 repeats, parts=True)
            gathers.append({"agents": m, "batch": rows, "tasks": n, "put_bytes": (state_bytes, batch_bytes),
                            "received": state_bytes + batch_bytes, "returned": 8 * width, **cpu})
    for probe in probes:
        ray.kill(probe)
    return puts, gathers, acks["driver"] / len(probes), splits, decodes


@contextlib.contextmanager
def local_ray():
    """A local Ray with a CPU per probe actor for the measurements, stopped after."""
    try:
        import ray
    except ImportError:
        from simcode.errors import BadInput

        raise BadInput("--ray", "ray is not installed; allowed: pip install 'simcode[ray]', or calibrate "
                                "without --ray") from None
    ray.init(num_cpus=max(GATHER_TASKS) + 1, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def split_gathers(puts: list[dict], gathers: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(submit points, task points, raylet points) from the gathers, each a mean per task: the driver's
    CPU beyond its puts, the actors', and the daemons' beyond the puts (the puts of the same size, as
    measured)."""
    submits, tasks, raylets = [], [], []
    for g in gathers:
        same = [p for p in puts if (p["agents"], p["batch"]) == (g["agents"], g["batch"])]
        put_driver = sum(p["seconds"] - p["daemons"] for p in same)
        put_daemons = sum(p["daemons"] for p in same)
        n = g["tasks"]
        label = {"agents": g["agents"], "batch": g["batch"], "tasks": n}
        moved = g["received"] + g["returned"]
        submits.append({**label, "bytes": g["returned"], "seconds": max((g["driver"] - put_driver) / n, 1e-6)})
        tasks.append({**label, "bytes": moved, "seconds": max(g["actors"] / n, 1e-6)})
        raylets.append({**label, "bytes": moved, "seconds": max((g["daemons"] - put_daemons) / n, 1e-6)})
    return submits, tasks, raylets


def crowding_in_gathers(points: dict) -> float:
    """A row's speed in the largest measured gathers (on this 2-core machine, three rows a core) against
    alone: each measured problem's one-agent row, its quiet seconds over its CPU per task in that
    gather, the mean over the problems. A real run's rows start together after a wait, with cold caches,
    and share the caches and the cores while Ray's threads come and go: each took 13 to 24% more CPU
    than alone here, where a host crowded with rows computed back to back had cost 6 to 20% more."""
    speeds = list(crowd_speeds(points).values())
    return min(1.0, float(np.mean(speeds))) if speeds else 1.0


def crowd_speeds(points: dict) -> dict[tuple[int, int], float]:
    """Per measured problem (M, minibatch rows): its one-agent row's quiet seconds over its CPU per task in
    the largest gather."""
    quiet = {(p["agents"], p["batch"]): p["seconds"] for p in points["rows"] if p["row_agents"] == 1}
    largest = max(g["tasks"] for g in points["gathers"])
    return {(g["agents"], g["batch"]): quiet[g["agents"], g["batch"]] * g["tasks"] / g["rows"]
            for g in points["gathers"]
            if g["tasks"] == largest and (g["agents"], g["batch"]) in quiet and g["rows"] > 0}


def driver_thread(gathers: list[dict]) -> dict[str, float]:
    """The driver's own thread's CPU per task submitted and per answer taken in (the rest of its CPU per
    task is Ray's threads in its process): the mean over the measured gathers (0.2 and 0.4 ms here, of
    the 1.1 to 1.7 ms the driver spends per task in all)."""
    return {part: float(np.mean([g[part] / g["tasks"] for g in gathers])) for part in ("submit", "reply")}


def fit_ray(points: dict, fit) -> dict:
    """The profile's ray section from measure_ray's measurements; `fit(name, points, features, names,
    relative)` is calibrate's fit-and-report (simcode.sim.calibrate.fit_profile)."""
    def per_byte(name, measured):
        # Relative: a call's fixed cost dominates, and an absolute fit would follow the largest point alone.
        line = fit(name, measured, lambda p: (1.0, p["bytes"]), ("per_message", "per_byte"), True)
        return {"per_message": max(line["per_message"], 0.0), "bytes_per_second": 1.0 / max(line["per_byte"], 1e-15)}

    submits, tasks, raylets = split_gathers(points["puts"], points["gathers"])
    learner = fit("ray learner row", points["rows"], lambda p: (1.0, p["gflop"], p["state_values"]),
                  ("intercept", "per_gflop", "per_state_value"), True)
    controller = fit("ray controller update (every agent, one thread)", points["controller"],
                     lambda p: (p["agents"], p["gflop"]), ("per_agent", "per_gflop"), True)
    sample = fit("ray sample (busy driver)", points["sample"], lambda p: (1.0, p["agents"] * p["batch"]),
                 ("per_call", "per_row_agent"), True)
    send = fit("ray send (pack and put, busy driver)", points["send"],
               lambda p: (1.0, p["state_values"], p["agents"] * p["batch"]),
               ("per_call", "per_state_value", "per_row_agent"), True) if points.get("send") else None
    def kept(measured: list[dict], *keys: str) -> list[dict]:  # the measured points the profile keeps
        return [{key: p[key] for key in ("agents", "batch", *keys, "gflop", "seconds")} for p in measured]

    def nonnegative(line: dict) -> dict:  # a fitted cost per unit is never below 0
        return {k: max(v, 0.0) for k, v in line.items()}

    delivered = fit("ray decode of delivered rows", points["delivered"], lambda p: (1.0, p["rows"] * p["values"]),
                    ("per_decode", "per_value"), True) if points.get("delivered") else None
    learner["points"] = kept(points["rows"], "state_values")
    return {"controller": {**nonnegative(controller), "points": kept(points["controller"])},
            "sample": nonnegative(sample), "send": nonnegative(send) if send else None,
            "put": per_byte("ray put (cpu)", points["puts"]),
            "submit": per_byte("ray submit (driver cpu per task)", submits), "ack": points["ack"],
            "thread": driver_thread(points["gathers"]),
            "task": per_byte("ray task (actor cpu per task)", tasks),
            "raylet": per_byte("ray raylet (object store cpu per task)", raylets), "learner": learner,
            "crowded": crowding_in_gathers(points), "idle": points["idle"], "driver": max(1.0, points["driver"]),
            "alone": max(1.0, points["alone"]) if points.get("alone") else None,
            "wake": points.get("wake"), "probe": points.get("probe"),
            "delivered": nonnegative(delivered) if delivered else None,
            # the actor's share of its CPU per task before the row: the mean over the measured sizes
            "task_before": float(np.mean([p["before"] for p in points["split"]])) if points.get("split") else None}


def alone_steps(controller: list[dict]) -> float:
    """Seconds of 100 environment steps (M = 3 and 5 summed, as env_steps_seconds) in measure_controller's
    loop: a Ray driver that computes every update itself, no gather between."""
    return sum(p["steps"] for p in controller if p["agents"] in (3, 5) and p["batch"] == 256)


def measure_ray(repeats: int, passes: int = 1) -> dict:
    """Every measurement of the ray section, by name: puts, gathers, ack (simcode.sim.calibrate_ray),
    rows (the learner rows), controller (centralized's update on one thread, in a Ray driver's loop of
    iterations), idle, driver (the environment steps' seconds in a busy Ray driver over theirs in a
    plain process), alone (the same in measure_controller's loop, a driver with no learners), sample
    (the busy driver's minibatch draws; simcode.sim.calibrate_ray_host), wake
    (the scheduler's slice for a woken process), probe (the machine's pace:
    calibrate_ray_host.speed_probe, the median of three) and split (the actor's share of its CPU per task
    before the row at each size: measure_split) and delivered (the decode of rows Ray delivered:
    measure_delivered_decode). The rows, the controller's update and the plain steps
    keep the median of `passes` (calibrate.typical_of_passes)."""
    from simcode.sim.calibrate import typical_of_passes
    from simcode.sim.calibrate_ray_host import (env_steps_seconds, measure_controller, measure_host,
                                                measure_learner_rows, measure_wake, speed_probe)

    rows = typical_of_passes(lambda: measure_learner_rows(repeats), passes)
    probe = [speed_probe()]  # at the start, the middle and the end: the median is the machine's pace
    plain = float(np.median([env_steps_seconds(repeats) for _ in range(passes)]))
    wake = measure_wake(3 * repeats)
    with local_ray() as ray:
        controller = typical_of_passes(lambda: measure_controller(repeats), passes, ("seconds", "steps"))
        probe.append(speed_probe())
        puts, gathers, ack, split, delivered = measure_transport(ray, repeats)
        host = measure_host(ray, repeats)
        probe.append(speed_probe())
    return {"puts": puts, "gathers": gathers, "ack": ack, "rows": rows, "controller": controller,
            "idle": host["idle"], "driver": host["steps"] / plain, "alone": alone_steps(controller) / plain,
            "sample": host["sample"], "send": host["send"], "wake": wake, "probe": float(np.median(probe)),
            "split": split, "delivered": delivered}
