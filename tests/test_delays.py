"""Tests of the straggler delay models (simcode.delays).

Statistical checks use fixed seeds, so they are deterministic: the tolerances (several standard
errors) only guard against a wrong formula, they cannot flake.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcode.delays import DELAYS, MODES, DelayModel, busy_time, make_delay
from simcode.errors import BadInput

DATA = Path(__file__).parent / "data"
MEASURED = DATA / "measured_delays.csv"
MEASURED_DELAY_S = [0.012, 0.030, 0.000, 0.250, 0.018, 1.400, 0.022, 0.015]

# Parameters that make every registered model random (so different seeds give different draws).
PARAMS = {
    "none": {},
    "fixed_k": {"k": 2, "delay": 0.25},
    "shifted_exponential": {"shift": 0.01, "rate": 4.0},
    "pareto": {"scale": 0.1, "alpha": 4.0, "shift": 0.02},
    "lognormal": {"mu": -2.0, "sigma": 0.5, "shift": 0.01},
    "weibull": {"shape": 0.8, "scale": 0.2, "shift": 0.0},
    "bimodal": {"p_slow": 0.2, "slowdown": 1.0, "base": 0.05},
    "persistent": {"k": 2, "delay": 0.5},
    "markov": {"p_slow": 0.1, "p_recover": 0.3, "delay": 0.25},
    "failure": {"p_fail": 0.2},
    "empirical": {"file": str(MEASURED)},
}
N = 6


def draws(model: DelayModel, seed: int, iterations: int) -> np.ndarray:
    model.reset()
    rng = np.random.default_rng(seed)
    return np.array([model.sample(rng) for _ in range(iterations)])


def test_every_registered_model_is_tested():
    assert set(DELAYS) == set(PARAMS)
    assert {name for name, _ in REQUIRED} == set(DELAYS) - {"none", "fixed_k", "persistent"}
    assert {"none", "fixed_k", "shifted_exponential", "pareto", "lognormal", "weibull", "bimodal",
            "persistent", "markov", "failure", "empirical"} <= set(DELAYS)


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("mode", MODES)
def test_samples_have_the_contract_shape_and_are_reproducible(name, mode):
    model = make_delay(name, n_learners=N, mode=mode, **PARAMS[name])
    assert model.mode == mode and model.n_learners == N
    assert isinstance(model.mean_delay(), float)
    sample = model.sample(np.random.default_rng(0))
    assert sample.shape == (N,) and sample.dtype == np.float64
    first = draws(model, seed=1, iterations=30)
    assert np.all(first >= 0)
    again = draws(make_delay(name, n_learners=N, mode=mode, **PARAMS[name]), seed=1, iterations=30)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(draws(model, seed=1, iterations=30), first)  # reset forgets state
    if name != "none":
        assert not np.array_equal(draws(model, seed=2, iterations=30), first)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_generator_use_depends_only_on_params_and_size(name):
    """Two runs with the same seed see the same draws afterwards, whatever the model's state was."""
    model = make_delay(name, n_learners=N, **PARAMS[name])
    states = []
    for seed_of_state in (3, 4):
        model.reset()
        rng = np.random.default_rng(seed_of_state)
        for _ in range(7):
            model.sample(rng)  # different states after different histories
        consumer = np.random.default_rng(11)
        for _ in range(20):
            model.sample(consumer)
        states.append(consumer.bit_generator.state["state"]["state"])
    assert states[0] == states[1]


def test_failure_draws_the_same_whether_permanent_or_not():
    rngs = [np.random.default_rng(5), np.random.default_rng(5)]
    for permanent, rng in zip((False, True), rngs):
        model = make_delay("failure", n_learners=N, p_fail=0.3, permanent=permanent, max_failed=2)
        for _ in range(50):
            model.sample(rng)
    assert rngs[0].random() == rngs[1].random()


def test_none_is_zero():
    model = make_delay("none", n_learners=4)
    np.testing.assert_array_equal(model.sample(np.random.default_rng(0)), np.zeros(4))
    assert model.mean_delay() == 0.0


def test_fixed_k_late_learners_are_exactly_k_and_uniform():
    n, k, delay, iterations = 5, 2, 0.25, 20_000
    model = make_delay("fixed_k", n_learners=n, k=k, delay=delay)
    samples = draws(model, seed=0, iterations=iterations)
    assert set(np.unique(samples)) == {0.0, delay}
    assert np.all((samples == delay).sum(axis=1) == k)
    frequency = (samples == delay).mean(axis=0)
    standard_error = math.sqrt(k / n * (1 - k / n) / iterations)
    assert np.all(np.abs(frequency - k / n) < 6 * standard_error)
    assert model.mean_delay() == pytest.approx(k / n * delay)


def test_fixed_k_defaults_are_the_papers():
    model = make_delay("fixed_k", n_learners=5)
    assert (model.k, model.delay) == (1, 0.25)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 20), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_fixed_k_any_size(n, data, seed):
    k = data.draw(st.integers(0, n))
    sample = make_delay("fixed_k", n_learners=n, k=k, delay=1.5).sample(np.random.default_rng(seed))
    assert (sample == 1.5).sum() == k and (sample == 0).sum() == n - k


def variance_of(name: str, params: dict) -> float:
    """Exact variance of one learner's delay (the i.i.d. families)."""
    if name == "shifted_exponential":
        return 1 / params["rate"] ** 2
    if name == "pareto":
        a, xm = params["alpha"], params["scale"]
        return xm**2 * a / ((a - 1) ** 2 * (a - 2))
    if name == "lognormal":
        mu, s = params["mu"], params["sigma"]
        return (math.exp(s**2) - 1) * math.exp(2 * mu + s**2)
    if name == "weibull":
        k, lam = params["shape"], params["scale"]
        return lam**2 * (math.gamma(1 + 2 / k) - math.gamma(1 + 1 / k) ** 2)
    if name == "bimodal":
        p = params["p_slow"]
        return p * (1 - p) * (params["slowdown"] - params["base"]) ** 2
    raise KeyError(name)


@pytest.mark.parametrize("name", ["shifted_exponential", "pareto", "lognormal", "weibull", "bimodal"])
def test_sample_mean_matches_mean_delay(name):
    model = make_delay(name, n_learners=10, **PARAMS[name])
    samples = draws(model, seed=7, iterations=5_000).ravel()
    standard_error = math.sqrt(variance_of(name, PARAMS[name]) / samples.size)
    assert abs(samples.mean() - model.mean_delay()) < 5 * standard_error
    assert samples.min() >= PARAMS[name].get("shift", 0.0)


def test_documented_means():
    assert make_delay("pareto", n_learners=2, scale=0.1, alpha=3).mean_delay() == pytest.approx(0.15)
    assert make_delay("pareto", n_learners=2, scale=0.1, alpha=1).mean_delay() == math.inf
    assert make_delay("pareto", n_learners=2, scale=0.1, alpha=2, shift=0.1).sample(
        np.random.default_rng(0)).min() >= 0.2  # classic Pareto: minimum shift + scale
    assert make_delay("shifted_exponential", n_learners=2, shift=0.1, rate=5).mean_delay() == pytest.approx(0.3)
    assert make_delay("weibull", n_learners=2, shape=1, scale=0.5).mean_delay() == pytest.approx(0.5)
    assert make_delay("lognormal", n_learners=2, mu=0, sigma=1).mean_delay() == pytest.approx(math.exp(0.5))
    assert make_delay("bimodal", n_learners=2, p_slow=0.25, slowdown=2).mean_delay() == pytest.approx(0.5)


def test_persistent_k_keeps_the_same_learners_until_reset():
    model = make_delay("persistent", n_learners=8, k=3, delay=0.5)
    samples = draws(model, seed=0, iterations=50)
    assert np.all((samples == 0.5).sum(axis=1) == 3)
    assert np.all(samples == samples[0])
    chosen = set()
    for seed in range(20):  # the slow set is drawn afresh after each reset
        chosen.add(tuple(np.flatnonzero(draws(model, seed=seed, iterations=1)[0])))
    assert len(chosen) > 1
    assert model.mean_delay() == pytest.approx(3 / 8 * 0.5)


def test_persistent_slow_list():
    model = make_delay("persistent", n_learners=5, slow=[0, 3], delay=0.2)
    samples = draws(model, seed=0, iterations=10)
    np.testing.assert_array_equal(samples, np.tile([0.2, 0, 0, 0.2, 0], (10, 1)))
    assert make_delay("persistent", n_learners=5).k == 1


def slow_run_lengths(slow: np.ndarray) -> list[int]:
    """Lengths of the maximal runs of True in each column (learner) of an (iterations, N) array."""
    lengths = []
    for column in slow.T:
        padded = np.concatenate([[False], column, [False]]).astype(int)
        starts = np.flatnonzero(np.diff(padded) == 1)
        ends = np.flatnonzero(np.diff(padded) == -1)
        lengths.extend(ends - starts)
    return lengths


def test_markov_slowness_lasts():
    p_slow, p_recover = 0.05, 0.2
    model = make_delay("markov", n_learners=5, p_slow=p_slow, p_recover=p_recover, delay=1.0)
    slow = draws(model, seed=0, iterations=4_000) > 0
    stationary = p_slow / (p_slow + p_recover)
    assert slow.mean() == pytest.approx(stationary, abs=0.03)
    assert model.mean_delay() == pytest.approx(stationary)
    markov_runs = np.mean(slow_run_lengths(slow))
    assert markov_runs == pytest.approx(1 / p_recover, rel=0.15)
    iid = make_delay("bimodal", n_learners=5, p_slow=stationary, slowdown=1.0)
    iid_runs = np.mean(slow_run_lengths(draws(iid, seed=0, iterations=4_000) > 0))
    assert iid_runs == pytest.approx(1 / (1 - stationary), rel=0.15)
    assert markov_runs > 3 * iid_runs


def test_markov_starts_from_the_stationary_distribution():
    model = make_delay("markov", n_learners=20_000, p_slow=0.1, p_recover=0.3)
    first = model.sample(np.random.default_rng(0)) > 0
    assert first.mean() == pytest.approx(0.25, abs=0.015)


def test_permanent_failure_stays_until_reset():
    model = make_delay("failure", n_learners=6, p_fail=0.1, permanent=True)
    samples = draws(model, seed=0, iterations=100)
    failed = np.isinf(samples)
    assert np.all(failed[1:] >= failed[:-1])  # once failed, failed for good
    assert failed[-1].all() and not failed[0].all()
    assert np.all(samples[~failed] == 0)
    model.reset()
    assert not np.isinf(model.sample(np.random.default_rng(0))).all()


def test_transient_failure_does_not_persist():
    p_fail = 0.3
    model = make_delay("failure", n_learners=6, p_fail=p_fail)
    failed = np.isinf(draws(model, seed=0, iterations=5_000))
    assert failed.mean() == pytest.approx(p_fail, abs=0.02)
    both = (failed[1:] & failed[:-1]).mean()
    assert both == pytest.approx(p_fail**2, abs=0.02)  # independent iterations
    assert model.mean_delay() == math.inf
    assert make_delay("failure", n_learners=6, p_fail=0).mean_delay() == 0.0


@pytest.mark.parametrize("permanent", [False, True])
def test_failure_cap(permanent):
    model = make_delay("failure", n_learners=6, p_fail=0.5, permanent=permanent, max_failed=2)
    failed = np.isinf(draws(model, seed=0, iterations=200)).sum(axis=1)
    assert failed.max() == 2
    if permanent:
        assert np.all(failed[20:] == 2)


def test_empirical_samples_values_of_the_file():
    model = make_delay("empirical", n_learners=4, file=str(MEASURED))
    samples = draws(model, seed=0, iterations=500)
    assert set(np.unique(samples)) == set(MEASURED_DELAY_S)  # default: first numeric column
    assert model.mean_delay() == pytest.approx(np.mean(MEASURED_DELAY_S))
    scaled = make_delay("empirical", n_learners=4, file=MEASURED, column="queue_ms", scale=0.001)
    assert set(np.unique(draws(scaled, seed=0, iterations=500))) <= {0.001 * v for v in (2, 3, 4, 5, 9, 40)}
    by_position = make_delay("empirical", n_learners=4, file=MEASURED, column=1)
    np.testing.assert_array_equal(draws(by_position, seed=3, iterations=5), draws(model, seed=3, iterations=5))


@pytest.mark.parametrize("text", ["0.1\n0.2\n\n0.3\n", "delay\n0.1\n0.2\n0.3\n", "0.1\r\n0.2\r\n0.3\r\n"])
def test_empirical_single_column_with_or_without_header(tmp_path, text):
    path = tmp_path / "d.csv"
    path.write_text(text)
    samples = draws(make_delay("empirical", n_learners=3, file=str(path)), seed=0, iterations=200)
    assert set(np.unique(samples)) == {0.1, 0.2, 0.3}


def test_empirical_inf_means_no_answer(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("delay\n0.1\ninf\n")
    samples = draws(make_delay("empirical", n_learners=3, file=str(path)), seed=0, iterations=50)
    assert set(np.unique(samples)) == {0.1, np.inf}


@pytest.mark.parametrize(
    ("text", "params", "key", "words"),
    [
        (None, {}, "file", "not found"),
        ("", {}, "file", "empty"),
        ("\n\n", {}, "file", "empty"),
        ("delay\n", {}, "file", "no values"),
        ("0.1\nfast\n0.3\n", {}, "file", "'fast' is not a number"),
        ("host,delay\na,0.1\nb,0.2\n", {"column": "host"}, "column", "not a number"),
        ("host,delay\na,0.1\nb,0.2\n", {"column": "latency"}, "column", "host, delay"),
        ("host,delay\na,0.1\nb,0.2\n", {"column": 5}, "column", "position"),
        ("host,note\na,x\nb,y\n", {}, "file", "no column of numbers"),
        ("delay\n0.1\n-0.2\n", {}, "file", "negative"),
        ("delay\n0.1\n1e300\n", {}, "file", "too long for a delay"),
        ("a,b\n0.1,0.2\n0.3\n", {}, "file", "line 3"),
        ("delay\n0.1\nnan\n", {}, "file", "not a number"),
    ],
)
def test_empirical_bad_files(tmp_path, text, params, key, words):
    path = tmp_path / "delays.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(BadInput) as error:
        make_delay("empirical", n_learners=3, file=str(path), **params)
    assert error.value.key == key
    assert words in error.value.message
    assert str(path) in error.value.message


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("bimodal", {"p_slow": 1.5, "slowdown": 1}, "p_slow"),
        ("markov", {"p_slow": 1.5, "p_recover": 0.5}, "p_slow"),
        ("markov", {"p_slow": 0.1, "p_recover": -0.1}, "p_recover"),
        ("markov", {"p_slow": 0, "p_recover": 0}, "p_recover"),
        ("failure", {"p_fail": 2}, "p_fail"),
        ("failure", {"p_fail": 0.1, "permanent": "yes"}, "permanent"),
        ("failure", {"p_fail": 0.1, "max_failed": 9}, "max_failed"),
        ("fixed_k", {"k": 6}, "k"),
        ("fixed_k", {"k": -1}, "k"),
        ("fixed_k", {"k": 1.5}, "k"),
        ("fixed_k", {"k": True}, "k"),
        ("fixed_k", {"delay": -0.1}, "delay"),
        ("fixed_k", {"delay": "slow"}, "delay"),
        ("fixed_k", {"delay": float("nan")}, "delay"),
        ("shifted_exponential", {"rate": 0}, "rate"),
        ("shifted_exponential", {"rate": -2}, "rate"),
        ("shifted_exponential", {"rate": 1, "shift": -1}, "shift"),
        ("shifted_exponential", {}, "rate"),
        ("pareto", {"scale": 0, "alpha": 2}, "scale"),
        ("pareto", {"scale": 1, "alpha": 0}, "alpha"),
        ("lognormal", {"mu": 0, "sigma": 0}, "sigma"),
        ("lognormal", {"mu": float("inf"), "sigma": 1}, "mu"),
        ("weibull", {"shape": -1, "scale": 1}, "shape"),
        ("persistent", {"slow": [0, 5]}, "slow"),
        ("persistent", {"slow": [1, 1]}, "slow"),
        ("persistent", {"slow": "0,1"}, "slow"),
        ("persistent", {"slow": [0], "k": 1}, "slow"),
        ("persistent", {"k": 6}, "k"),
        ("empirical", {}, "file"),
        ("empirical", {"file": str(MEASURED), "scale": -1}, "scale"),
        ("fixed_k", {"mode": "multiply"}, "mode"),
    ],
)
def test_bad_parameters_name_their_key(name, params, key):
    with pytest.raises(BadInput) as error:
        make_delay(name, n_learners=5, **params)
    assert error.value.key == key
    assert error.value.message


def test_bad_parameter_messages_say_what_is_allowed():
    with pytest.raises(BadInput) as error:
        make_delay("fixed_k", n_learners=5, k=6)
    assert (error.value.key, error.value.message) == ("k", "6 > 5 learners; allowed: 0 <= k <= n_learners")
    with pytest.raises(BadInput) as error:
        make_delay("bimodal", n_learners=5, p_slow=1.5, slowdown=1)
    assert error.value.message == "1.5 is out of range; allowed: a finite number in [0, 1]"


REQUIRED = [(name, key) for name in sorted(DELAYS) for key, field in DELAYS[name].Params.model_fields.items()
            if field.is_required()]


@pytest.mark.parametrize(("name", "key"), REQUIRED)
def test_a_missing_required_parameter_says_what_it_takes(name, key):
    from simcode.params import allowed_values

    field = DELAYS[name].Params.model_fields[key]
    given = {k: v for k, v in PARAMS[name].items() if k != key}
    with pytest.raises(BadInput) as error:
        make_delay(name, n_learners=5, **given)
    assert (error.value.key, error.value.message) == (key, f"missing; allowed: {allowed_values(field)}")


def test_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(BadInput) as error:
        make_delay("shifted_exponential", n_learners=5, rate=1, lam=2)
    assert error.value.key == "lam"
    assert "shift, rate" in error.value.message
    with pytest.raises(BadInput) as error:
        make_delay("none", n_learners=5, k=1)
    assert error.value.key == "k"


def test_unknown_model_and_bad_size():
    with pytest.raises(BadInput) as error:
        make_delay("gamma", n_learners=5)
    assert error.value.key == "name" and "fixed_k" in error.value.message
    with pytest.raises(BadInput) as error:
        make_delay("none", n_learners=0)
    assert error.value.key == "n_learners"
    assert str(BadInput("k", "x").within("delay")) == "delay.k: x"


def test_busy_time():
    compute = np.array([1.0, 2.0, 0.0, 0.5])
    delays = np.array([0.0, 0.5, np.inf, 1.0])
    np.testing.assert_array_equal(busy_time(compute, delays, "add"), [1.0, 2.5, np.inf, 1.5])
    np.testing.assert_array_equal(busy_time(compute, delays, "scale"), [1.0, 3.0, np.inf, 1.0])
    np.testing.assert_array_equal(busy_time(0.2, np.array([0.0, 1.0, np.inf]), "scale"), [0.2, 0.4, np.inf])
    assert busy_time(0.2, np.zeros(3), "add").dtype == np.float64
    with pytest.raises(BadInput) as error:
        busy_time(1.0, np.zeros(2), "sum")
    assert error.value.key == "mode"


@settings(max_examples=50, deadline=None)
@given(compute=st.floats(0, 1e3), delay=st.floats(0, 1e3), mode=st.sampled_from(MODES))
def test_busy_time_is_at_least_the_compute_time(compute, delay, mode):
    busy = busy_time(compute, np.array([delay, np.inf]), mode)
    assert busy[0] >= compute and busy[1] == np.inf
