"""The simulator against real runs recorded earlier, possibly over several sittings of the machine: each
recorded real run of a sim_vs_real study against its simulated twin (the same cell and seed), simulated now
with this version's model and the study's profile. A study scores one sitting, and the machine's pace drifts
between sittings; pooled, the runs at pace (simcode.study.sim_vs_real.at_pace) give the model's own error
with several runs per cell. benchmarks/bench_sim_vs_real.py prints it for the recording of this machine."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pandas as pd

from simcode.study.runner import execute
from simcode.study.sim_vs_real import BACKEND, at_pace, cell_means
from simcode.study.spec import Study, load_study
from simcode.study.store import StudyStore


def real_runs(paths: list[Path]) -> pd.DataFrame:
    """The finished real runs in the results files at `paths` (results.csv of sim_vs_real studies, or a
    recording of such runs)."""
    runs = pd.concat([pd.read_csv(path) for path in paths], ignore_index=True)
    return runs[(runs[BACKEND] == "ray") & (runs["status"] == "ok")]


def twins_of(real: pd.DataFrame, study: Study) -> Study:
    """`study` cut to its simulated runs whose cell and seed some run of `real` has."""
    keys = [key for key in study.axis_keys if key != BACKEND and key in real.columns]
    wanted = set(map(tuple, real[keys].astype(str).to_numpy()))
    runs = [spec for spec in study.runs if spec.values.get(BACKEND) == "sim"
            and tuple(str(spec.values.get(key)) for key in keys) in wanted]
    return dataclasses.replace(study, runs=runs)


def simulate_twins(real: pd.DataFrame, study: Study, progress: bool = True) -> pd.DataFrame:
    """The results of `real`'s simulated twins in `study`, run now in a directory removed afterwards."""
    twins = twins_of(real, study)
    with tempfile.TemporaryDirectory(prefix="simcode-twins-") as root:
        store = StudyStore(Path(root))
        failures = execute(twins, store, progress=progress)
        return store.results(twins, failures)


def scored(real: pd.DataFrame, study: Study | None = None, progress: bool = True) -> pd.DataFrame:
    """Per cell: the real runs at pace, simulated / real mean iteration time over them and their twins, and
    simulated / real over every real run."""
    study = study or load_study("sim_vs_real")
    results = pd.concat([real, simulate_twins(real, study, progress)], ignore_index=True)
    means = cell_means(results, study.axis_keys, ["mean_iteration"])
    every = means[("mean_iteration", "sim")] / means[("mean_iteration", "ray")]
    return at_pace(results, study.axis_keys).join(every.rename("sim/real, every run"))
