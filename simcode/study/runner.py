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

from simcode.errors import Interrupted, SimulationError
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


MESSAGE_RUNS = 3  # failed runs whose reason the closing line quotes (results.csv has every one)


def default_out(study: Study) -> Path:
    return Path("runs") / f"study-{study.name}{'-quick' if study.quick else ''}"


def execute(study: Study, store: StudyStore, jobs: int = 1, executor: str = "local",
            progress: bool = True) -> dict[str, str]:
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
    with real_runs_session(todo, executor, jobs), progress_bar(len(todo), f"study {study.name}",
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


def real_runs_session(todo: list[RunSpec], executor: str, jobs: int):
    """In-process real runs (cluster.backend ray) share one Ray session and its learner actors; other
    executors' workers each start their own (or join SIMCODE_RAY_ADDRESS)."""
    import contextlib
    import os

    specs = [spec.scenario for spec in todo if spec.scenario.cluster.backend == "ray"]
    if not specs or executor != "local" or jobs != 1:
        return contextlib.nullcontext()
    from simcode.sim.real import ray_session

    most = max(specs, key=lambda sc: sc.cluster.n_learners * sc.cluster.ray.num_cpus).cluster
    return ray_session(most.n_learners, most.ray.num_cpus, os.environ.get("SIMCODE_RAY_ADDRESS"))


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
              executor: str = "local", progress: bool = True, show=None, note=None) -> Path:
    """Run (or resume) a study and return its directory; `show` gets the headline table (mean iteration
    times by scheme) as text, `note` what the user should know before the work starts (a resumed study)."""
    from simcode.study.report import headline, write_report

    study = load_study(name_or_file, quick=quick)
    make_executor(executor, jobs)  # a bad executor is bad input: fail before any work
    # Only a new, empty or study directory, and only one study in it at a time (simcode.outputs).
    with opened_store(out or default_out(study)) as store:
        already = sum(store.is_done(spec) for spec in study.runs)
        if already and note is not None:
            note(f"resuming: {already} of {len(study.runs)} runs already done in {store.root}")
        try:
            failures = execute(study, store, jobs=jobs, executor=executor, progress=progress)
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
