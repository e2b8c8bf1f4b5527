"""``load_visit`` reads one visit of a BIDS dataset into ``reconstruct_session``'s inputs."""

import json

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.qsm import load_visit


def test_load_visit_reads_the_echoes(tiny_cohort):
    inputs = load_visit(tiny_cohort, 'sub-01', 'ses-02')
    assert set(inputs) == {'complex_echoes', 'echo_times', 'field_strength', 'affine',
                           'phase_scaling'}
    assert [s['convention'] for s in inputs['phase_scaling']] == ['rad'] * 5
    anat = tiny_cohort / 'sub-01' / 'ses-02' / 'anat'
    mag = nb.load(anat / 'sub-01_ses-02_echo-1_part-mag_MEGRE.nii.gz')
    sidecar = json.loads((anat / 'sub-01_ses-02_echo-1_part-mag_MEGRE.json').read_text())
    signal = inputs['complex_echoes']
    assert signal.shape == mag.shape + (len(inputs['echo_times']),)
    assert inputs['echo_times'][0] == pytest.approx(sidecar['EchoTime'])
    assert inputs['field_strength'] == sidecar['MagneticFieldStrength']
    np.testing.assert_array_equal(inputs['affine'], mag.affine)
    # float32 magnitude · exp(i phase) keeps the magnitude to float32 rounding
    np.testing.assert_allclose(np.abs(signal[..., 0]), mag.get_fdata(), rtol=1e-6, atol=1e-3)


def test_load_visit_without_such_visit_says_so(tiny_cohort):
    with pytest.raises(ValueError, match=r'sub-01.*\b09\b'):  # the subject and the visit
        load_visit(tiny_cohort, '01', '09')
