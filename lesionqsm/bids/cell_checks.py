"""Checks of the cells of a TSV table, each finding a Problem naming the file, column and lines.

Shared by the group level's readers of lesion tables and ``participants.tsv``
(:mod:`.group_tables`, :mod:`.participants_table`).
"""

from pathlib import Path

import numpy as np

from .labels import is_label
from .problems import KIND_SUBJECT, Problem

__all__ = ['Findings', 'line_numbers', 'duplicate_columns', 'as_float', 'has_column',
           'check_numbers', 'check_labels', 'values_text']

#: Lines listed in a message, at most.
LINES_SHOWN = 5


def line_numbers(path):
    """File line number (1-based) of each data row, as :func:`.readers.read_tsv` skips blanks."""
    text = Path(path).read_text(encoding='utf-8-sig')
    return [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()][1:]


def lines_text(lines, mask):
    """``'line 3'`` or ``'lines 3, 7 and 2 more'``: the file lines of the rows in ``mask``."""
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    shown = ', '.join(str(lines[i]) for i in rows[:LINES_SHOWN])
    more = f' and {rows.size - LINES_SHOWN} more' if rows.size > LINES_SHOWN else ''
    return f"line{'s' if rows.size > 1 else ''} {shown}{more}"


def values_text(column, mask):
    """Up to three distinct values of ``column`` in ``mask``, quoted and cut to 40 characters."""
    shown = list(dict.fromkeys(str(v)[:40] for v in column[np.asarray(mask, dtype=bool)]))
    return ', '.join(repr(v) for v in shown[:3]) + (' ...' if len(shown) > 3 else '')


class Findings:
    """Problems of a table: each names the file, the column, the lines and the values.

    ``table`` holds the rows of one or several files; ``lines`` is each row's line in its
    file, ``subjects`` its subject (or None), ``paths`` the file of a subject (a dict) or of
    every row (a path).  A finding becomes one problem per subject it concerns.
    """

    def __init__(self, table, lines, subjects, paths, *, kind=KIND_SUBJECT):
        self.table, self.lines, self.subjects, self.paths = table, lines, subjects, paths
        self.kind, self.problems = kind, []

    def path(self, subject):
        return str(self.paths[subject] if isinstance(self.paths, dict) else self.paths)

    def add(self, column, mask, what, expected):
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        for subject in dict.fromkeys(self.subjects[mask]):
            rows = mask & (self.subjects == subject)
            values = f' ({values_text(self.table[column], rows)})' if column in self.table else ''
            path = self.path(subject)
            self.problems.append(Problem(
                kind=self.kind, message=f'{path}: {column} on {lines_text(self.lines, rows)} '
                f'{what}{values}; expected {expected}', file=path, subject=subject,
                key=column, expected=expected))


def headercells(path):
    text = Path(path).read_text(encoding='utf-8-sig')
    first = next((line for line in text.splitlines() if line.strip()), '')
    return first.split('\t')


def duplicate_columns(path):
    """Column names that appear more than once in a TSV file's header, sorted."""
    cells = headercells(path)
    return sorted({c for c in cells if cells.count(c) > 1})


def as_float(text):
    """A cell as a float; NaN for anything that is not a decimal number (Python's own
    spellings with underscores included)."""
    if '_' in text:
        return np.nan
    try:
        value = float(text)
    except ValueError:
        return np.nan
    return value if not np.isnan(value) else np.nan


def cells(found, name):
    """A column's cells as stripped text."""
    return [str(v).strip() for v in found.table[name].tolist()]


def has_column(found, name):
    """Rows whose file has the column (tables with other headers are combined)."""
    return found.table[name].notna().to_numpy()


def check_numbers(found, name, low, high, *, missing_ok, integer=False, unit=''):
    """The column as floats (NaN for n/a); every bad cell is a finding."""
    has = has_column(found, name)
    text = cells(found, name)
    missing = np.array([t == 'n/a' for t in text], dtype=bool) & has
    values = np.where(has, np.array([as_float(t) for t in text], dtype=float), np.nan)
    not_number = has & ~missing & np.isnan(values)
    unit = f' {unit}' if unit else ''
    expected = f'a number from {low:g} to {high:g}{unit}' + (' or n/a' if missing_ok else '')
    if not missing_ok:
        found.add(name, missing, 'is n/a', expected)
    found.add(name, not_number, 'is not a number', expected)
    finite = np.isfinite(values)
    found.add(name, ~missing & ~not_number & ~finite, 'is not finite', expected)
    with np.errstate(invalid='ignore'):
        outside = finite & ((values < low) | (values > high))
    found.add(name, outside, f'lies outside {low:g} to {high:g}{unit}', expected)
    if integer:
        found.add(name, finite & ~outside & (values != np.round(values)), 'is not an integer',
                  'a whole number' + (' or n/a' if missing_ok else ''))
    return np.where(missing | ~finite, np.nan, values)


def check_labels(found, name, prefix):
    ok = np.array([t.startswith(prefix) and is_label(t[len(prefix):])
                   for t in map(str, found.table[name].tolist())], dtype=bool)
    found.add(name, ~ok, 'is not a BIDS label', f'{prefix}<letters and digits>')
    return ok
