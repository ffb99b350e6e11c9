"""The sim-vs-real report: per cell, real and simulated mean and p90 and their ratio, and the scatter plot."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simcode.study.sim_vs_real import comparison, scatter, section


def results() -> pd.DataFrame:
    rows = []
    for scheme, real, sim in [("mds", 0.10, 0.105), ("uncoded", 0.30, 0.20)]:
        for seed, wobble in [(0, -0.01), (1, 0.01)]:
            rows.append({"code.name": scheme, "seed": seed, "cluster.backend": "ray", "status": "ok",
                         "mean_iteration": real + wobble, "p90_iteration": 2 * real,
                         "mean_env_seconds": 0.012 + wobble})
            rows.append({"code.name": scheme, "seed": seed, "cluster.backend": "sim", "status": "ok",
                         "mean_iteration": sim, "p90_iteration": 2 * sim, "mean_env_seconds": 0.010})
    return pd.DataFrame(rows)


def test_each_cell_pairs_real_and_simulated_means_over_seeds():
    table = comparison(results(), ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real mean"] == pytest.approx(0.10)
    assert table.loc["mds", "sim/real mean"] == pytest.approx(1.05)
    assert table.loc["uncoded", "sim/real p90"] == pytest.approx(0.20 / 0.30)
    assert table.loc["mds", "mean within 10%"] and not table.loc["uncoded", "mean within 10%"]
    text = "\n".join(section(table.reset_index()))
    assert "1 of 2 cells" in text and "| mds |" in text
    # uncoded's simulated mean is a third under the real one: outside 5% too, and the text counts it so
    assert not table.loc["uncoded", "mean within 5%"]
    assert f"{int(table['mean within 5%'].sum())} within 5%" in text


def test_the_environment_steps_tell_how_fast_the_machine_ran_during_the_real_runs():
    """The real environment steps took 0.012 s on average over the seeds, the simulated 0.010 s."""
    table = comparison(results(), ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real/sim env"] == pytest.approx(1.2)
    text = "\n".join(section(table.reset_index()))
    assert "real/sim env" in text and "median over the cells is 1.20" in text and "20% slower" in text
    table["real/sim env"] = 1.02  # within 5%: the machine ran at its profile's pace
    assert "at the pace its profile measured" in "\n".join(section(table.reset_index()))


def test_the_seeds_spread_shows_how_far_apart_one_cells_runs_are():
    """Real mds ran 0.09 s and 0.11 s over its two seeds, simulated 0.105 s twice."""
    table = comparison(results(), ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real seeds spread"] == pytest.approx(0.11 / 0.09 - 1)
    assert table.loc["mds", "sim seeds spread"] == pytest.approx(0.0)
    assert "Seeds spread" in "\n".join(section(table.reset_index()))
    without_seeds = comparison(results().query("seed == 0"), ["code.name", "cluster.backend"])
    assert "real seeds spread" not in without_seeds.columns


def test_no_comparison_without_both_backends(tmp_path):
    only_sim = results().query("`cluster.backend` == 'sim'")
    assert comparison(only_sim, ["code.name", "seed", "cluster.backend"]) is None
    assert section(None) == [] and scatter(None, tmp_path / "x.png") is None


def test_the_scatter_plot_is_written(tmp_path):
    table = comparison(results(), ["code.name", "seed", "cluster.backend"])
    assert scatter(table, tmp_path / "plots" / "real_vs_sim.png").stat().st_size > 0


def test_where_the_time_went_pairs_the_phases_and_keeps_the_real_split():
    from simcode.study.sim_vs_real import where_time_went

    frame = results()
    real = frame["cluster.backend"] == "ray"
    frame["mean_env_seconds"] = [0.012 if r else 0.010 for r in real]
    frame["mean_to_decode"] = [0.050 if r else 0.040 for r in real]
    frame["mean_after_decode"] = 0.001
    frame["mean_learner_compute"] = [0.020 if r else None for r in real]  # a simulated run has none
    table = where_time_went(frame, ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real env"] == pytest.approx(0.012) and table.loc["mds", "sim env"] == pytest.approx(0.010)
    assert table.loc["mds", "sim to decode"] == pytest.approx(0.040)
    assert table.loc["mds", "real compute"] == pytest.approx(0.020)
    assert "sim compute" not in table.columns and "real dispatch" not in table.columns
    text = "\n".join(section(comparison(frame, ["code.name", "seed", "cluster.backend"]), table.reset_index()))
    assert "### Where the time went" in text and "### An answer, stage by stage" in text
    phases, answers = text.split("### An answer, stage by stage")
    assert "real compute" not in phases and "real compute" in answers and "real env" not in answers


def test_an_answers_stages_are_paired_when_the_simulated_runs_keep_them():
    from simcode.study.sim_vs_real import where_time_went

    frame = results()
    real = frame["cluster.backend"] == "ray"
    frame["mean_env_seconds"] = 0.01
    frame["mean_ray_delivery"] = [0.004 if r else 0.002 for r in real]
    table = where_time_went(frame, ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real delivery"] == pytest.approx(0.004)
    assert table.loc["mds", "sim delivery"] == pytest.approx(0.002)
    frame.loc[frame["code.name"] == "uncoded", "mean_ray_delivery"] = None  # a cell without answers
    table = where_time_went(frame, ["code.name", "seed", "cluster.backend"])
    answers = "\n".join(section(comparison(frame, ["code.name", "seed", "cluster.backend"]), table))
    answers = answers.split("### An answer, stage by stage")[1]
    assert "| mds |" in answers and "| uncoded |" not in answers


def test_the_real_runs_speed_probe_is_reported_per_cell():
    """The real runs' machine_speed (their probe over the profile's) is averaged over the cell's seeds; a
    study whose real runs have none (no profile probe) has no such column."""
    data = results()
    real = data["cluster.backend"] == "ray"
    data.loc[real, "machine_speed"] = [1.0, 1.2, 1.1, 1.1]  # mds seeds 0 and 1, then uncoded's
    table = comparison(data, ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real machine speed"] == pytest.approx(1.1)
    assert "real machine speed" in "\n".join(section(table.reset_index()))
    data["machine_speed"] = None
    assert "real machine speed" not in comparison(data, ["code.name", "seed", "cluster.backend"]).columns


def test_cells_are_also_scored_over_the_real_runs_that_met_the_machine_at_its_profiles_pace():
    """Real mds seed 0 ran at pace (speed 1.02, steps 0.0102 against 0.010 simulated): its mean 0.09 is
    scored against its simulated twin's 0.105. Seed 1's probe said 1.2 and uncoded's steps ran 20% slow:
    not at pace, so uncoded has no score at pace and the sentence counts one run, one cell."""
    data = results()
    real = data["cluster.backend"] == "ray"
    data["machine_speed"] = None
    data.loc[real, "machine_speed"] = [1.02, 1.2, 1.0, 1.0]  # mds seeds 0 and 1, then uncoded's
    data.loc[real, "mean_env_seconds"] = [0.0102, 0.0102, 0.012, 0.012]
    table = comparison(data, ["code.name", "seed", "cluster.backend"]).set_index("code.name")
    assert table.loc["mds", "real runs at pace"] == 1 and table.loc["uncoded", "real runs at pace"] == 0
    assert table.loc["mds", "sim/real at pace"] == pytest.approx(0.105 / 0.09)
    assert pd.isna(table.loc["uncoded", "sim/real at pace"])
    text = "\n".join(section(table.reset_index()))
    assert "Over the 1 real runs that met the machine at its profile's pace" in text
    assert "0 of the 1 cells they cover are within 10%" in text  # 0.105 / 0.09 = 1.17
    data.loc[real, "machine_speed"] = 1.5
    none = comparison(data, ["code.name", "seed", "cluster.backend"])
    assert "No real run met the machine at its profile's pace" in "\n".join(section(none))
    data["machine_speed"] = None
    assert "real runs at pace" not in comparison(data, ["code.name", "seed", "cluster.backend"]).columns


RECORDING = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "real_runs-epyc-2core.csv"


def test_the_shipped_profile_predicts_real_runs_recorded_at_its_machines_pace():
    """Real runs recorded on the machine the shipped profile describes (several sittings), against their
    simulated twins run now: three cells, one of each kind of wait (the first M of 6 coded answers, every
    answer behind a 0.25 s straggler, the controller alone), each within the issue's 10% over its runs at
    pace and each twin taken from the shipped study (the cell's real seeds, nothing else)."""
    from simcode.study.recorded import real_runs, scored, twins_of
    from simcode.study.spec import load_study

    study = load_study("sim_vs_real")
    real = real_runs([RECORDING], study)
    picked = pd.concat([real[(real["M"] == m) & (real["code.name"] == code) & (real["delay.k"] == k)]
                        for m, code, k in [(3, "mds", 0), (5, "uncoded", 1), (5, "centralized", 2)]])
    twins = twins_of(picked, study)
    assert sorted({spec.values["seed"] for spec in twins.runs}) == sorted(picked["seed"].unique())
    assert len(twins.runs) == 3 * picked["seed"].nunique()
    assert all(spec.values["cluster.backend"] == "sim" for spec in twins.runs)
    table = scored(picked, study, progress=False)
    assert len(table) == 3 and (table["real runs at pace"] >= 3).all(), table
    assert ((table["sim/real at pace"] - 1).abs() <= 0.10).all(), table


def test_a_key_only_some_runs_set_still_names_their_cells():
    """An axis of mappings may set a key for some runs only (here a batch size for mds): results.csv leaves it
    blank for the others, whose cell must not vanish from the comparison (it was a KeyError)."""
    data = results()
    data["maddpg.batch_size"] = [1024.0 if scheme == "mds" else None for scheme in data["code.name"]]
    table = comparison(data, ["code.name", "maddpg.batch_size", "seed", "cluster.backend"]).set_index("code.name")
    assert sorted(table.index) == ["mds", "uncoded"]
    assert table.loc["uncoded", "sim/real mean"] == pytest.approx(0.20 / 0.30)
    assert table.loc["uncoded", "maddpg.batch_size"] == "–" and table.loc["mds", "maddpg.batch_size"] == 1024


def test_every_real_run_read_back_from_results_finds_its_simulated_twin(tmp_path):
    """sim_vs_real_beyond's cases set different keys (a blank cell in results.csv where a case does not) and
    numbers come back as floats: each real run still finds its twin, the same values on the sim backend."""
    from simcode.study.recorded import twins_of
    from simcode.study.spec import load_study

    study = load_study("sim_vs_real_beyond")
    real = [spec for spec in study.runs if spec.values["cluster.backend"] == "ray"]
    path = tmp_path / "results.csv"
    pd.DataFrame([{"run_id": spec.run_id, **spec.values, "status": "ok"} for spec in real]).to_csv(path, index=False)
    twins = twins_of(pd.read_csv(path), study).runs
    assert len(twins) == len(real) == 16
    assert [{**s.values, "cluster.backend": "ray"} for s in twins] == [s.values for s in real]


def test_results_of_another_study_are_refused_in_one_line(tmp_path):
    """Results whose runs vary other axes are not the study's: matching them by the keys they share would
    pair a let_finish run with a cancel twin."""
    from simcode.errors import BadInput
    from simcode.study.recorded import real_runs
    from simcode.study.spec import load_study

    path = tmp_path / "results.csv"
    pd.DataFrame([{"run_id": "run-0000-x", "seed": 0, "M": 3, "cluster.on_decode": "let_finish",
                   "cluster.backend": "ray", "status": "ok", "mean_iteration": 0.05}]).to_csv(path, index=False)
    with pytest.raises(BadInput) as info:
        real_runs([path], load_study("sim_vs_real"))
    assert "not study sim_vs_real's axes" in str(info.value) and str(path) in str(info.value)
    path.write_text("")
    with pytest.raises(BadInput, match="cannot be read as a results file"):
        real_runs([path], load_study("sim_vs_real"))


def test_recorded_runs_without_a_speed_probe_are_scored_over_every_run(tmp_path):
    """Real runs of a study older than the speed probe cannot be placed at the machine's pace: none counts as
    at pace, and the score over every run is still given."""
    from simcode.study.recorded import real_runs, scored
    from simcode.study.spec import load_study

    study = load_study("sim_vs_real")
    recorded = pd.read_csv(RECORDING)
    one = recorded[(recorded["M"] == 3) & (recorded["code.name"] == "centralized") & (recorded["delay.k"] == 0)]
    path = tmp_path / "results.csv"
    one.drop(columns=["machine_speed", "study"]).to_csv(path, index=False)
    table = scored(real_runs([path], study), study, progress=False)
    assert len(table) == 1 and table["real runs at pace"].iloc[0] == 0
    assert abs(table["sim/real, every run"].iloc[0] - 1) < 0.2
