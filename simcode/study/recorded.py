"""The simulator against real runs recorded earlier, possibly over several sittings of the machine: each
recorded real run of a sim_vs_real study against its simulated twin (the same cell and seed), simulated now
with this version's model and the study's profile. A study scores one sitting, and the machine's pace drifts
between sittings; pooled, the runs at pace (simcode.study.sim_vs_real.at_pace) give the model's own error
with several runs per cell. benchmarks/bench_sim_vs_real.py prints it for the recording of this machine."""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from simcode.errors import BadInput
from simcode.study.runner import execute
from simcode.study.sim_vs_real import BACKEND, at_pace, cell_means
from simcode.study.spec import Study
from simcode.study.store import StudyStore


# What a results file needs for its real runs to be scored against their twins: results.csv has the run id,
# the study's axes, the status, then the run's summary.
NEEDED = ("run_id", "status", "seed", "mean_iteration")


def real_runs(paths: list[Path], study: Study) -> pd.DataFrame:
    """The finished real runs in the results files at `paths` (results.csv of `study`, or a recording of
    its real runs); BadInput for a file that is not one, or whose axes are not the study's."""
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise BadInput("", f"cannot be read as a results file ({type(exc).__name__}: {exc}); allowed: the "
                               f"results.csv of study {study.name}", str(path)) from None
        missing = [column for column in NEEDED if column not in frame.columns]
        if missing:
            raise BadInput("", f"has no column {', '.join(missing)}; allowed: the results.csv of study "
                               f"{study.name}", str(path))
        columns = list(frame.columns)
        axes = columns[columns.index("run_id") + 1:columns.index("status")]
        if sorted(axes) != sorted(study.axis_keys):
            raise BadInput("", f"its runs vary {', '.join(axes) or 'nothing'}, not study {study.name}'s axes "
                               f"({', '.join(study.axis_keys)}); allowed: that study's results", str(path))
        frames.append(frame)
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[(runs[BACKEND] == "ray") & (runs["status"] == "ok")]
    if runs.empty:
        raise BadInput("", "no finished real run (cluster.backend ray) in " + ", ".join(map(str, paths))
                       + "; allowed: results of a study with real runs")
    return runs


def twins_of(real: pd.DataFrame, study: Study) -> Study:
    """`study` cut to its simulated runs whose cell and seed some run of `real` has."""
    keys = [key for key in study.axis_keys if key != BACKEND]
    wanted = {tuple(_canonical(value) for value in row) for row in real[keys].itertuples(index=False)}
    runs = [spec for spec in study.runs if spec.values.get(BACKEND) == "sim"
            and tuple(_canonical(spec.values.get(key)) for key in keys) in wanted]
    return dataclasses.replace(study, runs=runs)


def _canonical(value) -> str:
    """An axis value as the study has it and as results.csv read it back alike: unset (None, a blank cell)
    as one mark, every number as a float (1024 and 1024.0), the rest as its text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unset"
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def simulate_twins(real: pd.DataFrame, study: Study, progress: bool = True) -> pd.DataFrame:
    """The results of `real`'s simulated twins in `study`, run now in a directory removed afterwards."""
    twins = twins_of(real, study)
    if not twins.runs:
        raise BadInput("", f"no real run given is a cell of study {study.name}; allowed: real runs of that study")
    with tempfile.TemporaryDirectory(prefix="simcode-twins-") as root:
        store = StudyStore(Path(root))
        failures = execute(twins, store, progress=progress)
        return store.results(twins, failures)


def scored(real: pd.DataFrame, study: Study, progress: bool = True) -> pd.DataFrame:
    """Per cell: the real runs at pace, simulated / real mean iteration time over them and their twins, and
    simulated / real over every real run."""
    results = pd.concat([real, simulate_twins(real, study, progress)], ignore_index=True)
    means = cell_means(results, study.axis_keys, ["mean_iteration"])
    every = means[("mean_iteration", "sim")] / means[("mean_iteration", "ray")]
    paced = at_pace(results, study.axis_keys)  # None: the real runs have no speed probe (an older study)
    if paced is None:
        paced = pd.DataFrame({"real runs at pace": 0, "sim/real at pace": math.nan}, index=every.index)
    return paced.join(every.rename("sim/real, every run"))
