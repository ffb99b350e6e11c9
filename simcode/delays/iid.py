"""Memoryless delay models: every iteration is drawn afresh, nothing is remembered between them.

`fixed_k` is the paper's model (k random learners late by a fixed delay). The continuous families
(shifted exponential, Pareto, lognormal, Weibull) draw each learner's delay independently; they are
the usual service-time models of the straggler literature, from light-tailed to heavy-tailed, and
`mean_delay` gives each one's exact mean so a study can compare families at the same mean delay.
`bimodal` is the simplest "some machines are slow" model: a fast and a slow level.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from simcode.delays.base import LATE_BY, DelayModel, probability_field, shift_field
from simcode.params import MAX_COUNT, MAX_RATE, MAX_SECONDS, Float, Int, ParamsModel


class NoDelay(DelayModel):
    """No stragglers: every learner answers after its compute time."""

    name = "none"

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(self.n_learners)

    def mean_delay(self) -> float:
        return 0.0


class FixedK(DelayModel):
    """The paper's model: each iteration, k learners chosen uniformly at random (without
    replacement) are late by `delay`; the others are on time."""

    name = "fixed_k"

    class Params(ParamsModel):
        k: Int = Field(1, ge=0, le=MAX_COUNT, description="learners late each iteration (at most N)")
        delay: Float = Field(0.25, ge=0, le=MAX_SECONDS, description=LATE_BY)

    def _configure(self) -> None:
        self._learner_count("k", self.k)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        delays = np.zeros(self.n_learners)
        delays[rng.choice(self.n_learners, size=self.k, replace=False)] = self.delay
        return delays

    def mean_delay(self) -> float:
        return self.k / self.n_learners * self.delay


class ShiftedExponential(DelayModel):
    """delay = shift + Exp(rate): mean shift + 1/rate, standard deviation 1/rate."""

    name = "shifted_exponential"

    class Params(ParamsModel):
        shift: Float = shift_field()
        rate: Float = Field(gt=0, le=MAX_RATE, description="rate of the exponential part (1 / its mean)")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + rng.exponential(1.0 / self.rate, size=self.n_learners)

    def mean_delay(self) -> float:
        return self.shift + 1.0 / self.rate


class Pareto(DelayModel):
    """delay = shift + X with X classic (type I) Pareto: minimum `scale` (x_m), tail index `alpha`,
    P(X > x) = (scale / x) ** alpha for x >= scale.

    So every learner is late by at least shift + scale. Mean shift + alpha * scale / (alpha - 1),
    finite iff alpha > 1 (inf otherwise); variance scale**2 * alpha / ((alpha - 1)**2 (alpha - 2)),
    finite iff alpha > 2. Drawn as scale * (1 + Lomax(alpha)) with numpy's `Generator.pareto`.
    (With a tiny alpha, say 0.01, a draw can overflow to inf, i.e. the learner never answers.)
    """

    name = "pareto"

    class Params(ParamsModel):
        scale: Float = Field(gt=0, le=MAX_SECONDS, description="minimum of the Pareto part (x_m)")
        alpha: Float = Field(gt=0, le=MAX_COUNT, description="tail index: finite mean iff > 1, variance iff > 2")
        shift: Float = shift_field()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + self.scale * (1.0 + rng.pareto(self.alpha, size=self.n_learners))

    def mean_delay(self) -> float:
        if self.alpha <= 1:
            return math.inf
        return self.shift + self.alpha * self.scale / (self.alpha - 1)


class Lognormal(DelayModel):
    """delay = shift + exp(mu + sigma * Z), Z standard normal: mean shift + exp(mu + sigma**2 / 2)."""

    name = "lognormal"

    class Params(ParamsModel):
        # exp(mu) is the median: beyond MAX_SECONDS no learner would ever answer.
        mu: Float = Field(ge=-100, le=math.log(MAX_SECONDS), description="mean of the underlying normal")
        sigma: Float = Field(gt=0, le=100, description="standard deviation of the underlying normal")
        shift: Float = shift_field()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + rng.lognormal(self.mu, self.sigma, size=self.n_learners)

    def mean_delay(self) -> float:
        return self.shift + math.exp(self.mu + self.sigma**2 / 2)


class Weibull(DelayModel):
    """delay = shift + scale * W, W Weibull with `shape` (P(W > w) = exp(-w**shape)):
    mean shift + scale * Gamma(1 + 1/shape). shape < 1 is heavier-tailed than exponential."""

    name = "weibull"

    class Params(ParamsModel):
        shape: Float = Field(gt=0, le=MAX_COUNT, description="shape: below 1 heavier-tailed than exponential")
        scale: Float = Field(gt=0, le=MAX_SECONDS, description="scale of the Weibull part")
        shift: Float = shift_field()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + self.scale * rng.weibull(self.shape, size=self.n_learners)

    def mean_delay(self) -> float:
        return self.shift + self.scale * math.gamma(1 + 1 / self.shape)


class Bimodal(DelayModel):
    """Each learner independently slow with probability `p_slow`: late by `slowdown` if slow,
    by `base` otherwise. Mean p_slow * slowdown + (1 - p_slow) * base."""

    name = "bimodal"

    class Params(ParamsModel):
        p_slow: Float = probability_field("probability that a learner is slow in an iteration")
        slowdown: Float = Field(ge=0, le=MAX_SECONDS, description="how late a slow learner is")
        base: Float = Field(0.0, ge=0, le=MAX_SECONDS, description="how late the other learners are")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        slow = rng.random(self.n_learners) < self.p_slow
        return np.where(slow, self.slowdown, self.base)

    def mean_delay(self) -> float:
        return self.p_slow * self.slowdown + (1 - self.p_slow) * self.base
