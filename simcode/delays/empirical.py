"""Delays resampled from measurements: the closest a simulation gets to a real cluster.

`empirical` draws each learner's delay i.i.d., with replacement, from a CSV of measured delays
(seconds for `mode: add`, multiples of the compute time for `mode: scale`). The file is read once,
when the model is built, so a bad file fails before any run starts, with a message that says which
row and column is wrong.

File format: one column of numbers, with or without a header row; or several columns with a header
row (a first row with any non-numeric cell is a header). `column` picks a column by header name
(or by 0-based position); by default the first column whose every value is a number is used.
Values must be >= 0; `inf` is allowed and means the learner did not answer. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from simcode.delays.base import REQUIRED, DelayModel, integer, non_negative
from simcode.errors import BadInput


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
    return np.array(values, dtype=np.float64)


class Empirical(DelayModel):
    """Each learner's delay is `scale` times a measured delay drawn uniformly, with replacement,
    from `column` of the CSV `file` (see the module docstring for the format)."""

    name = "empirical"
    PARAMS: ClassVar[dict[str, Any]] = {"file": REQUIRED, "column": None, "scale": 1.0}

    def _configure(self, file, column, scale) -> None:
        if not isinstance(file, (str, Path)):
            raise BadInput("file", f"{file!r} is not a path")
        if column is not None and not isinstance(column, str):
            column = integer("column", column, minimum=0)
        self.scale = non_negative("scale", scale)
        self.measured = load_delay_column(file, column)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        picks = rng.integers(0, len(self.measured), size=self.n_learners)
        with np.errstate(invalid="ignore"):
            delays = self.scale * self.measured[picks]
        return np.nan_to_num(delays, nan=0.0, posinf=np.inf)  # 0 * inf: a zero scale means no delay

    def mean_delay(self) -> float:
        if self.scale == 0:
            return 0.0
        return float(self.scale * self.measured.mean())
