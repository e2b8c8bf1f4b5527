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
    fractions = nb.Nifti1Image(np.stack([(labels == 1), (labels == 2)], axis=-1)
                               .astype(np.float32), AFFINE)
    fractions.header.extensions.append(nb.nifti1.Nifti1Extension(
        'comment', json.dumps({'lesion_ids': [1, 2]}).encode()))
    roi_file = str(tmp_path / 'fractions.nii')
    fractions.to_filename(roi_file)
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
        'fraction_files': [roi_file, roi_file, ''],
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
    # lesion minus NAWM: 15, 30, 19 ppb, by either estimator on a voxel-exact lesion (the
    # 2 mm margin holds only NAWM, whose excess is 0); float32 data: 1e-3 ppb
    np.testing.assert_allclose(lesion1.chi_rel_ppb, [15.0, 30.0, 19.0], atol=1e-3)
    np.testing.assert_allclose(lesion1.chi_rel_roi_mean_ppb, [15.0, 30.0, 19.0], atol=1e-3)
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


def test_partial_volume_estimate_is_undiluted(tmp_path):
    """A lesion of +30 ppb filling half of each edge voxel: the ROI mean is diluted, the
    partial-volume estimate is exact (the excess sums to 30 ppb × the lesion's volume)."""
    from lesionqsm.lesions.regions import lesion_excess_statistics

    shape = (24, 24, 24)
    fraction = np.zeros(shape, np.float32)
    fraction[9:15, 9:15, 9:15] = 1.0
    fraction[8, 9:15, 9:15] = fraction[15, 9:15, 9:15] = 0.5  # half-filled faces
    chi = -0.020 + 0.030 * fraction  # NAWM -20 ppb, lesion +10 ppb (30 above NAWM)
    stats = lesion_excess_statistics(chi, fraction, exclude=fraction > 0.01,
                                     brain_mask=np.ones(shape, bool),
                                     voxel_size=(1.0, 1.0, 1.0))
    assert stats['chi_rel_ppb'] == pytest.approx(30.0, abs=1e-3)
    assert stats['chi_nawm_ppb'] == pytest.approx(-20.0, abs=1e-3)
    # ROI = voxels at least half lesion: 216 full + 72 half -> mean excess 30·252/288
    assert stats['chi_rel_roi_mean_ppb'] == pytest.approx(30 * 252 / 288, abs=1e-3)


def test_lesion_fractions_of_a_block(tmp_path):
    """A 4×4×6 mm lesion on a 1 mm FLAIR, identity matrix onto 2×2×3 mm voxels aligned with
    it: exactly 2×2×2 GRE voxels with fraction 1, and the fractions sum to its volume."""
    from lesionqsm.interfaces.lesions import LesionFractions, read_fractions

    flair_affine = np.eye(4)
    labels = np.zeros((24, 24, 24), np.int16)
    labels[8:12, 8:12, 9:15] = 4
    dseg = _save(tmp_path, 'dseg.nii.gz', labels, flair_affine)
    gre_affine = np.diag([2.0, 2.0, 3.0, 1.0])
    gre_affine[:3, 3] = [0.5, 0.5, 1.0]  # voxel centres at the centres of 2×2×3 FLAIR boxes
    reference = _save(tmp_path, 'gre.nii.gz', np.zeros((12, 12, 8), np.float32), gre_affine)
    # FLIRT matrix between grids that share world space
    from lesionqsm.registration.fsl_matrix import world_to_fsl, write_fsl_matrix

    matrix = world_to_fsl(np.eye(4), in_shape=labels.shape, in_affine=flair_affine,
                          ref_shape=(12, 12, 8), ref_affine=gre_affine)
    mat_file = tmp_path / 'flair_to_gre.mat'
    write_fsl_matrix(mat_file, matrix)
    result = LesionFractions(in_dseg=dseg, reference=reference,
                             in_matrix_file=str(mat_file)).run(cwd=str(tmp_path))
    fractions = read_fractions(result.outputs.out_fractions, nb.load(reference), reference)
    assert list(fractions) == [4]
    fraction = fractions[4]
    assert fraction.sum() * 12.0 == pytest.approx(96.0, rel=1e-5)  # 96 mm³
    assert np.count_nonzero(fraction > 0.999) == 8
