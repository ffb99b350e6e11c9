"""What every straggler delay model shares: its mode, its size and the checking of its parameters.

A delay model answers one question per iteration: how late is each learner? The simulator adds the
answer to the learner's compute time (`mode: add`, seconds) or stretches the compute time by it
(`mode: scale`, a multiple of the compute time); `np.inf` means the learner does not answer at all.

Parameters are checked here, once, so that a scenario with a bad value fails before any run starts
with a `BadInput` that names the parameter and says what is allowed. A model declares its parameters
in `PARAMS` (name -> default, or `REQUIRED`) and receives them, already complete, in `_configure`.

Randomness comes only from the generator passed to `sample`, and what a model draws depends only on
its own parameters and the iterations so far, never on the coding scheme or the network, so two runs
with the same seed and delay config see the same delays, whichever schemes they compare.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np

from simcode.errors import BadInput, check_positive, check_probability

MODES = ("add", "scale")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default marking a parameter the scenario must give."""


class DelayModel:
    """Base class: one subclass per model, registered by name in `simcode.delays.DELAYS`."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_learners: int, mode: str = "add", **params: Any):
        self.n_learners = integer("n_learners", n_learners, minimum=1)
        if mode not in MODES:
            raise BadInput("mode", f"{mode!r} is not a delay mode; allowed: {', '.join(MODES)}")
        self.mode = mode
        allowed = ", ".join([*self.PARAMS, "mode"])
        for key in params:
            if key not in self.PARAMS:
                if not self.PARAMS:
                    raise BadInput(key, f"delay model {self.name!r} takes no parameters; allowed: mode")
                raise BadInput(key, f"unknown parameter of delay model {self.name!r}; allowed: {allowed}")
        values = {**self.PARAMS, **params}
        for key, value in values.items():
            if value is REQUIRED:
                raise BadInput(key, f"required by delay model {self.name!r} (parameters: {allowed})")
        self.params = values
        self._configure(**values)
        self.reset()

    def _configure(self, **params: Any) -> None:
        """Check the parameters and keep them as attributes (raise BadInput on a bad value)."""

    def reset(self) -> None:
        """Forget any state kept between iterations; called at the start of every run."""

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One iteration's delays, shape (n_learners,), float64, >= 0 (np.inf: no answer)."""
        raise NotImplementedError

    def mean_delay(self) -> float:
        """Long-run mean delay per learner per iteration (averaged over learners); nan if undefined."""
        return math.nan

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        sep = ", " if params else ""
        return f"{type(self).__name__}(n_learners={self.n_learners}, mode={self.mode!r}{sep}{params})"


def busy_time(compute: np.ndarray | float, delays: np.ndarray, mode: str) -> np.ndarray:
    """A learner's simulated busy time: its compute time slowed by its straggler delay.

    `add`: compute + delay seconds. `scale`: compute * (1 + delay). A learner with an infinite
    delay never answers, so its busy time is inf (even for zero compute, where 0 * inf would be nan).
    """
    compute = np.asarray(compute, dtype=np.float64)
    delays = np.asarray(delays, dtype=np.float64)
    if mode == "add":
        busy = compute + delays
    elif mode == "scale":
        with np.errstate(invalid="ignore"):
            busy = compute * (1.0 + delays)
    else:
        raise BadInput("mode", f"{mode!r} is not a delay mode; allowed: {', '.join(MODES)}")
    return np.where(np.isinf(delays), np.inf, busy)


# Value checks shared by the models. Each returns the value as a plain Python number.


def real(key: str, value: Any) -> float:
    """A finite real number (a YAML bool or string is refused rather than silently converted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise BadInput(key, f"{value!r} is not a finite number")
    return float(value)


def non_negative(key: str, value: Any) -> float:
    return float(check_positive(key, real(key, value), allow_zero=True))


def positive(key: str, value: Any) -> float:
    return float(check_positive(key, real(key, value)))


def probability(key: str, value: Any) -> float:
    return check_probability(key, real(key, value))


def integer(key: str, value: Any, *, minimum: int | None = None, n_learners: int | None = None) -> int:
    """An integer (2.0 is accepted as 2), >= minimum and, when n_learners is given, <= n_learners."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise BadInput(key, f"{value!r} is not an integer")
    value = int(value)
    low = f"{minimum} <= " if minimum is not None else ""
    if minimum is not None and value < minimum:
        upper = " <= n_learners" if n_learners is not None else ""
        raise BadInput(key, f"{value} < {minimum}; allowed: {low}{key}{upper}")
    if n_learners is not None and value > n_learners:
        raise BadInput(key, f"{value} > {n_learners} learners; allowed: {low}{key} <= n_learners")
    return value
