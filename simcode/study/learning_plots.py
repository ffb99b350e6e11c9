"""The learning plots of a study (simcode.study.learning gives their numbers).

- `reward_band`: episode reward against simulated seconds, the seeds' mean curve with its 95% Student t
  band, one line per `hue` (line style per `style`), one panel per value of `row` and of `col`.
- `frontier`: per cell, the simulated seconds to reach the reward threshold against the final reward,
  both with 95% Student t error bars; colour per `hue`, marker per `style`, panels per `row` and `col`.
  A hollow marker is a cell where some runs never reached the threshold: it stands at the lower bound
  (those runs counted at their last simulated second), without a time error bar.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from simcode.figures import save_figure
from simcode.study.learning import Learning, cell_summary, mean_curve
from simcode.study.plots import UNIT

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
PANEL_SIZE = (4.2, 3.2)
LEGEND_WIDTH = 2.2  # inches right of the panels


def _values(data: pd.DataFrame, key: str | None) -> list:
    return list(dict.fromkeys(data[key])) if key else [None]


def _panels(data: pd.DataFrame, spec: dict):
    """The figure and, per (row value, col value), its axes and the runs it shows."""
    rows, cols = _values(data, spec.get("row")), _values(data, spec.get("col"))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(PANEL_SIZE[0] * len(cols) + LEGEND_WIDTH,
                                                            PANEL_SIZE[1] * len(rows) + 0.6),
                             squeeze=False, sharey=True)
    for first in axes[:, 0]:
        first.set_ylabel("final episode reward" if spec["kind"] == "frontier" else "episode reward")
    panels = []
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            part = data
            for key, value in ((spec.get("row"), row), (spec.get("col"), col)):
                part = part[part[key] == value] if key else part
            title = " · ".join(f"{value}" for value in (row, col) if value is not None)
            axes[i][j].set_title(title, fontsize=9)
            panels.append((axes[i][j], part))
    return fig, panels


def _reward_band(ax, part: pd.DataFrame, learning: Learning, spec: dict, colors: dict, styles: dict) -> bool:
    hue, style = spec.get("hue", "code.name"), spec.get("style")
    drawn = False
    for (hue_value, style_value), group in part.groupby([hue, style] if style else [hue, hue], sort=False):
        curve = mean_curve(learning, list(group["run_id"]))
        if curve.empty:
            continue
        label = f"{hue_value}" + (f", {style_value}" if style else "")
        ax.plot(curve["t"], curve["mean"], color=colors[hue_value], linestyle=styles.get(style_value, "-"),
                lw=1.3, label=label)
        ax.fill_between(curve["t"], curve["mean"] - curve["half"], curve["mean"] + curve["half"],
                        color=colors[hue_value], alpha=0.15, lw=0)
        drawn = True
    ax.set_xlabel(f"wall-clock time {UNIT}")
    return drawn


def _frontier(ax, part: pd.DataFrame, learning: Learning, spec: dict, colors: dict, markers: dict) -> bool:
    hue, style = spec.get("hue", "code.name"), spec.get("style")
    keys = [hue, style] if style else [hue]
    subset = dataclasses.replace(learning, runs=learning.runs[learning.runs["run_id"].isin(part["run_id"])])
    drawn = False
    for _, cell in cell_summary(subset, keys).iterrows():
        done = cell["runs"] - cell["failed"]
        if done == 0 or pd.isna(cell["final"]):
            continue
        every = cell["reached"] == done
        x, xerr = (cell["time"], cell["time_half"]) if every else (cell["time_bound"], float("nan"))
        color = colors[cell[hue]]
        ax.errorbar(x, cell["final"], xerr=None if pd.isna(xerr) else xerr,
                    yerr=None if pd.isna(cell["final_half"]) else cell["final_half"],
                    marker=markers.get(cell[style], "o") if style else "o", color=color, ms=6, capsize=2, lw=1,
                    mfc=color if every else "white", linestyle="none")
        drawn = True
    ax.set_xlabel(f"time to the reward threshold {UNIT}")
    return drawn


def _legend(fig, colors: dict, shapes: dict, kind: str, right: float) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2, label=str(v)) for v, c in colors.items()]
    for value, shape in shapes.items():
        handles.append(Line2D([], [], color="grey", label=str(value), **(
            {"marker": shape, "linestyle": "none"} if kind == "frontier" else {"linestyle": shape})))
    if kind == "frontier":
        handles.append(Line2D([], [], color="grey", marker="o", mfc="white", linestyle="none",
                              label="hollow: some runs never\nreached (lower bound)"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(right, 0.95), frameon=False, fontsize=8)


def plot_learning(spec: dict, data: pd.DataFrame, learning: Learning, path: Path) -> Path | None:
    """Draw a `reward_band` or `frontier` plot of the runs in `data` (results rows) to `path`."""
    kind, hue, style = spec["kind"], spec.get("hue", "code.name"), spec.get("style")
    colors = dict(zip(_values(data, hue), sns.color_palette("colorblind", len(_values(data, hue)))))
    shapes = dict(zip(_values(data, style), MARKERS if kind == "frontier" else LINESTYLES)) if style else {}
    fig, panels = _panels(data, spec)
    draw = _frontier if kind == "frontier" else _reward_band
    drawn = [draw(ax, part, learning, spec, colors, shapes) for ax, part in panels]
    if any(drawn):
        for ax, _ in panels:
            ax.grid(alpha=0.3)
        right = 1 - LEGEND_WIDTH / fig.get_figwidth()
        _legend(fig, colors, shapes, kind, right)
        if spec.get("title"):
            fig.suptitle(spec["title"])
        fig.tight_layout(rect=(0, 0, right, 1))
        save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path if any(drawn) else None
