"""report.md: what the study asked, the answer in tables and plots, and where every number came from."""

from __future__ import annotations

import platform
from pathlib import Path

import pandas as pd

import simcode
from simcode import atomic
from simcode.study.plots import write_plots
from simcode.study.spec import Study
from simcode.study.store import StudyStore

BASELINES = ("uncoded", "centralized")


def _markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else format(value, floatfmt)
        return str(value)

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _pivot(results: pd.DataFrame, x: str, y: str, hue: str) -> pd.DataFrame:
    table = results.pivot_table(index=hue, columns=x, values=y, aggfunc="mean", sort=False)
    table.columns = [f"{x}={c}" for c in table.columns]
    return table.reset_index()


def _speedups(results: pd.DataFrame, x: str, hue: str) -> tuple[str, pd.DataFrame] | None:
    """Mean iteration time of the baseline divided by each scheme's, at each x."""
    present = set(results[hue])
    baseline = next((b for b in BASELINES if b in present), None)
    if baseline is None:
        return None
    means = results.pivot_table(index=hue, columns=x, values="mean_iteration", aggfunc="mean", sort=False)
    ratio = means.loc[baseline] / means
    ratio.columns = [f"{x}={c}" for c in ratio.columns]
    return baseline, ratio.reset_index()


def _axes(study: Study, results: pd.DataFrame) -> tuple[str | None, str | None]:
    """(x, hue) of the headline tables: the first line or bar plot's x, by scheme."""
    hue = "code.name" if "code.name" in results.columns else None
    x = next((p.get("x") for p in study.plots
              if p.get("kind") in ("line", "bar") and p.get("x") in results.columns and p.get("x") != hue), None)
    return x, hue


def headline(study: Study, results: pd.DataFrame) -> str:
    """The mean iteration time table (or per-scheme means), for the terminal."""
    x, hue = _axes(study, results)
    if hue and x:
        return _markdown_table(_pivot(results, x, "mean_iteration", hue))
    if hue:
        return _markdown_table(results.groupby(hue, sort=False)[["mean_iteration"]].mean().reset_index())
    return ""


def render_report(study: Study, results: pd.DataFrame, plots: list[Path], root: Path) -> str:
    x, hue = _axes(study, results)
    lines = [f"# Study `{study.name}`{' (quick)' if study.quick else ''}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    lines += [f"{len(study.runs)} runs over the axes {', '.join(f'`{k}`' for k in study.axis_keys)}. "
              "Times are simulated seconds; each value is a mean over the runs that share its cell "
              "(the seeds).", ""]
    if hue and x:
        lines += ["## Mean iteration time", "", _markdown_table(_pivot(results, x, "mean_iteration", hue)), ""]
        speedup = _speedups(results, x, hue)
        if speedup:
            baseline, table = speedup
            lines += [f"## Speed-up over `{baseline}` (its mean iteration time / the scheme's)", "",
                      _markdown_table(table, ".2f"), ""]
        lines += ["## p99 iteration time", "", _markdown_table(_pivot(results, x, "p99_iteration", hue)), ""]
    elif hue:
        table = results.groupby(hue, sort=False)[["mean_iteration", "p99_iteration", "sim_seconds"]].mean()
        lines += ["## Per scheme", "", _markdown_table(table.reset_index()), ""]
    if "max_decode_error" in results.columns and results["max_decode_error"].notna().any() and hue:
        worst = results.groupby(hue, sort=False)["max_decode_error"].max().reset_index()
        lines += ["## Worst decode error (relative)", "", _markdown_table(worst, ".2e"), ""]
        flagged = results[results["decode_warning"].astype(bool)]
        if not flagged.empty:
            lines += [f"**Warning:** {len(flagged)} runs decoded with relative error above 1e-4 "
                      f"({', '.join(sorted(set(flagged['scheme'])))}): their training is not the centralized one.",
                      ""]
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in plots] + [""]
    seeds = sorted(set(results["seed"])) if "seed" in results.columns else sorted({s.scenario.seed
                                                                                    for s in study.runs})
    lines += ["## Provenance", "",
              f"- simcode {simcode.__version__}, Python {platform.python_version()}, study file `{study.path}`",
              f"- seeds: {', '.join(str(s) for s in seeds)}",
              f"- reproducible (cost model not `measured`): {bool(results['reproducible'].all())}",
              "- every run's resolved scenario is `runs/<run_id>/scenario.yaml`; its hash:", ""]
    provenance = pd.DataFrame({"run_id": [s.run_id for s in study.runs],
                               "values": [", ".join(f"{k}={v}" for k, v in s.values.items() if k != "seed")
                                          for s in study.runs],
                               "seed": [s.scenario.seed for s in study.runs],
                               "scenario_hash": [s.scenario.digest() for s in study.runs]})
    lines += [_markdown_table(provenance), ""]
    return "\n".join(lines)


def write_report(study: Study, store: StudyStore, results: pd.DataFrame) -> Path:
    plots = write_plots(study, store, results)
    path = store.root / "report.md"
    atomic.write_text(path, render_report(study, results, plots, store.root))
    return path
