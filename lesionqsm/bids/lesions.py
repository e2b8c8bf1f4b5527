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

import nibabel as nb
import numpy as np
import pandas as pd

from .metadata import InputError, image_grid, same_grid
from .sessions import read_tsv, strip_prefix

#: Columns of ``lesions.tsv`` (input); ``enhancement`` may be absent (then ``n/a``).
LESION_COLUMNS = ('lesion_id', 'detected_session', 'rim', 'enhancement')
RIM_VALUES = ('positive', 'negative', 'n/a')
ENHANCEMENT_VALUES = ('nodular', 'shell', 'n/a')


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
    table = read_tsv(path)
    missing = [c for c in LESION_COLUMNS[:3] if c not in table.columns]
    if missing:
        raise InputError(f'{path}: missing column(s) {", ".join(missing)} '
                         f'(needed: {", ".join(LESION_COLUMNS)})')
    if 'enhancement' not in table.columns:
        table['enhancement'] = 'n/a'
    rows = []
    for line, row in enumerate(table.to_dict('records'), start=2):
        text = str(row['lesion_id']).strip()
        if not re.fullmatch(r'[0-9]+', text) or int(text) == 0:
            raise InputError(f'{path}: line {line}: lesion_id {text!r} is not a positive integer '
                             '(it is the value of the lesion in the label maps)')
        rim = str(row['rim']).strip().lower()
        if rim not in RIM_VALUES:
            raise InputError(f'{path}: line {line}: rim {row["rim"]!r} is not one of '
                             f'{", ".join(RIM_VALUES)}')
        enhancement = str(row['enhancement']).strip().lower() or 'n/a'
        if enhancement not in ENHANCEMENT_VALUES:
            raise InputError(f'{path}: line {line}: enhancement {row["enhancement"]!r} is not '
                             f'one of {", ".join(ENHANCEMENT_VALUES)}')
        session = strip_prefix(row['detected_session'], 'ses-')
        if session.lower() in ('', 'n/a'):
            raise InputError(f'{path}: line {line}: lesion {text} has no detected_session')
        rows.append({'lesion_id': int(text), 'detected_session': session, 'rim': rim,
                     'enhancement': enhancement})
    frame = pd.DataFrame(rows, columns=list(LESION_COLUMNS))
    frame['lesion_id'] = frame['lesion_id'].astype(int)
    duplicated = sorted(set(frame.loc[frame['lesion_id'].duplicated(), 'lesion_id']))
    if duplicated:
        raise InputError(f'{path}: lesion_id {", ".join(map(str, duplicated))} listed more than '
                         'once')
    return frame


def find_lesion_maps(lesions_dir, subject):
    """Label maps per session: ``{session_id: [paths]}`` (``None`` key without sessions)."""
    subject_dir = Path(lesions_dir) / f'sub-{subject}'
    maps = {}
    for path in sorted(subject_dir.rglob('*_dseg.nii*')):
        match = re.search(r'_ses-([a-zA-Z0-9]+)_', path.name)
        maps.setdefault(match.group(1) if match else None, []).append(path)
    return maps


def lesion_ids_in_map(path):
    """Set of non-zero integer labels in a lesion map.

    Raises
    ------
    InputError
        The map is unreadable or holds non-integer values.
    """
    try:
        data = np.asanyarray(nb.load(str(path)).dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f'{path}: not a readable NIfTI image ({exc})') from exc
    if np.issubdtype(data.dtype, np.floating):
        finite = np.isfinite(data)
        if not finite.all() or not np.array_equal(data, np.round(data)):
            raise InputError(f'{path}: lesion label map holds non-integer values; it must hold '
                             'the integer lesion_id of each voxel (0 = background)')
    labels = np.unique(data.astype(np.int64))
    if labels.size and labels[0] < 0:
        raise InputError(f'{path}: lesion label map holds negative labels')
    return {int(v) for v in labels if v != 0}


def check_lesions(table, *, tsv_path, session_maps, session_flairs, session_ids):
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

    Returns
    -------
    table : pandas.DataFrame
        The lesions that can be followed (dropped lesions removed).
    problems : list of str
        Per-lesion findings (non-fatal), each naming the file.
    errors : list of str
        Findings that make the lesion table unusable (fatal for the table only).
    """
    problems, errors = [], []
    ids_per_map = {}
    for ses, path in sorted(session_maps.items(), key=lambda kv: str(kv[0])):
        if ses not in session_ids:
            problems.append(f'{path}: label map for ses-{ses}, which has no raw data; ignored')
            continue
        flair = session_flairs.get(ses)
        try:
            if flair is None:
                raise InputError(f'{path}: ses-{ses} has no FLAIR image, so the label map '
                                 'cannot be placed')
            map_grid, flair_grid = image_grid(path), image_grid(flair)
            if not same_grid(map_grid, flair_grid):
                detail = (f'shapes {map_grid[0]} vs {flair_grid[0]}'
                          if map_grid[0] != flair_grid[0] else 'same shape, different affines')
                raise InputError(f'{path} and {flair} are not on the same grid ({detail}): '
                                 'lesion maps must be drawn on that visit\'s FLAIR')
            ids_per_map[ses] = lesion_ids_in_map(path)
        except InputError as exc:
            errors.append(str(exc))
    if errors:
        return table, problems, errors

    keep = []
    for row in table.itertuples(index=False):
        lesion, ses = row.lesion_id, row.detected_session
        if ses not in session_ids:
            problems.append(f'{tsv_path}: lesion {lesion} detected at ses-{ses}, which does not '
                            f'exist (visits: {", ".join("ses-" + s for s in session_ids)}); '
                            'lesion dropped')
        elif ses not in ids_per_map:
            problems.append(f'{tsv_path}: lesion {lesion} detected at ses-{ses}, which has no '
                            'lesion label map; lesion dropped')
        elif lesion not in ids_per_map[ses]:
            problems.append(f'{tsv_path}: lesion {lesion} is absent from its detection visit\'s '
                            f'label map {session_maps[ses]}; lesion dropped')
        else:
            keep.append(True)
            continue
        keep.append(False)
    listed = set(table['lesion_id'])
    for ses, ids in ids_per_map.items():
        extra = sorted(ids - listed)
        if extra:
            problems.append(f'{session_maps[ses]}: label(s) {", ".join(map(str, extra))} are not '
                            f'in {tsv_path}; ignored')
    kept = table.loc[np.asarray(keep, dtype=bool)].reset_index(drop=True)
    return kept, problems, errors
