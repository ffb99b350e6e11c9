"""Coding schemes: which agents' updates each learner computes, and how the controller decodes.

A scheme is one module defining a `Code` subclass (with its `Params`) plus one line in CODES below.
Build codes with `make_code(name, n_agents=M, n_learners=N, seed=seed, **params)`: it rejects unknown
names and parameters with a BadInput naming the key and listing what is allowed.
"""

from __future__ import annotations

from simcode.codes.base import Code
from simcode.codes.ldpc import LDPC
from simcode.codes.mds import MDS
from simcode.codes.mds_vandermonde import MDSVandermonde
from simcode.codes.random_sparse import RandomSparse
from simcode.codes.replication import Replication
from simcode.codes.uncoded import Uncoded
from simcode.errors import BadInput

CODES: dict[str, type[Code]] = {
    cls.name: cls for cls in (Uncoded, Replication, MDS, MDSVandermonde, RandomSparse, LDPC)
}
# Not a scheme: the baseline a scenario names with `code.name: centralized`.
CENTRALIZED = "centralized"
CENTRALIZED_SUMMARY = ("No learners: the controller computes every agent's update itself (the baseline; "
                       "nothing to decode, no straggler to wait for).")


def make_code(name: str, n_agents: int, n_learners: int, seed: int = 0, **params) -> Code:
    """The scheme `name` for M agents on N learners, built from the seed's "code" stream."""
    if name not in CODES:
        raise BadInput("name", f"unknown scheme {name!r}; allowed: {', '.join(sorted(CODES))}")
    return CODES[name](n_agents=n_agents, n_learners=n_learners, seed=seed, **params)


__all__ = ["CENTRALIZED", "CENTRALIZED_SUMMARY", "CODES", "Code", "make_code"]
