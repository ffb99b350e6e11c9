"""How long each learner is busy in an iteration: its compute time slowed by its straggler delay,
refused when it is too long to be a time at all."""

from __future__ import annotations

import numpy as np

from simcode.delays import busy_time
from simcode.errors import SimulationError

# The longest a learner may be busy in one iteration (about 31,700 years): longer is a mistake of
# units, and sums and squares of such times stay far inside float64 (summary statistics).
MAX_BUSY_SECONDS = 1e12


def busy_seconds(iteration: int, compute: np.ndarray, delays: np.ndarray, delay_model) -> np.ndarray:
    """Each learner's busy time; inf only for a failed learner (an infinite delay), never by overflow."""
    busy = busy_time(compute, delays, delay_model.mode)
    if busy.max() <= MAX_BUSY_SECONDS:
        return busy  # the common case, in one reduction
    too_long = np.isfinite(delays) & ~(busy <= MAX_BUSY_SECONDS)  # an infinite delay is a failed learner
    if too_long.any():
        culprit = "the cost model's compute time" if np.max(compute) > MAX_BUSY_SECONDS else \
            largest_delay_parameter(delay_model)
        raise SimulationError(f"iteration {iteration}: a learner would be busy {busy[too_long][0]:.3g} s, more "
                              f"than the {MAX_BUSY_SECONDS:g} s a simulated time may take; {culprit} is too large")
    return busy


def largest_delay_parameter(delay_model) -> str:
    """`delay.KEY=value` for the delay model's largest number (what made a delay too long)."""
    numbers = {key: value for key, value in delay_model.params.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if not numbers:
        return f"the delay model {delay_model.name!r}"
    key = max(numbers, key=lambda name: abs(numbers[name]))
    return f"delay.{key}={numbers[key]:g}"
