"""A study's plots (seaborn), one PNG per entry of the study file's `plots` list.

Kinds:
- `line`: a summary value (`y`, default mean_iteration) against an axis (`x`), one line per `hue`
  (default code.name), with 95% confidence intervals over the other axes (the seeds). Each hue has
  its own marker and, for a numeric x, a small x offset: schemes with equal values stay visible.
- `bar`: the same as bars, for a categorical x.
- `distribution`: every iteration's duration, per `hue` at each `x`, as boxes over the points
  themselves (a scheme with constant iteration times has a flat box but visible points).
- `reward_time`: episode reward (rolling mean, averaged over seeds) against simulated wall-clock
  seconds, per `hue`.
- `reward_band` and `frontier`: reward curves with confidence bands, and time to a reward threshold
  against final reward (simcode.study.learning_plots); panels per `row` and `col`.
Any plot may take `where: {key: value}` to keep only some runs, and `title`, `file`. Failed runs
(results.csv `status` failed) have nothing to plot and are left out. Every time axis is labelled in
"(simulated s)". Files are byte-reproducible (simcode.figures).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from simcode.figures import save_figure
from simcode.study.spec import LEARNING_PLOTS, Study, plot_file
from simcode.study.store import StudyStore

UNIT = "(simulated s)"  # every time in a study is simulated seconds; labels say so the same way
LABELS = {"mean_iteration": f"mean iteration time {UNIT}", "p99_iteration": f"p99 iteration time {UNIT}",
          "median_iteration": f"median iteration time {UNIT}", "std_iteration": f"iteration time std {UNIT}",
          "sim_seconds": f"total training time {UNIT}", "duration": f"iteration time {UNIT}",
          "t_end": f"wall-clock time {UNIT}", "delay.k": "stragglers (k)", "code.name": "scheme",
          "episode_reward": "episode reward", "env.n_agents": "agents (M)"}
# Spread of the hues' x offsets in a line plot, as a fraction of the smallest step between x values.
DODGE = 0.3


def _label(key: str) -> str:
    return LABELS.get(key, key)


def finished(results: pd.DataFrame) -> pd.DataFrame:
    """The runs that have a summary (all of them, for a results frame without `status`)."""
    return results[results["status"] == "ok"] if "status" in results.columns else results


def _where(frame: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    for key, value in (where or {}).items():
        if key in frame.columns:
            frame = frame[frame[key] == value]
    return frame


def _traces(study: Study, store: StudyStore, results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frames = []
    by_id = {spec.run_id: spec for spec in study.runs}
    for run_id in results["run_id"]:
        trace = store.trace(by_id[run_id])
        for key in keys:
            trace[key] = results.loc[results["run_id"] == run_id, key].iloc[0]
        frames.append(trace)
    return pd.concat(frames, ignore_index=True)


def _line(ax, data: pd.DataFrame, x: str, y: str, hue: str, hue_order: list) -> None:
    """One line per hue, each with its marker; a numeric x is offset a little per hue, so that lines
    with equal values lie side by side instead of one hiding the other (the ticks stay at the values)."""
    positions = sorted(data[x].unique())
    numeric = pd.api.types.is_numeric_dtype(data[x])
    if numeric:
        step = float(np.min(np.diff(positions))) if len(positions) > 1 else 1.0
        spread = DODGE * step / max(len(hue_order) - 1, 1)
        offsets = {h: (i - (len(hue_order) - 1) / 2) * spread for i, h in enumerate(hue_order)}
        data = data.assign(**{x: data[x] + data[hue].map(offsets)})
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=hue_order, style=hue, markers=True, dashes=False,
                 errorbar=("ci", 95), err_style="bars", ax=ax)
    if numeric:
        ax.set_xticks(positions)


def _distribution(ax, traces: pd.DataFrame, x: str | None, hue: str, hue_order: list) -> None:
    """Every iteration as a point, under an unfilled box per hue: constant times still show. No
    jitter: seaborn draws it from numpy's global generator, and plots must be byte-reproducible."""
    at = x or hue
    sns.stripplot(data=traces, x=at, y="duration", hue=hue, hue_order=hue_order, dodge=True, size=3,
                  alpha=0.5, jitter=False, legend=False, ax=ax)
    sns.boxplot(data=traces, x=at, y="duration", hue=hue, hue_order=hue_order, fill=False, showfliers=False,
                linewidth=1, ax=ax)
    ax.set_ylabel(_label("duration"))


def _reward_time(ax, traces: pd.DataFrame, hue: str, hue_order: list) -> bool:
    traces = traces.dropna(subset=["episode_reward"])
    if traces.empty:
        return False
    # Each run's reward as a rolling mean, then averaged over the runs of a scheme (the seeds)
    # iteration by iteration, at the mean simulated time they reached that iteration.
    window = max(1, int(traces["iteration"].max() + 1) // 10)
    traces = traces.assign(reward=traces.groupby("run_id")["episode_reward"].transform(
        lambda r: r.rolling(window, min_periods=1).mean()))
    curve = traces.groupby([hue, "iteration"], sort=False)[["t_end", "reward"]].mean().reset_index()
    sns.lineplot(data=curve, x="t_end", y="reward", hue=hue, hue_order=hue_order, estimator=None,
                 lw=1.5, ax=ax)
    ax.set_xlabel(_label("t_end"))
    ax.set_ylabel(_label("episode_reward"))
    return True


def plot_one(spec: dict, study: Study, store: StudyStore, results: pd.DataFrame, path: Path,
             learning=None) -> Path | None:
    """Draw one plot of the study file's list; the learning kinds draw from `learning`'s measures."""
    kind = spec["kind"]
    hue = spec.get("hue", "code.name")
    x = spec.get("x")
    y = spec.get("y", "mean_iteration")
    data = _where(finished(results), spec.get("where"))
    if kind in LEARNING_PLOTS:
        from simcode.study.learning_plots import plot_learning

        return plot_learning(spec, data, learning, path) if learning is not None and not data.empty else None
    if data.empty or hue not in data.columns or (kind in ("line", "bar") and x not in data.columns):
        return None
    hue_order = list(dict.fromkeys(data[hue]))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = True
    if kind == "line":
        _line(ax, data, x, y, hue, hue_order)
        ax.set_ylabel(_label(y))
    elif kind == "bar":
        sns.barplot(data=data, x=x, y=y, hue=hue, hue_order=hue_order, errorbar=("ci", 95), ax=ax)
        ax.set_ylabel(_label(y))
    elif kind == "distribution":
        _distribution(ax, _traces(study, store, data, [k for k in (hue, x) if k]), x, hue, hue_order)
    elif kind == "reward_time":
        drawn = _reward_time(ax, _traces(study, store, data, [hue, "run_id"]), hue, hue_order)
    if drawn:
        if x and kind != "reward_time":
            ax.set_xlabel(_label(x))
        ax.set_title(spec.get("title", ""))
        ax.grid(alpha=0.3)
        if ax.get_legend() is not None:
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title=_label(hue), frameon=False)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path if drawn else None


def write_plots(study: Study, store: StudyStore, results: pd.DataFrame, learning=None) -> list[Path]:
    written = []
    for n, spec in enumerate(study.plots):
        path = plot_one(spec, study, store, results, store.root / "plots" / plot_file(n, spec), learning)
        if path is not None:
            written.append(path)
    return written
