"""Contract and property tests of simcode.codes (hypothesis over sizes, seeds and received sets)."""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcode.codes import CODES, make_code
from simcode.errors import BadInput

FAST = settings(max_examples=50, deadline=None)
STABLE = ["uncoded", "replication", "mds", "random_sparse", "ldpc"]
EXPECTED = {"uncoded", "replication", "mds", "mds_vandermonde", "random_sparse", "ldpc"}


def build(name, m, n, seed, **params):
    if name == "uncoded":
        n = m
    if name == "ldpc" and n == m:
        n = m + 1
    return make_code(name, n_agents=m, n_learners=n, seed=seed, **params)


def reference_peel(matrix, rows):
    """Independent peeling: a row with one unknown agent resolves it, until nothing changes."""
    unknown = set(range(matrix.shape[1]))
    changed = True
    while changed and unknown:
        changed = False
        for i in rows:
            left = [j for j in np.flatnonzero(matrix[i]) if j in unknown]
            if len(left) == 1:
                unknown.discard(left[0])
                changed = True
    return not unknown


def rank_m(code, rows):
    sub = code.matrix[list(rows)]
    return len(rows) >= code.n_agents and np.linalg.matrix_rank(sub) == code.n_agents


def relative_error(decoded, theta):
    return np.linalg.norm(decoded - theta) / np.linalg.norm(theta)


def test_registry_and_docs():
    assert EXPECTED <= set(CODES)
    for name, cls in CODES.items():
        assert cls.name == name
        assert cls.__doc__.strip().splitlines()[0]


@FAST
@given(name=st.sampled_from(STABLE), m=st.integers(1, 30), extra=st.integers(0, 10),
       seed=st.integers(0, 2**16), data=st.data())
def test_decode_roundtrip(name, m, extra, seed, data):
    code = build(name, m, m + extra, seed)
    n = code.n_learners
    assert code.matrix.shape == (n, m) and code.matrix.dtype == np.float64
    assert np.array_equal(code.load, np.count_nonzero(code.matrix, axis=1))
    size = data.draw(st.integers(0, n))
    rng = np.random.default_rng(seed)
    received = sorted(rng.choice(n, size, replace=False).tolist())
    ok = code.can_decode(received)
    if name == "ldpc":
        assert ok == reference_peel(code.matrix, received)
    if ok:
        assert rank_m(code, received)
        theta = rng.standard_normal((m, 17))
        decoded = code.decode({i: code.matrix[i] @ theta for i in received})
        assert decoded.shape == (m, 17) and decoded.dtype == np.float64
        assert relative_error(decoded, theta) <= 1e-9
        # into a caller's buffer (full of another decode's values): the same numbers, in that buffer
        buffer = np.full((m, 17), np.nan)
        assert code.decode({i: code.matrix[i] @ theta for i in received}, out=buffer) is buffer
        assert np.array_equal(buffer, decoded)
        assert code.decode({i: code.matrix[i] @ theta for i in received}, out=np.empty((m, 3))).shape == (m, 17)
    else:
        if name not in ("ldpc",):
            assert not rank_m(code, received)
        with pytest.raises(ValueError):
            code.decode({i: np.zeros(3) for i in received})


@FAST
@given(name=st.sampled_from(STABLE + ["mds_vandermonde"]), m=st.integers(1, 6), extra=st.integers(0, 4),
       seed=st.integers(0, 1000), params=st.sampled_from([{}, {"p": 0.3}, {"decoder": "solve"}]))
def test_tolerance_by_brute_force(name, m, extra, seed, params):
    params = {k: v for k, v in params.items() if k in CODES[name].Params.model_fields}
    code = build(name, m, m + extra, seed, **params)
    n, t = code.n_learners, code.tolerance
    assert code.tolerance_exact
    assert all(code.can_decode(s) for s in itertools.combinations(range(n), n - t))
    if n - t - 1 >= 0:
        assert not all(code.can_decode(s) for s in itertools.combinations(range(n), n - t - 1))


@FAST
@given(m=st.integers(1, 12), extra=st.integers(0, 8), seed=st.integers(0, 1000))
def test_mds_decodes_every_m_subset(m, extra, seed):
    code = make_code("mds", n_agents=m, n_learners=m + extra, seed=seed)
    assert code.tolerance == extra
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((m, 5))
    for subset in itertools.islice(itertools.combinations(range(m + extra), m), 300):
        assert code.can_decode(subset)
        decoded = code.decode({i: code.matrix[i] @ theta for i in subset})
        assert relative_error(decoded, theta) <= 1e-9
    assert not code.can_decode(range(m - 1))


def test_mds_accuracy_at_30_by_40():
    code = make_code("mds", n_agents=30, n_learners=40, seed=0)
    rng = np.random.default_rng(123)
    theta = rng.standard_normal((30, 200))
    worst64 = worst32 = 0.0
    for _ in range(200):
        subset = sorted(rng.choice(40, 30, replace=False))
        exact = {i: code.matrix[i] @ theta for i in subset}
        worst64 = max(worst64, relative_error(code.decode(exact), theta))
        rounded = {i: y.astype(np.float32) for i, y in exact.items()}
        worst32 = max(worst32, relative_error(code.decode(rounded), theta))
    assert worst64 <= 1e-9 and worst32 <= 1e-4


def test_vandermonde_accurate_small_and_warns_large():
    small = make_code("mds_vandermonde", n_agents=5, n_learners=6)
    theta = np.random.default_rng(0).standard_normal((5, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = small.decode({i: small.matrix[i] @ theta for i in range(1, 6)})
    assert relative_error(decoded, theta) <= 1e-9
    with pytest.warns(RuntimeWarning):
        make_code("mds_vandermonde", n_agents=15, n_learners=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64 is fine at M=6 ...
        medium = make_code("mds_vandermonde", n_agents=6, n_learners=7)
    theta = np.random.default_rng(0).standard_normal((6, 50))
    with pytest.warns(RuntimeWarning):  # ... float32 results are not
        medium.decode({i: (medium.matrix[i] @ theta).astype(np.float32) for i in range(6)})


def test_replication_placement():
    code = make_code("replication", n_agents=3, n_learners=8, replicas=2)
    assert code.load.max() - code.load.min() <= 1 and code.matrix.max() == 1
    assert np.all(code.matrix.sum(axis=0) == 2) and code.tolerance == 1
    seed_placement = make_code("replication", n_agents=4, n_learners=9)
    assert seed_placement.replicas is None and seed_placement.matrix.sum(axis=0).min() == 2
    assert seed_placement.tolerance == 1


def test_float32_payloads_decode_in_float64():
    code = make_code("ldpc", n_agents=6, n_learners=10, seed=3)
    theta = np.random.default_rng(1).standard_normal((6, 1000)).astype(np.float32).astype(np.float64)
    received = [i for i in range(10) if i != 0]
    decoded = code.decode({i: (code.matrix[i] @ theta).astype(np.float32) for i in received})
    assert decoded.dtype == np.float64 and relative_error(decoded, theta) < 1e-6


@pytest.mark.parametrize("name, m, n, params, key", [
    ("mds", 5, 4, {}, "n_learners"),
    ("random_sparse", 3, 5, {"p": 1.5}, "p"),
    ("random_sparse", 3, 5, {"p": 0}, "p"),
    ("random_sparse", 3, 5, {"p": "x"}, "p"),
    ("mds", 3, 5, {"p": 0.5}, "p"),
    ("uncoded", 3, 4, {}, "n_learners"),
    ("replication", 3, 5, {"replicas": 6}, "replicas"),
    ("replication", 3, 5, {"replicas": 0}, "replicas"),
    ("ldpc", 30, 40, {"dc": 5}, "dc"),
    ("ldpc", 30, 40, {"dv": 2}, "dv"),
    ("ldpc", 4, 7, {"dv": 3}, "dv"),
    ("ldpc", 4, 4, {}, "n_learners"),
    ("ldpc", 4, 6, {"decoder": "magic"}, "decoder"),
    ("mds", 0, 4, {}, "n_agents"),
    ("nope", 3, 4, {}, "name"),
])
def test_bad_params(name, m, n, params, key):
    with pytest.raises(BadInput) as info:
        make_code(name, n_agents=m, n_learners=n, **params)
    assert info.value.key == key and "allowed" in info.value.message


def test_show_renders_and_rejects_unknown_names():
    from simcode.codes.show import render

    text = render("random_sparse", n_agents=4, n_learners=6, params={"p": 0.6})
    assert "tolerance" in text and "load per learner" in text and "condition number" in text
    assert "WARNING" in render("mds_vandermonde", n_agents=12, n_learners=13)
    with pytest.raises(BadInput) as info:
        render("nope", 3, 4)
    assert info.value.key == "name"


def test_show_lists_each_parameter_from_the_schemes_params():
    """`codes show` says, for every parameter, its default and what it takes, from the scheme's Params."""
    from simcode.codes.show import render, scheme_summaries
    from simcode.params import allowed_values

    listed = {name: params for name, _, params in scheme_summaries()}
    for name, cls in CODES.items():
        n = 3 if name == "uncoded" else 7
        text = render(name, n_agents=3, n_learners=n)
        fields = cls.Params.model_fields
        assert listed[name] == list(fields)
        if not fields:
            assert "parameters: none" in text
        for key, field in fields.items():
            default = "unset" if field.default is None else field.default
            assert f"{key} = {default}: {allowed_values(field)}" in text, (name, key)


def test_parameters_are_numbers_as_in_a_scenario():
    """A whole float is an integer and a numpy integer is one (as a script may pass); a boolean is not."""
    code = make_code("replication", n_agents=np.int64(3), n_learners=6, replicas=2.0)
    assert code.replicas == 2 and code.n_agents == 3 and isinstance(code.n_agents, int)
    with pytest.raises(BadInput) as info:
        make_code("ldpc", n_agents=3, n_learners=7, dv=True)
    assert info.value.key == "dv"


def test_a_bad_parameter_says_what_its_field_allows():
    from simcode.codes.random_sparse import RandomSparse
    from simcode.params import allowed_range

    with pytest.raises(BadInput) as info:
        make_code("random_sparse", n_agents=3, n_learners=5, p=1.5)
    allowed = allowed_range(RandomSparse.Params.model_fields["p"])
    assert (info.value.key, info.value.message) == ("p", f"1.5 is out of range; allowed: {allowed}")
    assert allowed == "a finite number in (0, 1]"


# Codes well past 63 agents (an M-bit mask in an int64 overflows there). Each code is built once:
# the search for a well-conditioned mds code at M=200 takes seconds.
LARGE_SIZES = [(64, 72), (100, 120), (200, 220)]


@functools.cache
def large_code(name, m, n):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = build(name, m, n, seed=0)
    return code, bool(caught)


@pytest.mark.parametrize("m, n", LARGE_SIZES)
@pytest.mark.parametrize("name", sorted(CODES))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_large_codes_decode_every_decodable_set_exactly(name, m, n, data):
    """With all learners every scheme decodes; any set it calls decodable decodes to 1e-9, unless the
    scheme warned (mds_vandermonde) that float64 cannot decode it accurately."""
    code, warned = large_code(name, m, n)
    n = code.n_learners
    erased = data.draw(st.sets(st.integers(0, n - 1), max_size=n - m + 2), label="erased")
    received = [i for i in range(n) if i not in erased]
    theta = np.random.default_rng(len(erased)).standard_normal((m, 3))
    assert code.can_decode(range(n))
    if name == "ldpc":
        assert code.can_decode(received) == reference_peel(code.matrix, received)
    for rows in (range(n), received):
        if not code.can_decode(rows):
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoded = code.decode({i: code.matrix[i] @ theta for i in rows})
        assert relative_error(decoded, theta) <= 1e-9 or warned or caught


@pytest.mark.parametrize("key", ["name", "n_agents", "n_learners", "seed"])
def test_codes_show_refuses_a_set_that_names_an_argument(capsys, key):
    from simcode.cli import main

    assert main(["codes", "show", "random_sparse", "-M", "3", "-N", "5", "--set", f"{key}=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"simcode: {key}: not a scheme parameter"), err


@pytest.mark.parametrize("m, n", [(3, 400), (3, 1100)])
def test_vandermonde_refuses_learners_whose_powers_underflow(m, n):
    with pytest.raises(BadInput) as info:
        make_code("mds_vandermonde", n_agents=m, n_learners=n)
    assert info.value.key == "n_learners" and "n_learners <= 324" in info.value.message
    assert np.all(make_code("mds_vandermonde", n_agents=m, n_learners=324).matrix != 0)
