"""The tiny synthetic cohort: BIDS validity, the input contract, ground truth, determinism."""

import hashlib
import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from lesionqsm.bids.validator import run_bids_validator
from lesionqsm.synth import cohort
from lesionqsm.synth.cohort import generate_cohort

# one subject on coarse grids (3 mm fine grid, 4 mm FLAIR): enough to compare files
SMALL = {'n_subjects': 1, 'n_lesions': 1, 'n_rim_positive': 1, 'n_nodular': 0,
         'fine_voxel_mm': 3.0, 'flair_shape': (42, 52, 45), 'flair_voxel_mm': 4.0}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp('tiny') / 'bids', preset='tiny', seed=0)


@pytest.fixture(scope='module')
def small_pair(tmp_path_factory):
    """The same small cohort written twice with radians, and once with scanner integers."""
    base = tmp_path_factory.mktemp('small')
    a = generate_cohort(base / 'a', preset='tiny', seed=3, **SMALL)
    b = generate_cohort(base / 'b', preset='tiny', seed=3, **SMALL)
    c = generate_cohort(base / 'c', preset='tiny', seed=3, phase_units='arbitrary', **SMALL)
    return a, b, c


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


@pytest.mark.validator
def test_tiny_passes_official_bids_validator(tiny):
    result = run_bids_validator(tiny)
    assert result.errors == [], result.summary()


def test_tiny_follows_input_contract(tiny):
    participants = pd.read_csv(tiny / 'participants.tsv', sep='\t')
    assert list(participants.columns) == ['participant_id', 'age', 'sex', 'edss',
                                          'disease_duration', 'treatment_duration']
    assert list(participants.participant_id) == ['sub-01', 'sub-02']
    sessions = pd.read_csv(tiny / 'sub-01' / 'sub-01_sessions.tsv', sep='\t')
    times = pd.to_datetime(sessions.acq_time, format='%Y-%m-%dT%H:%M:%S')
    assert times.is_monotonic_increasing and len(sessions) == 3
    span = (times.iloc[-1] - times.iloc[0]).days / 365.25
    assert 1.0 <= span <= 6.1
    anat = tiny / 'sub-01' / 'ses-02' / 'anat'
    for echo, te in enumerate(cohort.PRESETS['tiny'].echo_times, start=1):
        mag = json.loads((anat / f'sub-01_ses-02_echo-{echo}_part-mag_MEGRE.json').read_text())
        phase = json.loads((anat / f'sub-01_ses-02_echo-{echo}_part-phase_MEGRE.json')
                           .read_text())
        assert mag['EchoTime'] == te and phase['EchoTime'] == te
        assert mag['MagneticFieldStrength'] == 3.0 and phase['Units'] == 'rad'
    for name in ('FLAIR', 'T1w', 'ce-gadolinium_T1w'):
        assert (anat / f'sub-01_ses-02_{name}.nii.gz').is_file()
    lesions = pd.read_csv(tiny / 'derivatives' / 'lesions' / 'sub-01' / 'sub-01_lesions.tsv',
                          sep='\t', dtype=str)
    assert list(lesions.columns) == ['lesion_id', 'detected_session', 'rim', 'enhancement']
    description = json.loads((tiny / 'derivatives' / 'lesions' / 'dataset_description.json')
                             .read_text())
    assert description['DatasetType'] == 'derivative'


def test_phase_is_wrapped_radians_and_tissue_phase_evolves_with_te(tiny):
    anat = tiny / 'sub-02' / 'ses-01' / 'anat'
    phase = [nb.load(anat / f'sub-02_ses-01_echo-{e}_part-phase_MEGRE.nii.gz').get_fdata()
             for e in (1, 2)]
    assert phase[0].min() >= -np.pi and phase[0].max() < np.pi
    mag = nb.load(anat / 'sub-02_ses-01_echo-1_part-mag_MEGRE.nii.gz').get_fdata()
    head = mag > 500
    # the background field (air around the head) makes the echo-to-echo phase vary in space
    delta = np.angle(np.exp(1j * (phase[1] - phase[0])))[head]
    assert np.std(delta) > 0.05


def test_magnitude_decays_with_white_matter_r2star(tiny):
    """Mean magnitude over eroded white matter decays with R2* = 20 /s (set in phantom.py).

    Noise averages out over ~20 000 voxels; the smooth background field dephases a 3 mm
    voxel by < 3 % at 24 ms, so the fitted rate lies within 1.5 /s of 20 /s (measured 20.1).
    """
    from scipy import ndimage

    anat = tiny / 'sub-02' / 'ses-01' / 'anat'
    tissue = nb.load(tiny / 'derivatives' / 'groundtruth' / 'sub-02' / 'ses-01' / 'anat'
                     / 'sub-02_ses-01_desc-tissue_dseg.nii.gz').get_fdata()
    wm = ndimage.binary_erosion(tissue == 5)
    tes = np.array(cohort.PRESETS['tiny'].echo_times)
    means = [nb.load(anat / f'sub-02_ses-01_echo-{e}_part-mag_MEGRE.nii.gz').get_fdata()[wm]
             .mean() for e in range(1, len(tes) + 1)]
    rate = -np.polyfit(tes, np.log(means), 1)[0]
    assert rate == pytest.approx(20.0, abs=1.5)
    assert means[0] == pytest.approx(1000.0, rel=0.02)  # files scaled: NAWM echo 1 = 1000


def test_ground_truth_agrees_with_written_images(tiny):
    gt = tiny / 'derivatives' / 'groundtruth'
    ann = tiny / 'derivatives' / 'lesions'
    checked_core = 0
    for sub in ('01', '02'):
        truth = pd.read_csv(gt / f'sub-{sub}' / f'sub-{sub}_lesions.tsv', sep='\t')
        annotation = pd.read_csv(ann / f'sub-{sub}' / f'sub-{sub}_lesions.tsv', sep='\t')
        assert set(truth.lesion_id) == set(annotation.lesion_id)
        np.testing.assert_allclose(truth.chi_rel_ppb,
                                   1000 * (truth.chi_lesion_ppm - truth.chi_nawm_ppm),
                                   atol=1e-4)
        # NAWM: white matter, −0.020 ppm ± its 5 ppb modulation
        assert np.all(np.abs(truth.chi_nawm_ppm + 0.020) <= 0.0051)
        # the mean over the detection extent follows the model offset up to the WM
        # modulation difference
        np.testing.assert_allclose(truth.chi_rel_ppb, truth.chi_rel_model_ppb, atol=1.5)
        # a lesion that shrank carries its offset in a smaller volume
        later = truth[truth.lesion_age_years > 0.5]
        assert np.all(np.abs(later.chi_lesion_current_ppm - later.chi_nawm_ppm)
                      >= np.abs(later.chi_lesion_ppm - later.chi_nawm_ppm) - 0.0015)
        for ses, rows in truth.groupby('session_id'):
            dseg_img = nb.load(ann / f'sub-{sub}' / ses / 'anat'
                               / f'sub-{sub}_{ses}_space-FLAIR_dseg.nii.gz')
            dseg = np.asarray(dseg_img.dataobj)
            voxel = float(np.prod(dseg_img.header.get_zooms()[:3]))
            chimap_img = nb.load(gt / f'sub-{sub}' / ses / 'anat'
                                 / f'sub-{sub}_{ses}_Chimap.nii.gz')
            chimap = chimap_img.get_fdata()
            for row in rows.itertuples():
                inside = dseg == row.lesion_id
                assert row.volume_mm3 == pytest.approx(inside.sum() * voxel)
                # volume on the 2 mm FLAIR grid vs the analytic shape: staircase < 25 %
                assert row.volume_mm3 == pytest.approx(row.volume_model_mm3, rel=0.25)
                if row.rim != 'negative' or row.volume_mm3 < 300:
                    continue
                # rim− lesion, uniform offset: the GRE voxel at the lesion's centroid lies
                # wholly inside it; its true χ is the current lesion's mean ± the WM
                # modulation across the lesion (< 0.35 ppb/mm × 6 mm ≈ 2 ppb)
                centre = dseg_img.affine @ np.append(np.argwhere(inside).mean(axis=0), 1)
                ijk = np.rint(np.linalg.solve(chimap_img.affine, centre)[:3]).astype(int)
                assert chimap[tuple(ijk)] == pytest.approx(row.chi_lesion_current_ppm,
                                                           abs=0.0025)
                checked_core += 1
    assert checked_core > 0


def test_lesions_enhance_only_at_detection(tiny):
    """T1w+Gd − T1w is large inside a lesion at its detection visit, ~0 at later visits."""
    ann = tiny / 'derivatives' / 'lesions'
    table = pd.read_csv(ann / 'sub-02' / 'sub-02_lesions.tsv', sep='\t')
    lesion = table.iloc[0]
    for ses in ('ses-01', 'ses-02', 'ses-03'):
        anat = tiny / 'sub-02' / ses / 'anat'
        inside = np.asarray(nb.load(ann / 'sub-02' / ses / 'anat'
                                    / f'sub-02_{ses}_space-FLAIR_dseg.nii.gz').dataobj)
        inside = inside == lesion.lesion_id
        if not inside.any():
            continue
        t1 = nb.load(anat / f'sub-02_{ses}_T1w.nii.gz').get_fdata()[inside].mean()
        gd = nb.load(anat / f'sub-02_{ses}_ce-gadolinium_T1w.nii.gz').get_fdata()[inside].mean()
        flair = nb.load(anat / f'sub-02_{ses}_FLAIR.nii.gz').get_fdata()[inside].mean()
        assert flair > 1300  # WM is scaled to 1000; lesions are FLAIR-hyperintense (~1.9x)
        if ses == lesion.detected_session:
            assert gd > 1.2 * t1
        else:
            assert gd == pytest.approx(t1, rel=0.05)


def test_same_seed_gives_identical_files(small_pair):
    a, b, _ = small_pair
    assert _digests(a) == _digests(b)


def test_arbitrary_phase_units_round_trip(small_pair):
    a, _, c = small_pair
    anat = Path('sub-01') / 'ses-02' / 'anat'
    name = 'sub-01_ses-02_echo-3_part-phase_MEGRE'
    rad = nb.load(a / anat / f'{name}.nii.gz').get_fdata()
    ints_img = nb.load(c / anat / f'{name}.nii.gz')
    ints = np.asarray(ints_img.dataobj)
    assert ints.dtype == np.int16 and ints.min() >= -4096 and ints.max() <= 4095
    assert json.loads((c / anat / f'{name}.json').read_text())['Units'] == 'arbitrary'
    diff = np.angle(np.exp(1j * (ints * np.pi / 4096 - rad)))
    assert np.max(np.abs(diff)) <= np.pi / 4096 / 2 + 1e-6  # rounding to the nearest integer


def test_motion_files_record_a_rigid_transform(small_pair):
    a, _, _ = small_pair
    motion = json.loads((a / 'derivatives' / 'groundtruth' / 'sub-01' / 'ses-02'
                         / 'sub-01_ses-02_motion.json').read_text())
    matrix = np.array(motion['Matrix'])
    rot = matrix[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-8)
    np.testing.assert_allclose(matrix[:3, 3], motion['TranslationMm'], atol=1e-5)
    assert 0 < np.max(np.abs(motion['RotationDegrees'])) <= 5.0
    baseline = json.loads((a / 'derivatives' / 'groundtruth' / 'sub-01' / 'ses-01'
                           / 'sub-01_ses-01_motion.json').read_text())
    np.testing.assert_allclose(baseline['Matrix'], np.eye(4))


def test_bad_options_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match='unknown preset'):
        generate_cohort(tmp_path, preset='huge')
    with pytest.raises(ValueError, match='colour'):
        generate_cohort(tmp_path, preset='tiny', colour='red')
    with pytest.raises(ValueError, match='phase_units'):
        generate_cohort(tmp_path, preset='tiny', phase_units='degrees')
    with pytest.raises(ValueError, match='n_lesions'):
        generate_cohort(tmp_path, preset='tiny', n_lesions=40)
