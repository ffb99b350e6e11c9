"""What every straggler delay model shares: its mode, its size and the checking of its parameters.

A delay model answers one question per iteration: how late is each learner? The simulator adds the
answer to the learner's compute time (`mode: add`, seconds) or stretches the compute time by it
(`mode: scale`, a multiple of the compute time); `np.inf` means the learner does not answer at all.

Parameters are checked here, once, so that a scenario with a bad value fails before any run starts
with a `BadInput` that names the parameter and says what is allowed. A model declares its parameters
as `Params` (a ParamsModel: types, bounds, defaults, descriptions; the scenario's `delay` section is
built from it too) and finds them, checked and complete, as attributes of the same names; its
`_configure` checks only what depends on the number of learners.

Randomness comes only from the generator passed to `sample`, and what a model draws depends only on
its own parameters and the iterations so far, never on the coding scheme or the network, so two runs
with the same seed and delay config see the same delays, whichever schemes they compare.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from simcode.errors import BadInput
from simcode.params import MAX_COUNT, MAX_SECONDS, Int, ParamsModel, check

MODES = ("add", "scale")


# Fields several models share. A delay is in seconds with `mode: add`, a multiple of the compute time
# with `mode: scale`.
LATE_BY = "how late a late learner is"


def shift_field() -> Any:
    return Field(0.0, ge=0, le=MAX_SECONDS, description="delay every learner has at least")


def probability_field(description: str) -> Any:
    return Field(ge=0, le=1, description=description)


class DelaySize(ParamsModel):
    """What every delay model is built for."""

    n_learners: Int = Field(ge=1, le=MAX_COUNT, description="learners N")
    mode: Literal[MODES] = Field("add", description="add: seconds added to the compute time; scale: a "  # type: ignore[valid-type]
                                 "multiple of the compute time")


class DelayModel:
    """Base class: one subclass per model, registered by name in `simcode.delays.DELAYS`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[ParamsModel]] = ParamsModel

    def __init__(self, n_learners: int, mode: str = "add", **params: Any):
        size = check(DelaySize, {"n_learners": n_learners, "mode": mode}, "a delay model")
        self.n_learners, self.mode = size.n_learners, size.mode
        checked = check(self.Params, params, f"delay model {self.name!r}", also=("mode",))
        self.params = checked.model_dump()
        for key, value in checked:
            setattr(self, key, value)
        self._configure()
        self.reset()

    def _configure(self) -> None:
        """Check what depends on the number of learners (BadInput naming the key) and prepare what
        sampling needs."""

    def _learner_count(self, key: str, value: int) -> int:
        """A number of learners (a whole number >= 0) that does not exceed the learners there are."""
        if value > self.n_learners:
            raise BadInput(key, f"{value} > {self.n_learners} learners; allowed: 0 <= {key} <= n_learners")
        return value

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
