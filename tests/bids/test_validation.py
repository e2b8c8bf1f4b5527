"""Every field discovery uses is checked before any node runs; each problem is one record
naming the file, the key and what was expected (issue: input validation)."""

import gzip
import json
import struct

import nibabel as nb
import numpy as np
import pytest
from bids_tree import write_nifti, write_tsv

from lesionqsm.bids.layout import collect_subject
from lesionqsm.bids.problems import (
    KIND_LESION_DROPPED,
    KIND_LESION_TABLE,
    KIND_SUBJECT,
    KIND_VISIT,
    InputError,
)
from lesionqsm.bids.readers import MAX_SIDECAR_BYTES, json_depth


def _first(bids, part='mag', echo=1, ses='01'):
    anat = bids.anat_dir('01', ses)
    return anat / f'sub-01_ses-{ses}_echo-{echo}_part-{part}_MEGRE.nii.gz'


def _sidecar(path):
    return path.with_name(path.name.replace('.nii.gz', '.json'))


def _edit_sidecar(path, change):
    meta = json.loads(_sidecar(path).read_text())
    change(meta)
    _sidecar(path).write_text(json.dumps(meta))


def _visit_error(bids, ses='01'):
    """The one visit error of ``ses`` (strict=False keeps the other visits)."""
    data = collect_subject(bids.root, '01', strict=False)
    (error,) = data.session(ses).errors
    assert data.session(ses).megre is None
    assert error.kind == KIND_VISIT and error.subject == '01' and error.session == ses
    return error


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth('{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth('[]') == 1 and json_depth('"x"') == 0


def test_deeply_nested_sidecar_is_refused_by_name(standard_bids):
    """A sidecar nested 5000 levels deep would exhaust Python's recursion in any JSON reader;
    it is refused before it is parsed, for this subject only."""
    path = _sidecar(_first(standard_bids, 'phase', 2))
    path.write_text('{"EchoTime": 0.009, "x": ' + '[' * 5000 + ']' * 5000 + '}')
    with pytest.raises(InputError, match=f'{path}: JSON nested 5001 levels deep') as err:
        collect_subject(standard_bids.root, '01', strict=False)
    assert err.value.problem.kind == KIND_SUBJECT and err.value.problem.file == str(path)


def test_oversized_sidecar_is_refused(standard_bids):
    path = _sidecar(_first(standard_bids))
    path.write_text('{"EchoTime": 0.004, "pad": "' + 'x' * MAX_SIDECAR_BYTES + '"}')
    with pytest.raises(InputError, match='larger than the 1048576 bytes accepted'):
        collect_subject(standard_bids.root, '01', strict=False)


@pytest.mark.parametrize('key, value, message', [
    ('EchoTime', True, 'EchoTime True is not a number'),
    ('EchoTime', [0.004], 'EchoTime [0.004] is not a number'),
    ('EchoTime', -0.004, 'must be a positive number of seconds'),
    ('EchoTime', 4.0, 'looks like milliseconds'),
    ('MagneticFieldStrength', '3T', "MagneticFieldStrength '3T' is not a number"),
    ('MagneticFieldStrength', False, 'MagneticFieldStrength False is not a number'),
    ('MagneticFieldStrength', 1e300, 'outside 0.05-21.2 T'),
])
def test_sidecar_types_and_ranges(standard_bids, key, value, message):
    path = _first(standard_bids, echo=2)
    _edit_sidecar(path, lambda meta: meta.update({key: value}))
    error = _visit_error(standard_bids)
    assert message in error.message and error.file == str(path) and error.key == key
    assert error.expected


def test_phase_units_must_be_text(standard_bids):
    path = _first(standard_bids, 'phase', 1)
    _edit_sidecar(path, lambda meta: meta.update(Units={'rad': True}))
    error = _visit_error(standard_bids)
    assert 'is not "rad" or "arbitrary"' in error.message and error.key == 'Units'


def test_nan_in_a_sidecar_is_refused(standard_bids):
    path = _first(standard_bids, echo=3)
    _sidecar(path).write_text('{"EchoTime": NaN, "MagneticFieldStrength": 3}')
    assert 'must be a positive number of seconds' in _visit_error(standard_bids).message


def _rewrite(path, data, affine=None):
    img = nb.load(path)
    nb.save(nb.Nifti1Image(data, img.affine if affine is None else affine), str(path))


def test_four_d_file_with_every_echo_is_refused_with_that_reason(standard_bids):
    path = _first(standard_bids)
    _rewrite(path, np.ones((4, 4, 3, 3), np.float32))
    error = _visit_error(standard_bids)
    assert 'is 4-D with 3 volumes' in error.message and 'echo-<index>' in error.message
    assert error.key == 'dim' and error.expected == '3-D'


@pytest.mark.parametrize('shape, message', [
    ((4, 4, 3, 1, 2), 'is 5-D'),
    ((4, 4, 1), 'at least 3 voxels per axis'),
    ((4, 2, 3), 'at least 3 voxels per axis'),
])
def test_dimensionality(standard_bids, shape, message):
    for part in ('mag', 'phase'):
        _rewrite(_first(standard_bids, part, 2), np.ones(shape, np.float32))
    assert message in _visit_error(standard_bids).message


def test_zero_voxel_size_is_refused(standard_bids):
    """nibabel silently turns a stored pixdim of 0 into 1 on load; the stored one is checked."""
    path = _first(standard_bids, echo=2)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[80:84] = struct.pack('<f', 0.0)  # pixdim[1], NIfTI-1 header offset 76 + 4
    path.write_bytes(gzip.compress(bytes(raw)))
    error = _visit_error(standard_bids)
    assert 'voxel sizes (0.0, 1.0, 2.0) mm: each must be finite and > 0' in error.message
    assert error.key == 'pixdim'


def test_non_finite_and_singular_affines(standard_bids):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[0, 3] = np.nan
    write_nifti(_first(standard_bids, echo=2), affine=affine)
    assert 'NaN or infinite' in _visit_error(standard_bids).message
    header = nb.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_sform(np.diag([1.0, 0.0, 2.0, 1.0]), code=1)  # a flat y axis, no qform
    nb.save(nb.Nifti1Image(np.ones((4, 4, 3), np.float32), None, header),
            str(_first(standard_bids, echo=2)))
    assert 'singular affine' in _visit_error(standard_bids).message


def test_complex_data_type_is_refused(standard_bids):
    write_nifti(_first(standard_bids, 'phase', 2), dtype=np.complex64)
    error = _visit_error(standard_bids)
    assert 'data type complex64 is not a real number type' in error.message


def test_lesion_id_beyond_any_label_map_is_a_table_error(standard_bids):
    """An id of 31 digits once overflowed in pandas (a traceback); now it names the line."""
    standard_bids.lesions_tsv('01', [(10**30, 'ses-01', 'positive', 'shell')])
    data = collect_subject(standard_bids.root, '01')
    (error,) = data.lesion_errors
    assert error.kind == KIND_LESION_TABLE and error.key == 'lesion_id'
    assert 'line 2: lesion_id' in error.message and 'not a positive integer up to' in \
        error.message
    assert data.lesions is None and all(s.has_qsm_input for s in data.sessions)


def test_lesion_id_that_the_map_type_cannot_hold_is_dropped(standard_bids):
    standard_bids.lesions_tsv('01', [(1, 'ses-02', 'positive', 'shell'),
                                     (40000, 'ses-01', 'negative', 'nodular')])
    data = collect_subject(standard_bids.root, '01')
    (dropped,) = [p for p in data.problems if p.kind == KIND_LESION_DROPPED]
    assert 'lesion 40000 cannot be stored in the label map' in dropped.message
    assert 'holds labels up to 32767' in dropped.message and dropped.session == '01'
    assert data.lesions['lesion_id'].tolist() == [1]


def test_detected_session_must_be_a_label(standard_bids):
    standard_bids.lesions_tsv('01', [(1, 'ses-0 2', 'positive', 'shell')])
    (error,) = collect_subject(standard_bids.root, '01').lesion_errors
    assert "detected_session '0 2' is not a session label" in error.message


def test_session_listed_twice_with_different_dates(standard_bids):
    standard_bids.sessions_tsv('01', [('ses-01', '2020-07-01'), ('ses-02', '2020-01-01'),
                                      ('ses-01', '2021-07-01')])
    data = collect_subject(standard_bids.root, '01')
    (error,) = data.lesion_errors
    assert error.kind == KIND_LESION_TABLE and error.session == '01'
    assert 'ses-01 is listed 2 times with different acq_time values' in error.message
    assert data.lesions is None


def test_ragged_lesion_table_names_the_file(standard_bids):
    path = standard_bids.lesions_dir / 'sub-01' / 'sub-01_lesions.tsv'
    write_tsv(path, ['lesion_id', 'detected_session', 'rim'], [(1, '01', 'positive', 'x', 'y')])
    (error,) = collect_subject(standard_bids.root, '01').lesion_errors
    assert error.file == str(path) and 'not a readable TSV table' in error.message


def test_participants_table_problems_are_named(tiny_bids):
    from lesionqsm.bids.layout import check_participants_table

    assert check_participants_table(tiny_bids.root) == []
    write_tsv(tiny_bids.root / 'participants.tsv', ['participant_id', 'age'],
              [('sub-01', 30), ('sub-02', 40), ('sub-01', 31), ('01 x', 5)])
    messages = [str(p) for p in check_participants_table(tiny_bids.root)]
    assert messages == [
        f'{tiny_bids.root / "participants.tsv"}: line 4: participant_id sub-01 is listed again '
        '(first on line 2)',
        f'{tiny_bids.root / "participants.tsv"}: line 5: participant_id \'01 x\' is not '
        'sub-<label> (letters and digits)']
