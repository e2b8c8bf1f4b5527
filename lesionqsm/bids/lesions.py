"""Lesion annotations (``derivatives/lesions``): reading, checking, and the output lesion table.

Input (DESIGN.md input contract)::

    <lesions_dir>/sub-01/sub-01_lesions.tsv      lesion_id, detected_session, rim, enhancement
    <lesions_dir>/sub-01/ses-01/anat/sub-01_ses-01_..._dseg.nii.gz   integer lesion_id per voxel

Decisions: nothing here stops the QSM part of a run. Problems that make the whole lesion table
untrustworthy (an unreadable or malformed ``lesions.tsv``, duplicate ids, a label map that is
not on its FLAIR's grid or not integer, missing visit dates) are *lesion errors*: the subject's
lesion table is not produced and the errors are reported. Problems that concern one lesion (its
detection visit does not exist, has no label map, or its id is absent from that map) drop that
lesion and are reported; ids present in the maps but absent from ``lesions.tsv`` are reported and
ignored.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .images import grid_mismatch, image_header
from .labels import is_label, strip_prefix
from .problems import (
    KIND_LESION_DROPPED,
    KIND_LESION_TABLE,
    KIND_OUTSIDE_SELECTION,
    InputError,
    Problem,
    note,
)
from .readers import read_tsv

#: Columns of ``lesions.tsv`` (input); ``enhancement`` may be absent (then ``n/a``).
LESION_COLUMNS = ('lesion_id', 'detected_session', 'rim', 'enhancement')
RIM_VALUES = ('positive', 'negative', 'n/a')
ENHANCEMENT_VALUES = ('nodular', 'shell', 'n/a')
#: Largest lesion_id accepted (the largest value of a signed 32-bit label map).
MAX_LESION_ID = np.iinfo(np.int32).max


def lesions_tsv_path(lesions_dir, subject):
    """``<lesions_dir>/sub-<label>/sub-<label>_lesions.tsv``."""
    return Path(lesions_dir) / f'sub-{subject}' / f'sub-{subject}_lesions.tsv'


def read_lesions_tsv(path):
    """Read and check one subject's ``lesions.tsv``.

    Parameters
    ----------
    path : str or Path
        The table.

    Returns
    -------
    pandas.DataFrame
        Columns ``lesion_id`` (int), ``detected_session`` (str, no ``ses-``), ``rim``,
        ``enhancement``; one row per lesion, in file order.

    Raises
    ------
    InputError
        Unreadable table, missing column, non-integer or duplicate ``lesion_id``, or a
        ``rim``/``enhancement`` value outside the allowed set; the message names the file and
        the line.
    """
    table = read_tsv(path, kind=KIND_LESION_TABLE)

    def fail(message, key=None, expected=None):
        return InputError(f'{path}: {message}', kind=KIND_LESION_TABLE, file=path, key=key,
                          expected=expected)

    missing = [c for c in LESION_COLUMNS[:3] if c not in table.columns]
    if missing:
        raise fail(f'missing column(s) {", ".join(missing)} (needed: {", ".join(LESION_COLUMNS)})',
                   key=missing[0], expected=', '.join(LESION_COLUMNS))
    if 'enhancement' not in table.columns:
        table['enhancement'] = 'n/a'
    rows = []
    for line, row in enumerate(table.to_dict('records'), start=2):
        text = str(row['lesion_id']).strip()
        if not re.fullmatch(r'[0-9]{1,10}', text) or not 0 < int(text) <= MAX_LESION_ID:
            raise fail(f'line {line}: lesion_id {text[:40]!r} is not a positive integer up to '
                       f'{MAX_LESION_ID} (it is the value of the lesion in the label maps)',
                       key='lesion_id', expected=f'an integer in 1-{MAX_LESION_ID}')
        rim = str(row['rim']).strip().lower()
        if rim not in RIM_VALUES:
            raise fail(f'line {line}: rim {row["rim"][:40]!r} is not one of '
                       f'{", ".join(RIM_VALUES)}', key='rim', expected=', '.join(RIM_VALUES))
        enhancement = str(row['enhancement']).strip().lower() or 'n/a'
        if enhancement not in ENHANCEMENT_VALUES:
            raise fail(f'line {line}: enhancement {row["enhancement"][:40]!r} is not one of '
                       f'{", ".join(ENHANCEMENT_VALUES)}', key='enhancement',
                       expected=', '.join(ENHANCEMENT_VALUES))
        session = strip_prefix(row['detected_session'], 'ses-')
        if session.lower() in ('', 'n/a'):
            raise fail(f'line {line}: lesion {text} has no detected_session',
                       key='detected_session', expected='a session label')
        if not is_label(session):
            raise fail(f'line {line}: detected_session {session[:40]!r} is not a session label '
                       '(letters and digits only)', key='detected_session',
                       expected='a session label')
        rows.append({'lesion_id': int(text), 'detected_session': session, 'rim': rim,
                     'enhancement': enhancement})
    frame = pd.DataFrame(rows, columns=list(LESION_COLUMNS))
    frame['lesion_id'] = frame['lesion_id'].astype(int)
    duplicated = sorted(set(frame.loc[frame['lesion_id'].duplicated(), 'lesion_id']))
    if duplicated:
        raise fail(f'lesion_id {", ".join(map(str, duplicated))} listed more than once',
                   key='lesion_id', expected='one row per lesion')
    return frame


def find_lesion_maps(lesions_dir, subject):
    """Label maps per session: ``{session_id: [paths]}`` (``None`` key without sessions)."""
    subject_dir = Path(lesions_dir) / f'sub-{subject}'
    maps = {}
    for path in sorted(subject_dir.rglob('*_dseg.nii*')):
        match = re.search(r'_ses-([a-zA-Z0-9]+)_', path.name)
        maps.setdefault(match.group(1) if match else None, []).append(path)
    return maps


def label_capacity(img):
    """Largest label a map's stored data type can hold (integer maps; else MAX_LESION_ID)."""
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind in 'iu':
        return min(int(np.iinfo(dtype).max), MAX_LESION_ID)
    return MAX_LESION_ID


def lesion_ids_in_map(path, img=None):
    """Set of non-zero integer labels in a lesion map.

    Raises
    ------
    InputError
        The map is unreadable or holds non-integer, negative or too large values.
    """
    def fail(message):
        return InputError(f'{path}: {message}', kind=KIND_LESION_TABLE, file=path,
                          expected=f'integer lesion_id per voxel, 0-{MAX_LESION_ID}')

    try:
        img = img if img is not None else image_header(path, kind=KIND_LESION_TABLE)
        data = np.asanyarray(img.dataobj)
    except InputError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise fail(f'not a readable NIfTI image ({exc})') from exc
    if data.dtype.kind not in 'biuf':
        raise fail(f'data type {data.dtype} is not a number type')
    if data.dtype.kind == 'f':
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            raise fail('lesion label map holds non-integer values; it must hold the integer '
                       'lesion_id of each voxel (0 = background)')
    if data.size and data.min() < 0:
        raise fail('lesion label map holds negative labels')
    if data.size and data.max() > MAX_LESION_ID:
        raise fail(f'lesion label map holds labels above {MAX_LESION_ID}')
    labels = np.unique(data.astype(np.int64))
    return {int(v) for v in labels if v != 0}


def check_lesions(table, *, tsv_path, session_maps, session_flairs, session_ids,
                  all_session_ids=None):
    """Cross-check ``lesions.tsv`` against the visits and their label maps.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`read_lesions_tsv`.
    tsv_path : str or Path
        The table's file, named in messages.
    session_maps : dict
        ``{session_id: path}``, one label map per annotated visit.
    session_flairs : dict
        ``{session_id: FLAIR path or None}``, for every visit of the subject.
    session_ids : list of str
        The subject's visits.

    all_session_ids : list of str, optional
        Every visit of the subject in the dataset, selected or not: a lesion detected at a
        visit left out by the selection is an expected omission (``KIND_OUTSIDE_SELECTION``).

    Returns
    -------
    table : pandas.DataFrame
        The lesions that can be followed (dropped lesions removed).
    problems : list of Problem
        Per-lesion findings (``KIND_LESION_DROPPED``, ``KIND_OUTSIDE_SELECTION``, notes),
        each naming the file.
    errors : list of Problem
        Findings that make the lesion table unusable (``KIND_LESION_TABLE``).
    """
    problems, errors = [], []
    ids_per_map, capacity = {}, {}
    for ses, path in sorted(session_maps.items(), key=lambda kv: str(kv[0])):
        if ses not in session_ids:
            problems.append(note(f'{path}: label map for ses-{ses}, which has no selected raw '
                                 'data; ignored', file=path, session=ses))
            continue
        flair = session_flairs.get(ses)
        try:
            if flair is None:
                raise InputError(f'{path}: ses-{ses} has no FLAIR image, so the label map '
                                 'cannot be placed', kind=KIND_LESION_TABLE, file=path,
                                 session=ses)
            map_img = image_header(path, kind=KIND_LESION_TABLE)
            detail = grid_mismatch(map_img, image_header(flair, kind=KIND_LESION_TABLE))
            if detail:
                raise InputError(f'{path} and {flair} are not on the same grid ({detail}): '
                                 'lesion maps must be drawn on that visit\'s FLAIR',
                                 kind=KIND_LESION_TABLE, file=path, key='affine',
                                 expected=f'the grid of {flair}')
            ids_per_map[ses] = lesion_ids_in_map(path, map_img)
            capacity[ses] = label_capacity(map_img)
        except InputError as exc:
            errors.append(exc.problem.located(session=ses))
    if errors:
        return table, problems, errors

    all_session_ids = list(all_session_ids or session_ids)
    keep = []
    for row in table.itertuples(index=False):
        lesion, ses = row.lesion_id, row.detected_session

        def drop(message, kind=KIND_LESION_DROPPED, expected=None, lesion=lesion, ses=ses):
            problems.append(Problem(kind=kind, message=f'{tsv_path}: lesion {lesion} {message}',
                                    file=str(tsv_path), session=ses, key='lesion_id',
                                    expected=expected))

        if ses not in session_ids and ses in all_session_ids:
            drop(f'detected at ses-{ses}, which is not among the selected visits; lesion '
                 'dropped', kind=KIND_OUTSIDE_SELECTION)
        elif ses not in session_ids:
            drop(f'detected at ses-{ses}, which does not exist (visits: '
                 f'{", ".join("ses-" + s for s in all_session_ids)}); lesion dropped',
                 expected='an existing session')
        elif ses not in ids_per_map:
            drop(f'detected at ses-{ses}, which has no lesion label map; lesion dropped',
                 expected='a label map for the detection visit')
        elif lesion > capacity[ses]:
            drop(f'cannot be stored in the label map {session_maps[ses]} (its data type holds '
                 f'labels up to {capacity[ses]}); lesion dropped',
                 expected=f'lesion_id <= {capacity[ses]}')
        elif lesion not in ids_per_map[ses]:
            drop(f'is absent from its detection visit\'s label map {session_maps[ses]}; lesion '
                 'dropped', expected='the id present in the label map')
        else:
            keep.append(True)
            continue
        keep.append(False)
    listed = set(table['lesion_id'])
    for ses, ids in ids_per_map.items():
        extra = sorted(ids - listed)
        if extra:
            problems.append(note(f'{session_maps[ses]}: label(s) {", ".join(map(str, extra))} '
                                 f'are not in {tsv_path}; ignored', file=session_maps[ses],
                                 session=ses))
    kept = table.loc[np.asarray(keep, dtype=bool)].reset_index(drop=True)
    return kept, problems, errors
