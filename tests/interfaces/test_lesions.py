"""LesionStatistics on tiny images whose answer is known exactly."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from lesionqsm.interfaces.lesions import LesionStatistics, LesionTableSink

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _save(tmp_path, name, data, affine=AFFINE):
    path = tmp_path / name
    nb.Nifti1Image(np.asarray(data), affine).to_filename(path)
    return str(path)


@pytest.fixture
def visit_data(tmp_path):
    shape = (20, 20, 20)
    brain = np.ones(shape, np.uint8)
    labels = np.zeros(shape, np.int16)
    labels[5:8, 5:8, 5:8] = 1  # lesion 1, 27 voxels
    labels[12:14, 12:14, 12:14] = 2  # lesion 2, 8 voxels, detected at ses-02
    chi_values = [(0.010, -0.005), (0.025, -0.005), (0.015, -0.004)]  # lesion, background
    chi_files = []
    for index, (lesion_chi, nawm_chi) in enumerate(chi_values, start=1):
        chi = np.full(shape, nawm_chi, np.float32)
        chi[labels == 1] = lesion_chi
        chi[labels == 2] = 0.3
        chi_files.append(_save(tmp_path, f'chi{index}.nii.gz', chi))
    roi_file = _save(tmp_path, 'roi.nii.gz', labels)
    flair_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    flair_labels = []
    for n_voxels in (100, 80, 0):  # lesion 1 shrinks, then vanishes
        flair = np.zeros((30, 30, 30), np.int16)
        flair.reshape(-1)[:n_voxels] = 1
        flair[20:22, 20:22, 20:22] = 2
        flair_labels.append(_save(tmp_path, f'flair{len(flair_labels)}.nii.gz', flair,
                                  flair_affine))
    lesions = [{'lesion_id': 1, 'detected_session': '01', 'rim': 'positive',
                'enhancement': 'shell'},
               {'lesion_id': 2, 'detected_session': 'ses-02', 'rim': 'negative',
                'enhancement': 'nodular'}]
    return {
        'participant_id': 'sub-01',
        'session_ids': ['ses-01', 'ses-02', 'ses-03'],
        'acq_times': ['2012-01-01T10:00:00', '2012-07-01T10:00:00', '2014-01-01T10:00:00'],
        'chi_files': chi_files,
        'roi_files': [roi_file, roi_file, ''],
        'flair_dseg_files': flair_labels,
        'lesions': lesions,
        'brain_mask': _save(tmp_path, 'brain.nii.gz', brain),
    }


def test_lesion_statistics_known_values(visit_data, tmp_path):
    node = LesionStatistics(**visit_data)
    result = node.run(cwd=str(tmp_path))
    table = pd.read_csv(result.outputs.out_table, sep='\t')
    lesion1 = table[table.lesion_id == 1].reset_index(drop=True)
    assert list(lesion1.session_id) == ['ses-01', 'ses-02', 'ses-03']
    # lesion minus NAWM: 15, 30, 19 ppb (float32 data: 1e-3 ppb)
    np.testing.assert_allclose(lesion1.chi_rel_ppb, [15.0, 30.0, 19.0], atol=1e-3)
    # ages: 182 days and 731 days over 365.25
    np.testing.assert_allclose(lesion1.lesion_age_years, [0, 182 / 365.25, 731 / 365.25])
    np.testing.assert_allclose(lesion1.volume_mm3, [100.0, 80.0, 0.0])
    np.testing.assert_allclose(lesion1.volume_change_mm3, [0.0, -20.0, -100.0])
    assert set(lesion1.status) == {'ok'}
    lesion2 = table[table.lesion_id == 2]
    assert list(lesion2.session_id) == ['ses-02', 'ses-03']  # not before its detection
    assert lesion2.volume_mm3.iloc[0] == 8.0
    dictionary = json.loads(open(result.outputs.out_dictionary).read())
    assert dictionary['chi_rel_ppb']['Units'] == 'ppb'


def test_detection_visit_missing_is_a_clear_error(visit_data, tmp_path):
    visit_data['lesions'][0]['detected_session'] = 'ses-09'
    with pytest.raises(ValueError, match='ses-09, which is not a visit of sub-01'):
        LesionStatistics(**visit_data).run(cwd=str(tmp_path))


def test_table_sink_writes_where_group_level_reads(visit_data, tmp_path):
    result = LesionStatistics(**visit_data).run(cwd=str(tmp_path))
    out_dir = tmp_path / 'derivatives'
    sink = LesionTableSink(output_dir=str(out_dir), subject='01',
                           in_table=result.outputs.out_table,
                           in_dictionary=result.outputs.out_dictionary).run(cwd=str(tmp_path))
    assert sink.outputs.out_table == str(out_dir / 'sub-01' / 'sub-01_lesions.tsv')
    assert (out_dir / 'sub-01' / 'sub-01_lesions.json').exists()
