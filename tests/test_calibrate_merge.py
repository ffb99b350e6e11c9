"""simcode calibrate --merge: one profile whose every cost is the mean of several calibrations'."""

from __future__ import annotations

import pytest
import yaml

from simcode.cli import main
from simcode.sim.calibrate import fit_profile
from simcode.sim.calibrate_merge import merge_profiles
from simcode.sim.profile import load_profile
from test_profile import synthetic_points
from test_ray_transport import ray_points


def _calibration(tmp_path, name: str, slower: float, alone: bool = True, **provenance) -> object:
    """A profile measured on a machine running `slower` times the synthetic pace (messages at half
    that change), written as calibrate writes it; without `alone`, as an earlier calibrate did."""
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    data = profile.model_dump(exclude_none=True)
    data["update"] = {k: v * slower for k, v in data["update"].items()}
    data["ray"]["put"]["bytes_per_second"] /= slower
    data["ray"]["crowded"] = 0.9 / slower
    for point in data["ray"]["controller"]["points"]:
        point["seconds"] *= slower
    if not alone:
        del data["ray"]["alone"]
    data["provenance"].update(provenance)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_merged_profile_prices_every_cost_at_the_mean_of_the_calibrations(tmp_path):
    paths = [_calibration(tmp_path, "a.yaml", 1.0), _calibration(tmp_path, "b.yaml", 1.2, alone=False),
             _calibration(tmp_path, "c.yaml", 1.1)]
    profiles = [load_profile(path) for path in paths]
    merged = merge_profiles(paths)

    def mean(cost):
        return sum(cost(p) for p in profiles) / len(profiles)

    for gflop in (0.01, 0.5, 3.0):  # an update, a linear cost: its coefficients' mean prices the mean
        assert merged.update.seconds(gflop) == pytest.approx(mean(lambda p, g=gflop: p.update.seconds(g)))
    for nbytes in (1e3, 1e7):  # a rate: averaged as the per-byte cost it stands for
        assert merged.ray.put.seconds(nbytes) == pytest.approx(mean(lambda p, b=nbytes: p.ray.put.seconds(b)))
    assert 1 / merged.ray.crowded == pytest.approx(mean(lambda p: 1 / p.ray.crowded))  # a row's time / crowded
    first = [p.ray.controller.points[0].seconds for p in profiles]
    assert merged.ray.controller.points[0].seconds == pytest.approx(sum(first) / 3)  # matched by problem
    assert merged.ray.alone == profiles[0].ray.alone  # b had none: the mean of a's and c's (equal)
    assert "the mean of 3 calibrations: a.yaml" in merged.provenance["merged"]


def test_merging_what_is_not_several_calibrations_of_one_machine_is_one_line_exit_2(tmp_path, capsys):
    a = _calibration(tmp_path, "a.yaml", 1.0)
    other = _calibration(tmp_path, "other.yaml", 1.0, cpu="another CPU")
    cases = [(["--merge", str(a)], "1 profile given"),
             (["--merge", str(a), "--merge", str(other)], "provenance.cpu"),
             (["--merge", str(a), "--merge", str(tmp_path / "missing.yaml")], "missing.yaml"),
             (["--merge", str(a), "--merge", str(a), "--ray"], "measures nothing")]
    for args, says in cases:
        code = main(["calibrate", *args, "--out", str(tmp_path / "merged.yaml")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and says in err and len(err.splitlines()) == 1, (args, err)
        assert not (tmp_path / "merged.yaml").exists()
    kept = a.read_text()
    # merging into one of the merged profiles would lose it
    assert main(["calibrate", "--merge", str(a), "--merge", str(other), "--out", str(a)]) == 2
    assert a.read_text() == kept


def test_calibrate_merge_writes_a_profile_scenarios_can_use(tmp_path):
    paths = [_calibration(tmp_path, "a.yaml", 1.0), _calibration(tmp_path, "b.yaml", 1.3)]
    assert main(["calibrate", "--merge", str(paths[0]), "--merge", str(paths[1]), "--out",
                 str(tmp_path / "p.yaml")]) == 0
    merged = load_profile(tmp_path / "p.yaml")
    assert merged.provenance["command"] == "simcode calibrate"  # calibrate may replace it later
    assert merged.update.per_gflop == pytest.approx((load_profile(paths[0]).update.per_gflop
                                                     + load_profile(paths[1]).update.per_gflop) / 2)


def test_a_problem_only_later_calibrations_measured_is_their_mean(tmp_path):
    """A later calibrate measures more problems (rows of 1024 at M = 3): merged with an earlier calibration that
    did not, the problem is kept, priced at the mean of the calibrations that measured it; the problems both
    measured are the mean of both."""
    profile, _ = fit_profile(*synthetic_points(), ray=ray_points())
    earlier, later = profile.model_dump(exclude_none=True), profile.model_dump(exclude_none=True)
    new = {**later["ray"]["learner"]["points"][0], "batch": 1024, "seconds": 0.010}
    later["ray"]["learner"]["points"].append(new)
    for point in later["ray"]["learner"]["points"][:-1]:
        point["seconds"] *= 1.5
    paths = [tmp_path / "earlier.yaml", tmp_path / "later.yaml"]
    for path, data in zip(paths, (earlier, later)):
        path.write_text(yaml.safe_dump(data))
    points = merge_profiles(paths).ray.learner.points
    assert len(points) == len(earlier["ray"]["learner"]["points"]) + 1
    assert points[-1].batch == 1024 and points[-1].seconds == pytest.approx(0.010)
    assert points[0].seconds == pytest.approx(1.25 * earlier["ray"]["learner"]["points"][0]["seconds"])
