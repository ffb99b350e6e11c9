"""The schemes that follow the seed (the paper's own code) build exactly the seed's matrices."""

import itertools
import warnings

import numpy as np
import pytest

from simcode.codes import make_code


def seed_replication(m: int, n: int) -> np.ndarray:
    """The seed's rows written out: the identity, then extra learner k copies agent k (N < 2M)."""
    rows = [np.eye(m)[j] for j in range(m)] + [np.eye(m)[k] for k in range(n - m)]
    return np.array(rows)


@pytest.mark.parametrize("m, n", [(3, 3), (3, 5), (5, 8), (8, 15), (10, 15)])
def test_replication_is_the_seeds_when_n_below_2m(m, n):
    code = make_code("replication", n_agents=m, n_learners=n)
    np.testing.assert_array_equal(code.matrix, seed_replication(m, n))
    assert np.all(code.load == 1)  # no idle learner
    assert code.tolerance == 0 if n < 2 * m else code.tolerance >= 1


@pytest.mark.parametrize("m, n", [(3, 6), (3, 8), (4, 9), (5, 15)])
def test_replication_spreads_copies_evenly_from_2m(m, n):
    code = make_code("replication", n_agents=m, n_learners=n)
    copies = code.matrix.sum(axis=0)
    assert np.all(code.load == 1) and copies.max() - copies.min() <= 1
    assert copies.sum() == n and code.tolerance == n // m - 1
    # the worst case is exact: erase every copy of the least-copied agent but one
    least = int(np.argmin(copies))
    holders = np.flatnonzero(code.matrix[:, least])
    assert code.can_decode(set(range(n)) - set(holders[1:]))
    assert not code.can_decode(set(range(n)) - set(holders))


@pytest.mark.parametrize("m, n", [(3, 4), (5, 6), (8, 15), (10, 15)])
def test_mds_vandermonde_is_the_seeds_matrix(m, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its ill-conditioning warning, tested elsewhere
        code = make_code("mds_vandermonde", n_agents=m, n_learners=n)
    np.testing.assert_array_equal(code.matrix, np.vander(np.linspace(0.1, 0.5, m), n).T)


def test_mds_vandermonde_decodes_any_m_rows_exactly_when_small():
    m, n = 4, 6
    code = make_code("mds_vandermonde", n_agents=m, n_learners=n)
    theta = np.random.default_rng(3).standard_normal((m, 20))
    for rows in itertools.combinations(range(n), m):
        decoded = code.decode({i: code.matrix[i] @ theta for i in rows})
        assert np.max(np.abs(decoded - theta)) <= 1e-8 * np.max(np.abs(theta))


def test_random_sparse_defaults_to_the_seeds_density():
    m, n = 10, 15
    dense = make_code("random_sparse", n_agents=m, n_learners=n, seed=1)
    assert dense.p == 0.8
    fractions = [np.count_nonzero(make_code("random_sparse", n_agents=m, n_learners=n, seed=s).matrix) / (m * n)
                 for s in range(20)]
    assert abs(np.mean(fractions) - 0.8) < 0.03


def test_codes_show_says_which_construction_each_scheme_follows():
    from simcode.codes import CODES
    from simcode.codes.show import render

    for name in CODES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            text = render(name, n_agents=3, n_learners=3 if name == "uncoded" else 6)
        line = next(line for line in text.splitlines() if line.startswith("construction: "))
        assert "seed" in line and len(line) > 40
