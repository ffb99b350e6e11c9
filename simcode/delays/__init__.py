"""Straggler delay models: how late each learner is, iteration by iteration.

`make_delay(name, n_learners=N, mode="add", **params)` builds a registered model; its `sample(rng)`
gives one iteration's delays for all learners (seconds added to the compute time for `mode: add`,
a multiple of the compute time for `mode: scale`; `np.inf` = no answer). `busy_time` applies them.
A new model is one `DelayModel` subclass plus one line in `DELAYS`.
"""

from __future__ import annotations

from typing import Any

from simcode.delays.base import MODES, DelayModel, busy_time
from simcode.delays.empirical import Empirical
from simcode.delays.iid import Bimodal, FixedK, Lognormal, NoDelay, Pareto, ShiftedExponential, Weibull
from simcode.delays.stateful import Failure, Markov, Persistent
from simcode.errors import BadInput

DELAYS: dict[str, type[DelayModel]] = {
    model.name: model
    for model in (NoDelay, FixedK, ShiftedExponential, Pareto, Lognormal, Weibull, Bimodal,
                  Persistent, Markov, Failure, Empirical)
}


def make_delay(name: str, n_learners: int, mode: str = "add", **params: Any) -> DelayModel:
    """The registered delay model `name` for `n_learners` learners (raises BadInput on bad input)."""
    if name not in DELAYS:
        raise BadInput("name", f"unknown delay model {name!r}; allowed: {', '.join(sorted(DELAYS))}")
    return DELAYS[name](n_learners=n_learners, mode=mode, **params)


__all__ = ["DELAYS", "MODES", "DelayModel", "busy_time", "make_delay"]
