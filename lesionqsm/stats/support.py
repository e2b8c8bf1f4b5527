"""What a cohort's rows can support, and why a requested model cannot be fitted.

Used for the messages of :func:`.growth_curve.fit_growth_curve`: the rows left out and why, the
empty rim × age cell or the collinear columns of a rank-deficient design, and the largest
polynomial degree and the covariates the data support.
"""

import numpy as np
import scipy.linalg

from .covariates import covariate_column, covariate_design
from .errors import ModelError
from .mixed import column_rank
from .poly import orthopoly

__all__ = ['exclusion_text', 'time_design', 'full_rank', 'supported_model', 'support_text',
           'rank_problem', 'RIM_LEVELS']

RIM_LEVELS = ('positive', 'negative')


def exclusion_text(exclusions, n_rows):
    parts = [f'{n} {reason.replace("_", " ")}' for reason, n in exclusions.items()
             if isinstance(n, int) and n and reason != 'covariate_missing']
    by_col = exclusions.get('covariate_missing_by_column') or {}
    if by_col:
        parts.append('missing covariate: ' + ', '.join(f'{c} n/a in {n} rows'
                                                        for c, n in by_col.items()))
    return f'of {n_rows} lesion-visit rows, left out: ' + ('; '.join(parts) or 'none')


def time_design(binned, points, degree, basis, ind):
    _, coefs = orthopoly(points if basis == 'distinct' else binned, degree)
    time, _ = orthopoly(binned, degree, coefs=coefs)
    return np.hstack([np.ones((binned.size, 1)), time, ind, time * ind]), time, coefs


def full_rank(x, n_random):
    return x.shape[0] > x.shape[1] + n_random and column_rank(x) == x.shape[1]


def supported_model(data, binned, other_rim, covariates, kinds, basis='distinct', n_random=3,
                    max_degree=12):
    """The largest degree, then the covariates (in order), that the rows can support.

    Returns
    -------
    degree : int
        Largest polynomial degree whose rim × age design is full rank with more rows than
        parameters (0 if none).
    kept : list of str
        Covariates that, added one by one at that degree, keep the design full rank.
    """
    points = np.unique(binned)
    ind = (data['rim'] == other_rim).to_numpy(dtype=float)[:, None]
    best = 0
    for d in range(min(points.size - 1, max_degree), 0, -1):
        if full_rank(time_design(binned, points, d, basis, ind)[0], n_random):
            best = d
            break
    if not best:
        return 0, []
    base = time_design(binned, points, best, basis, ind)[0]
    kept, parts = [], []
    for name in covariates:
        col = covariate_column(name)
        try:
            mat = covariate_design(data, [col], kinds)[0]
        except ModelError:
            continue
        if full_rank(np.hstack([base, *parts, mat]), n_random):
            kept.append(name)
            parts.append(mat)
    return best, kept


def support_text(data, binned, other, covariates, kinds, basis, n_random):
    if data.empty:
        return ''
    degree, kept = supported_model(data, binned, other, covariates, kinds, basis, n_random)
    if not degree:
        return ('; the data support no growth curve: each rim group needs visits at two or '
                'more distinct lesion ages')
    return (f'; the data support at most degree {degree} with covariates '
            f'{", ".join(kept) if kept else "none"} (see the README, "What a cohort needs")')


def rank_problem(x, names, data, binned, other_rim):
    """Name what makes the design rank deficient: an empty rim × age cell, else the columns."""
    degree = sum(n.startswith('age_poly') and ':' not in n for n in names)
    points = np.unique(binned)
    problems = []
    for rim in RIM_LEVELS:
        present = np.unique(binned[(data['rim'] == rim).to_numpy()])
        if present.size <= degree:
            missing = np.setdiff1d(points, present)
            cells = ', '.join(f'rim {rim} at lesion age {a:.3g} y' for a in missing[:10])
            if missing.size > 10:
                cells += f' and {missing.size - 10} more'
            problems.append(f'rim {rim} has visits at only {present.size} distinct lesion ages '
                            f'(degree {degree} needs {degree + 1}); empty rim x age cell(s): '
                            f'{cells}')
    if problems:
        return '; '.join(problems) + '; lower the degree or change the age binning'
    _, r, piv = scipy.linalg.qr(x, mode='economic', pivoting=True)
    tol = np.abs(r[0, 0]) * max(x.shape) * np.finfo(float).eps
    rank = int(np.sum(np.abs(np.diag(r)) > tol))
    return ('collinear design columns: ' + ', '.join(names[i] for i in sorted(piv[rank:])))
