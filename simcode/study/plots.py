"""A study's plots (seaborn), one PNG per entry of the study file's `plots` list.

Kinds:
- `line`: a summary value (`y`, default mean_iteration) against an axis (`x`), one line per `hue`
  (default code.name), with 95% confidence intervals over the other axes (the seeds).
- `bar`: the same as bars, for a categorical x.
- `distribution`: every iteration's duration, per `hue` at each `x`, as boxes.
- `reward_time`: episode reward (rolling mean, averaged over seeds) against simulated wall-clock
  seconds, per `hue`.
Any plot may take `where: {key: value}` to keep only some runs, and `title`, `file`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from simcode import atomic
from simcode.study.spec import Study
from simcode.study.store import StudyStore

LABELS = {"mean_iteration": "mean iteration time (simulated s)", "p99_iteration": "p99 iteration time (s)",
          "sim_seconds": "simulated seconds", "delay.k": "stragglers (k)", "code.name": "scheme",
          "duration": "iteration time (simulated s)", "t_end": "simulated wall-clock (s)",
          "episode_reward": "episode reward", "env.n_agents": "agents (M)"}


def _label(key: str) -> str:
    return LABELS.get(key, key)


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


def plot_one(spec: dict, study: Study, store: StudyStore, results: pd.DataFrame, path: Path) -> Path | None:
    kind = spec["kind"]
    hue = spec.get("hue", "code.name")
    x = spec.get("x")
    y = spec.get("y", "mean_iteration")
    data = _where(results, spec.get("where"))
    if data.empty or (hue not in data.columns):
        return None
    hue_order = list(dict.fromkeys(data[hue]))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if kind in ("line", "bar"):
        if x not in data.columns:
            plt.close(fig)
            return None
        if kind == "line":
            sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=hue_order, style=hue, markers=True,
                         dashes=False, errorbar=("ci", 95), ax=ax)
        else:
            sns.barplot(data=data, x=x, y=y, hue=hue, hue_order=hue_order, errorbar=("ci", 95), ax=ax)
        ax.set_ylabel(_label(y))
    elif kind == "distribution":
        keys = [k for k in (hue, x) if k]
        traces = _traces(study, store, data, keys)
        sns.boxplot(data=traces, x=x or hue, y="duration", hue=hue, hue_order=hue_order, fliersize=1.5, ax=ax)
        ax.set_ylabel(_label("duration"))
    elif kind == "reward_time":
        traces = _traces(study, store, data, [hue, "run_id"])
        traces = traces.dropna(subset=["episode_reward"])
        if traces.empty:
            plt.close(fig)
            return None
        # Each run's reward as a rolling mean, then averaged over the runs of a scheme (the seeds)
        # iteration by iteration, at the mean simulated time they reached that iteration.
        window = max(1, int(traces["iteration"].max() + 1) // 10)
        traces["reward"] = traces.groupby("run_id")["episode_reward"].transform(
            lambda r: r.rolling(window, min_periods=1).mean())
        curve = traces.groupby([hue, "iteration"], sort=False)[["t_end", "reward"]].mean().reset_index()
        sns.lineplot(data=curve, x="t_end", y="reward", hue=hue, hue_order=hue_order, estimator=None,
                     lw=1.5, ax=ax)
        ax.set_xlabel(_label("t_end"))
        ax.set_ylabel(_label("episode_reward"))
    if x and kind != "reward_time":
        ax.set_xlabel(_label(x))
    ax.set_title(spec.get("title", ""))
    ax.grid(alpha=0.3)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title=_label(hue), frameon=False)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def write_plots(study: Study, store: StudyStore, results: pd.DataFrame) -> list[Path]:
    written = []
    for n, spec in enumerate(study.plots):
        name = spec.get("file") or f"{n:02d}-{spec['kind']}.png"
        path = plot_one(spec, study, store, results, store.root / "plots" / name)
        if path is not None:
            written.append(path)
    return written
