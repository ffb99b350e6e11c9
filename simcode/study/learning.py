"""What a study's trainings learned per simulated second: final reward, time to a reward threshold,
and reward curves on a common clock, each with a confidence interval over the seeds.

Definitions (the report states them too):
- A run's *reward curve* is its episode reward per iteration (sum over agents), as a trailing rolling
  mean over `smooth_window` iterations (from the first full window on), placed at the simulated second
  the iteration ended (`t_end`).
- Its *final reward* is the mean episode reward over its last `FINAL_SHARE` of iterations.
- The *threshold* of an environment is `random + fraction * (best - random)`: `random` is the mean
  episode reward of a uniformly random policy (simcode.marl.evaluate.random_policy_reward, a fixed
  seed), `best` the highest cell-mean final reward among the study's cells with that environment.
- A run's *time to threshold* is the first simulated second its reward curve reaches the threshold. A
  run that never reaches it is not dropped: its cell says how many reached, averages the time over
  those, and gives a lower bound on the mean that counts the others at their last simulated second.
- Intervals are 95% Student t intervals of a mean over the runs of a cell (the seeds): none for one run.
A failed run (results.csv `status` failed) has no curve: its cell counts it and says so, and a run
whose rewards are not finite makes its cell's mean not finite rather than being averaged away.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from simcode.study.plots import UNIT
from simcode.study.spec import RunSpec, Study
from simcode.study.store import StudyStore

CONFIDENCE = 0.95
FINAL_SHARE = 0.1          # the last tenth of a run's iterations give its final reward
SMOOTH_SHARE = 0.05        # the rolling window: a twentieth of the iterations
RANDOM_EPISODES = 200      # episodes of the random policy that anchor the threshold
CURVE_POINTS = 200         # points of a cell's averaged reward curve
UPDATED = "mean_updated_fraction"  # summary: the share of agents a strategy updated per iteration


def t_interval(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student t interval (NaN half-width for fewer than two
    values). A NaN value makes both NaN: a broken run is shown, not averaged away."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan")
    quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, values.size - 1)
    return mean, float(quantile * values.std(ddof=1) / np.sqrt(values.size))


def smooth_window(iterations: int) -> int:
    return max(1, int(iterations * SMOOTH_SHARE))


def reward_curve(trace: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(t_end, smoothed episode reward) of the iterations that have a reward and a full window behind
    them: a partial window at the start is a few noisy episodes, which could cross a threshold by luck."""
    rewarded = trace.dropna(subset=["episode_reward"])
    window = smooth_window(len(trace))
    smoothed = rewarded["episode_reward"].rolling(window).mean().to_numpy(dtype=float)
    full = ~np.isnan(smoothed)
    return rewarded["t_end"].to_numpy(dtype=float)[full], smoothed[full]


def final_reward(trace: pd.DataFrame) -> float:
    """Mean episode reward over the last FINAL_SHARE of the iterations (NaN if none has a reward)."""
    last = trace["episode_reward"].iloc[-max(1, int(len(trace) * FINAL_SHARE)):].dropna()
    return float(last.mean()) if len(last) else float("nan")


def first_reach(times: np.ndarray, curve: np.ndarray, threshold: float) -> float:
    """The first time the curve is at or above the threshold; NaN if it never is."""
    above = np.flatnonzero(curve >= threshold)
    return float(times[above[0]]) if above.size else float("nan")


def curve_at(times: np.ndarray, curve: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The curve's latest value at each grid time (NaN before its first point)."""
    index = np.searchsorted(times, grid, side="right") - 1
    values = curve[np.clip(index, 0, None)] if curve.size else np.full(grid.shape, np.nan)
    return np.where(index >= 0, values, np.nan)


def environment_key(spec: RunSpec) -> str:
    """Runs with equal keys learn the same task: they share a random-policy reward and a threshold."""
    return json.dumps(spec.scenario.env.model_dump(mode="json"), sort_keys=True)


@dataclass
class Learning:
    """Per run: `runs` (results' axis columns, status, final, time to threshold, reached, end_time),
    `curves` (run id -> (t_end, smoothed reward)), per environment `thresholds`, and the cell keys."""
    runs: pd.DataFrame
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    thresholds: pd.DataFrame
    by: list[str]
    fraction: float


def _thresholds(study: Study, runs: pd.DataFrame, by: list[str], fraction: float) -> pd.DataFrame:
    """Per environment: the random policy's reward, the best cell-mean final reward, the threshold."""
    from simcode.config import EnvConfig
    from simcode.marl.evaluate import random_policy_reward

    rows = []
    for key, group in runs.groupby("environment", sort=False):
        env = EnvConfig.model_validate(json.loads(key))
        random_mean, _ = random_policy_reward(env, RANDOM_EPISODES)
        done = group[group["status"] == "ok"]
        cells = done.groupby(by, sort=False, dropna=False)["final"].mean() if by else done["final"]
        best = float(cells.max()) if len(cells) and cells.notna().any() else float("nan")
        rows.append({"environment": key, "label": f"{env.scenario}, {env.n_agents} agents", "random": random_mean,
                     "best": best, "threshold": random_mean + fraction * (best - random_mean)})
    return pd.DataFrame(rows)


def measure(study: Study, store: StudyStore, results: pd.DataFrame) -> Learning:
    """Read every finished run's trace once and measure it against its environment's threshold."""
    settings = study.learning or {}
    by = settings.get("by") or [k for k in study.axis_keys if k != "seed"]
    fraction = float(settings.get("fraction", 0.5))
    by_id = {spec.run_id: spec for spec in study.runs}
    runs = results[["run_id", *study.axis_keys, "status"]].copy()
    curves, finals, ends = {}, [], []
    for run_id, status in zip(runs["run_id"], runs["status"]):
        trace = store.trace(by_id[run_id]) if status == "ok" else None
        curves[run_id] = reward_curve(trace) if trace is not None else (np.empty(0), np.empty(0))
        finals.append(final_reward(trace) if trace is not None else float("nan"))
        ends.append(float(trace["t_end"].iloc[-1]) if trace is not None and len(trace) else float("nan"))
    runs["final"], runs["end_time"] = finals, ends
    if UPDATED in results.columns:  # strategies that skip late agents say how many were updated
        runs["updated"] = pd.to_numeric(results[UPDATED], errors="coerce").to_numpy()
    runs["environment"] = [environment_key(by_id[run_id]) for run_id in runs["run_id"]]
    thresholds = _thresholds(study, runs, by, fraction)
    level = runs["environment"].map(thresholds.set_index("environment")["threshold"])
    runs["time_to_threshold"] = [first_reach(*curves[r], t) for r, t in zip(runs["run_id"], level)]
    runs["reached"] = runs["time_to_threshold"].notna()
    return Learning(runs=runs, curves=curves, thresholds=thresholds, by=by, fraction=fraction)


def cell_summary(learning: Learning, keys: list[str]) -> pd.DataFrame:
    """One row per cell of `keys`: runs, failed, final reward and time to threshold with intervals,
    how many reached, and the lower bound on the mean time when some did not."""
    rows = []
    groups = learning.runs.groupby(keys, sort=False, dropna=False) if keys else [((), learning.runs)]
    for cell, group in groups:
        done = group[group["status"] == "ok"]
        final, final_half = t_interval(done["final"])
        reached = done[done["reached"]]
        time, time_half = t_interval(reached["time_to_threshold"])
        bound = done["time_to_threshold"].where(done["reached"], done["end_time"]).mean() if len(done) else np.nan
        rows.append({**dict(zip(keys, cell if isinstance(cell, tuple) else (cell,))), "runs": len(group),
                     "failed": len(group) - len(done), "final": final, "final_half": final_half,
                     "reached": len(reached), "time": time, "time_half": time_half,
                     "time_bound": float(bound), "end_time": float(done["end_time"].mean()),
                     **({"updated": float(done["updated"].mean())} if "updated" in done.columns else {})})
    return pd.DataFrame(rows)


def mean_curve(learning: Learning, run_ids: list[str]) -> pd.DataFrame:
    """The runs' reward curves averaged on a common clock, from 0 to the earliest run's end (so every
    run counts at every point), with the interval half-width (t, mean, half)."""
    curves = [learning.curves[r] for r in run_ids if learning.curves[r][0].size]
    if not curves:
        return pd.DataFrame(columns=["t", "mean", "half"])
    grid = np.linspace(0.0, min(times[-1] for times, _ in curves), CURVE_POINTS)
    values = np.vstack([curve_at(times, curve, grid) for times, curve in curves])
    summary = [t_interval(column) for column in values.T]
    frame = pd.DataFrame({"t": grid, "mean": [m for m, _ in summary], "half": [h for _, h in summary]})
    return frame.dropna(subset=["mean"])


def _plus_minus(mean: float, half: float, digits: int) -> str:
    if pd.isna(mean):
        return "not finite"
    return f"{mean:.{digits}f}" + ("" if pd.isna(half) else f" ± {half:.{digits}f}")


def _time_cells(row) -> tuple[str, str]:
    """(time to threshold, lower bound) as the report shows them."""
    if row["runs"] == row["failed"]:
        return "–", ""
    if row["reached"] == 0:
        return "never", f"≥ {row['time_bound']:.1f}" if pd.notna(row["time_bound"]) else "–"
    time = _plus_minus(row["time"], row["time_half"], 1)
    done = row["runs"] - row["failed"]
    return time, (f"≥ {row['time_bound']:.1f}" if row["reached"] < done else "")


def cell_table(learning: Learning) -> pd.DataFrame:
    """The report's table: one row per cell of `learning.by`."""
    cells = cell_summary(learning, learning.by)
    table = cells[learning.by].astype(str)
    table["runs"] = [f"{r - f}" + (f" ({f} failed)" if f else "") for r, f in zip(cells["runs"], cells["failed"])]
    table["final reward"] = [_plus_minus(m, h, 2) if r > f else "–" for m, h, r, f in
                             zip(cells["final"], cells["final_half"], cells["runs"], cells["failed"])]
    table["reached"] = [f"{k}/{r - f}" for k, r, f in zip(cells["reached"], cells["runs"], cells["failed"])]
    times = [_time_cells(row) for _, row in cells.iterrows()]
    table[f"to threshold {UNIT}"] = [t for t, _ in times]
    table["mean if the rest reached at their end"] = [b for _, b in times]
    if "updated" in cells.columns:
        table["agents updated"] = [f"{u:.3f}" for u in cells["updated"]]
    table[f"training {UNIT}"] = [f"{t:.1f}" for t in cells["end_time"]]
    return table


def section(learning: Learning | None) -> list[str]:
    """The report's learning section: definitions, thresholds, and the per-cell table."""
    if learning is None:
        return []
    from simcode.study.report import _markdown_table

    share = f"{learning.fraction:g}"
    thresholds = learning.thresholds[["label", "random", "best", "threshold"]].rename(columns={
        "label": "environment", "random": "random policy", "best": "best cell's final reward"})
    failed = int((learning.runs["status"] != "ok").sum())
    unlearned = learning.thresholds[~(learning.thresholds["best"] > learning.thresholds["random"])]
    return ["## Learning per simulated second", "",
            f"Per cell (every axis but the seed): the *final reward* is a run's mean episode reward (sum over "
            f"agents) over its last {FINAL_SHARE:.0%} of iterations; the *threshold* is the random policy's "
            f"mean episode reward ({RANDOM_EPISODES} episodes) plus {share} of the way to the best cell's "
            f"mean final reward; *to threshold* is the first simulated second a run's reward, as a rolling "
            f"mean over {SMOOTH_SHARE:.0%} of its iterations (full windows only), reaches the threshold, "
            f"averaged over the runs that reach it (*reached* counts them). A run that never reaches it is "
            f"not dropped: the next column is the mean with such runs counted at their last simulated "
            f"second, a lower bound. ± is the half-width of a {CONFIDENCE:.0%} Student t interval over the "
            f"seeds (none for one run). *not finite*: a run's reward is not a number, shown rather than "
            f"averaged away."
            + (f" {failed} runs failed and have no reward (see *Failed runs*); *runs* counts the finished."
               if failed else ""), "",
            _markdown_table(thresholds, ".2f"), "",
            *([f"**Nothing learned:** in {', '.join(unlearned['label'])} no cell's final reward beats the random "
               "policy's, so reaching the threshold measures noise, not learning.", ""] if len(unlearned) else []),
            _markdown_table(cell_table(learning)), ""]
