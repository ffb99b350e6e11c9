"""`simcode study`: expand the grid, run what is not done yet, then write results, plots and report.

A run that cannot go on (a SimulationError: an iteration that can never decode, a non-finite decode
or training) does not stop the study. The other runs finish and are saved; results.csv marks the
failed one (`status` failed, its `error`, blank metrics), report.md lists it, and the command exits 1
with one line naming the failed runs and the `exclude:` entries that leave them out. A failed run is
not saved, so running the study again retries it (and only it).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from simcode.errors import BadInput, Interrupted, SimulationError
from simcode.progress import progress_bar
from simcode.study.executors import make_executor, to_run_result
from simcode.study.spec import RunSpec, Study, load_study, training_key
from simcode.study.store import StudyStore, opened_store


def group_runs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Runs that train identically form one group and share one real computation."""
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for spec in specs:
        # Timing-only runs have no computation to share, nor real runs (each computes for real): alone,
        # each is saved as soon as it ends.
        shares = spec.scenario.run.workload == "maddpg" and spec.scenario.cluster.backend == "sim"
        key = training_key(spec.scenario) if shares else spec.run_id
        groups[key].append(spec)
    return list(groups.values())


BACKENDS = ("sim", "ray")
MESSAGE_RUNS = 3  # failed runs whose reason the closing line quotes (results.csv has every one)


def default_out(study: Study) -> Path:
    return Path("runs") / f"study-{study.name}{'-quick' if study.quick else ''}"


def execute(study: Study, store: StudyStore, jobs: int = 1, executor: str = "local",
            progress: bool = True, address: str | None = None) -> dict[str, str]:
    """Run every run of `study` that has no directory in `store`; returns the runs that failed
    (run id -> the one-line reason); every other run is saved."""
    store.clean_staging()
    todo = [spec for spec in study.runs if not store.is_done(spec)]
    failures: dict[str, str] = {}
    if not todo:
        return failures
    groups = group_runs(todo)
    submit = make_executor(executor, jobs)
    payload = [[spec.scenario.to_dict() for spec in group] for group in groups]
    done = 0
    with real_runs_session(todo, address), progress_bar(len(todo), f"study {study.name}",
                                                               enabled=progress) as advance:
        # In-process work ticks in fractions of runs as iterations pass; a finished group sets the
        # count to the runs saved so far.
        for n, group_result in submit(payload, advance):
            for spec, item in zip(groups[n], group_result):
                result = to_run_result(item)
                if result.error is None:
                    store.save(spec, result)
                else:
                    failures[spec.run_id] = result.error
            done += len(groups[n])
            advance(completed=done)
    return failures


def real_runs_session(todo: list[RunSpec], address: str | None = None):
    """The study's real runs (cluster.backend ray) share one Ray session and its learner actors: the
    cluster at `address` (or SIMCODE_RAY_ADDRESS), else a local Ray with the CPUs the largest run needs."""
    import contextlib
    import os

    specs = [spec.scenario for spec in todo if spec.scenario.cluster.backend == "ray"]
    if not specs:
        return contextlib.nullcontext()
    from simcode.sim.real import ray_session

    most = max(specs, key=lambda sc: sc.cluster.n_learners * sc.cluster.ray.num_cpus).cluster
    return ray_session(most.n_learners, most.ray.num_cpus, address or os.environ.get("SIMCODE_RAY_ADDRESS"))


def with_backend(study: Study, backend: str | None, address: str | None) -> Study:
    """`simcode study --backend B`: every run on backend B (its run ids change with it). A study with a
    cluster.backend axis already says which runs are real: --backend with it is bad input. `--address`
    needs real runs."""
    from simcode.config import apply_overrides, scenario_from_dict

    if backend is not None:
        if backend not in BACKENDS:
            raise BadInput("--backend", f"{backend!r} is not a backend; allowed: {', '.join(BACKENDS)}")
        if "cluster.backend" in study.axis_keys:
            raise BadInput("--backend", f"study {study.name} has a cluster.backend axis: it runs both backends "
                           "already; allowed: no --backend with this study (--address still applies to its real "
                           "runs), or a study without that axis")
        study.runs = [RunSpec(spec.index, spec.values, scenario_from_dict(
            apply_overrides(spec.scenario.to_dict(), {"cluster.backend": backend}), str(study.path)))
            for spec in study.runs]
    if address is not None and not any(spec.scenario.cluster.backend == "ray" for spec in study.runs):
        raise BadInput("--address", f"no run of study {study.name} uses the ray backend; allowed: --backend ray "
                       "--address HOST:PORT, or a study with real runs")
    return study


def check_real_runs_executor(study: Study, executor: str, jobs: int) -> None:
    """Real runs measure real seconds: they run one at a time in the study's own process (runs side by
    side would time each other); bad input otherwise, before any work."""
    if jobs == 1 and executor == "local":
        return
    if any(spec.scenario.cluster.backend == "ray" for spec in study.runs):
        option = "--jobs" if jobs != 1 else "--executor"
        raise BadInput(option, f"study {study.name} has real runs (cluster.backend ray): they run one at a time "
                       "in this process, as real seconds are timed; allowed: --jobs 1 --executor local, or "
                       "--backend sim")


def failed_runs_message(study: Study, failures: dict[str, str], root: Path) -> str:
    """One line: which runs failed and why (the first few), and the `exclude:` entries that drop them."""
    from simcode.study.report import exclude_entries

    failed = [spec for spec in study.runs if spec.run_id in failures]
    shown = "; ".join(f"{spec.run_id} ({', '.join(f'{k}={v}' for k, v in spec.values.items())}): "
                      f"{failures[spec.run_id]}" for spec in failed[:MESSAGE_RUNS])
    more = f"; and {len(failed) - MESSAGE_RUNS} more" if len(failed) > MESSAGE_RUNS else ""
    return (f"study {study.name}: {len(failed)} of {len(study.runs)} runs failed: {shown}{more}. "
            f"{root / 'results.csv'} and report.md mark them (status failed); to leave them out, add "
            f"to {study.path} exclude: {exclude_entries([spec.values for spec in failed])}")


def run_study(name_or_file: str, quick: bool = False, out: Path | None = None, jobs: int = 1,
              executor: str = "local", progress: bool = True, show=None, note=None,
              backend: str | None = None, address: str | None = None) -> Path:
    """Run (or resume) a study and return its directory; `show` gets the headline table (mean iteration
    times by scheme) as text, `note` what the user should know before the work starts (a resumed study).
    `backend` puts every run on that backend, `address` is the Ray cluster of the real runs."""
    from simcode.study.report import headline, write_report

    study = with_backend(load_study(name_or_file, quick=quick), backend, address)
    make_executor(executor, jobs)  # a bad executor is bad input: fail before any work
    check_real_runs_executor(study, executor, jobs)
    # Only a new, empty or study directory, and only one study in it at a time (simcode.outputs).
    with opened_store(out or default_out(study)) as store:
        already = sum(store.is_done(spec) for spec in study.runs)
        if already and note is not None:
            note(f"resuming: {already} of {len(study.runs)} runs already done in {store.root}")
        try:
            failures = execute(study, store, jobs=jobs, executor=executor, progress=progress, address=address)
        except KeyboardInterrupt:
            finished = sum(store.is_done(spec) for spec in study.runs)
            raise Interrupted(f"interrupted: {finished} of {len(study.runs)} runs are saved in {store.root}; "
                              "run the same command again to finish the rest") from None
        results = store.write_results(study, failures)
        write_report(study, store, results)
    if show is not None:
        show(headline(study, results))
    if failures:
        raise SimulationError(failed_runs_message(study, failures, store.root))
    return store.root
