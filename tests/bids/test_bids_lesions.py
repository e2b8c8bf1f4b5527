"""Lesion annotations: every inconsistency is reported, and the QSM inputs stay usable."""

import numpy as np
import pytest
from bids_tree import standard_subject, write_tsv

from lesionqsm.bids.layout import collect_subject
from lesionqsm.bids.lesions import read_lesions_tsv
from lesionqsm.bids.metadata import InputError


def _collect(bids, **kwargs):
    data = collect_subject(bids.root, '01', **kwargs)
    # the QSM part never depends on the annotations
    assert all(s.has_qsm_input for s in data.sessions)
    return data


def test_dseg_not_on_flair_grid(standard_bids):
    """A label map on another grid is fatal for the lesion table only; both files named."""
    standard_bids.dseg('01', '01', [1, 2], shape=(4, 4, 4))
    data = _collect(standard_bids)
    assert data.lesions is None
    (error,) = map(str, data.lesion_errors)
    assert 'sub-01_ses-01_space-FLAIR_desc-lesions_dseg.nii.gz and ' in error
    assert 'sub-01_ses-01_FLAIR.nii.gz are not on the same grid' in error
    assert all(s.lesion_dseg is None for s in data.sessions)


def test_dseg_affine_differs_from_flair(standard_bids):
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[2, 3] = -3.0
    standard_bids.dseg('01', '02', [1], affine=affine)
    data = _collect(standard_bids)
    assert data.lesions is None
    assert 'same shape, different affines' in str(data.lesion_errors[0])
    assert 'sub-01_ses-02_space-FLAIR_desc-lesions_dseg.nii.gz' in str(data.lesion_errors[0])


def test_lesion_missing_from_its_detection_map(standard_bids):
    standard_bids.dseg('01', '01', [1])   # lesion 2 (detected at ses-01) not drawn
    data = _collect(standard_bids)
    assert data.lesions['lesion_id'].tolist() == [1]
    assert any('lesion 2 is absent from its detection visit' in p
               and 'sub-01_ses-01_space-FLAIR_desc-lesions_dseg.nii.gz' in p
               for p in map(str, data.problems))


def test_label_in_map_not_in_table(standard_bids):
    standard_bids.dseg('01', '01', [1, 2, 7])
    data = _collect(standard_bids)
    assert data.lesions['lesion_id'].tolist() == [1, 2]
    assert any('label(s) 7 are not in' in p and 'sub-01_lesions.tsv' in p
               for p in map(str, data.problems))


def test_detection_visit_does_not_exist(standard_bids):
    standard_bids.lesions_tsv('01', [(1, 'ses-02', 'positive', 'shell'),
                                     (2, 'ses-09', 'negative', 'n/a')])
    data = _collect(standard_bids)
    assert data.lesions['lesion_id'].tolist() == [1]
    assert any('sub-01_lesions.tsv: lesion 2 detected at ses-09, which does not exist' in p
               for p in map(str, data.problems))


def test_detection_visit_without_map(standard_bids):
    (standard_bids.lesions_dir / 'sub-01' / 'ses-02' / 'anat'
     / 'sub-01_ses-02_space-FLAIR_desc-lesions_dseg.nii.gz').unlink()
    data = _collect(standard_bids)
    assert data.lesions['lesion_id'].tolist() == [2]
    assert any('lesion 1 detected at ses-02, which has no lesion label map' in p
               for p in map(str, data.problems))


def test_malformed_lesions_tsv(standard_bids):
    standard_bids.lesions_tsv('01', [(1, 'ses-02')], header=('lesion_id', 'detected_session'))
    data = _collect(standard_bids)
    assert data.lesions is None
    assert 'sub-01_lesions.tsv: missing column(s) rim' in str(data.lesion_errors[0])


@pytest.mark.parametrize('row, message', [
    (('x1', 'ses-01', 'positive', 'n/a'), "line 2: lesion_id 'x1' is not a positive integer"),
    (('1', 'ses-01', 'maybe', 'n/a'), "line 2: rim 'maybe' is not one of"),
    (('1', 'ses-01', 'positive', 'ring'), "line 2: enhancement 'ring' is not one of"),
    (('1', 'n/a', 'positive', 'n/a'), 'line 2: lesion 1 has no detected_session'),
])
def test_bad_lesion_rows(tmp_path, row, message):
    path = write_tsv(tmp_path / 'sub-01_lesions.tsv',
                     ['lesion_id', 'detected_session', 'rim', 'enhancement'], [row])
    with pytest.raises(InputError, match=message) as err:
        read_lesions_tsv(path)
    assert str(err.value).startswith(str(path))


def test_duplicate_lesion_ids(tmp_path):
    path = write_tsv(tmp_path / 'sub-01_lesions.tsv', ['lesion_id', 'detected_session', 'rim'],
                     [(3, '01', 'positive'), (3, '02', 'negative')])
    with pytest.raises(InputError, match='lesion_id 3 listed more than once'):
        read_lesions_tsv(path)


def test_enhancement_column_optional(tmp_path):
    path = write_tsv(tmp_path / 'sub-01_lesions.tsv', ['lesion_id', 'detected_session', 'rim'],
                     [(3, 'ses-01', 'Positive')])
    table = read_lesions_tsv(path)
    assert table.to_dict('records') == [{'lesion_id': 3, 'detected_session': '01',
                                         'rim': 'positive', 'enhancement': 'n/a'}]


def test_non_integer_label_map(standard_bids):
    from bids_tree import write_nifti

    path = (standard_bids.lesions_dir / 'sub-01' / 'ses-01' / 'anat'
            / 'sub-01_ses-01_space-FLAIR_desc-lesions_dseg.nii.gz')
    write_nifti(path, np.full((4, 4, 3), 0.5))
    data = _collect(standard_bids)
    assert data.lesions is None
    assert 'desc-lesions_dseg.nii.gz: lesion label map holds non-integer values' in \
        str(data.lesion_errors[0])


def test_maps_without_table(standard_bids):
    (standard_bids.lesions_dir / 'sub-01' / 'sub-01_lesions.tsv').unlink()
    data = _collect(standard_bids)
    assert data.lesions is None
    assert 'sub-01_lesions.tsv: not found' in str(data.lesion_errors[0])


def test_lesions_need_visit_dates(standard_bids):
    standard_bids.sessions_tsv('01', [('ses-01', 'n/a'), ('ses-02', '2020-01-01')])
    data = _collect(standard_bids)
    assert data.lesions is None
    assert 'lesion ages need the acq_time of every visit; missing for ses-01' in \
        str(data.lesion_errors[0])


def test_explicit_lesions_dir_and_qsm_only(tmp_path, tiny_bids):
    standard_subject(tiny_bids)
    moved = tmp_path / 'annotations'
    tiny_bids.lesions_dir.rename(moved)
    assert _collect(tiny_bids).lesions is None                # QSM-only run
    data = _collect(tiny_bids, lesions_dir=moved)
    assert data.lesions['lesion_id'].tolist() == [1, 2] and data.lesion_errors == []
