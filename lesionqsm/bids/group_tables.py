"""The group level's inputs, checked: every subject's lesion table and ``participants.tsv``.

Every finding is a :class:`~lesionqsm.bids.problems.Problem` naming the file, the column and
the lines, as discovery reports them for the participant level.

Decisions
---------
- A lesion table (``OUTPUT_DIR/sub-<label>/sub-<label>_lesions.tsv``, written by the
  participant level) with any problem leaves **its subject out** of the group models, with
  every problem listed (``KIND_SUBJECT``); the other subjects are fitted.  A table that does
  not hold what the participant level writes has been damaged or edited by hand, and keeping
  part of a patient (some lesions, some visits) would bias that patient's random effect
  without anyone noticing; the run's exit code (1) and the group report say which subject to
  fix.
- A row of ``participants.tsv`` with a bad value in a column the model reads, a
  ``participant_id`` listed twice, or a subject with a lesion table but no row there (when the
  model needs patient covariates) leaves that subject out the same way.  A row that is not
  about any subject with a lesion table is only a warning.
- A ``participants.tsv`` that cannot be read as a whole (unreadable, empty, ragged, a
  duplicated or missing ``participant_id`` column, a covariate column mixing numbers and text)
  and a covariate found in no table refuse the group level (:class:`InputError`).
- ``n/a`` is a missing value, as BIDS writes it; a missing covariate or response drops the
  rows concerned inside the model (recorded in the summary).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from .cell_checks import Findings, check_labels, check_numbers, has_column
from .lesions import ENHANCEMENT_VALUES, RIM_VALUES
from .participants_table import PARTICIPANT_NUMBERS, read_participants
from .problems import KIND_NOTE, KIND_SUBJECT, InputError, Problem, note
from .readers import MAX_TABLE_BYTES
from .sessions import parse_acq_time

__all__ = ['GroupInputs', 'LESION_TABLE_COLUMNS', 'PARTICIPANT_NUMBERS', 'find_lesion_tables',
           'check_lesion_tables', 'read_lesion_table', 'read_participants', 'read_group_inputs']

#: Columns every participant-level lesion table has and the group level reads.
LESION_TABLE_COLUMNS = ('participant_id', 'lesion_id', 'session_id', 'acq_time',
                        'detected_session', 'lesion_age_years', 'rim', 'chi_rel_ppb',
                        'volume_mm3', 'baseline_volume_mm3', 'volume_change_mm3', 'status')
#: Largest |χ| accepted in a lesion table, ppb: 10 ppm is more than air minus tissue (9.4 ppm),
#: so a larger value is not a tissue measurement.
CHI_LIMIT_PPB = 1e4
#: Largest lesion volume accepted, mm³: 2 litres, more than a whole brain.
VOLUME_LIMIT_MM3 = 2e6
#: Numeric lesion-table columns: (lowest, highest value, n/a allowed, integer).
TABLE_NUMBERS = {
    'lesion_age_years': (0.0, 100.0, False, False),
    'chi_rel_ppb': (-CHI_LIMIT_PPB, CHI_LIMIT_PPB, True, False),
    'chi_lesion_ppb': (-CHI_LIMIT_PPB, CHI_LIMIT_PPB, True, False),
    'chi_nawm_ppb': (-CHI_LIMIT_PPB, CHI_LIMIT_PPB, True, False),
    'chi_rel_roi_mean_ppb': (-CHI_LIMIT_PPB, CHI_LIMIT_PPB, True, False),
    'volume_mm3': (0.0, VOLUME_LIMIT_MM3, True, False),
    'baseline_volume_mm3': (0.0, VOLUME_LIMIT_MM3, True, False),
    'volume_change_mm3': (-VOLUME_LIMIT_MM3, VOLUME_LIMIT_MM3, True, False),
    'n_voxels': (0.0, 1e9, True, True),
}
#: Lesion age recomputed from acq_time may differ from the table's by this much, years: the
#: participant level writes both from the same dates; 1e-3 y (9 h) covers acq_time written to
#: the second or the minute and a time-zone suffix dropped by hand, and is far below the
#: spacing of visits (months).
AGE_TOLERANCE_YEARS = 1e-3
#: volume_change_mm3 must equal volume_mm3 - baseline_volume_mm3 within this, mm³ (a hundredth
#: of a 1 mm³ voxel: the three are written with at least 4 significant digits).
VOLUME_TOLERANCE_MM3 = 1e-2
#: Columns of words a lesion table may hold, and their values.
TABLE_WORDS = {'rim': RIM_VALUES, 'enhancement': ENHANCEMENT_VALUES,
               'chi_reliable': ('true', 'false', 'n/a')}
#: Every column a participant-level lesion table may hold (LESION_TABLE_COLUMNS are required).
SCHEMA_COLUMNS = frozenset(LESION_TABLE_COLUMNS) | frozenset(TABLE_NUMBERS) | frozenset(
    TABLE_WORDS)
_TABLE_NAME = re.compile(r'sub-([0-9a-zA-Z]+)_lesions\.tsv')


@dataclass
class GroupInputs:
    """What the group level reads, checked.

    Attributes
    ----------
    lesions : DataFrame
        The rows of every usable lesion table (numbers as floats, ``n/a`` as NaN).
    participants : DataFrame or None
        ``participants.tsv`` without the rows of left-out subjects (None if absent).
    tables : list of Path
        The lesion tables used.
    problems : list of Problem
        Every finding; the fatal ones name the subject they leave out.
    """

    lesions: pd.DataFrame
    participants: pd.DataFrame | None
    tables: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def left_out(self):
        """Subject label -> messages of the problems that left it out, sorted by label."""
        out = {}
        for problem in self.problems:
            if problem.fatal and problem.subject:
                out.setdefault(problem.subject, []).append(problem.message)
        return dict(sorted(out.items()))


def find_lesion_tables(output_dir):
    """Every ``sub-*/sub-*_lesions.tsv`` under ``output_dir``, sorted (may be empty)."""
    return sorted(Path(output_dir).glob('sub-*/sub-*_lesions.tsv'))


def _by_lesion(keys, values):
    """Lesion id -> list of the row values."""
    groups = {}
    for key, value in zip(keys, values, strict=True):
        groups.setdefault(key, []).append(value)
    return groups


def _check_lesions(found, ages):
    """Cross-row rules: one rim and detection visit per lesion, its detection row at age 0,
    and ages that agree with the visit dates."""
    table = found.table
    keys = [f'{s}\x00{k}' for s, k in zip(found.subjects, table['lesion_id'].tolist(),
                                           strict=True)]
    for column in ('rim', 'detected_session'):
        values = table[column].tolist()
        kinds = {k: len(set(v)) for k, v in _by_lesion(keys, values).items()}
        found.add(column, [kinds[k] > 1 for k in keys], 'differs between the rows of one '
                  'lesion', f'one {column} per lesion_id')
    detection = (table['session_id'] == table['detected_session']).to_numpy()
    detected = {k: any(v) for k, v in _by_lesion(keys, detection).items()}
    has_detection = np.array([detected[k] for k in keys], dtype=bool)
    found.add('detected_session', ~has_detection,
              "names a visit that has no row for that lesion", 'the detection visit among '
              "the lesion's rows (at lesion age 0)")
    found.add('lesion_age_years', detection & (np.abs(ages) > AGE_TOLERANCE_YEARS),
              'is not 0 at the detection visit', '0 on the row of the detection visit')
    times = []
    for value in table['acq_time'].tolist():
        try:
            times.append(parse_acq_time(value))
        except ValueError:
            times.append(None)
    bad_time = np.array([t is None for t in times], dtype=bool)
    found.add('acq_time', bad_time, 'is not an ISO 8601 date-time', 'YYYY-MM-DDThh:mm:ss')
    if bad_time.any() or not has_detection.all():
        return
    seconds = np.array([(t - datetime(1970, 1, 1)).total_seconds() for t in times])
    first = {k: min(v) for k, v in _by_lesion(
        [k for k, d in zip(keys, detection, strict=True) if d], seconds[detection]).items()}
    recomputed = (seconds - np.array([first[k] for k in keys])) / 86400.0 / 365.25
    found.add('lesion_age_years', np.abs(recomputed - ages) > AGE_TOLERANCE_YEARS,
              'disagrees with acq_time minus the detection visit\'s acq_time',
              '(acq_time - detection acq_time) / 365.25 days')


def _structure(path):
    """A table's subject, header and numbered data lines, or the problems that stop it."""
    path = Path(path)
    subject = path.parent.name.removeprefix('sub-')  # the folder's subject is left out

    def fail(message, key=None, expected=None):
        return Problem(kind=KIND_SUBJECT, message=f'{path}: {message}', file=str(path),
                       subject=subject, key=key, expected=expected)

    match = _TABLE_NAME.fullmatch(path.name)
    if match is None or match.group(1) != subject:
        return subject, None, None, [fail(
            'a lesion table must be sub-<label>/sub-<label>_lesions.tsv, the same <label> of '
            f'letters and digits twice (found in {path.parent.name}/)',
            expected='sub-<label>/sub-<label>_lesions.tsv')]
    expected = 'tab-separated columns with a header line, the same number on every line'
    try:
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            return subject, None, None, [fail(f'table of {size} bytes is larger than the '
                                              f'{MAX_TABLE_BYTES} bytes accepted')]
        text = path.read_text(encoding='utf-8-sig')
    except OSError as exc:
        return subject, None, None, [fail(f'cannot be read ({exc.strerror or exc})')]
    except UnicodeDecodeError as exc:
        return subject, None, None, [fail(f'not a readable TSV table ({exc})',
                                          expected=expected)]
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        return subject, None, None, [fail('not a readable TSV table (empty file)',
                                          expected=expected)]
    header, rows = numbered[0][1].split('\t'), numbered[1:]
    for number, line in rows:
        if line.count('\t') + 1 != len(header):
            return subject, None, None, [fail(
                f'not a readable TSV table (line {number} has {line.count(chr(9)) + 1} cells, '
                f'the header {len(header)})', expected=expected)]
    problems = []
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        problems.append(fail(f'column(s) {", ".join(twice)} appear more than once in the '
                             'header', key=twice[0], expected='each column once'))
    missing = [c for c in LESION_TABLE_COLUMNS if c not in header]
    if missing:
        problems.append(fail(f'missing column(s) {", ".join(missing)} (a lesion table of the '
                             f'participant level has {", ".join(LESION_TABLE_COLUMNS)})',
                             key=missing[0], expected=', '.join(LESION_TABLE_COLUMNS)))
    if not rows:
        problems.append(fail('holds no rows (the participant level writes one row per lesion '
                             'and visit)', expected='one row per lesion and visit'))
    return subject, header, rows, problems


def _combine(structures):
    """One DataFrame of the text cells of every table, with ``_subject`` and ``_line``;
    tables with the same header are built in one pass."""
    by_header = {}
    for subject, header, rows in structures:
        by_header.setdefault(tuple(header), []).append((subject, rows))
    frames = []
    for header, group in by_header.items():
        frame = pd.DataFrame([line.split('\t') for _, rows in group for _, line in rows],
                             columns=list(header), dtype=object)
        frame['_subject'] = [subject for subject, rows in group for _ in rows]
        frame['_line'] = [number for _, rows in group for number, _ in rows]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _checkvalues_text(table, paths):
    """Every rule on the values of the combined tables; returns the numbers and problems."""
    subjects = table['_subject'].to_numpy(dtype=object)
    found = Findings(table, table['_line'].to_numpy(), subjects, paths)
    found.add('participant_id', (table['participant_id'].to_numpy(dtype=object)
                                 != np.array([f'sub-{s}' for s in subjects], dtype=object)),
              'is not the subject of the file', 'sub-<label> of the file name')
    check_labels(found, 'lesion_id', '')
    for name in ('session_id', 'detected_session'):
        check_labels(found, name, 'ses-')
    for name, words in TABLE_WORDS.items():
        if name in table.columns:
            found.add(name, ~table[name].isin(words).to_numpy() & has_column(found, name),
                      'is not a known value', 'one of ' + ', '.join(words))
    found.add('status', np.array([str(v).strip() == '' for v in table['status']], dtype=bool),
              'is empty', "'ok' or the reason a value is missing")
    numbers = {}
    for name, (low, high, missing_ok, integer) in TABLE_NUMBERS.items():
        if name in table.columns:
            numbers[name] = check_numbers(found, name, low, high, missing_ok=missing_ok,
                                     integer=integer)
    twice = table.duplicated(['_subject', 'lesion_id', 'session_id'], keep=False).to_numpy()
    found.add('session_id', twice, 'repeats a lesion_id and session_id pair',
              'one row per lesion and visit')
    change = numbers['volume_mm3'] - numbers['baseline_volume_mm3']
    with np.errstate(invalid='ignore'):
        found.add('volume_change_mm3',
                  np.abs(change - numbers['volume_change_mm3']) > VOLUME_TOLERANCE_MM3,
                  'is not volume_mm3 - baseline_volume_mm3', 'volume_mm3 - baseline_volume_mm3')
    clean = ~np.isin(subjects, [p.subject for p in found.problems])  # cross-row rules next
    if clean.any():
        rows = Findings(table[clean].reset_index(drop=True), found.lines[clean],
                         subjects[clean], paths)
        _check_lesions(rows, numbers['lesion_age_years'][clean])
        found.problems += rows.problems
    return numbers, found.problems


def check_lesion_tables(paths):
    """Read and check lesion tables (participant-level schema), all in one pass.

    Parameters
    ----------
    paths : sequence of str or Path
        ``OUTPUT_DIR/sub-<label>/sub-<label>_lesions.tsv`` files, one per subject.

    Returns
    -------
    table : DataFrame or None
        The rows of the usable tables, numeric columns as floats (n/a as NaN), the others as
        text (n/a as NaN), and ``_subject``, the label of each row's file (None if no table
        is usable).  A column some tables lack is NaN in their rows.
    headers : dict of str -> list of str
        Subject -> the columns of its table (usable tables only).
    used : dict of str -> Path
        Subject -> its usable table.
    problems : list of Problem
        Each names the file and, for a value, the column, lines and values
        (``KIND_SUBJECT``: the subject is left out of the group models).

    Raises
    ------
    ValueError
        Two tables of one subject (from two output folders).
    """
    structures, problems, paths_of = [], [], {}
    for path in paths:
        subject, header, rows, found = _structure(path)
        problems += found
        if not found:
            if subject in paths_of:
                raise ValueError(f'{path} and {paths_of[subject]}: two lesion tables of '
                                 f'sub-{subject}; check the tables of one output folder')
            structures.append((subject, header, rows))
            paths_of[subject] = Path(path)
    if not structures:
        return None, {}, {}, problems
    table = _combine(structures)
    numbers, found = _checkvalues_text(table, paths_of)
    problems += found
    bad = {p.subject for p in found}
    keep = ~table['_subject'].isin(bad).to_numpy()
    if not keep.any():
        return None, {}, {}, problems
    out = table[keep].drop(columns='_line')
    for name in out.columns.difference(['_subject', *numbers]):
        out[name] = out[name].where(out[name] != 'n/a', np.nan)
    for name, values in numbers.items():
        out[name] = values[keep]
    headers = {subject: list(header) for subject, header, _ in structures if subject not in bad}
    used = {s: p for s, p in paths_of.items() if s not in bad}
    return out.reset_index(drop=True), headers, used, problems


def read_lesion_table(path):
    """Read and check one subject's lesion table (see :func:`check_lesion_tables`).

    Returns
    -------
    table : DataFrame or None
        None when the table has problems.
    problems : list of Problem
    """
    table, _, _, problems = check_lesion_tables([path])
    return (None if table is None else table.drop(columns='_subject')), problems


def _table_problem(path, message, key, expected):
    subject = Path(path).parent.name.removeprefix('sub-')
    return Problem(kind=KIND_SUBJECT, message=f'{path}: {message}', file=str(path),
                   subject=subject, key=key, expected=expected)


def _covariate_columns(headers, tables, covariates, participant_columns, participants_tsv):
    """Problems of the columns outside the participant level's: a covariate outside the
    schema comes from participants.tsv if it has the column (a lesion table with the same
    column is ambiguous), else from every lesion table."""
    extra = [c for c in covariates if c not in SCHEMA_COLUMNS]
    from_tables = [c for c in extra if c not in participant_columns]
    absent = [c for c in from_tables if not any(c in h for h in headers.values())]
    if absent:
        raise InputError(f'covariate column(s) {", ".join(absent)} found in neither the lesion '
                         f'tables nor {participants_tsv}'
                         + (f' (its columns: {", ".join(sorted(participant_columns))})'
                            if participant_columns else ' (absent)')
                         + '; correct group.covariates or add the column', kind=KIND_SUBJECT,
                         file=participants_tsv, key='group.covariates',
                         expected='an existing column')
    problems = []
    for subject, header in headers.items():
        path = tables[subject]
        for column in sorted(set(header) & participant_columns - SCHEMA_COLUMNS):
            problems.append(_table_problem(
                path, f'column {column} is also a column of {participants_tsv}; the model '
                'cannot tell which to use', column, f'{column} in one of the two files only'))
        for column in from_tables:
            if column not in header:
                problems.append(_table_problem(
                    path, f'missing column {column}, a covariate of the model (other lesion '
                    'tables have it)', column, f'a column {column}'))
    return problems


def _participant_rows(path, table, needed, subjects):
    """A subject with a lesion table needs a row when the model reads patient covariates;
    a bad row of a subject without a lesion table is only a warning."""
    problems = []
    listed = set(table['participant_id'])
    if needed:
        for subject in subjects:
            if f'sub-{subject}' not in listed:
                problems.append(Problem(
                    kind=KIND_SUBJECT, message=f'{path}: no row for sub-{subject}, whose '
                    f'covariates ({", ".join(needed)}) the model needs', file=str(path),
                    subject=subject, key='participant_id', expected=f'a row for sub-{subject}'))
    return problems


def read_group_inputs(output_dir, participants_tsv, *, covariates=(), categorical=()):
    """Every lesion table of ``output_dir`` and ``participants.tsv``, checked.

    Parameters
    ----------
    output_dir : str or Path
        Participant-level derivatives (``sub-*/sub-*_lesions.tsv``).
    participants_tsv : str or Path
        The raw dataset's ``participants.tsv`` (may be absent when no covariate needs it).
    covariates : sequence of str
        Covariate *columns* of the models (lesion-table or participants.tsv columns).
    categorical : sequence of str
        Columns declared categorical.

    Returns
    -------
    GroupInputs
        The usable rows; a subject with a problem is left out (see the module docstring).

    Raises
    ------
    InputError
        participants.tsv unusable as a whole or needed but absent, a covariate found in no
        table, or no usable lesion table left.
    """
    participants_tsv = Path(participants_tsv)
    table, headers, used, problems = check_lesion_tables(find_lesion_tables(output_dir))
    participants = None
    extra = [c for c in covariates if c not in SCHEMA_COLUMNS]
    if participants_tsv.is_file():
        participants, found = read_participants(participants_tsv, extra,
                                                categorical=categorical)
        problems += found
    columns = set() if participants is None else set(participants.columns) - {'participant_id'}
    problems += _covariate_columns(headers, used, covariates, columns, participants_tsv)
    needed = [c for c in extra if c in columns]
    if participants is not None:
        problems += _participant_rows(participants_tsv, participants, needed, list(used))
    # a bad row of a participant without a lesion table costs nothing: a warning
    problems = [p if p.subject in used or p.file != str(participants_tsv) or not p.fatal
                else note(p.message, file=p.file, key=p.key, subject=p.subject)
                for p in problems]
    left_out = {p.subject for p in problems if p.fatal and p.subject}
    kept = [s for s in used if s not in left_out]
    if not kept:
        detail = '; '.join(p.message for p in problems if p.kind != KIND_NOTE)
        raise InputError(f'{output_dir}: no usable lesion table' + (f': {detail}' if detail
                                                                     else ''),
                         kind=KIND_SUBJECT, file=output_dir)
    rows = table['_subject'].isin(kept).to_numpy()
    lesions = table[rows].drop(columns='_subject').reset_index(drop=True)
    if participants is not None:
        keep = ~participants['participant_id'].isin([f'sub-{s}' for s in left_out])
        participants = participants[keep].reset_index(drop=True)
    return GroupInputs(lesions=lesions, participants=participants,
                       tables=[used[s] for s in kept], problems=problems)
