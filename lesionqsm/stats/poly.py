"""Orthogonal polynomials in lesion age, identical to R's ``poly()``, and lesion-age binning.

R builds ``poly(x, degree)`` from the QR decomposition of the centred Vandermonde matrix and
stores the three-term recurrence coefficients (``alpha``, ``norm2``) so that
``predict(poly(x, d), newx)`` evaluates the same polynomials at new ages.  :func:`orthopoly`
does both, with the same column signs (each column is the monic orthogonal polynomial of that
degree, scaled to unit norm on ``x``: its leading coefficient is positive).
"""

import numpy as np

__all__ = ['PolyCoefs', 'orthopoly', 'bin_ages', 'OCTILE_PROBS']

#: Quantile probabilities of the paper's lesion-age octiles: 0, 1/8, ..., 1 (nine points).
OCTILE_PROBS = np.linspace(0.0, 1.0, 9)


class PolyCoefs(dict):
    """Recurrence coefficients of :func:`orthopoly`, R's ``attr(poly(x, d), 'coefs')``.

    Keys ``alpha`` (length ``degree``) and ``norm2`` (length ``degree + 2``, starting with 1 and
    the number of points), both float ndarrays in the units of ``x`` (``alpha``) and ``x``
    to the power ``2 k`` (``norm2``).
    """

    @property
    def degree(self):
        return len(self['alpha'])


def orthopoly(x, degree, *, coefs=None):
    """Orthogonal polynomial basis of R's ``poly(x, degree)`` (and of its ``predict`` method).

    Parameters
    ----------
    x : array_like, shape (n,)
        Points, e.g. lesion ages in years.
    degree : int
        Highest degree, >= 1.  Without ``coefs`` it must be below the number of distinct ``x``.
    coefs : PolyCoefs or dict, optional
        Coefficients returned by an earlier call; the basis is then evaluated at ``x`` with the
        three-term recurrence (R's ``predict(poly(x0, degree), x)``), and ``x`` may hold any
        number of points, distinct or not.

    Returns
    -------
    basis : float ndarray, shape (n, degree)
        Column ``k - 1`` is the degree-``k`` polynomial.  When ``coefs`` is None the columns are
        orthonormal on ``x`` and orthogonal to the constant.
    coefs : PolyCoefs
        ``alpha`` and ``norm2`` (R's names), to evaluate the same basis at new points.

    Raises
    ------
    ValueError
        If ``degree < 1``, ``x`` is not finite and one-dimensional, ``degree`` is not below the
        number of distinct points (R: "'degree' must be less than number of unique points"), or
        ``coefs`` has another degree.

    Notes
    -----
    The fit path follows R's ``stats::poly`` line by line: ``Z = Q diag(R)`` from the QR
    decomposition of ``outer(x - mean(x), 0:degree, '^')``, ``norm2 = colSums(Z^2)``,
    ``alpha = colSums(x Z^2) / norm2 + mean(x)``.  ``Q diag(R)`` does not depend on the signs
    LAPACK gives to Householder reflections, so the columns match R's to rounding error.
    """
    x = np.asarray(x, dtype=float)
    degree = int(degree)
    if degree < 1:
        raise ValueError(f'polynomial degree must be >= 1, got {degree}')
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError('orthopoly needs a one-dimensional array of finite points')
    if coefs is None:
        n_unique = np.unique(x).size
        if degree >= n_unique:
            raise ValueError(f'polynomial degree {degree} must be less than the number of '
                             f'distinct points ({n_unique})')
        xbar = x.mean()
        xc = x - xbar
        vander = xc[:, None] ** np.arange(degree + 1)[None, :]
        q, r = np.linalg.qr(vander)
        z = q * np.diag(r)[None, :]
        norm2 = np.sum(z**2, axis=0)
        alpha = (np.sum(xc[:, None] * z**2, axis=0) / norm2 + xbar)[:degree]
        coefs = PolyCoefs(alpha=alpha, norm2=np.concatenate([[1.0], norm2]))
        return z[:, 1:] / np.sqrt(norm2[1:])[None, :], coefs
    alpha = np.asarray(coefs['alpha'], dtype=float)
    norm2 = np.asarray(coefs['norm2'], dtype=float)
    if alpha.size != degree or norm2.size != degree + 2:
        raise ValueError(f'coefs are for degree {alpha.size}, not {degree}')
    z = np.ones((x.size, degree + 1))
    z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        z[:, i + 1] = (x - alpha[i]) * z[:, i] - (norm2[i + 1] / norm2[i]) * z[:, i - 1]
    z /= np.sqrt(norm2[1:])[None, :]
    return z[:, 1:], PolyCoefs(alpha=alpha, norm2=norm2)


def bin_ages(age, *, binning='octiles', edges=None):
    """Replace lesion ages by a small set of representative ages (the model's time points).

    Parameters
    ----------
    age : array_like, shape (n,)
        Lesion age of every visit, years.
    binning : {'octiles', 'edges', 'none'} or array_like
        ``'octiles'`` (the paper): the representative ages are the 0, 1/8, ..., 1 quantiles of
        the distinct values of ``age`` (nine points; R's default type-7 quantiles) and each
        visit takes the nearest one.  Quantiles over the distinct ages, not over visits:
        every lesion has a visit at age 0, so visit-weighted octiles tie at 0 whenever 1/8 or
        more of the visits are detection visits, leaving too few points for degree 8.
        An array gives the representative ages explicitly (nearest point again, i.e. bin
        edges halfway between points).  ``'edges'``: bins ``[edges[i], edges[i+1])`` (the last
        one closed), each represented by the mean age of its visits.  ``'none'``: ages as they
        are.
    edges : array_like, optional
        Increasing bin edges in years, for ``binning='edges'``; they must cover every age.

    Returns
    -------
    binned : float ndarray, shape (n,)
        Representative age of every visit, years.
    points : float ndarray
        The distinct representative ages that occur, increasing, years.

    Raises
    ------
    ValueError
        For an unknown ``binning``, missing or non-increasing ``edges``, or ages outside them.
    """
    age = np.asarray(age, dtype=float)
    if isinstance(binning, str):
        if binning == 'none':
            return age.copy(), np.unique(age)
        if binning == 'octiles':
            points = np.unique(np.quantile(np.unique(age), OCTILE_PROBS))
        elif binning == 'edges':
            if edges is None:
                raise ValueError("binning='edges' needs the bin edges (edges=...)")
            edges = np.asarray(edges, dtype=float)
            if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError('bin edges must be an increasing sequence of >= 2 ages')
            if age.min() < edges[0] or age.max() > edges[-1]:
                raise ValueError(f'lesion ages {age.min():.3g}..{age.max():.3g} y fall outside '
                                 f'the bin edges {edges[0]:.3g}..{edges[-1]:.3g} y')
            index = np.clip(np.searchsorted(edges, age, side='right') - 1, 0, edges.size - 2)
            binned = np.empty_like(age)
            for k in np.unique(index):
                binned[index == k] = age[index == k].mean()
            return binned, np.unique(binned)
        else:
            raise ValueError(f"binning must be 'octiles', 'edges', 'none' or a list of ages, "
                             f'got {binning!r}')
    else:
        points = np.unique(np.asarray(binning, dtype=float))
        if points.size == 0:
            raise ValueError('the list of representative ages is empty')
    nearest = np.abs(age[:, None] - points[None, :]).argmin(axis=1)
    binned = points[nearest]
    return binned, np.unique(binned)
