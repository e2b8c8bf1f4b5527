"""Visit dates and order: ``sessions.tsv``, then ``scans.tsv``, then the session label.

Decisions (documented here once, applied everywhere):

- ``acq_time`` comes from ``sub-<label>/sub-<label>_sessions.tsv``. A session without a usable
  value there (no file, no column, no row, ``n/a``, unparsable, or an unreadable table) takes
  the earliest ``acq_time`` of its ``scans.tsv``; an unreadable table is reported, not
  fatal. An unparsable value is never guessed at: it is reported as a problem naming the
  file, the session and the value, then treated as missing.
- When every session has an ``acq_time`` they are ordered by it (ties by label). When any
  session still has none, all sessions are ordered by label (natural order, ``2 < 10``),
  the undated ones get ``acq_time=None``, and a problem says that lesion ages cannot be
  computed; the QSM part of the run does not need dates.
- Two visits with the same ``acq_time`` (for instance two visits on the same date written
  without a time) are kept, ordered by label, and reported; the lesion age between them is 0.
- Time zones are converted to UTC and dropped, so that dated visits always compare.
"""

import math
from datetime import datetime, timezone
from pathlib import Path

from .labels import natural_key, strip_prefix
from .problems import KIND_LESION_TABLE, InputError, Problem, note
from .readers import read_tsv

#: Values that BIDS uses for "no value".
MISSING_VALUES = ('', 'n/a', 'na', 'nan', 'none')


def parse_acq_time(value):
    """Parse a BIDS ``acq_time`` (ISO 8601 date or date-time).

    Parameters
    ----------
    value : str, datetime or None
        ``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm:ss[.ffffff][Z|±hh:mm]`` (a space instead of ``T``
        is accepted).

    Returns
    -------
    datetime or None
        Naive datetime (UTC when the value had a time zone); None for a missing value
        (empty, ``n/a``, NaN).

    Raises
    ------
    ValueError
        The value is present but is not an ISO 8601 date-time.
    """
    if value is None or isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text.lower() in MISSING_VALUES:
            return None
        try:
            parsed = datetime.fromisoformat(text.replace('Z', '+00:00'))
        except ValueError:
            raise ValueError(f'acq_time {text!r} is not an ISO 8601 date-time '
                             '(YYYY-MM-DDThh:mm:ss)') from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _times_from_table(path, key_column, keys, problems, *, prefix):
    """acq_time per key from one TSV; unparsable values become problems."""
    try:
        table = read_tsv(path)
    except InputError as exc:
        problems.append(note(f'{exc}; ignored', file=path))
        return {}
    if key_column not in table.columns:
        problems.append(note(f'{path}: no {key_column!r} column; ignored', file=path,
                             key=key_column))
        return {}
    if 'acq_time' not in table.columns:
        problems.append(note(f'{path}: no acq_time column', file=path, key='acq_time'))
        return {}
    times = {}
    for row_number, row in enumerate(table.to_dict('records'), start=2):
        key = strip_prefix(row[key_column], prefix) if prefix else row[key_column]
        if keys is not None and key not in keys:
            continue
        try:
            parsed = parse_acq_time(row['acq_time'])
        except ValueError as exc:
            problems.append(note(f'{path}: line {row_number} ({key}): {exc}; treated as missing',
                                 file=path, key='acq_time'))
            continue
        if parsed is not None:
            times.setdefault(key, []).append(parsed)
    return times


def scans_acq_time(scans_tsv, problems):
    """Earliest ``acq_time`` in a ``scans.tsv`` (None if it has none)."""
    times = _times_from_table(scans_tsv, 'filename', None, problems, prefix=None)
    values = [t for group in times.values() for t in group]
    return min(values) if values else None


def session_acq_times(subject_dir, session_ids):
    """``acq_time`` of each session of one subject, from sessions.tsv then scans.tsv.

    Parameters
    ----------
    subject_dir : str or Path
        ``<bids_dir>/sub-<label>``.
    session_ids : list of str
        Session labels without ``ses-``; ``[None]`` for a dataset without sessions.

    Returns
    -------
    acq_times : dict
        ``{session_id: datetime or None}``.
    problems : list of Problem
        Findings, each naming the file: notes, and a ``KIND_LESION_TABLE`` problem for a
        session listed twice with different dates (lesion ages would be ambiguous).
    """
    subject_dir = Path(subject_dir)
    subject = subject_dir.name
    problems = []
    acq_times = dict.fromkeys(session_ids)
    sessions_tsv = subject_dir / f'{subject}_sessions.tsv'
    if sessions_tsv.exists() and session_ids != [None]:
        found = _times_from_table(sessions_tsv, 'session_id', set(session_ids), problems,
                                  prefix='ses-')
        for ses, times in found.items():
            if len(set(times)) > 1:
                problems.append(Problem(
                    kind=KIND_LESION_TABLE, file=str(sessions_tsv), key='session_id',
                    session=ses, expected='one row per session',
                    message=f'{sessions_tsv}: ses-{ses} is listed {len(times)} times with '
                            'different acq_time values; lesion ages would be ambiguous'))
            elif len(times) > 1:
                problems.append(note(f'{sessions_tsv}: ses-{ses} is listed {len(times)} times '
                                     '(same acq_time)', file=sessions_tsv, key='session_id',
                                     session=ses))
            acq_times[ses] = times[0]
    for ses in session_ids:
        if acq_times[ses] is not None:
            continue
        if ses is None:
            scans = subject_dir / f'{subject}_scans.tsv'
        else:
            scans = subject_dir / f'ses-{ses}' / f'{subject}_ses-{ses}_scans.tsv'
        if scans.exists():
            acq_times[ses] = scans_acq_time(scans, problems)
    return acq_times, problems


def order_sessions(acq_times, *, source='sessions.tsv'):
    """Order sessions by acquisition time, falling back to the label.

    Parameters
    ----------
    acq_times : dict
        ``{session_id: datetime or None}``.
    source : str, optional
        Where the times came from, for messages.

    Returns
    -------
    ordered : list of str
        Session labels, first visit first.
    problems : list of Problem
        Notes (undated visits, visits sharing an acq_time).
    """
    problems = []
    labels = sorted(acq_times, key=lambda s: natural_key(s or ''))
    undated = [s for s in labels if acq_times[s] is None]
    if undated and len(labels) > 1:
        names = ', '.join(f'ses-{s}' for s in undated)
        problems.append(note(f'no usable acq_time for {names} (in {source} or scans.tsv): '
                             'sessions are ordered by label and lesion ages cannot be computed',
                             file=source, key='acq_time'))
        return labels, problems
    ordered = sorted(labels, key=lambda s: (acq_times[s] or datetime.min, natural_key(s or '')))
    for first, second in zip(ordered[:-1], ordered[1:], strict=True):
        if acq_times[first] is not None and acq_times[first] == acq_times[second]:
            problems.append(note(f'ses-{first} and ses-{second} share acq_time '
                                 f'{acq_times[first].isoformat()}: ordered by label, lesion age '
                                 'between them is 0', file=source, key='acq_time'))
    return ordered, problems
