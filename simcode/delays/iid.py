"""Memoryless delay models: every iteration is drawn afresh, nothing is remembered between them.

`fixed_k` is the paper's model (k random learners late by a fixed delay). The continuous families
(shifted exponential, Pareto, lognormal, Weibull) draw each learner's delay independently; they are
the usual service-time models of the straggler literature, from light-tailed to heavy-tailed, and
`mean_delay` gives each one's exact mean so a study can compare families at the same mean delay.
`bimodal` is the simplest "some machines are slow" model: a fast and a slow level.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from simcode.delays.base import REQUIRED, DelayModel, integer, non_negative, positive, probability, real


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
    PARAMS: ClassVar[dict[str, Any]] = {"k": 1, "delay": 0.25}

    def _configure(self, k, delay) -> None:
        self.k = integer("k", k, minimum=0, n_learners=self.n_learners)
        self.delay = non_negative("delay", delay)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        delays = np.zeros(self.n_learners)
        delays[rng.choice(self.n_learners, size=self.k, replace=False)] = self.delay
        return delays

    def mean_delay(self) -> float:
        return self.k / self.n_learners * self.delay


class ShiftedExponential(DelayModel):
    """delay = shift + Exp(rate): mean shift + 1/rate, standard deviation 1/rate."""

    name = "shifted_exponential"
    PARAMS: ClassVar[dict[str, Any]] = {"shift": 0.0, "rate": REQUIRED}

    def _configure(self, shift, rate) -> None:
        self.shift = non_negative("shift", shift)
        self.rate = positive("rate", rate)

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
    PARAMS: ClassVar[dict[str, Any]] = {"scale": REQUIRED, "alpha": REQUIRED, "shift": 0.0}

    def _configure(self, scale, alpha, shift) -> None:
        self.scale = positive("scale", scale)
        self.alpha = positive("alpha", alpha)
        self.shift = non_negative("shift", shift)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + self.scale * (1.0 + rng.pareto(self.alpha, size=self.n_learners))

    def mean_delay(self) -> float:
        if self.alpha <= 1:
            return math.inf
        return self.shift + self.alpha * self.scale / (self.alpha - 1)


class Lognormal(DelayModel):
    """delay = shift + exp(mu + sigma * Z), Z standard normal: mean shift + exp(mu + sigma**2 / 2)."""

    name = "lognormal"
    PARAMS: ClassVar[dict[str, Any]] = {"mu": REQUIRED, "sigma": REQUIRED, "shift": 0.0}

    def _configure(self, mu, sigma, shift) -> None:
        self.mu = real("mu", mu)
        self.sigma = positive("sigma", sigma)
        self.shift = non_negative("shift", shift)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + rng.lognormal(self.mu, self.sigma, size=self.n_learners)

    def mean_delay(self) -> float:
        return self.shift + math.exp(self.mu + self.sigma**2 / 2)


class Weibull(DelayModel):
    """delay = shift + scale * W, W Weibull with `shape` (P(W > w) = exp(-w**shape)):
    mean shift + scale * Gamma(1 + 1/shape). shape < 1 is heavier-tailed than exponential."""

    name = "weibull"
    PARAMS: ClassVar[dict[str, Any]] = {"shape": REQUIRED, "scale": REQUIRED, "shift": 0.0}

    def _configure(self, shape, scale, shift) -> None:
        self.shape = positive("shape", shape)
        self.scale = positive("scale", scale)
        self.shift = non_negative("shift", shift)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.shift + self.scale * rng.weibull(self.shape, size=self.n_learners)

    def mean_delay(self) -> float:
        return self.shift + self.scale * math.gamma(1 + 1 / self.shape)


class Bimodal(DelayModel):
    """Each learner independently slow with probability `p_slow`: late by `slowdown` if slow,
    by `base` otherwise. Mean p_slow * slowdown + (1 - p_slow) * base."""

    name = "bimodal"
    PARAMS: ClassVar[dict[str, Any]] = {"p_slow": REQUIRED, "slowdown": REQUIRED, "base": 0.0}

    def _configure(self, p_slow, slowdown, base) -> None:
        self.p_slow = probability("p_slow", p_slow)
        self.slowdown = non_negative("slowdown", slowdown)
        self.base = non_negative("base", base)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        slow = rng.random(self.n_learners) < self.p_slow
        return np.where(slow, self.slowdown, self.base)

    def mean_delay(self) -> float:
        return self.p_slow * self.slowdown + (1 - self.p_slow) * self.base
