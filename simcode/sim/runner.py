"""Build a simulated run from a scenario, run it (alone or in lock-step with others sharing one real
training), summarise it and write its run directory (scenario.yaml, trace.csv, summary.json)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import simcode
from simcode import atomic, outputs
from simcode.codes import CENTRALIZED
from simcode.config import Scenario
from simcode.errors import Interrupted, SimulationError
from simcode.progress import progress_bar
from simcode.seeding import generator
from simcode.sim.cluster import Cluster
from simcode.sim.cost import make_cost
from simcode.sim.protocol import REAL_TIMINGS
from simcode.sim.strategy import make_strategy
from simcode.sim.workload import MaddpgWorkload, SharedMaddpg, TimingWorkload

DECODE_WARNING = 1e-4  # relative decode error above which the training is no longer the centralized one
TRACE_COLUMNS = ["iteration", "t_start", "t_end", "duration", "n_received", "decode_error", "episode_reward"]


@dataclass
class RunResult:
    scenario: Scenario
    trace: pd.DataFrame
    summary: dict
    diverged: bool = False  # shared training only: this clock's decoded states were not exact
    final_states: list[np.ndarray] | None = None  # the trained policy, when there was real computation
    error: str | None = None  # keep_going only: why this clock could not go on (then no summary)


def build(scenario: Scenario, workload=None) -> Cluster:
    """The cluster of one run. `workload` defaults to the scenario's own (real or timing)."""
    if workload is None:
        workload = MaddpgWorkload(scenario) if scenario.run.workload == "maddpg" else TimingWorkload(scenario)
    n_learners = scenario.cluster.n_learners
    # Built once: these are the objects validating the scenario built, when it kept them (sections).
    code = scenario.code.build(scenario.n_agents, n_learners, scenario.seed)  # None: centralized
    delay = scenario.delay.build(n_learners)
    delay.reset()
    shapes = workload.shapes
    cost = make_cost(scenario, shapes.update_flops, shapes.act_flops)
    return Cluster(code=code, n_learners=n_learners, network=scenario.cluster.network,
                   on_decode=scenario.cluster.on_decode, timeout=scenario.cluster.timeout,
                   delay_model=delay, delay_rng=generator(scenario.seed, "delays"), cost=cost,
                   workload=workload, steps_per_iteration=scenario.maddpg.steps_per_iteration,
                   warmup_steps=scenario.learning_starts, iterations=scenario.run.iterations,
                   hosts=scenario.cluster.hosts, strategy=make_strategy(scenario.cluster, code))


def simulate(scenario: Scenario, progress: bool = False) -> RunResult:
    """Run one scenario on its own."""
    return simulate_group([scenario], progress=progress)[0]


def simulate_group(scenarios: list[Scenario], progress: bool = False, shared: bool = True,
                   on_iteration=None, keep_going: bool = False) -> list[RunResult]:
    """Run clocks in lock-step. With `shared` and real computation, they share one training: the
    scenarios must then agree on everything but timing (the caller groups them).

    A clock that cannot go on raises SimulationError; with `keep_going` its result carries the
    error instead (and an empty summary) and the other clocks go on, a shared training without it."""
    started = time.perf_counter()
    iterations = scenarios[0].run.iterations
    real = scenarios[0].run.workload == "maddpg"
    # A strategy other than exact installs states of its own: such a clock never shares a training.
    if shared and real and len(scenarios) > 1 and all(s.cluster.strategy == "exact" for s in scenarios):
        group = SharedMaddpg(scenarios[0], len(scenarios))
        clusters = [build(s, group.member()) for s in scenarios]
    else:
        clusters = [build(s) for s in scenarios]
    label = scenarios[0].code.name if len(scenarios) == 1 else f"{len(scenarios)} clocks"
    errors: dict[int, str] = {}  # clock index -> why it stopped (keep_going only)
    with progress_bar(iterations, f"simulating {label}", enabled=progress) as advance:
        # The first iteration's clock step also fills the replay buffer: say so while the bar is at 0.
        warmup = scenarios[0].learning_starts if real else 0
        advance(0, status=f"warm-up: {warmup} environment steps fill the replay buffer" if warmup else "")
        for k in range(iterations):
            for n, cluster in enumerate(clusters):
                if n in errors:
                    continue
                try:
                    run_iteration(cluster, k)
                except SimulationError as exc:
                    if not keep_going:
                        raise
                    errors[n] = str(exc)
                    cluster.workload.leave()
            advance(1, status="")
            if on_iteration:
                on_iteration(k)
    host_seconds = (time.perf_counter() - started) / len(clusters)
    return [finish(scenario, cluster, host_seconds, errors.get(n), keep_going)
            for n, (scenario, cluster) in enumerate(zip(scenarios, clusters))]


def finish(scenario: Scenario, cluster: Cluster, host_seconds: float, error: str | None,
           keep_going: bool) -> RunResult:
    """A clock's result: its trace and summary, or (keep_going) the reason it has no summary."""
    trace = pd.DataFrame.from_records(cluster.records)
    if error is None:
        try:
            summary = summarize(scenario, cluster, trace, host_seconds)
        except SimulationError as exc:
            if not keep_going:
                raise
            error = str(exc)
    if error is not None:
        return RunResult(scenario, trace, {}, error=error)
    trainer = getattr(cluster.workload, "trainer", None)  # a single run's own training
    return RunResult(scenario, trace, summary, getattr(cluster.workload, "diverged", False),
                     trainer.states() if trainer is not None else None)


def run_iteration(cluster: Cluster, k: int) -> None:
    """Advance a clock to the end of iteration k. One with no event left before then is stuck for good:
    simpy says so with a bare RuntimeError, which becomes a SimulationError naming the iteration."""
    done = cluster.iteration_done[k]
    try:
        cluster.env.run(until=done)
    except RuntimeError as exc:
        if isinstance(exc, SimulationError) or done.triggered or cluster.env.peek() != math.inf:
            raise
        scheme = cluster.code.name if cluster.code is not None else CENTRALIZED
        raise SimulationError(f"iteration {k} ({scheme}): the simulated cluster ran out of events before "
                              "the iteration decoded") from None


def check_finite(summary: dict) -> dict:
    """A summary holds finite numbers only: a NaN or inf is a failure to report, not a value to write."""
    for key, value in summary.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise SimulationError(f"{summary['scheme']}: the run's {key} is {value}, not a finite number "
                                  "(simulated times or decode errors out of float64 range)")
    return summary


def summarize(scenario: Scenario, cluster, trace: pd.DataFrame, host_seconds: float) -> dict:
    """The summary of a simulated (Cluster) or real (simcode.sim.real.RealCluster) run."""
    real = None if isinstance(cluster, Cluster) else cluster
    durations = trace["duration"].to_numpy()
    errors = trace["decode_error"].to_numpy()
    rewards = trace["episode_reward"].dropna().to_numpy()
    # The timing workload checks nothing (all nan); otherwise every iteration has a finite error.
    checked = not np.all(np.isnan(errors))
    max_error = float(errors.max()) if checked else None
    code = cluster.code
    return check_finite({
        "iterations": len(trace),
        "sim_seconds": float(trace["t_end"].iloc[-1]),
        "mean_iteration": float(durations.mean()),
        "median_iteration": float(np.median(durations)),
        "p90_iteration": float(np.percentile(durations, 90)),
        "p99_iteration": float(np.percentile(durations, 99)),
        "std_iteration": float(durations.std()),
        "host_seconds": host_seconds,
        "max_decode_error": max_error,
        "decode_warning": bool(checked and max_error > DECODE_WARNING),
        "warmup_seconds": float(cluster.warmup_seconds),
        "final_reward": float(rewards[-10:].mean()) if rewards.size else None,
        "scheme": scenario.code.name,
        "n_agents": scenario.n_agents,
        "n_learners": scenario.cluster.n_learners,
        "tolerance": int(code.tolerance) if code is not None else None,
        "load_max": int(code.load.max()) if code is not None else scenario.n_agents,
        "resent": int(trace["resent"].sum()),
        **phases(trace),
        "strategy": scenario.cluster.strategy,
        "mean_updated_fraction": float(trace["n_updated"].mean() / scenario.n_agents),
        "workload": scenario.run.workload,
        "cost_model": scenario.cost.model,
        "reproducible": bool(real is None and cluster.cost.reproducible),  # real seconds never are
        # A real run's speed probe (simcode.sim.real.run_real fills them in); none when simulated.
        "machine_probe_seconds": None, "machine_speed": None,
        # CPU seconds an iteration costs the machine: priced on the simulated hosts, audited on a real one.
        "cpu_per_iteration": cluster.cpu_per_iteration(),
        "backend": scenario.cluster.backend,
        "simcode_version": simcode.__version__,
        "scenario_hash": scenario.digest(),
    })


def phases(trace: pd.DataFrame) -> dict:
    """Mean seconds of an iteration's phases: the environment steps, from the work sent until the
    decode, and after it (late learners released); a real run's where-time-went means too (None when
    simulated, or when no answer arrived: centralized)."""
    out = {"mean_env_seconds": float(trace["env_seconds"].mean()),
           "mean_to_decode": float((trace["t_decoded"] - trace["t_start"] - trace["env_seconds"]).mean()),
           "mean_after_decode": float((trace["t_end"] - trace["t_decoded"]).mean())}
    for column in REAL_TIMINGS:
        mean = trace[column].mean() if column in trace.columns else math.nan
        out[f"mean_{column}"] = float(mean) if math.isfinite(mean) else None
    return out


def write_run(out: Path, result: RunResult) -> None:
    """Write the run directory at once: it appears complete or not at all. It replaces only a run
    directory simcode wrote (or an empty one); a failure leaves no staging directory behind."""
    outputs.claim(out, "run")
    # Just before the move, what is at `out` again; no probe: the staging directory beside it was just made.
    with atomic.building_dir(out, before_publish=lambda: outputs.claim(out, "run", probe=False)) as staged:
        (staged / "scenario.yaml").write_text(result.scenario.to_yaml())
        columns = TRACE_COLUMNS + [c for c in result.trace.columns if c not in TRACE_COLUMNS]
        result.trace[columns].to_csv(staged / "trace.csv", index=False)
        (staged / "summary.json").write_text(json.dumps(result.summary, indent=2, allow_nan=False) + "\n")
        if result.final_states is not None:  # so that `simcode evaluate RUN_DIR` can load the policy
            from simcode.marl.evaluate import write_policy

            write_policy(staged, result.scenario, result.final_states, result.summary["iterations"])
        outputs.mark(staged, "run")


def run_to_dir(scenario: Scenario, out: Path, progress: bool = True, address: str | None = None) -> dict:
    """Run `scenario` (simulated, or for real with `cluster.backend: ray`, on the Ray cluster at `address`
    or a local one) and write its run directory at `out`; returns the summary (its `decode_warning` says
    when the decoded training was not the centralized one)."""
    out = Path(out)
    outputs.claim(out, "run")  # refuse a path that is not simcode's now, not after the whole run
    try:
        if scenario.cluster.backend == "ray":
            from simcode.sim.real import run_real

            result = run_real(scenario, address=address, progress=progress)
        else:
            result = simulate(scenario, progress=progress)
        write_run(out, result)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: nothing written, {out} is as it was") from None
    return result.summary


def default_run_dir(path: Path, scenario: Scenario) -> Path:
    return Path("runs") / f"{Path(path).stem}-{scenario.code.name}"
