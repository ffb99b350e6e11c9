"""Study files: a base scenario plus axes, expanded into a grid of fully resolved runs.

```yaml
description: what the study asks
base: ../scenarios/spread3.yaml        # relative to the study file
set: {run.iterations: 200}            # overrides of the base, for every run
axes:                                 # the grid: the product of every axis
  scheme:                             # a zipped axis: each value sets several keys together
    - {code.name: centralized}
    - {code.name: uncoded, cluster.n_learners: 3}
    - {code.name: mds}
  delay.k: [0, 1, 2, 3]               # a plain axis: one key, a list of values
  seed: [0, 1, 2]
exclude:                              # combinations to leave out (every key given must match)
  - {code.name: uncoded, delay.k: 4}
quick: {run.iterations: 20}           # overrides applied by --quick
plots:                                # what to draw (see simcode.study.plots)
  - {kind: line, x: delay.k, y: mean_iteration}
```
Every run's columns in results.csv are the keys the axes set (`code.name`, `delay.k`, `seed`...).
An axis key with no dot (other than `seed`) is a label: it names runs (for `exclude`, plots and
tables) without changing the scenario, e.g. `{env.n_agents: 5, cluster.n_learners: 10, learners: 2M}`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcode.config import Scenario, apply_overrides, read_yaml, scenario_from_dict
from simcode.errors import BadInput

STUDY_KEYS = {"description", "base", "set", "axes", "exclude", "quick", "plots", "name"}
PLOT_KINDS = {"line", "distribution", "reward_time", "bar"}


@dataclass
class RunSpec:
    index: int
    values: dict[str, Any]          # the axis keys and the values this run takes
    scenario: Scenario

    @property
    def run_id(self) -> str:
        return f"run-{self.index:04d}-{self.scenario.digest()[:8]}"


@dataclass
class Study:
    name: str
    path: Path
    description: str
    runs: list[RunSpec]
    axis_keys: list[str]
    plots: list[dict[str, Any]] = field(default_factory=list)
    quick: bool = False


def resolve_study_path(name_or_file: str, studies_dir: Path | None = None) -> Path:
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise BadInput("", "study file not found", file=str(path))
        return path
    studies_dir = studies_dir or Path("studies")
    candidate = studies_dir / f"{name_or_file}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in studies_dir.glob("*.yaml")) if studies_dir.is_dir() else []
        raise BadInput("study", f"no study named {name_or_file!r} in {studies_dir}/; "
                                f"allowed: {', '.join(known) or 'a path to a study YAML file'}")
    return candidate


def is_label(key: str) -> bool:
    """Axis keys without a dot (other than `seed`) only label runs, e.g. `learners: 2M`."""
    return "." not in key and key not in Scenario.model_fields


def _axis_values(name: str, values: Any, file: str) -> list[dict[str, Any]]:
    """An axis as a list of {key: value} assignments."""
    if not isinstance(values, list) or not values:
        raise BadInput(f"axes.{name}", "must be a non-empty list of values", file)
    if all(isinstance(v, dict) for v in values):
        return [dict(v) for v in values]
    if any(isinstance(v, dict) for v in values):
        raise BadInput(f"axes.{name}", "mixes plain values and {key: value} mappings", file)
    return [{name: v} for v in values]


def load_study(name_or_file: str, quick: bool = False, studies_dir: Path | None = None) -> Study:
    """Read, expand and validate a study; every run's scenario is checked before anything runs."""
    path = resolve_study_path(name_or_file, studies_dir)
    file = str(path)
    data = read_yaml(path)
    unknown = set(data) - STUDY_KEYS
    if unknown:
        raise BadInput(sorted(unknown)[0], f"unknown study key; allowed: {', '.join(sorted(STUDY_KEYS))}", file)
    if "base" not in data:
        raise BadInput("base", "missing: the base scenario file, relative to the study file", file)
    base_path = (path.parent / str(data["base"])).resolve()
    if not base_path.is_file():
        raise BadInput("base", f"{data['base']} not found (looked at {base_path})", file)
    base = read_yaml(base_path)
    for section in ("set", "quick"):
        if not isinstance(data.get(section, {}) or {}, dict):
            raise BadInput(section, "must be a mapping of key: value overrides", file)
    base = apply_overrides(base, data.get("set") or {})
    if quick:
        base = apply_overrides(base, data.get("quick") or {})

    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise BadInput("axes", "must be a mapping of axis name to a list of values", file)
    axis_lists = [_axis_values(str(name), values, file) for name, values in axes.items()]
    axis_keys = list(dict.fromkeys(k for axis in axis_lists for assignment in axis for k in assignment))
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise BadInput("exclude", "must be a list of {key: value} mappings", file)

    runs: list[RunSpec] = []
    for combo in itertools.product(*axis_lists) if axis_lists else [()]:
        values: dict[str, Any] = {}
        for assignment in combo:
            values.update(assignment)
        if any(all(values.get(k) == v for k, v in rule.items()) for rule in exclude):
            continue
        overrides = {k: v for k, v in values.items() if not is_label(k)}
        try:
            scenario = scenario_from_dict(apply_overrides(base, overrides), file)
        except BadInput as exc:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise BadInput(exc.key, f"{exc.message} (in the run {shown}; leave it out with `exclude`)",
                           file) from None
        runs.append(RunSpec(len(runs), values, scenario))
    if not runs:
        raise BadInput("axes", "the grid is empty (every combination excluded)", file)

    plots = data.get("plots") or []
    for n, plot in enumerate(plots):
        if not isinstance(plot, dict) or plot.get("kind") not in PLOT_KINDS:
            raise BadInput(f"plots[{n}].kind", f"allowed: {', '.join(sorted(PLOT_KINDS))}", file)
    return Study(name=str(data.get("name") or path.stem), path=path, description=str(data.get("description", "")),
                 runs=runs, axis_keys=axis_keys, plots=plots, quick=quick)


TIMING_SECTIONS = ("code", "delay", "cluster", "cost")


def training_key(scenario: Scenario) -> str:
    """Runs with equal keys train identically (an exact code installs the direct updates), so
    they can share one real computation: everything but the timing sections must agree."""
    data = scenario.to_dict()
    for section in TIMING_SECTIONS:
        data.pop(section)
    return Scenario.model_validate(data).digest()
