"""`simcode codes show`: what a scheme asks of each learner and how safely it decodes, as plain text.

Everything a reader needs to pick a scheme for a cluster size: its parameters (from its `Params`:
default, allowed values, meaning), the matrix (or a summary when it is large), the load per learner,
the worst-case tolerance, and a measured numerical check: condition numbers and decode errors over
random decodable sets of N - tolerance learners, with results in float64 and rounded to float32 (as
a float32 network would send them).
"""

from __future__ import annotations

import warnings

import numpy as np

from simcode.codes import CENTRALIZED, CENTRALIZED_SUMMARY, CODES, make_code
from simcode.codes.base import ACCURACY
from simcode.errors import BadInput
from simcode.memory import FLOAT64, check_fits, code_bytes
from simcode.params import describe
from simcode.seeding import generator

MAX_PRINTED_ENTRIES = 400
SAMPLED_SETS = 200
PROBE_SETS = 50
PROBE_SIZE = 1000
# What `codes show` takes from its own arguments, which a --set key must not name again.
GIVEN_BY_OPTIONS = {"name": "the NAME argument", "n_agents": "--agents", "n_learners": "--learners",
                    "seed": "--seed"}


def summary_of(name: str) -> str:
    """The first line of a scheme's description."""
    return ((CODES[name].__doc__ or "").strip().splitlines() or [""])[0]


def scheme_summaries() -> list[tuple[str, str, list[str]]]:
    """(name, one-line summary, parameter names) of every scheme a scenario may name, centralized included."""
    rows = [(name, summary_of(name), list(CODES[name].Params.model_fields)) for name in CODES]
    return sorted(rows + [(CENTRALIZED, CENTRALIZED_SUMMARY, [])])


def parameter_lines(name: str) -> list[str]:
    """'parameters:' and one line per parameter of scheme `name`: default, allowed values, meaning."""
    params = describe(CODES[name].Params)
    return ["parameters:", *(f"  {line}" for line in params)] if params else ["parameters: none"]


def count(n: int, noun: str) -> str:
    """'1 straggler', '2 stragglers'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _format_matrix(matrix: np.ndarray) -> str:
    if np.all(matrix == np.round(matrix)):
        cells = [[f"{int(v)}" for v in row] for row in matrix]
    else:
        cells = [[f"{v:.3g}" for v in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(f"  {i:3d} | " + " ".join(c.rjust(width) for c in row) for i, row in enumerate(cells))


def _relative_error(decoded: np.ndarray, theta: np.ndarray) -> float:
    return float(np.linalg.norm(decoded - theta) / np.linalg.norm(theta))


def render(name: str, n_agents: int, n_learners: int, seed: int = 0, params: dict | None = None) -> str:
    """Plain-text description of scheme `name` for M agents on N learners (BadInput on bad input)."""
    if name == CENTRALIZED:
        return f"scheme: {name} - {CENTRALIZED_SUMMARY}"
    # The code, the random results the probe decodes and the decoded states: checked before building.
    probe = FLOAT64 * PROBE_SIZE * (2 * n_agents + n_learners)
    check_fits([("--agents, --learners", "this code and its probe", code_bytes(n_agents, n_learners) + probe)],
               "building this code")
    clash = sorted(set(params or {}) & set(GIVEN_BY_OPTIONS))
    if clash:
        raise BadInput(clash[0], f"not a scheme parameter; allowed: {GIVEN_BY_OPTIONS[clash[0]]} sets it, not --set")
    code = make_code(name, n_agents=n_agents, n_learners=n_learners, seed=seed, **(params or {}))
    m, n = code.n_agents, code.n_learners
    shown = ", ".join(f"{k}={v}" for k, v in code.params().items()) or "none"
    lines = [f"scheme: {name} - {summary_of(name)}", f"construction: {type(code).CONSTRUCTION}", *parameter_lines(name),
             f"agents M={m}, learners N={n}, seed={seed}", f"params as used: {shown}"]
    nonzeros = code.load
    if n * m <= MAX_PRINTED_ENTRIES:
        lines += [f"matrix ({n} x {m}, row = learner):", _format_matrix(code.matrix)]
    else:
        lines.append(f"matrix ({n} x {m}): density {nonzeros.sum() / (n * m):.3f}, nonzeros per row "
                     f"min {nonzeros.min()}, median {np.median(nonzeros):g}, max {nonzeros.max()}")
    lines.append(f"load per learner: {' '.join(str(v) for v in nonzeros)} (total {nonzeros.sum()}, "
                 f"idle learners {int(np.sum(nonzeros == 0))})")
    exact = "exact" if code.tolerance_exact else "lower bound (enumeration budget reached)"
    lines.append(f"tolerance: {count(code.tolerance, 'straggler')} in the worst case ({exact})")

    rng = generator(seed, "evaluation")
    size = n - code.tolerance
    sets = [tuple(sorted(rng.choice(n, size, replace=False))) for _ in range(SAMPLED_SETS)]
    sets = [s for s in sets if code.can_decode(s)]
    if not sets:
        lines.append("conditioning: no decodable set sampled")
        return "\n".join(lines)
    conds = np.array([code.condition(s) for s in sets])
    lines.append(f"condition number over {len(sets)} random sets of {size} learners: "
                 f"median {np.median(conds):.3g}, worst {conds.max():.3g}")
    theta = rng.standard_normal((m, PROBE_SIZE))
    worst = {np.dtype(np.float64): 0.0, np.dtype(np.float32): 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for s in sets[:PROBE_SETS]:
            exact_results = code.matrix[list(s)] @ theta
            for dtype in list(worst):
                results = {i: exact_results[k].astype(dtype) for k, i in enumerate(s)}
                worst[dtype] = max(worst[dtype], _relative_error(code.decode(results), theta))
    lines.append(f"decode error probe (P={PROBE_SIZE}, {min(len(sets), PROBE_SETS)} sets, worst relative): "
                 f"float64 {worst[np.dtype(np.float64)]:.3g}, float32 results {worst[np.dtype(np.float32)]:.3g}")
    for dtype, error in worst.items():
        if error > ACCURACY[dtype]:
            lines.append(f"WARNING: {dtype} results would not decode accurately "
                         f"(worst error {error:.3g} > {ACCURACY[dtype]:g})")
    return "\n".join(lines)
