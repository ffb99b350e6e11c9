"""The simulator against the real system: a study with a `cluster.backend` axis (ray and sim) gets a
table of each cell's real and simulated mean and p90 iteration time and their ratio, and a scatter
plot of real against simulated with the line y = x. A cell is every other axis (the seeds averaged)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simcode.figures import save_figure
from simcode.sim.protocol import REAL_TIMINGS

BACKEND = "cluster.backend"
# The environment steps: no message and no code in the way (in centralized cells the controller computes
# alone; in coded ones late learners' leftover work may share the cores), so the real over the simulated
# tells how fast the machine ran during the cell's real runs against its profile.
YARDSTICK = "mean_env_seconds"
# Each real run's speed probe before it starts over the profile's at calibration (calibrate_ray_host.speed_probe).
SPEED = "machine_speed"
# CPU seconds an iteration costs the machine: audited on the real one, priced on the simulated hosts.
CPU = "cpu_per_iteration"
WITHIN = 0.10  # the bar: simulated within 10% of real
CLOSE = 0.05  # and within 5% where the machine is quiet
MEASURES = ("mean_iteration", "p90_iteration")
NOT_SET = "–"  # a cell key this cell's runs do not set (their scenario's own value applies)


# Mean seconds of an iteration's phases (simcode.sim.runner.phases): both backends have the first three.
PHASES = {"mean_env_seconds": "env", "mean_to_decode": "to decode", "mean_after_decode": "after", CPU: "CPU"}
# Where a learner's answer spent its time on Ray (simcode.sim.protocol.REAL_TIMINGS), as a run's summary names
# them: measured by a real run, kept by a simulated one.
ANSWER_PHASES = {f"mean_{column}": label for column, label in
                 zip(REAL_TIMINGS, ("compute", "dispatch", "queued", "delivery", "compute CPU"), strict=True)}


def cell_means(results: pd.DataFrame, axis_keys: list[str], columns: list[str],
               how: str = "mean") -> pd.DataFrame | None:
    """Means (or `how`: min, max) of `columns` per cell and backend (columns (column, backend)); None unless
    the study has both backends with finished runs. A cell is every axis but the backend and the seed."""
    runs = _runs(results, axis_keys, columns)
    if runs is None:
        return None
    numbers, cells, columns = runs
    return numbers.groupby([*cells, BACKEND], sort=False)[columns].agg(how).unstack(BACKEND)


def _runs(results: pd.DataFrame, axis_keys: list[str], columns: list[str],
          keys: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[str], list[str]] | None:
    """(each finished run's cell keys, backend, `keys` and columns as numbers; the cell keys; the columns of
    `columns` the results have); None unless both backends have finished runs and one of the columns."""
    if BACKEND not in results.columns:
        return None
    from simcode.study.plots import finished

    done = finished(results)
    columns = [c for c in columns if c in done.columns]
    if not {"ray", "sim"} <= set(done[BACKEND]) or not columns:
        return None
    cells = cell_keys(done, axis_keys)
    # A key that only some runs set (an axis of mappings) is blank in the others: a value of its own, not a
    # missing one, or grouping would drop those runs.
    named = done[[*cells, BACKEND, *keys]].astype({cell: object for cell in cells})
    named = named.fillna({cell: NOT_SET for cell in cells})
    numbers = named.join(done[columns].apply(pd.to_numeric, errors="coerce"))
    return numbers, cells, columns


def cell_keys(done: pd.DataFrame, axis_keys: list[str]) -> list[str]:
    """The keys that name a cell: every axis but the backend and the seed, with plain values (cluster.hosts,
    a list, follows from the others)."""
    return [key for key in axis_keys if key not in (BACKEND, "seed") and key in done.columns
            and done[key].map(lambda value: isinstance(value, (str, int, float, bool))).all()]


def at_pace(results: pd.DataFrame, axis_keys: list[str]) -> pd.DataFrame | None:
    """Per cell, how many real runs met the machine at its profile's pace, and the simulated over the real mean
    iteration time over those runs and their simulated twins (the same seed): a run at pace had its speed
    probe, before it, and its environment steps, during it, within CLOSE of what the profile measured (the
    simulated steps). None without speed probes or seeds."""
    needed = [SPEED, YARDSTICK, "mean_iteration"]
    runs = _runs(results, axis_keys, needed, ("seed",)) if "seed" in results.columns else None
    if runs is None or runs[2] != needed:
        return None
    numbers, cells, _ = runs
    twins = numbers[numbers[BACKEND] == "ray"].merge(numbers[numbers[BACKEND] == "sim"], on=[*cells, "seed"],
                                                     suffixes=(" real", " sim"))
    if twins.empty or twins[f"{SPEED} real"].isna().all():
        return None
    paced = within(twins[f"{SPEED} real"], CLOSE) & within(twins[f"{YARDSTICK} real"] / twins[f"{YARDSTICK} sim"],
                                                             CLOSE)
    groups = twins.assign(paced=paced).groupby(cells, sort=False)
    kept = twins[paced].groupby(cells, sort=False)[["mean_iteration real", "mean_iteration sim"]].mean()
    table = pd.DataFrame({"real runs at pace": groups["paced"].sum().astype(int)})
    table["sim/real at pace"] = kept["mean_iteration sim"] / kept["mean_iteration real"]
    return table


def within(ratios: pd.Series, bound: float) -> pd.Series:
    """Whether each ratio is within `bound` of 1 (nan: not)."""
    return (ratios - 1).abs() <= bound


def comparison(results: pd.DataFrame, axis_keys: list[str]) -> pd.DataFrame | None:
    """One row per cell: real and simulated mean and p90 iteration time and simulated / real; None
    unless the study has both backends with finished runs."""
    means = cell_means(results, axis_keys, [*MEASURES, YARDSTICK, SPEED, CPU])
    if means is None:
        return None
    table = pd.DataFrame(index=means.index)
    for measure in MEASURES:
        short = measure.removesuffix("_iteration")
        table[f"real {short}"] = means[(measure, "ray")]
        table[f"sim {short}"] = means[(measure, "sim")]
        table[f"sim/real {short}"] = means[(measure, "sim")] / means[(measure, "ray")]
    table["mean within 10%"] = within(table["sim/real mean"], WITHIN)
    table["mean within 5%"] = within(table["sim/real mean"], CLOSE)
    for column, name in ((YARDSTICK, "env"), (CPU, "CPU")):
        if column in means.columns.get_level_values(0):
            table[f"real/sim {name}"] = means[(column, "ray")] / means[(column, "sim")]
    if SPEED in means.columns.get_level_values(0) and means[(SPEED, "ray")].notna().any():
        table["real machine speed"] = means[(SPEED, "ray")]
    paced = at_pace(results, axis_keys)
    if paced is not None:
        table = table.join(paced)
    if "seed" in axis_keys:  # how far apart one cell's runs are, the seeds' largest mean over their smallest
        low, high = (cell_means(results, axis_keys, ["mean_iteration"], how) for how in ("min", "max"))
        for backend, name in (("ray", "real"), ("sim", "sim")):
            table[f"{name} seeds spread"] = high[("mean_iteration", backend)] / low[("mean_iteration", backend)] - 1
    return table.dropna(subset=["real mean", "sim mean"]).reset_index()


def where_time_went(results: pd.DataFrame, axis_keys: list[str]) -> pd.DataFrame | None:
    """Per cell, the mean seconds of each phase, real and simulated, and the split of the learners' answers
    (compute, Ray's dispatch, queued behind a late computation, Ray's delivery, the compute's CPU), real
    and simulated where the runs have it."""
    means = cell_means(results, axis_keys, [*PHASES, *ANSWER_PHASES])
    if means is None:
        return None
    table = pd.DataFrame(index=means.index)
    for column, name in {**PHASES, **ANSWER_PHASES}.items():
        if column in means.columns.get_level_values(0):
            for backend, side in (("ray", "real"), ("sim", "sim")):
                if column in PHASES or means[(column, backend)].notna().any():
                    table[f"{side} {name}"] = means[(column, backend)]
    return table.reset_index() if len(table.columns) else None


def _answer_columns(phases: pd.DataFrame) -> list[str]:
    """The columns of where_time_went's table that split an answer (the rest are the iteration's phases)."""
    named = [f"{side} {label}" for label in ANSWER_PHASES.values() for side in ("real", "sim")]
    return [c for c in named if c in phases.columns]


def _at_pace_sentence(table: pd.DataFrame) -> str:
    """The score over the real runs that met the machine at its profile's pace (at_pace), or nothing."""
    if "sim/real at pace" not in table.columns:
        return ""
    ratios = table["sim/real at pace"].dropna()
    runs = int(table["real runs at pace"].sum())
    if ratios.empty:
        return (" No real run met the machine at its profile's pace (speed probe and environment steps within "
                f"{CLOSE:.0%}): calibrate again at this pace, or run the study on a quieter machine.")
    hits, close = int(within(ratios, WITHIN).sum()), int(within(ratios, CLOSE).sum())
    return (f" Over the {runs} real runs that met the machine at its profile's pace (their speed probe and "
            f"environment steps within {CLOSE:.0%} of the profile's) and their simulated twins, {hits} of the "
            f"{len(ratios)} cells they cover are within {WITHIN:.0%}, {close} within {CLOSE:.0%} (sim/real at pace).")


def _pace(table: pd.DataFrame) -> str:
    """What real/sim env says of the whole study: the machine's pace during its real runs."""
    pace = float(table["real/sim env"].median())
    if abs(pace - 1) <= CLOSE:
        return (f"Its median over the cells is {pace:.2f}: the real runs met the machine at the pace its profile "
                "measured.")
    return (f"Its median over the cells is {pace:.2f}: the real runs met the machine {abs(pace - 1):.0%} "
            f"{'slower' if pace > 1 else 'faster'} than its profile measured, and the simulated times (priced at "
            "the profile's pace) miss by about as much where the environment steps and the computations make the "
            "iteration; calibrate again at this pace, or merge calibrations (simcode calibrate --merge).")


def section(table: pd.DataFrame | None, phases: pd.DataFrame | None = None) -> list[str]:
    if table is None or table.empty:
        return []
    from simcode.study.report import _markdown_table

    hits, close = int(table["mean within 10%"].sum()), int(table["mean within 5%"].sum())
    text = _markdown_table(table)
    lines = ["## Real against simulated", "",
             f"Real: measured seconds on Ray (cluster.backend ray); simulated: the model's seconds. "
             f"{hits} of {len(table)} cells have the simulated mean within {WITHIN:.0%} of the real one, "
             f"{close} within {CLOSE:.0%}.{_at_pace_sentence(table)}", "",
             text, ""]
    if "real/sim env" in table.columns:
        lines += ["real/sim env: the real environment steps' mean time over the simulated one. No message and no "
                  "code is in their way (in centralized cells the controller computes alone; in coded ones late "
                  "learners' leftover work may share the cores), so this is how fast the machine ran during the "
                  "cell's real runs against what its profile measured; well above 1, the real runs met a slow "
                  "spell of the machine (on a virtual machine, another tenant of its host). " + _pace(table), ""]
    if "real machine speed" in table.columns:
        lines += ["real machine speed: before each real run, 100 environment steps timed on one thread (the speed "
                  "probe) over the same probe's time when the profile was calibrated, the mean over the cell's "
                  "runs. Nothing of the run is under way yet, so this is the machine's own pace: 1.10 means every "
                  "computation of the run was likely about 10% slower than the profile's, which prices them at "
                  "the calibration's pace.", ""]
    if "real/sim CPU" in table.columns:
        lines += ["real/sim CPU: the CPU seconds an iteration cost the machine, real (every thread of the driver "
                  "and of its local Ray's processes on a core, the decode checks kept off the clock left out) "
                  "over simulated (the work priced on the simulated hosts and Ray's idle threads' part). Near 1 "
                  "with sim/real mean off, the work is priced right and its scheduling (who waits for whom) is "
                  "not; off 1, the profile prices the work itself too high or too low.", ""]
    if "real runs at pace" in table.columns:
        lines += ["real runs at pace: how many of the cell's real runs met the machine at its profile's pace, their "
                  f"speed probe before the run and their environment steps during it within {CLOSE:.0%} of what the "
                  "profile measured; sim/real at pace: the simulated over the real mean over those runs and their "
                  "simulated twins (the same seeds). The profile prices the machine at its calibration's pace: "
                  "this is the model's own error, with the machine's drift left out.", ""]
    if "real seeds spread" in table.columns:
        lines += ["Seeds spread: a cell's largest mean iteration time over its smallest, minus one, across its "
                  "seeds (which learners straggle changes with the seed). The simulated spread is the seeds' part "
                  "alone; the real spread adds the machine's own noise, a floor under any sim/real gap.", ""]
    if phases is not None and not phases.empty:
        lines += _phase_tables(phases)
    return lines


def _phase_tables(phases: pd.DataFrame) -> list[str]:
    """The report's tables of where_time_went: the iteration's phases, then an answer's stages."""
    from simcode.study.report import _markdown_table

    answers = _answer_columns(phases)
    lines = ["### Where the time went", "",
             "Mean seconds per iteration: the environment steps (env), from the work sent until the decode "
             "(to decode) and after it (after: late learners released); CPU: the CPU seconds an iteration "
             "cost the machine (real/sim CPU above).", "", _markdown_table(phases.drop(columns=answers)), ""]
    if answers:
        keys = [c for c in phases.columns if not c.startswith(("real ", "sim "))]
        lines += ["### An answer, stage by stage", "",
                  "Means over the learners' answers, real (measured on the actors and the driver) and simulated "
                  "(kept by the simulated learners and controller): the row's computation (compute), Ray's "
                  "dispatch from the task's submit until the learner has it and its arguments (dispatch), "
                  "the wait behind a cancelled computation still running (queued), Ray's delivery from the "
                  "answer leaving the learner until the controller has taken it in (delivery), and the "
                  "row's CPU on its core (compute CPU: below compute when it waited for a core). Where "
                  "real and simulated agree on the sum and not on a stage, the model prices the work right "
                  "and places it wrong. Cells without answers (centralized) are left out.", "",
                  _markdown_table(phases[keys + answers].dropna(how="all", subset=answers)), ""]
    return lines


def scatter(table: pd.DataFrame | None, path: Path) -> Path | None:
    """Real against simulated mean iteration time, one point per cell, with y = x."""
    if table is None or table.empty:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    hue = "code.name" if "code.name" in table.columns else None
    for name, group in table.groupby(hue, sort=True) if hue else [("runs", table)]:
        ax.scatter(group["sim mean"], group["real mean"], label=name, s=24)
    top = float(np.nanmax(table[["sim mean", "real mean"]].to_numpy())) * 1.1
    ax.plot([0, top], [0, top], color="grey", linewidth=1, linestyle="--", label="y = x")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="simulated mean iteration time (simulated s)",
           ylabel="real mean iteration time (measured s)", title="real against simulated")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
