"""Delays resampled from measurements: the closest a simulation gets to a real cluster.

`empirical` draws each learner's delay i.i.d., with replacement, from a CSV of measured delays
(seconds for `mode: add`, multiples of the compute time for `mode: scale`). The file is read once,
when the model is built, so a bad file fails before any run starts, with a message that says which
row and column is wrong.

File format: one column of numbers, with or without a header row; or several columns with a header
row (a first row with any non-numeric cell is a header). `column` picks a column by header name
(or by 0-based position); by default the first column whose every value is a number is used.
Values must be in [0, 1e9] seconds; `inf` is allowed and means the learner did not answer. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, Field

from simcode.delays.base import DelayModel
from simcode.errors import BadInput
from simcode.params import MAX_SECONDS, Float, Int, ParamsModel


def _path_text(value: Any) -> Any:
    """A path given as a Path object (from a script) is the same path as text."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def load_delay_column(path: str | Path, column: str | int | None = None) -> np.ndarray:
    """The measured delays of one column of a CSV file, as float64 (raises BadInput)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput("file", f"{path} not found")
    try:
        with path.open(newline="") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput("file", f"{path} cannot be read as CSV: {exc}") from None
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if any(row)]
    if not numbered:
        raise BadInput("file", f"{path} is empty; expected a column of measured delays")

    header = None
    if any(_number(cell) is None for cell in numbered[0][1]):
        header = numbered[0][1]
        numbered = numbered[1:]
        if not numbered:
            raise BadInput("file", f"{path} has a header but no values")
    width = len(header) if header is not None else len(numbered[0][1])
    for line, row in numbered:
        if len(row) != width:
            raise BadInput("file", f"{path} line {line}: {len(row)} fields, expected {width}")
    names = header if header is not None else [str(i) for i in range(width)]

    def values_of(index: int) -> list[float | None]:
        return [_number(row[index]) for _, row in numbered]

    if column is None:
        index = next((i for i in range(width) if None not in values_of(i)), None)
        if index is None and width == 1:
            index = 0  # the check below names the first cell that is not a number
        elif index is None:
            raise BadInput("file", f"{path} has no column of numbers (columns: {', '.join(names)})")
    elif isinstance(column, str) and column in names:
        index = names.index(column)
    elif isinstance(column, int) and not isinstance(column, bool) and 0 <= column < width:
        index = column
    else:
        raise BadInput("column", f"{column!r} is not a column of {path}; allowed: {', '.join(names)} "
                                 f"or a position 0 .. {width - 1}")

    values = values_of(index)
    for (line, row), value in zip(numbered, values):
        if value is None:
            raise BadInput("column" if column is not None else "file",
                           f"{path} line {line}, column {names[index]!r}: {row[index]!r} is not a number")
        if value < 0:
            raise BadInput("file", f"{path} line {line}, column {names[index]!r}: {value!r} is negative; "
                                   "delays must be >= 0")
        if MAX_SECONDS < value < math.inf:
            raise BadInput("file", f"{path} line {line}, column {names[index]!r}: {value!r} is too long for a "
                                   f"delay; allowed: seconds in [0, {MAX_SECONDS:g}], or inf for no answer")
    return np.array(values, dtype=np.float64)


class Empirical(DelayModel):
    """Each learner's delay is `scale` times a measured delay drawn uniformly, with replacement,
    from `column` of the CSV `file` (see the module docstring for the format)."""

    name = "empirical"

    class Params(ParamsModel):
        file: Annotated[str, BeforeValidator(_path_text)] = Field(
            description="a CSV file of measured delays (a relative path is looked up beside the scenario)")
        column: str | Int | None = Field(None, description="the column, by header name or 0-based "
                                         "position; unset: the first column of numbers")
        scale: Float = Field(1.0, ge=0, le=MAX_SECONDS, description="factor applied to every measured delay")

    def _configure(self) -> None:
        self.measured = load_delay_column(self.file, self.column)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        picks = rng.integers(0, len(self.measured), size=self.n_learners)
        with np.errstate(invalid="ignore"):
            delays = self.scale * self.measured[picks]
        return np.nan_to_num(delays, nan=0.0, posinf=np.inf)  # 0 * inf: a zero scale means no delay

    def mean_delay(self) -> float:
        if self.scale == 0:
            return 0.0
        return float(self.scale * self.measured.mean())
