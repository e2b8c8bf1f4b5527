"""Reuse a subject's checked inputs when none of its files changed since the last run.

Finding and checking one subject's inputs (:func:`lesionqsm.bids.layout.collect_subject`)
costs about 1 s of CPU: a pybids index (an SQLite database built from scratch) and one read
of every GRE echo to check its values. A rerun of a cohort pays it for every subject before
nipype even looks at its cache. The result depends only on files: the subject's folder, the
dataset's top-level files (inherited sidecars, ``participants.tsv``) and the subject's lesion
annotations. This cache stores the result in the work directory with a *fingerprint* of
those files (each file's path, size and modification time in ns, as nipype's ``timestamp``
hashing), of the options that change it and of the modules that read the inputs; the next
run reads it back when the fingerprint is the same, and its warnings are logged again as if
found anew.

Trade-off (that of ``timestamp`` hashing): a file rewritten with the same size and
modification time is not noticed. Deleting the work directory (or ``WORK_DIR/inputs``)
checks everything again.
"""

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path

from .. import __version__

LOGGER = logging.getLogger('lesionqsm')

#: Bump when what :func:`collect_subject` returns changes without a change of version.
CACHE_FORMAT = 1


def _files(folder, *, recursive=True):
    """Files under ``folder`` (sorted; hidden ones, which pybids skips, left out), or every
    file at its top level only."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file())
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        found += [Path(root, name) for name in names if not name.startswith('.')]
    return sorted(found)


def _stamps(paths):
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamps.append([str(path), st.st_size, st.st_mtime_ns])
    return stamps


def _code_files():
    """The modules that read a subject's inputs: a change of code makes the cache stale."""
    return sorted((Path(__file__).parents[1] / 'bids').glob('*.py'))


def input_fingerprint(bids_dir, subject, *, lesions_dir=None, **options):
    """SHA-256 of the files a subject's inputs are read from, and of the options.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS raw dataset.
    subject : str
        Label without ``sub-``.
    lesions_dir : str or Path, optional
        Lesion annotations dataset.
    **options
        Everything else passed to ``collect_subject`` (JSON-serialisable values).
    """
    bids_dir = Path(bids_dir).absolute()
    paths = _files(bids_dir / f'sub-{subject}') + _files(bids_dir, recursive=False)
    if lesions_dir is not None:
        lesions_dir = Path(lesions_dir).absolute()
        paths += _files(lesions_dir / f'sub-{subject}') + _files(lesions_dir, recursive=False)
    content = [CACHE_FORMAT, __version__, _stamps(_code_files()), str(bids_dir), subject,
               None if lesions_dir is None else str(lesions_dir),
               sorted((k, repr(v)) for k, v in options.items()), _stamps(paths)]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def collect_subject_cached(cache_dir, bids_dir, subject, *, lesions_dir=None, **options):
    """:func:`~lesionqsm.bids.layout.collect_subject`, read back from ``cache_dir`` if valid.

    Parameters
    ----------
    cache_dir : str or Path or None
        Where the results are kept (``WORK_DIR/inputs``); None: no cache.
    bids_dir, subject, lesions_dir, **options
        As for ``collect_subject``.

    Returns
    -------
    SubjectData

    Raises
    ------
    InputError
        As ``collect_subject`` (a subject that cannot be read is never cached).
    """
    from ..bids.layout import collect_subject

    if cache_dir is None:
        return collect_subject(bids_dir, subject, lesions_dir=lesions_dir, **options)
    path = Path(cache_dir) / f'sub-{subject}.pkl'
    key = input_fingerprint(bids_dir, subject, lesions_dir=lesions_dir, **options)
    try:
        with open(path, 'rb') as handle:
            stored_key, data = pickle.load(handle)
        if stored_key == key:
            return data
    except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            pickle.UnpicklingError):
        pass  # no cache, or one written by another version: check the inputs again
    data = collect_subject(bids_dir, subject, lesions_dir=lesions_dir, **options)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.{path.name}.tmp')
        with open(tmp, 'wb') as handle:
            pickle.dump((key, data), handle)
        os.replace(tmp, path)
    except OSError as exc:  # the cache only saves time: never fail a run for it
        LOGGER.warning('%s: the checked inputs could not be cached: %s', path, exc)
    return data
