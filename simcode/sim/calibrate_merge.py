"""`simcode calibrate --merge A B ...`: one profile from calibrations of one machine taken at different times.

Why: a calibration is a snapshot of the machine's pace, and a virtual machine's pace drifts. On the
2-core machine of sim_vs_real, the same controller update measured 5.2, 5.8 and 5.2 ms in three
calibrations within 90 minutes, and a pure-Python loop's time moved from 12.4 to 14.0 ms in 30
minutes, while each calibration's own passes agree within 2 to 3%. A profile that is to price the
machine's typical pace averages calibrations spread over that drift.

How: every cost of the merged profile is the mean of what the profiles price. Each profile's costs
are linear in its coefficients (intercepts, per-unit costs, measured points' seconds, factors), so
those are averaged as they are; a rate a cost divides by (`bytes_per_second`, and `crowded`, a
row's speed on a crowded host) is averaged as its inverse. Measured points are matched by the
problem they measured (agents, batch, ...), each the mean over the profiles that measured it. A part that
only some profiles have (measured by a later version of calibrate) is the mean of those that have it.
Profiles of different machines or software are refused: their costs are not the same thing's.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from simcode.errors import BadInput
from simcode.sim.profile import Profile, load_profile

# A cost divides by these: the mean cost is that of the mean of their inverses.
INVERSE = {"bytes_per_second", "crowded"}
# Provenance that names the machine and the software: merged profiles must agree on it.
SAME_MACHINE = ("cpu", "cores", "torch_threads", "env_engine", "torch", "system")


def merge_profiles(paths: list[Path], key: str = "--merge") -> Profile:
    """The profile whose every cost is the mean of `paths`' (at least two, of one machine)."""
    if len(paths) < 2:
        raise BadInput(key, f"{len(paths)} profile given; allowed: two or more profiles of this machine, "
                            "each from simcode calibrate")
    profiles = [load_profile(path, key) for path in paths]
    for field in SAME_MACHINE:
        seen = {str(p.provenance.get(field)) for p in profiles}
        if len(seen) > 1:
            raise BadInput(key, f"the profiles differ in provenance.{field} ({', '.join(sorted(seen))}); allowed: "
                                "calibrations of one machine with one software, taken at different times")
    data = [p.model_dump(exclude_none=True) for p in profiles]
    merged = _mean([{k: v for k, v in d.items() if k != "provenance"} for d in data], "")
    stamps = ", ".join(f"{Path(path).name} ({p.provenance.get('date', '?')})" for path, p in zip(paths, profiles))
    merged["provenance"] = {**profiles[0].provenance, "date": datetime.date.today().isoformat(),
                            "merged": f"the mean of {len(paths)} calibrations: {stamps}"}
    return Profile.model_validate(merged)


def _mean(values: list, name: str):
    """The mean of one part of every profile that has it (a mapping part by part)."""
    first = values[0]
    if isinstance(first, dict):
        names = dict.fromkeys(k for v in values for k in v)  # every profile's parts, in first-seen order
        return {k: _mean([v[k] for v in values if k in v], k) for k in names}
    if isinstance(first, list):
        return _mean_points(values)
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    numbers = np.array(values, dtype=float)
    return float(1.0 / np.mean(1.0 / numbers)) if name in INVERSE else float(np.mean(numbers))


def _mean_points(lists: list[list[dict]]) -> list[dict]:
    """Measured points (each a problem and its seconds): every problem some profile measured, in the order first
    seen, its seconds the mean over the profiles that measured it (a later calibrate measures more problems)."""
    def problem(point: dict) -> tuple:
        return tuple(sorted((k, v) for k, v in point.items() if k != "seconds"))

    measured = [{problem(p): p["seconds"] for p in points} for points in lists]
    first: dict[tuple, dict] = {}
    for point in (p for points in lists for p in points):
        first.setdefault(problem(point), point)
    return [{**point, "seconds": float(np.mean([m[key] for m in measured if key in m]))}
            for key, point in first.items()]
