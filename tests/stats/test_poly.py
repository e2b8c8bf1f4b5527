"""R's poly(): closed forms and an exact rational Gram-Schmidt as the independent answer."""

from fractions import Fraction

import numpy as np
import pytest

from lesionqsm.stats.poly import bin_ages, orthopoly

TABLE = [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 6]


def _exact_monic(x, degree):
    """Monic orthogonal polynomials on the points x, as exact rational coefficient lists."""
    xs = [Fraction(v).limit_denominator(10**6) for v in x]

    def inner(p, q):
        return sum(_evaluate(p, t) * _evaluate(q, t) for t in xs)

    polys = []
    for k in range(degree + 1):
        p = [Fraction(0)] * k + [Fraction(1)]  # t**k
        for q in polys:
            c = inner(p, q) / inner(q, q)
            p = [a - c * (q[i] if i < len(q) else 0) for i, a in enumerate(p)]
        polys.append(p)
    return polys, inner


def _evaluate(p, t):
    return sum(c * t**i for i, c in enumerate(p))


def _exact_basis(x, degree, at=None):
    polys, inner = _exact_monic(x, degree)
    at = x if at is None else at
    cols = []
    for p in polys[1:]:
        norm = float(inner(p, p)) ** 0.5
        cols.append([float(_evaluate(p, Fraction(t).limit_denominator(10**6))) / norm
                     for t in at])
    return np.array(cols).T


def test_poly_1_to_5_closed_form():
    """poly(1:5, 2) = [(-2,-1,0,1,2)/√10, (2,-1,-2,-1,2)/√14]; R: alpha 3,3; norm2 1,5,10,14."""
    basis, coefs = orthopoly(np.arange(1, 6), 2)
    expected = np.column_stack([np.array([-2, -1, 0, 1, 2]) / np.sqrt(10),
                                np.array([2, -1, -2, -1, 2]) / np.sqrt(14)])
    np.testing.assert_allclose(basis, expected, atol=1e-12)
    np.testing.assert_allclose(coefs['alpha'], [3, 3], atol=1e-12)
    np.testing.assert_allclose(coefs['norm2'], [1, 5, 10, 14], atol=1e-10)


@pytest.mark.parametrize('degree', [1, 3, 8])
def test_poly_matches_exact_gram_schmidt(degree):
    """Degree 8 on the paper's nine ages: a 9x9 orthonormal basis, exact to 1e-10 (R's spec)."""
    basis, _ = orthopoly(TABLE, degree)
    np.testing.assert_allclose(basis, _exact_basis(TABLE, degree), atol=1e-10)


def test_poly_on_repeated_points_equals_exact():
    """Basis on visits (repeated ages) also matches; columns orthonormal and sum to zero."""
    x = [0, 0, 0, 0.5, 1, 1, 2, 3, 3, 6]
    basis, _ = orthopoly(x, 4)
    np.testing.assert_allclose(basis, _exact_basis(x, 4), atol=1e-10)
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(basis.sum(axis=0), 0, atol=1e-12)


def test_predict_reproduces_fit_and_new_points():
    """predict(poly(x, 8), newx): the recurrence gives the fit's columns and exact new values."""
    basis, coefs = orthopoly(TABLE, 8)
    again, _ = orthopoly(TABLE, 8, coefs=coefs)
    np.testing.assert_allclose(again, basis, atol=1e-10)
    new = [0.25, 1.75, 5.0, 7.0]
    pred, _ = orthopoly(new, 8, coefs=coefs)
    np.testing.assert_allclose(pred, _exact_basis(TABLE, 8, at=new), rtol=1e-9, atol=1e-9)


def test_poly_errors():
    with pytest.raises(ValueError, match='less than the number of distinct points'):
        orthopoly([0, 1, 2, 2], 3)
    with pytest.raises(ValueError, match='degree must be >= 1'):
        orthopoly([0, 1, 2], 0)
    _, coefs = orthopoly([0, 1, 2, 3], 2)
    with pytest.raises(ValueError, match='coefs are for degree 2'):
        orthopoly([0, 1], 3, coefs=coefs)
    with pytest.raises(ValueError, match='finite'):
        orthopoly([0, np.nan, 2], 1)


def test_octiles_of_a_nine_point_schedule_are_the_schedule():
    """Octiles of nine distinct ages are those ages, whatever the visit weights."""
    age = np.repeat(TABLE, [40, 5, 9, 3, 8, 7, 6, 5, 2])
    binned, points = bin_ages(age + 0.0, binning='octiles')
    np.testing.assert_allclose(points, TABLE)
    np.testing.assert_allclose(binned, age)


def test_explicit_points_and_edges():
    age = np.array([0.0, 0.1, 0.45, 0.9, 2.2, 5.5])
    binned, points = bin_ages(age, binning=[0, 0.5, 1, 2, 6])
    np.testing.assert_allclose(binned, [0, 0, 0.5, 1, 2, 6])
    np.testing.assert_allclose(points, [0, 0.5, 1, 2, 6])
    binned, _ = bin_ages(age, binning='edges', edges=[0, 0.5, 3, 6])
    np.testing.assert_allclose(binned, [0.55 / 3, 0.55 / 3, 0.55 / 3, 1.55, 1.55, 5.5])
    np.testing.assert_allclose(bin_ages(age, binning='none')[0], age)
    with pytest.raises(ValueError, match='outside the bin edges'):
        bin_ages(age, binning='edges', edges=[0, 1, 2])
    with pytest.raises(ValueError, match='binning must be'):
        bin_ages(age, binning='deciles')
