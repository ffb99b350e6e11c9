"""Delay models with memory: which learners straggle depends on the iterations before.

Real clusters have slow machines that stay slow (a bad node, a noisy neighbour) and machines that
die. Against such stragglers a code that survives "any k random stragglers" may do worse than the
i.i.d. models suggest, which is why these exist. State lives in the model between `sample` calls and
is cleared by `reset` (the simulator calls it at the start of every run).

Runs with the same seed and delay config see the same delays whatever else differs (the scheme,
the network). Within a run, `failure` and `markov` draw the same amount per `sample` whatever the
state (a learner that already failed still consumes its uniform); `persistent` with `k` draws its
slow learners once, at the first `sample` after `reset`, and nothing after.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from simcode.delays.base import LATE_BY, DelayModel, probability_field
from simcode.errors import BadInput
from simcode.params import MAX_COUNT, MAX_SECONDS, Bool, Float, Int, ParamsModel


class Persistent(DelayModel):
    """The same learners are slow in every iteration, late by `delay`.

    Give either `slow` (a list of learner indices) or `k` (a count; default 1 when neither is
    given). With `k`, the slow learners are drawn uniformly without replacement from the generator
    at the first `sample` after `reset`, then kept for the whole run.
    """

    name = "persistent"

    class Params(ParamsModel):
        slow: list[Int] | None = Field(None, description="a list of the slow learners' indices (0 .. N - 1)")
        k: Int | None = Field(None, ge=0, le=MAX_COUNT, description="how many learners are slow, drawn at "
                              "random (at most N); unset: 1 unless slow is given")
        delay: Float = Field(0.25, ge=0, le=MAX_SECONDS, description=LATE_BY)

    def _configure(self) -> None:
        if self.slow is not None and self.k is not None:
            raise BadInput("slow", "give either slow (learner indices) or k (how many), not both")
        self.fixed_slow = None if self.slow is None else self._indices(self.slow)
        if self.slow is not None:
            self.k = len(self.slow)
        else:
            self.k = self._learner_count("k", 1 if self.k is None else self.k)

    def _indices(self, slow: list[int]) -> np.ndarray:
        seen: set[int] = set()
        for index in slow:
            if not 0 <= index < self.n_learners:
                raise BadInput("slow", f"learner {index} does not exist; allowed: 0 .. {self.n_learners - 1}")
            if index in seen:
                raise BadInput("slow", f"learner {index} is listed twice")
            seen.add(index)
        return np.array(slow, dtype=np.int64)

    def reset(self) -> None:
        self.slow_learners = self.fixed_slow

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.slow_learners is None:
            self.slow_learners = rng.choice(self.n_learners, size=self.k, replace=False)
        delays = np.zeros(self.n_learners)
        delays[self.slow_learners] = self.delay
        return delays

    def mean_delay(self) -> float:
        return self.k / self.n_learners * self.delay


class Markov(DelayModel):
    """Each learner is a two-state Markov chain, normal or slow, independent of the others.

    Per iteration a normal learner turns slow with probability `p_slow` and a slow one recovers
    with probability `p_recover`, so a slow spell lasts 1 / p_recover iterations on average. Slow
    learners are late by `delay`. The first `sample` after `reset` draws each learner's state from
    the stationary distribution, P(slow) = p_slow / (p_slow + p_recover), so the chain starts in
    its long-run regime; later samples make one transition each. Both probabilities 0 is refused
    (the long-run regime would be undefined).
    """

    name = "markov"

    class Params(ParamsModel):
        p_slow: Float = probability_field("probability that a normal learner turns slow in an iteration")
        p_recover: Float = probability_field("probability that a slow learner recovers in an iteration "
                                             "(p_slow + p_recover > 0)")
        delay: Float = Field(0.25, ge=0, le=MAX_SECONDS, description=LATE_BY)

    def _configure(self) -> None:
        if self.p_slow + self.p_recover == 0:
            raise BadInput("p_recover", "p_slow and p_recover are both 0; allowed: p_slow + p_recover > 0")

    def stationary_slow(self) -> float:
        """Long-run probability that a learner is slow."""
        return self.p_slow / (self.p_slow + self.p_recover)

    def reset(self) -> None:
        self.slow = None

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        uniforms = rng.random(self.n_learners)
        if self.slow is None:
            self.slow = uniforms < self.stationary_slow()
        else:
            self.slow = np.where(self.slow, uniforms >= self.p_recover, uniforms < self.p_slow)
        return np.where(self.slow, self.delay, 0.0)

    def mean_delay(self) -> float:
        return self.stationary_slow() * self.delay


class Failure(DelayModel):
    """Learners stop answering (delay inf); answering learners are on time (delay 0).

    Each iteration each answering learner fails with probability `p_fail`. `permanent: false`
    (default): the failure lasts that iteration only. `permanent: true`: a failed learner stays
    failed until `reset`. `max_failed` (default n_learners) caps how many learners are failed at
    once; when more would fail, those with the smallest uniforms fail (no extra draws). Note that
    with `permanent: true` and no cap every learner eventually fails.
    """

    name = "failure"

    class Params(ParamsModel):
        p_fail: Float = probability_field("probability that an answering learner fails in an iteration")
        permanent: Bool = Field(False, description="true: a failed learner stays failed until the run ends")
        max_failed: Int | None = Field(None, ge=0, le=MAX_COUNT, description="most learners failed at once "
                                       "(at most N); unset: N")

    def _configure(self) -> None:
        if self.max_failed is None:
            self.max_failed = self.n_learners
        self._learner_count("max_failed", self.max_failed)

    def reset(self) -> None:
        self.failed = np.zeros(self.n_learners, dtype=bool)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        uniforms = rng.random(self.n_learners)
        already = self.failed if self.permanent else np.zeros(self.n_learners, dtype=bool)
        new = (uniforms < self.p_fail) & ~already
        room = self.max_failed - int(already.sum())
        if new.sum() > room:
            candidates = np.flatnonzero(new)
            keep = candidates[np.argsort(uniforms[candidates], kind="stable")[:room]]
            new = np.zeros(self.n_learners, dtype=bool)
            new[keep] = True
        self.failed = already | new
        return np.where(self.failed, np.inf, 0.0)

    def mean_delay(self) -> float:
        # A delay that is inf with positive probability has an infinite mean.
        return math.inf if self.p_fail > 0 and self.max_failed > 0 else 0.0
