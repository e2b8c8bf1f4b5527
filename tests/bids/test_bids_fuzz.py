"""Seeded fuzzing of sidecars, image headers and tables: every corruption ends either in a
usable :class:`SubjectData` or in an :class:`InputError` that names a file of the dataset."""

import json
import shutil

import numpy as np
import pytest
from bids_tree import TinyBIDS, standard_subject

from lesionqsm.bids.layout import InputError, collect_subject

N_CASES = 20   # bounded: ~0.6 s each


def _corrupt_json(path, rng):
    choice = rng.integers(5)
    text = path.read_text()
    if choice == 0:
        path.write_text(text[: int(rng.integers(1, len(text)))])          # truncated JSON
        return
    meta = json.loads(text)
    key = sorted(meta)[int(rng.integers(len(meta)))]
    if choice == 1:
        del meta[key]
    elif choice == 2:
        meta[key] = ['a', None][int(rng.integers(2))]
    elif choice == 3:
        meta[key] = float(rng.normal() * 1e4)
    else:
        meta = [meta]                                                     # not an object
    path.write_text(json.dumps(meta))


def _corrupt_nifti(path, rng):
    raw = path.read_bytes()
    if rng.integers(2):
        path.write_bytes(raw[: int(rng.integers(0, len(raw)))])          # truncated file
    else:
        data = bytearray(raw)
        for i in rng.integers(0, len(data), size=8):
            data[i] = int(rng.integers(256))                             # flipped bytes
        path.write_bytes(bytes(data))


def _corrupt_tsv(path, rng):
    lines = path.read_text().splitlines()
    i = int(rng.integers(len(lines)))
    cells = lines[i].split('\t')
    j = int(rng.integers(len(cells)))
    cells[j] = ['', 'n/a', 'garbage', '"', '-1', '2020-13-45'][int(rng.integers(6))]
    lines[i] = '\t'.join(cells)
    path.write_text('\n'.join(lines) + '\n')


@pytest.fixture(scope='module')
def template(tmp_path_factory):
    bids = TinyBIDS(tmp_path_factory.mktemp('fuzz') / 'bids')
    standard_subject(bids)
    return bids.root


def test_fuzzed_inputs_fail_clearly_or_work(template, tmp_path):
    rng = np.random.default_rng(20190101)
    outcomes = {'ok': 0, 'error': 0}
    for case in range(N_CASES):
        root = tmp_path / f'case{case}'
        shutil.copytree(template, root)
        files = sorted(p for p in root.rglob('*') if p.is_file()
                       and p.name != 'dataset_description.json')
        target = files[int(rng.integers(len(files)))]
        corrupt = {'.json': _corrupt_json, '.gz': _corrupt_nifti, '.tsv': _corrupt_tsv}
        corrupt[target.suffix](target, rng)
        try:
            data = collect_subject(root, '01')
        except InputError as exc:
            outcomes['error'] += 1
            stem = target.name.split('.')[0]
            assert stem in str(exc), f'case {case} ({target.name}): {exc}'
            continue
        outcomes['ok'] += 1
        assert [s.session_id for s in data.sessions] != []
        assert all(s.megre is not None for s in data.sessions)
        assert data.lesions is not None or data.lesion_errors
    # both outcomes occur: the corruptions reach the checks and some are harmless
    assert outcomes['ok'] > 0 and outcomes['error'] > 0
