"""Cost profiles: the fits recover known costs, and a profile file is read or refused in one line."""

import numpy as np
import pytest
import yaml

from simcode.errors import BadInput
from simcode.sim.calibrate import fit_profile
from simcode.sim.profile import fit_linear, load_profile


def test_fit_linear_recovers_known_coefficients_with_noise():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(12), rng.uniform(1, 100, 12), rng.uniform(1, 1e4, 12)])
    truth = np.array([2e-4, 3e-5, 1e-8])
    seconds = x @ truth * (1 + 0.01 * rng.standard_normal(12))
    coef, residual = fit_linear(x, seconds)
    np.testing.assert_allclose(coef, truth, rtol=0.1)
    assert 0 < residual < 0.03


def synthetic_points():
    """Measurements as calibrate makes them, from known costs."""
    updates = [{"agents": m, "gflop": g, "seconds": 5e-4 + 3e-3 * g} for m, g in ((3, 0.3), (10, 1.1), (15, 2.4))]
    env = [{"scenario": s, "agents": m, "seconds": 1e-4 + 2e-5 * m + 3e-6 * m * m}
           for s in ("simple_spread", "simple_tag", "simple_adversary") for m in (3, 6, 10)]
    env.append({"scenario": "simple_push", "agents": 2, "seconds": 1.5e-4})
    decodes = [{"agents": m, "copied": m - s, "solved": s, "rows_used": 4, "values": v,
                "seconds": 1e-5 + 2e-10 * (m - s) * v + 7e-10 * s * 4 * v}
               for m in (3, 10) for v in (1e4, 1e5) for s in (1, 2)]
    ranks = [{"agents": m, "rows": r, "seconds": 2e-5 + 1e-9 * r * m * m} for m in (3, 15, 30) for r in (m, m + 5)]
    serialize = [{"bytes": b, "seconds": 5e-5 + b / 2e9} for b in (8e4, 8e5, 8e6)]
    return updates, env, decodes, ranks, serialize


def test_fit_profile_recovers_synthetic_costs():
    profile, report = fit_profile(*synthetic_points())
    assert profile.update.seconds(2.0) == pytest.approx(5e-4 + 6e-3, rel=1e-6)
    assert profile.env_step_seconds("simple_tag", 8) == pytest.approx(1e-4 + 16e-5 + 192e-6, rel=1e-6)
    assert profile.env_step_seconds("simple_push", 2) == pytest.approx(1.5e-4, rel=1e-6)
    assert profile.decode.seconds(copied=7, solved=3, rows_used=4, values=50_000) == pytest.approx(
        1e-5 + 2e-10 * 7 * 5e4 + 7e-10 * 12 * 5e4, rel=1e-5)
    assert profile.decode.seconds(copied=10, solved=0, rows_used=0, values=50_000) == 0.0  # copying only
    assert profile.rank_check.seconds(12, 10) == pytest.approx(2e-5 + 1.2e-6, rel=1e-5)
    assert profile.serialize.bytes_per_second == pytest.approx(2e9, rel=1e-5)
    assert max(profile.residuals.values()) < 1e-6
    assert any("residual" in line for line in report)


def test_profile_round_trips_through_yaml_and_bad_files_are_one_line(tmp_path):
    profile, _ = fit_profile(*synthetic_points())
    good = tmp_path / "profile.yaml"
    good.write_text(yaml.safe_dump(profile.model_dump()))
    assert load_profile(good) == profile
    broken = tmp_path / "broken.yaml"
    data = profile.model_dump()
    data["update"]["per_gflop"] = -1.0
    broken.write_text(yaml.safe_dump(data))
    with pytest.raises(BadInput, match="update.per_gflop"):
        load_profile(broken)
    with pytest.raises(BadInput, match="not found|no such"):
        load_profile(tmp_path / "missing.yaml")



def test_typical_of_passes_keeps_each_points_median_seconds():
    """A burst slows the second pass's first point and the first pass's second; a lucky pass is faster
    than the rest: each point keeps its median, neither the burst nor the luck."""
    from simcode.sim.calibrate import typical_of_passes

    passes = iter([[{"agents": 3, "seconds": 1.0}, {"agents": 5, "seconds": 4.0}],
                   [{"agents": 3, "seconds": 2.5}, {"agents": 5, "seconds": 2.0}],
                   [{"agents": 3, "seconds": 0.9}, {"agents": 5, "seconds": 2.1}]])
    assert typical_of_passes(lambda: next(passes), 3) == [{"agents": 3, "seconds": 1.0}, {"agents": 5, "seconds": 2.1}]


def test_typical_seconds_is_the_mean_of_the_timings_without_the_machines_bursts():
    """A run pays its iterations' mean, so a profile prices the mean: the slow tail a quiet machine has
    (here 1.3 and 1.5 times the median) counts; a burst (over twice the median) does not."""
    from simcode.sim.calibrate import typical_seconds

    quiet = [1.0, 1.0, 1.1, 1.3, 1.5]
    assert typical_seconds(quiet) == pytest.approx(np.mean(quiet))
    assert typical_seconds(quiet) > np.percentile(quiet, 25)  # what earlier profiles priced
    assert typical_seconds(quiet + [2.3, 11.0]) == pytest.approx((5.9 + 2.3) / 6)  # 2.3 < 2 x 1.3, the median
    assert typical_seconds([0.5, 0.5, 9.0]) == pytest.approx(0.5)
