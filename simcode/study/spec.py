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
tables:                               # optional: timing tables' rows; the learning table (study.learning)
  learning: {by: [code.name], fraction: 0.5}
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

from simcode.config import Scenario, apply_overrides, read_yaml, scenario_from_dict, unknown_key
from simcode.errors import BadInput
from simcode.figures import VOLATILE_METADATA
from simcode.sim.protocol import REAL_TIMINGS
from simcode.yamlfiles import YAML_SUFFIXES, shipped_names, shipped_path

STUDY_KEYS = {"description", "base", "set", "axes", "exclude", "quick", "plots", "name", "tables"}
LEARNING_PLOTS = {"reward_band", "frontier"}  # drawn from simcode.study.learning's measures, no x or y
PLOT_KINDS = {"line", "distribution", "reward_time", "bar", *LEARNING_PLOTS}
PLOT_KEYS = {"kind", "x", "y", "hue", "style", "row", "col", "where", "title", "file"}
# The summary of a run (simcode.sim.runner.summarize): with the axis keys and run_id, the columns of
# results.csv that plots may name. tests/test_study.py checks it against a real run's summary.
SUMMARY_KEYS = ("iterations", "sim_seconds", "mean_iteration", "median_iteration", "p90_iteration", "p99_iteration",
                "std_iteration", "host_seconds", "max_decode_error", "decode_warning", "warmup_seconds",
                "final_reward", "scheme", "n_agents", "n_learners", "tolerance", "load_max", "resent",
                "mean_env_seconds", "mean_to_decode", "mean_after_decode", *(f"mean_{c}" for c in REAL_TIMINGS),
                "strategy", "mean_updated_fraction",
                "workload", "cost_model", "reproducible", "machine_probe_seconds", "machine_speed",
                "cpu_per_iteration", "backend",
                "simcode_version", "scenario_hash")


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
    table_rows: list[str] = field(default_factory=list)  # `tables: {rows: [...]}`: rows of the report's tables
    learning: dict[str, Any] | None = None  # `tables: {learning: {...}}`: the learning table's settings


def resolve_study_path(name_or_file: str, studies_dir: Path | None = None) -> Path:
    """A study file: the path given when it exists; a bare NAME is `studies/NAME.yaml` under the
    current directory, then the shipped study of that name (so it works from any directory)."""
    path = Path(name_or_file)
    if path.is_file():
        return path
    if path.exists():
        raise BadInput("", "is a directory, not a study file; allowed: a study NAME or a YAML file", file=str(path))
    studies_dir = studies_dir or Path("studies")
    local = studies_dir / f"{name_or_file}.yaml"
    if path.suffix not in YAML_SUFFIXES and local.is_file():
        return local
    found = shipped_path(path, "studies")
    if found is not None:
        return found
    if path.suffix in YAML_SUFFIXES:
        raise BadInput("", "study file not found", file=str(path))
    known = sorted(p.stem for p in studies_dir.glob("*.yaml")) if studies_dir.is_dir() else []
    known = sorted(set(known) | set(shipped_names("studies")))
    raise BadInput("study", f"no study named {name_or_file!r} in {studies_dir}/ or the shipped studies; "
                            f"allowed: {', '.join(known) or 'a path to a study YAML file'}")


def is_label(key: str) -> bool:
    """Axis keys without a dot (other than `seed`) only label runs, e.g. `learners: 2M`."""
    return "." not in key and key not in Scenario.model_fields


def _axis_values(name: str, values: Any, file: str) -> list[dict[str, Any]]:
    """An axis as a list of {key: value} assignments."""
    if not isinstance(values, list) or not values:
        raise BadInput(f"axes.{name}", "must be a non-empty list of values", file)
    if all(isinstance(v, dict) for v in values):
        return [{str(k): v for k, v in assignment.items()} for assignment in values]
    if any(isinstance(v, dict) for v in values):
        raise BadInput(f"axes.{name}", "mixes plain values and {key: value} mappings", file)
    if is_label(name):
        allowed = ", ".join(Scenario.model_fields)
        raise BadInput(f"axes.{name}", f"not a key of the scenario (a plain axis must set one; labels go inside "
                                       f"{{key: value}} mappings); allowed: dotted keys under {allowed}", file)
    return [{name: v} for v in values]


def _read_study(path: Path, quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The study file's mapping and its base scenario with `set` (and, quick, `quick`) applied."""
    file = str(path)
    data = read_yaml(path)
    unknown = set(data) - STUDY_KEYS
    if unknown:
        raise BadInput(sorted(unknown)[0], f"unknown study key; allowed: {', '.join(sorted(STUDY_KEYS))}", file)
    if "base" not in data:
        raise BadInput("base", "missing: the base scenario file, relative to the study file", file)
    base_path = (path.parent / str(data["base"])).resolve()
    if not base_path.is_file():  # e.g. a copy of a shipped study: `../scenarios/NAME.yaml` is the shipped one
        base_path = shipped_path(Path(str(data["base"])).name, "scenarios") or base_path
    if not base_path.is_file():
        raise BadInput("base", f"{data['base']} not found (looked at {base_path})", file)
    base = read_yaml(base_path)
    for section in ("set", "quick"):
        if not isinstance(data.get(section, {}) or {}, dict):
            raise BadInput(section, "must be a mapping of key: value overrides", file)
    base = apply_overrides(base, data.get("set") or {})
    if quick:
        base = apply_overrides(base, data.get("quick") or {})
    return data, base


def _grid(axis_lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every combination of the axes, as the axis keys and the values they take."""
    combos = []
    for combo in itertools.product(*axis_lists) if axis_lists else [()]:
        values: dict[str, Any] = {}
        for assignment in combo:
            values.update(assignment)
        combos.append(values)
    return combos


def _excluded(exclude: Any, grid: list[dict[str, Any]], axis_keys: list[str], file: str) -> list[dict[str, Any]]:
    """The grid without the combinations an `exclude` rule matches; a rule must name axis keys and
    match some combination (otherwise it is a typo that silently excludes nothing)."""
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise BadInput("exclude", "must be a list of {key: value} mappings", file)
    for n, rule in enumerate(exclude):
        for key in rule:
            if key not in axis_keys:
                raise BadInput(f"exclude[{n}].{key}", f"not an axis key of this study; allowed: {', '.join(axis_keys)}",
                               file)
        if not any(_matches(rule, values) for values in grid):
            shown = ", ".join(f"{k}={v}" for k, v in rule.items())
            raise BadInput(f"exclude[{n}]", f"matches no run ({shown} is not in the grid); allowed: values "
                                            "the axes take", file)
    return [values for values in grid if not any(_matches(rule, values) for rule in exclude)]


def _matches(rule: dict[str, Any], values: dict[str, Any]) -> bool:
    return all(k in values and values[k] == v for k, v in rule.items())


def _dotted_keys(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """`{run: {iterations: 5}, delay.k: 1}` -> ['run.iterations', 'delay.k']."""
    keys = []
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        keys += _dotted_keys(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def _check_keys(keys: list[str], where: str, grid: list[dict[str, Any]], base: dict[str, Any], file: str) -> None:
    """A key that is a key of no run's scenario is a typo: say so, with what is allowed (a key valid
    in only some runs, such as one scheme's parameter, is left to the per-run check)."""
    scenarios = [apply_overrides(base, _overrides(values)) for values in grid]
    for key in keys:
        if is_label(key):
            continue
        problems = [unknown_key(key, data) for data, values in zip(scenarios, grid)
                    if where != "axes" or key in values]
        if problems and all(problems):
            named, what = (key, "an axis key") if where == "axes" else (f"{where}.{key}", f"a `{where}` key")
            raise BadInput(named, f"{problems[0]} ({what} must be a key of the scenario)", file)


def _overrides(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not is_label(k)}


def _build_runs(grid: list[dict[str, Any]], base: dict[str, Any], file: str) -> list[RunSpec]:
    runs: list[RunSpec] = []
    for values in grid:
        try:
            scenario = scenario_from_dict(apply_overrides(base, _overrides(values)), file)
        except BadInput as exc:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise BadInput(exc.key, f"{exc.message} (in the run {shown}; leave it out with `exclude`)",
                           file) from None
        runs.append(RunSpec(len(runs), values, scenario))
    if not runs:
        raise BadInput("axes", "the grid is empty (every combination excluded)", file)
    return runs


def _check_plots(plots: Any, columns: list[str], file: str) -> None:
    """Each plot: a known kind, known keys, and x/y/hue/where naming columns of results.csv."""
    if not isinstance(plots, list):
        raise BadInput("plots", "must be a list of {kind: ..., x: ...} mappings", file)
    for n, plot in enumerate(plots):
        if not isinstance(plot, dict) or plot.get("kind") not in PLOT_KINDS:
            raise BadInput(f"plots[{n}].kind", f"allowed: {', '.join(sorted(PLOT_KINDS))}", file)
        for key in plot:
            if key not in PLOT_KEYS:
                raise BadInput(f"plots[{n}].{key}", f"unknown plot key; allowed: {', '.join(sorted(PLOT_KEYS))}", file)
        if plot["kind"] in ("line", "bar") and "x" not in plot:
            raise BadInput(f"plots[{n}].x", f"missing: a {plot['kind']} plot needs an x column", file)
        if plot["kind"] in LEARNING_PLOTS and {"x", "y"} & set(plot):
            raise BadInput(f"plots[{n}].{min({'x', 'y'} & set(plot))}", f"a {plot['kind']} plot draws reward "
                           "against simulated seconds; allowed: hue, style, row, col, where, title, file", file)
        if "file" in plot:
            _check_plot_file(plot["file"], f"plots[{n}].file", file)
        where = plot.get("where") or {}
        if not isinstance(where, dict):
            raise BadInput(f"plots[{n}].where", "must be a mapping of column: value", file)
        for key, value in where.items():
            if isinstance(value, (list, dict)):
                raise BadInput(f"plots[{n}].where.{key}", f"{value!r} is not one value; allowed: a single value "
                                                          "of the column (a number or a string)", file)
        named = [(k, plot[k]) for k in ("x", "y", "hue", "style", "row", "col") if k in plot]
        named += [(f"where.{k}", k) for k in where]
        for key, column in named:
            if column not in columns:
                raise BadInput(f"plots[{n}].{key}", f"{column!r} is not a column of results.csv; allowed: "
                                                    f"{', '.join(columns)}", file)


def plot_file(n: int, plot: dict) -> str:
    """The file plots[n] is written to in the study's plots/: its `file`, or NN-KIND.png."""
    return plot.get("file") or f"{n:02d}-{plot['kind']}.png"


def _check_plot_files(plots: list[dict], file: str) -> None:
    """No two plots write one file (the second would replace the first without a word)."""
    names = [plot_file(n, plot) for n, plot in enumerate(plots)]
    for n, name in enumerate(names):
        if name in names[:n]:
            raise BadInput(f"plots[{n}].file", f"{name!r} is plots[{names.index(name)}]'s file too; allowed: a file "
                                               "name no other plot of the study writes", file)


def _plain_name(name: Any) -> bool:
    """A file or directory name with no directory in it: it cannot lead out of where it is written."""
    return isinstance(name, str) and Path(name).name == name and name not in (".", "..")


def _check_plot_file(name: Any, key: str, file: str) -> None:
    """A plot's file: a plain file name written inside the study's plots/, never a path elsewhere."""
    if not _plain_name(name) or Path(name).suffix.lower() not in VOLATILE_METADATA:
        raise BadInput(key, f"{name!r} is not allowed; allowed: a file name in the study's plots/ (no directory) "
                            f"ending in {', '.join(VOLATILE_METADATA)}", file)


def load_study(name_or_file: str, quick: bool = False, studies_dir: Path | None = None) -> Study:
    """Read, expand and validate a study; every run's scenario is checked before anything runs."""
    path = resolve_study_path(name_or_file, studies_dir)
    file = str(path)
    data, base = _read_study(path, quick)
    axes = data.get("axes") or {}
    if not isinstance(axes, dict):
        raise BadInput("axes", "must be a mapping of axis name to a list of values", file)
    axis_lists = [_axis_values(str(name), values, file) for name, values in axes.items()]
    axis_keys = list(dict.fromkeys(k for axis in axis_lists for assignment in axis for k in assignment))
    grid = _grid(axis_lists)
    for section in ("set", "quick"):
        _check_keys(_dotted_keys(data.get(section) or {}), section, grid, base, file)
    _check_keys(axis_keys, "axes", grid, base, file)
    runs = _build_runs(_excluded(data.get("exclude") or [], grid, axis_keys, file), base, file)
    plots = data.get("plots") or []
    _check_plots(plots, ["run_id", *axis_keys, *SUMMARY_KEYS], file)
    _check_plot_files(plots, file)
    return Study(name=_study_name(data.get("name"), path, file), path=path,
                 description=str(data.get("description", "")), runs=runs, axis_keys=axis_keys, plots=plots, quick=quick,
                 table_rows=_table_rows(data.get("tables"), axis_keys, file),
                 learning=_learning_table(data.get("tables"), axis_keys, file))


def _study_name(name: Any, path: Path, file: str) -> str:
    """The study's name (default: the file's stem); it names the default --out, runs/study-NAME."""
    if name is None or name == "":
        return path.stem
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if not _plain_name(name):
        raise BadInput("name", f"{name!r} is not allowed; allowed: a plain name (no directory), "
                               "used in the default --out runs/study-NAME", file)
    return name


def _table_rows(tables: Any, axis_keys: list[str], file: str) -> list[str]:
    """`tables: {rows: [axis keys]}`: the report's tables get one row per combination of these axes and
    one column per scheme (without it: one row per scheme, one column per value of the first plot's x)."""
    if tables is None:
        return []
    if not isinstance(tables, dict) or not tables or set(tables) - {"rows", "learning"}:
        raise BadInput("tables", "must be a mapping {rows: [axis keys], learning: {by: [axis keys], "
                                 "fraction: number}} (either or both)", file)
    if "rows" not in tables:
        return []
    rows = tables.get("rows")
    if not isinstance(rows, list) or not rows:
        raise BadInput("tables.rows", "must be a non-empty list of axis keys", file)
    for key in rows:
        if key not in axis_keys or key == "code.name":
            allowed = ", ".join(k for k in axis_keys if k != "code.name")
            raise BadInput("tables.rows", f"{key!r} is not an axis of this study (schemes are the columns); "
                                          f"allowed: {allowed}", file)
    return [str(k) for k in rows]


def _learning_table(tables: Any, axis_keys: list[str], file: str) -> dict[str, Any] | None:
    """`tables: {learning: {by: [axis keys], fraction: f}}`: the report's learning table (simcode.study.learning),
    one row per combination of `by` (default: every axis but the seed), its threshold `fraction` of the way
    from the random policy's reward to the best cell's final reward (default 0.5)."""
    if not isinstance(tables, dict) or "learning" not in tables:
        return None
    learning = tables["learning"] or {}
    if not isinstance(learning, dict) or set(learning) - {"by", "fraction"}:
        raise BadInput("tables.learning", "must be a mapping with keys by (a list of axis keys) and fraction", file)
    by = learning.get("by", [k for k in axis_keys if k != "seed"])
    if not isinstance(by, list) or not all(key in axis_keys for key in by):
        raise BadInput("tables.learning.by", f"must be a list of axis keys; allowed: {', '.join(axis_keys)}", file)
    fraction = learning.get("fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise BadInput("tables.learning.fraction", "must be a number in (0, 1]: the share of the way from the "
                                                   "random policy's reward to the best final reward", file)
    return {"by": [str(k) for k in by], "fraction": float(fraction)}


TIMING_SECTIONS = ("code", "delay", "cluster", "cost")


def training_key(scenario: Scenario) -> str:
    """Runs with equal keys train identically (an exact code installs the direct updates), so
    they can share one real computation: everything but the timing sections must agree.

    A strategy other than exact installs what arrives by its deadline, so every key may change the
    states it installs (the strategy, deadline and max_staleness, and the delays, code, cluster, cost
    and network that decide what arrives when): its key is the whole scenario, and such a run never
    shares a training with a different one (simcode.sim.runner.simulate_group runs even equal ones
    each with its own training)."""
    if scenario.cluster.strategy != "exact":
        return f"{scenario.cluster.strategy}-{scenario.digest()}"
    data = scenario.to_dict()
    for section in TIMING_SECTIONS:
        data.pop(section)
    return Scenario.model_validate(data).digest()
