"""report.md: what the study asked, the answer in tables and plots, and where every number came from.

Tables are means over the finished runs of each cell (the seeds). A cell with no number says why in a
footnote: its values are excluded by the study file, its runs failed, or (speed-ups) the baseline
has no run there. Failed runs are listed with their reasons. The provenance of every run (values,
seed, scenario hash) is in provenance.md beside report.md, which links to it.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pandas as pd
import yaml

import simcode
from simcode import atomic
from simcode.codes import CENTRALIZED
from simcode.study import sim_vs_real
from simcode.study.plots import UNIT, finished, write_plots
from simcode.study.learning import measure
from simcode.study.learning import section as learning_section
from simcode.study.spec import LEARNING_PLOTS, Study
from simcode.study.store import StudyStore

BASELINES = ("uncoded", CENTRALIZED)
FOOTNOTES = {
    "excluded": "No run has these values: the study file's `exclude` leaves them out.",
    "failed": "Runs with these values failed (see *Failed runs*); a number shown is the mean over the "
              "runs that finished.",
    "baseline": "The baseline has no finished run at this value (excluded or failed): no ratio.",
}
BLANK = "–"


def _markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else format(value, floatfmt)
        return str(value)

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


class Notes:
    """The footnotes a report uses, in order of first use."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def mark(self, key: str) -> str:
        if key not in self.used:
            self.used.append(key)
        return f"[^{key}]"

    def render(self) -> list[str]:
        return [f"[^{key}]: {FOOTNOTES[key]}" for key in self.used]


def _grid(results: pd.DataFrame, x: str, y: str, hue: str) -> pd.DataFrame:
    """hue x x means of y over finished runs, on the full grid of values (blank: no finished run)."""
    means = finished(results).pivot_table(index=hue, columns=x, values=y, aggfunc="mean", sort=False)
    return means.reindex(index=list(dict.fromkeys(results[hue])), columns=list(dict.fromkeys(results[x])))


def _failed_cells(results: pd.DataFrame, keys: list[str]) -> set[tuple]:
    if "status" not in results.columns:
        return set()
    return set(results.loc[results["status"] == "failed", keys].itertuples(index=False, name=None))


def _cells(values: pd.DataFrame, floatfmt: str, notes: Notes, failed: set[tuple], key, blank) -> pd.DataFrame:
    """Each number formatted; a cell whose `key(index, column)` lost runs gets the "failed" footnote,
    a blank cell the footnote `blank(index, column)` names."""
    text = values.astype(object)
    for index in values.index:
        for column in values.columns:
            number = values.at[index, column]
            shown = BLANK if pd.isna(number) else format(number, floatfmt)
            if key(index, column) in failed:
                shown += notes.mark("failed")
            elif pd.isna(number):
                shown += notes.mark(blank(index, column))
            text.at[index, column] = shown
    return text


def _as_text(values: pd.DataFrame, results: pd.DataFrame, x: str, hue: str, floatfmt: str, notes: Notes,
             blank_reasons: dict | None = None) -> pd.DataFrame:
    """Format a hue x x table; a blank cell, and a cell that lost runs, get their footnote (a blank
    is "excluded" unless `blank_reasons` gives its column another reason)."""
    blank_reasons = blank_reasons or {}
    text = _cells(values, floatfmt, notes, _failed_cells(results, [hue, x]), lambda h, v: (h, v),
                  lambda h, v: blank_reasons.get(v, "excluded"))
    text.columns = [f"{x}={c}" for c in values.columns]
    return text.reset_index()


def _pivot(results: pd.DataFrame, x: str, y: str, hue: str, notes: Notes, floatfmt: str = ".4f") -> str:
    return _markdown_table(_as_text(_grid(results, x, y, hue), results, x, hue, floatfmt, notes))


def _speedups(results: pd.DataFrame, x: str, hue: str, notes: Notes) -> tuple[str, str] | None:
    """Mean iteration time of the baseline divided by each scheme's, at each x."""
    present = set(results[hue])
    baseline = next((b for b in BASELINES if b in present), None)
    if baseline is None:
        return None
    means = _grid(results, x, "mean_iteration", hue)
    no_baseline = {v: "baseline" for v in means.columns if pd.isna(means.at[baseline, v])}
    return baseline, _markdown_table(_as_text(means.loc[baseline] / means, results, x, hue, ".2f", notes,
                                              no_baseline))


def _axes(study: Study, results: pd.DataFrame) -> tuple[str | None, str | None]:
    """(x, hue) of the headline tables: the first line or bar plot's x, by scheme."""
    hue = "code.name" if "code.name" in results.columns else None
    x = next((p.get("x") for p in study.plots
              if p.get("kind") in ("line", "bar") and p.get("x") in results.columns and p.get("x") != hue), None)
    return x, hue


def _per_scheme(results: pd.DataFrame, hue: str, columns: list[str], notes: Notes) -> str:
    table = finished(results).groupby(hue, sort=False)[columns].mean()
    table = table.reindex(list(dict.fromkeys(results[hue]))).reset_index()
    failed = {h for (h,) in _failed_cells(results, [hue])}
    table[hue] = [f"{h}{notes.mark('failed')}" if h in failed else h for h in table[hue]]
    return _markdown_table(table)


def headline(study: Study, results: pd.DataFrame) -> str:
    """The mean iteration time table (or per-scheme means), for the terminal, with its footnotes."""
    x, hue = _axes(study, results)
    notes = Notes()
    if hue and study.table_rows:
        means = _row_grid(results, study.table_rows, "mean_iteration", hue)
        table = _row_text(means, results, study.table_rows, hue, ".4f", notes)
    elif hue and x:
        table = _pivot(results, x, "mean_iteration", hue, notes)
    elif hue:
        table = _per_scheme(results, hue, ["mean_iteration"], notes)
    else:
        return ""
    return "\n".join([table, *notes.render()])


def exclude_entries(values: list[dict]) -> str:
    """`exclude:` entries that leave out runs with these axis values, as one line of YAML."""
    return yaml.safe_dump(values, default_flow_style=True, width=float("inf"), sort_keys=False).strip()


def _failed_section(study: Study, results: pd.DataFrame) -> list[str]:
    if "status" not in results.columns or not (results["status"] == "failed").any():
        return []
    failed = results[results["status"] == "failed"]
    by_id = {spec.run_id: spec for spec in study.runs}
    values = [by_id[run_id].values for run_id in failed["run_id"]]
    table = pd.DataFrame({"run_id": failed["run_id"],
                          "values": [", ".join(f"{k}={v}" for k, v in v.items()) for v in values],
                          "error": failed["error"]})
    return ["## Failed runs", "",
            f"{len(failed)} of {len(results)} runs failed. Their rows in results.csv have `status` failed and "
            "blank metrics; every table and plot leaves them out. Running the study again retries them; to "
            f"leave them out instead, add to the study file `exclude: {exclude_entries(values)}`.", "",
            _markdown_table(table), ""]


def _decode_section(results: pd.DataFrame, hue: str | None) -> list[str]:
    done = finished(results)
    if "max_decode_error" not in done.columns or not done["max_decode_error"].notna().any() or not hue:
        return []
    worst = done.groupby(hue, sort=False)["max_decode_error"].max().reset_index()
    lines = ["## Worst decode error (relative)", "", _markdown_table(worst, ".2e"), ""]
    flagged = done[done["decode_warning"].astype(bool)]
    if not flagged.empty:
        lines += [f"**Warning:** {len(flagged)} runs decoded with relative error above 1e-4 "
                  f"({', '.join(sorted(set(flagged['scheme'])))}): their training is not the centralized one.", ""]
    return lines


def _row_grid(results: pd.DataFrame, rows: list[str], y: str, hue: str) -> pd.DataFrame:
    """(combination of `rows`) x scheme means of y over finished runs, on every combination the study
    has (blank: no finished run there)."""
    means = finished(results).pivot_table(index=rows, columns=hue, values=y, aggfunc="mean", sort=False)
    index = pd.MultiIndex.from_frame(results[rows].drop_duplicates()) if len(rows) > 1 else \
        pd.Index(list(dict.fromkeys(results[rows[0]])), name=rows[0])
    return means.reindex(index=index, columns=list(dict.fromkeys(results[hue])))


def _row_text(values: pd.DataFrame, results: pd.DataFrame, rows: list[str], hue: str, floatfmt: str,
              notes: Notes, no_baseline: pd.Series | None = None) -> str:
    """Format a row-combination x scheme table; blanks and cells that lost runs get their footnote
    (a blank is "baseline" where `no_baseline` is true for its row, else "excluded")."""
    def key(index, h) -> tuple:
        return (*(index if isinstance(index, tuple) else (index,)), h)

    def blank(index, _h) -> str:
        return "baseline" if no_baseline is not None and bool(no_baseline.get(index)) else "excluded"

    text = _cells(values, floatfmt, notes, _failed_cells(results, [*rows, hue]), key, blank)
    return _markdown_table(text.reset_index())


def _row_tables(study: Study, results: pd.DataFrame, notes: Notes, hue: str) -> list[str]:
    """The tables of a study with `tables: {rows: [...]}`: a row per combination, a column per scheme."""
    rows = study.table_rows
    means = _row_grid(results, rows, "mean_iteration", hue)
    lines = [f"## Mean iteration time {UNIT}", "", _row_text(means, results, rows, hue, ".4f", notes), ""]
    baseline = next((b for b in BASELINES if b in means.columns), None)
    if baseline is not None:
        ratios = means.rdiv(means[baseline], axis=0)
        lines += [f"## Speed-up over `{baseline}` (its mean iteration time / the scheme's)", "",
                  _row_text(ratios, results, rows, hue, ".2f", notes, means[baseline].isna()), ""]
    p99 = _row_grid(results, rows, "p99_iteration", hue)
    return lines + [f"## p99 iteration time {UNIT}", "", _row_text(p99, results, rows, hue, ".4f", notes), ""]


def _tables(study: Study, results: pd.DataFrame, notes: Notes) -> list[str]:
    if study.table_rows and "code.name" in results.columns:
        return _row_tables(study, results, notes, "code.name")
    x, hue = _axes(study, results)
    if hue and x:
        lines = [f"## Mean iteration time {UNIT}", "",
                 _pivot(results, x, "mean_iteration", hue, notes), ""]
        speedup = _speedups(results, x, hue, notes)
        if speedup:
            baseline, table = speedup
            lines += [f"## Speed-up over `{baseline}` (its mean iteration time / the scheme's)", "", table, ""]
        return lines + [f"## p99 iteration time {UNIT}", "",
                        _pivot(results, x, "p99_iteration", hue, notes), ""]
    if hue:
        columns = ["mean_iteration", "p99_iteration", "sim_seconds"]
        return [f"## Per scheme {UNIT}", "", _per_scheme(results, hue, columns, notes), ""]
    return []


def _provenance_table(study: Study) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [s.run_id for s in study.runs],
                         "values": [", ".join(f"{k}={v}" for k, v in s.values.items() if k != "seed")
                                    for s in study.runs],
                         "seed": [s.scenario.seed for s in study.runs],
                         "scenario_hash": [s.scenario.digest() for s in study.runs]})


def render_provenance(study: Study) -> str:
    return "\n".join([f"# Provenance of study `{study.name}`", "",
                      "Every run's resolved scenario is `runs/<run_id>/scenario.yaml`; its hash is the "
                      "scenario's digest (simcode.config.Scenario.digest).", "",
                      _markdown_table(_provenance_table(study)), ""])


def render_report(study: Study, results: pd.DataFrame, plots: list[Path], root: Path, learning=None) -> str:
    notes = Notes()
    lines = [f"# Study `{study.name}`{' (quick)' if study.quick else ''}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [f"{len(study.runs)} runs over the axes {', '.join(f'`{k}`' for k in study.axis_keys)}. "
              "Times are simulated seconds; each value is a mean over the finished runs that share its "
              "cell (the seeds).", ""]
    lines += _tables(study, results, notes)
    lines += learning_section(learning if study.learning is not None else None)
    lines += sim_vs_real.section(sim_vs_real.comparison(results, study.axis_keys),
                                 sim_vs_real.where_time_went(results, study.axis_keys))
    lines += _failed_section(study, results)
    lines += _decode_section(results, "code.name" if "code.name" in results.columns else None)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in plots] + [""]
    seeds = sorted({s.scenario.seed for s in study.runs})
    done = finished(results)
    lines += ["## Provenance", "",
              f"- simcode {simcode.__version__}, Python {platform.python_version()}, study file `{study.path}`",
              f"- seeds: {', '.join(str(s) for s in seeds)}",
              f"- reproducible (cost model not `measured`): {bool(done['reproducible'].all()) if len(done) else None}",
              f"- every run's values, seed and scenario hash: [provenance.md](provenance.md) ({len(study.runs)} runs)",
              ""]
    if notes.used:
        lines += [*notes.render(), ""]
    return "\n".join(lines)


def write_report(study: Study, store: StudyStore, results: pd.DataFrame) -> Path:
    # Reward measures read every trace: only for a study whose file asks for them.
    wanted = study.learning is not None or any(p["kind"] in LEARNING_PLOTS for p in study.plots)
    learning = measure(study, store, results) if wanted else None
    plots = write_plots(study, store, results, learning)
    real_vs_sim = sim_vs_real.scatter(sim_vs_real.comparison(results, study.axis_keys),
                                      store.root / "plots" / "real_vs_sim.png")
    plots += [real_vs_sim] if real_vs_sim else []
    atomic.write_text(store.root / "provenance.md", render_provenance(study))
    path = store.root / "report.md"
    atomic.write_text(path, render_report(study, results, plots, store.root, learning))
    return path
