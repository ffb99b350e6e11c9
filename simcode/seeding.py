"""One seed per run, independent random streams by purpose.

Each purpose gets its own `numpy.random.SeedSequence`, so changing what one part of a run does (the
scheme, say) never shifts the draws of another (the stragglers): schemes compared in one study see
the same delays (common random numbers). Randomness comes only from these generators.
"""

from __future__ import annotations

import numpy as np

PURPOSES = ("env", "networks", "minibatches", "exploration", "code", "delays", "evaluation")


def seed_sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    if purpose not in PURPOSES:
        raise KeyError(f"unknown random stream {purpose!r}; known: {', '.join(PURPOSES)}")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(PURPOSES.index(purpose),))


def generator(seed: int, purpose: str) -> np.random.Generator:
    """A numpy Generator for one purpose of one run."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, purpose)))
