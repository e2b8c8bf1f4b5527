"""``participants.tsv`` as the group level reads it: ids and the covariate columns, checked."""

from pathlib import Path

import numpy as np
import pandas as pd

from .cell_checks import Findings, check_numbers, duplicate_columns, line_numbers, values_text
from .labels import is_label
from .problems import KIND_SUBJECT, InputError
from .readers import read_tsv

__all__ = ['PARTICIPANT_NUMBERS', 'read_participants']

#: Numeric columns of participants.tsv (DESIGN.md input contract): (lowest, highest, unit).
PARTICIPANT_NUMBERS = {
    'age': (0.0, 130.0, 'years'),
    'edss': (0.0, 10.0, 'EDSS points'),
    'disease_duration': (0.0, 130.0, 'years'),
    'treatment_duration': (0.0, 130.0, 'years'),
}


def read_participants(path, columns=(), *, categorical=()):
    """Read and check ``participants.tsv``: its ids and the covariate columns the model reads.

    Parameters
    ----------
    path : str or Path
        The table.
    columns : sequence of str
        Covariate columns read from it (their absence is the caller's finding).
    categorical : sequence of str
        Columns declared categorical (any text accepted).

    Returns
    -------
    table : DataFrame
        Every row; the numeric columns of :data:`PARTICIPANT_NUMBERS` that are read as
        numbers are floats (n/a and bad values as NaN), the others text (n/a as NaN).
    problems : list of Problem
        Row findings, each naming the file, the column, the lines and the subject
        (``KIND_SUBJECT``; subject None for a row whose participant_id is not a label).

    Raises
    ------
    InputError
        The file cannot be used at all: unreadable, empty, ragged, without a
        ``participant_id`` column, a column named twice, or a covariate column mixing numbers
        and text without being declared categorical.
    """
    path = Path(path)
    table = read_tsv(path, kind=KIND_SUBJECT)
    twice = duplicate_columns(path)
    if twice:
        raise InputError(f'{path}: column(s) {", ".join(twice)} appear more than once in the '
                         'header', kind=KIND_SUBJECT, file=path, key=twice[0],
                         expected='each column once')
    if 'participant_id' not in table.columns:
        raise InputError(f"{path}: no 'participant_id' column (columns: "
                         f'{", ".join(map(str, table.columns))})', kind=KIND_SUBJECT, file=path,
                         key='participant_id', expected='participant_id as first column')
    ids = table['participant_id'].astype(str).str.strip()
    labels = ids.str.removeprefix('sub-')
    subjects = np.where(ids.str.startswith('sub-') & labels.map(is_label), labels, None)
    found = Findings(table, np.array(line_numbers(path)), subjects, path)
    found.add('participant_id', pd.isna(subjects), 'is not sub-<label>',
              'sub-<letters and digits>')
    found.add('participant_id', ids.duplicated(keep=False).to_numpy() & ~pd.isna(subjects),
              'lists a participant more than once', 'one row per participant')
    out = table.copy()
    for name in columns:
        if name not in table.columns or name == 'participant_id':
            continue
        text = table[name].astype(str).str.strip()
        if name in PARTICIPANT_NUMBERS and name not in categorical:
            low, high, unit = PARTICIPANT_NUMBERS[name]
            out[name] = check_numbers(found, name, low, high, missing_ok=True, unit=unit)
            continue
        number = pd.to_numeric(text.where(text != 'n/a'), errors='coerce').to_numpy(dtype=float)
        present = (text != 'n/a').to_numpy() & (text != '').to_numpy()
        is_number = np.isfinite(number)
        if name not in categorical and is_number[present].any() and \
                not is_number[present].all():
            text_values = values_text(table[name], present & ~is_number)
            raise InputError(f'{path}: covariate column {name!r} holds numbers and text '
                             f'({text_values}); correct them, write n/a for a missing value, '
                             f'or declare {name!r} in group.categorical', kind=KIND_SUBJECT,
                             file=path, key=name, expected='numbers or n/a, or only labels')
        out[name] = table[name].where(present, np.nan)
    out['participant_id'] = ids
    return out, found.problems
