"""The study directory: one run directory per finished run, and results.csv built from them.

A run counts as done exactly when its directory exists (it is published atomically, complete),
so a study killed at any moment, even with kill -9, resumes by running what has no directory:
nothing finished is lost and nothing is run twice. Run ids carry a hash of the resolved scenario,
so editing the study file reruns exactly the runs it changed.

The directory is simcode's (marked, see simcode.outputs) and locked while a study writes it: a
second study on the same directory is refused, so the start-up clean-up never removes the
half-written run of a study still running.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from simcode import atomic, outputs
from simcode.errors import BadInput
from simcode.sim.runner import RunResult, write_run
from simcode.study.spec import RunSpec, Study


# The files and the directories a study keeps at the top of its directory.
OWN_FILES = ("results.csv", "report.md", "provenance.md")
OWN_DIRS = ("runs", "plots")


class StudyStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    def clean_staging(self) -> None:
        """Remove half-written run directories an interrupted study left behind."""
        if self.runs_dir.is_dir():
            for leftover in self.runs_dir.glob(".run-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    def run_dir(self, spec: RunSpec) -> Path:
        return self.runs_dir / spec.run_id

    def is_done(self, spec: RunSpec) -> bool:
        return (self.run_dir(spec) / "summary.json").is_file()

    def save(self, spec: RunSpec, result: RunResult) -> None:
        write_run(self.run_dir(spec), result)

    def summary(self, spec: RunSpec) -> dict:
        path = self.run_dir(spec) / "summary.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise self._spoiled(path, "summary", exc) from None
        if not isinstance(data, dict):
            raise self._spoiled(path, "summary", f"a {type(data).__name__}, not a mapping")
        return data

    def trace(self, spec: RunSpec) -> pd.DataFrame:
        path = self.run_dir(spec) / "trace.csv"
        try:
            return pd.read_csv(path)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise self._spoiled(path, "trace", exc) from None

    @staticmethod
    def _spoiled(path: Path, what: str, why) -> BadInput:
        """A finished run's file that is not what simcode wrote: one line saying how to run it again."""
        reason = f"{type(why).__name__}: {str(why).splitlines()[0]}"[:160] if isinstance(why, Exception) else why
        return BadInput("", f"not a run {what} simcode wrote ({reason}); allowed: the file simcode wrote, or "
                            f"remove {path.parent} to run that run again", str(path))

    def results(self, study: Study, failures: dict[str, str] | None = None) -> pd.DataFrame:
        """One row per run, in grid order: the axis keys, `status` (ok or failed), the run's summary,
        and last `error`: why a failed run (`failures`: run id -> reason) has no summary (blank cells)."""
        failures = failures or {}
        rows = []
        for spec in study.runs:
            row = {"run_id": spec.run_id}
            row.update({key: spec.values.get(key) for key in study.axis_keys})
            if spec.run_id in failures:
                row.update(status="failed", error=failures[spec.run_id])
            else:
                row.update(status="ok", **self.summary(spec), error="")
            rows.append(row)
        frame = pd.DataFrame(rows)
        return frame[[c for c in frame.columns if c != "error"] + ["error"]]

    def write_results(self, study: Study, failures: dict[str, str] | None = None) -> pd.DataFrame:
        frame = self.results(study, failures)
        atomic.write_text(self.root / "results.csv", frame.to_csv(index=False))
        return frame


@contextlib.contextmanager
def opened_store(root: Path) -> Iterator[StudyStore]:
    """The study directory at `root` (new, empty, or a study simcode wrote), created if need be
    and locked against other studies for the block."""
    root = Path(root)
    outputs.claim(root, "study")
    # Before a whole study runs, not when results.csv is written.
    outputs.check_own_files(root, OWN_FILES, dirs=OWN_DIRS)
    root.mkdir(parents=True, exist_ok=True)
    with outputs.exclusive(root, "study"):
        outputs.mark(root, "study")
        yield StudyStore(root)
