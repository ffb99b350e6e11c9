"""Where a study's work runs: in this process, a local process pool, or a Ray or Dask cluster.

The unit of work is a *group*: runs that share one real training (see
`simcode.study.spec.training_key`). A group goes to a worker as plain scenario dicts and comes
back as plain results, so every executor returns the same bits for the same group.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
from collections.abc import Callable, Iterator

from simcode.config import Scenario
from simcode.errors import BadInput
from simcode.sim.runner import RunResult, simulate_group

EXECUTORS = ("local", "ray", "dask")

# Per run: scenario, trace records, summary, and None, or why the run failed (then the summary is empty).
GroupResult = list[tuple[dict, list[dict], dict, str | None]]


def run_group(scenario_dicts: list[dict], tick: Callable[[float], None] | None = None) -> GroupResult:
    """Simulate one group in lock-step; a run whose decoded states were not exact is redone alone. A run
    that cannot go on (SimulationError) comes back failed, with its reason, and the others finish.

    `tick(runs)` (in-process only) hears of progress in fractions of the group's runs."""
    import torch

    torch.set_num_threads(1)  # one process per core: nested threading only slows the study down
    scenarios = [Scenario.model_validate(d) for d in scenario_dicts]
    if scenarios[0].cluster.backend == "ray":
        return [_real_run(scenario) for scenario in scenarios]  # a real run shares nothing (group_runs)
    share = len(scenarios) / scenarios[0].run.iterations
    results = simulate_group(scenarios, on_iteration=(lambda _k: tick(share)) if tick else None, keep_going=True)
    out: GroupResult = []
    for result in results:
        if result.diverged:
            result = simulate_group([result.scenario], keep_going=True)[0]
        out.append((result.scenario.to_dict(), result.trace.to_dict("records"), result.summary, result.error))
    return out


def _real_run(scenario: Scenario) -> tuple[dict, list[dict], dict, str | None]:
    """One run on Ray (the study's Ray session, or SIMCODE_RAY_ADDRESS's cluster, or a local one)."""
    from simcode.errors import SimulationError
    from simcode.sim.real import run_real

    try:
        result = run_real(scenario, address=os.environ.get("SIMCODE_RAY_ADDRESS"))
    except SimulationError as exc:
        return scenario.to_dict(), [], {}, str(exc)
    return scenario.to_dict(), result.trace.to_dict("records"), result.summary, None


def to_run_result(item: tuple[dict, list[dict], dict, str | None]) -> RunResult:
    import pandas as pd

    scenario, records, summary, error = item
    return RunResult(Scenario.model_validate(scenario), pd.DataFrame.from_records(records), summary, error=error)


# submit(groups, tick) -> (group index, results) as groups finish; only in-process work calls tick.
Submit = Callable[..., Iterator[tuple[int, GroupResult]]]


def _in_process(groups: list[list[dict]], tick=None) -> Iterator[tuple[int, GroupResult]]:
    for n, group in enumerate(groups):
        yield n, run_group(group, tick)


def _ignore_interrupts() -> None:
    """A worker's first act: drop Ctrl-C, which it received blocked (see `_interrupts_held`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C reaches every process of the terminal's group. Workers started in this block begin
    with SIGINT blocked (a signal mask survives exec), so one that arrives while they start waits
    and is then dropped: the parent alone stops the study and no worker prints a traceback. A
    Ctrl-C held in this process is raised here when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (they ignore Ctrl-C). Before Python
    3.14 (pool.terminate_workers) the workers are only in a private attribute, which shutdown()
    clears, so they are taken first."""
    if hasattr(pool, "terminate_workers"):  # Python 3.14 on
        pool.terminate_workers()
        return
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()


def _process_pool(jobs: int) -> Submit:
    def submit(groups: list[list[dict]], tick=None) -> Iterator[tuple[int, GroupResult]]:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # torch and fork do not mix
        pool = None
        try:
            with _interrupts_held():
                pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_ignore_interrupts)
                futures = {pool.submit(run_group, g): n for n, g in enumerate(groups)}
            for future in cf.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            if pool is not None:
                _stop_workers(pool)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
    return submit


def _dask(jobs: int) -> Submit:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise BadInput("--executor", "dask is not installed; allowed: local, or pip install 'simcode[dask]'") \
            from None

    def submit(groups: list[list[dict]], tick=None) -> Iterator[tuple[int, GroupResult]]:
        import os

        address = os.environ.get("SIMCODE_DASK_ADDRESS")
        cluster = None if address else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                     dashboard_address=None)
        with Client(address or cluster) as client:
            futures = {client.submit(run_group, g, pure=False): n for n, g in enumerate(groups)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        if cluster is not None:
            cluster.close()
    return submit


def _ray(jobs: int) -> Submit:
    try:
        import ray
    except ImportError:
        raise BadInput("--executor", "ray is not installed; allowed: local, or pip install 'simcode[ray]'") \
            from None

    def submit(groups: list[list[dict]], tick=None) -> Iterator[tuple[int, GroupResult]]:
        import os

        started = not ray.is_initialized()
        if started:
            ray.init(address=os.environ.get("SIMCODE_RAY_ADDRESS"), num_cpus=None if os.environ.get(
                "SIMCODE_RAY_ADDRESS") else jobs, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(run_group)
        refs = {remote.remote(g): n for n, g in enumerate(groups)}
        try:
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield refs[done[0]], ray.get(done[0])
        finally:
            if started:
                ray.shutdown()
    return submit


def make_executor(name: str, jobs: int) -> Submit:
    if name not in EXECUTORS:
        raise BadInput("--executor", f"{name!r} is unknown; allowed: {', '.join(EXECUTORS)}")
    if name == "dask":
        return _dask(jobs)
    if name == "ray":
        return _ray(jobs)
    return _in_process if jobs == 1 else _process_pool(jobs)

