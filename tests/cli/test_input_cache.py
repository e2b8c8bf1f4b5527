"""A subject's checked inputs are read back from the work directory while its files are
unchanged, and checked again when any of them (or an option) changes."""

import dataclasses
import os
from pathlib import Path

import pandas as pd
import pytest

from lesionqsm.bids import layout
from lesionqsm.bids.problems import InputError
from lesionqsm.cli.input_cache import collect_subject_cached


@pytest.fixture
def counting(monkeypatch):
    """``collect_subject`` replaced by a counter returning what it was asked."""
    calls = []

    def collect(bids_dir, subject, **options):
        calls.append(subject)
        if subject == 'bad':
            raise InputError(f'sub-{subject}: unreadable')
        return {'subject': subject, 'options': options, 'call': len(calls)}

    monkeypatch.setattr(layout, 'collect_subject', collect)
    return calls


def _dataset(root):
    bids = root / 'bids'
    for name in ('sub-01/ses-01/anat/sub-01_ses-01_echo-1_part-mag_MEGRE.json',
                 'sub-02/ses-01/anat/sub-02_ses-01_echo-1_part-mag_MEGRE.json',
                 'sub-bad/ses-01/anat/sub-bad_ses-01_FLAIR.json',
                 'MEGRE.json', 'participants.tsv'):
        path = bids / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{}')
    lesions = root / 'lesions'
    (lesions / 'sub-01').mkdir(parents=True)
    (lesions / 'sub-01' / 'sub-01_lesions.tsv').write_text('lesion_id\n1\n')
    return bids, lesions


def _touch(path):
    stat = Path(path).stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_unchanged_inputs_are_read_back(tmp_path, counting):
    bids, lesions = _dataset(tmp_path)
    cache = tmp_path / 'work' / 'inputs'

    def collect(subject='01', **options):
        return collect_subject_cached(cache, bids, subject, lesions_dir=lesions,
                                      strict=False, **options)

    first = collect()
    assert collect() == first
    assert counting == ['01']  # the second came from the cache
    collect('02')
    assert counting == ['01', '02']  # one entry per subject

    for changed in (bids / 'sub-01' / 'ses-01' / 'anat' / 'sub-01_ses-01_echo-1_part-mag_MEGRE'
                    '.json', bids / 'MEGRE.json', lesions / 'sub-01' / 'sub-01_lesions.tsv'):
        before = len(counting)
        _touch(changed)  # the subject's file, an inherited sidecar, its lesion table
        assert collect()['call'] == before + 1  # checked again
        assert collect()['call'] == before + 1  # and cached again
    n_calls = len(counting)
    _touch(bids / 'sub-02' / 'ses-01' / 'anat' / 'sub-02_ses-01_echo-1_part-mag_MEGRE.json')
    collect()
    assert len(counting) == n_calls  # another subject's file does not matter

    assert collect(session_label=['01'])['options']['session_label'] == ['01']
    assert len(counting) == n_calls + 1  # another option: checked again

    (cache / 'sub-01.pkl').write_bytes(b'not a pickle')
    assert collect()['call'] == n_calls + 2  # an unreadable cache is ignored and rewritten
    assert collect()['call'] == n_calls + 2


def test_unreadable_subject_is_never_cached(tmp_path, counting):
    bids, _ = _dataset(tmp_path)
    cache = tmp_path / 'inputs'
    for _ in range(2):
        with pytest.raises(InputError, match='sub-bad: unreadable'):
            collect_subject_cached(cache, bids, 'bad')
    assert counting == ['bad', 'bad']
    assert not (cache / 'sub-bad.pkl').exists()


def test_cached_subject_equals_a_fresh_one(tiny_cohort, tmp_path):
    """The whole ``SubjectData`` of a real subject survives the cache unchanged."""
    lesions = tiny_cohort / 'derivatives' / 'lesions'
    fresh = layout.collect_subject(tiny_cohort, '01', lesions_dir=lesions, strict=False)
    cache = tmp_path / 'inputs'
    collect_subject_cached(cache, tiny_cohort, '01', lesions_dir=lesions, strict=False)
    assert (cache / 'sub-01.pkl').is_file()
    cached = collect_subject_cached(cache, tiny_cohort, '01', lesions_dir=lesions, strict=False)
    assert _same(cached, fresh)
    assert not _same(cached, layout.collect_subject(tiny_cohort, '02', lesions_dir=lesions,
                                                    strict=False))


def _same(a, b):
    """Equality through dataclasses, lists and dicts, with DataFrames compared by value."""
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return all(_same(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a))
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b
