"""Covariates of the group model: numeric columns, and categorical ones as R factors.

A covariate column whose values are all numbers enters the model linearly.  A column of
labels (``sex`` written F/M, a treatment name), or one declared categorical, is a factor coded
with treatment contrasts as R codes it: the first level in sorted order is the reference and
every other level gets a 0/1 column named ``<column><level>`` (R's ``sexM``).  A column that
mixes numbers with other text is an error naming the column and the values, never a silent
drop.  Missing values ('n/a', empty) drop their rows, recorded by the caller.
"""

import numpy as np
import pandas as pd

from .errors import ModelError

__all__ = ['COVARIATE_COLUMNS', 'covariate_column', 'parse_covariates', 'covariate_design']

#: Covariate names of the command line and the table columns they read.
COVARIATE_COLUMNS = {
    'baseline_volume': 'baseline_volume_mm3',
    'volume_change': 'volume_change_mm3',
    'edss': 'edss',
    'age': 'age',
    'disease_duration': 'disease_duration',
    'treatment_duration': 'treatment_duration',
}


def covariate_column(name):
    """Table column of a covariate name (the name itself if it is not a known alias)."""
    return COVARIATE_COLUMNS.get(name, name)


def _present(raw):
    text = raw.astype('string').str.strip()
    return raw.notna().to_numpy() & (text.fillna('') != '').to_numpy()


def parse_covariates(df, columns, *, categorical=()):
    """Convert covariate columns in place: floats, or factor labels (str, NaN if missing).

    Parameters
    ----------
    df : DataFrame
        Merged lesion × visit rows.
    columns : sequence of str
        Covariate columns.
    categorical : sequence of str
        Columns to treat as factors even if their values are numbers (e.g. a treatment code).

    Returns
    -------
    dict of str -> {'numeric', 'factor'}

    Raises
    ------
    ModelError
        A column mixing numbers with text: the message names the column and up to five of
        the values that are not numbers.
    """
    kinds = {}
    for col in columns:
        raw = df[col]
        present = _present(raw)
        number = pd.to_numeric(raw, errors='coerce').to_numpy(dtype=float)
        text = ~np.isfinite(number) & present
        if col in categorical or (present.any() and text[present].all()):
            labels = raw.astype(str).str.strip().to_numpy(dtype=object)
            df[col] = np.where(present, labels, np.nan)
            kinds[col] = 'factor'
        elif text.any():
            bad = sorted({str(v) for v in raw[text]})
            shown = ', '.join(repr(v) for v in bad[:5]) + (' ...' if len(bad) > 5 else '')
            raise ModelError(f'covariate column {col!r} holds numbers and {len(bad)} value(s) '
                             f'that are not numbers: {shown}; correct them, write n/a for a '
                             'missing value, or declare the column categorical')
        else:
            df[col] = np.where(present, number, np.nan)
            kinds[col] = 'numeric'
    return kinds


def covariate_design(data, columns, kinds, levels=None):
    """Model-matrix columns of the covariates, R's treatment contrasts for factors.

    Parameters
    ----------
    data : DataFrame
        Rows used (no missing covariate).
    columns : sequence of str
        Covariate columns, in model order.
    kinds : dict
        Output of :func:`parse_covariates`.
    levels : dict, optional
        Factor levels to use (default: sorted levels present in ``data``).

    Returns
    -------
    matrix : ndarray, shape (n, k)
    names : list of str
        Column names: the column itself, or ``<column><level>`` per non-reference level.
    source : list of str
        The covariate column behind each model column.
    levels : dict of str -> list of str
        Levels of every factor, reference first.

    Raises
    ------
    ModelError
        A factor with a single level among the rows used.
    """
    parts, names, source, found = [], [], [], {}
    for col in columns:
        if kinds[col] == 'numeric':
            parts.append(data[col].to_numpy(dtype=float)[:, None])
            names.append(col)
            source.append(col)
            continue
        values = data[col].astype(str).to_numpy()
        lv = list(levels[col]) if levels and col in levels else sorted(set(values))
        if len(lv) < 2:
            raise ModelError(f'categorical covariate {col!r} has a single level '
                             f'({", ".join(map(repr, lv)) or "none"}) in the rows used; a '
                             'factor needs two or more: drop it from the covariates')
        found[col] = lv
        for level in lv[1:]:
            parts.append((values == level).astype(float)[:, None])
            names.append(f'{col}{level}')
            source.append(col)
    matrix = np.hstack(parts) if parts else np.zeros((len(data), 0))
    return matrix, names, source, found
