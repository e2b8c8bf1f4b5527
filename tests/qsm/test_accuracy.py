"""Accuracy of the chain PDF → MEDI+0 on a piecewise-constant 3 T head phantom with noise.

The phantom (``_phantoms_b.head_phantom``): 1.5 mm isotropic, 96×96×64, brain with WM, cortical
GM, ventricles (χ = 0), globus pallidus, putamen, caudate and thalamus at literature χ, eight
WM lesions of radius 3.5-6.5 mm at −5…+40 ppb relative to WM, skull, sinus, ear canals and
air around the head (the background field in the brain is ~10x the local field), and field
noise σ = 0.005 rad per ΔTE (4.5 ms) at the mean brain magnitude, ∝ 1/magnitude elsewhere
(the frequency noise of an 8-echo fit at a per-echo SNR of ~30-50).  MEDI's defaults.
"""

import numpy as np
import pytest
from _phantoms_b import head_phantom, roi_errors

from lesionqsm.qsm import background, medi


@pytest.fixture(scope='module')
def reconstruction():
    ph = head_phantom((96, 96, 64), (1.5, 1.5, 1.5), noise_std_rad=0.005,
                      rng=np.random.default_rng(0))
    local = background.pdf(ph.total_field, ph.brain_mask, ph.voxel_size,
                           noise_std=ph.noise_std)
    chi, info = medi.medi_plus_zero(local, ph.brain_mask, ph.magnitude, ph.voxel_size,
                                    noise_std=ph.noise_std, csf_mask=ph.csf_mask,
                                    field_strength=ph.field_strength, delta_te=ph.delta_te)
    return ph, chi, info, roi_errors(chi, ph)


@pytest.mark.slow
def test_lesion_errors(reconstruction):
    """Median |lesion error| ≤ 1 ppb, each lesion as the pipeline measures it: lesion mean
    minus the median of its 1-5 mm NAWM shell (:mod:`lesionqsm.qsm.roi`), against the true
    contrast to WM.  Measured 0.43 ppb (worst lesion −3.0 ppb: the 40 ppb one, 10 mm from the
    brain edge, where PDF also removes part of the lesion's own field).  Against the mean of
    all WM the median error is 1.8 ppb (not asserted: TV smears the nuclei and cortex into the
    WM, raising its mean by ~2 ppb)."""
    _, _, _, e = reconstruction
    errors = e['lesion_est_nawm'] - e['lesion_true']
    assert np.median(np.abs(errors)) <= 1.0
    assert np.max(np.abs(errors)) < 5.0


@pytest.mark.slow
def test_roi_regression_slope(reconstruction):
    """Deep grey nuclei (vs CSF) and lesions (vs NAWM shell): slope of estimate on truth in
    [0.95, 1.05] (measured 0.976)."""
    _, _, _, e = reconstruction
    truth = np.r_[e['nuclei_true'], e['lesion_true']]
    est = np.r_[e['nuclei_est'], e['lesion_est_nawm']]
    slope = np.polyfit(truth, est, 1)[0]
    assert 0.95 <= slope <= 1.05


@pytest.mark.slow
def test_csf_mean_zero_and_convergence(reconstruction):
    """CSF mean is 0 by construction (float32: 1e-7 ppm); MEDI stopped by its own rule."""
    ph, chi, info, _ = reconstruction
    assert abs(float(chi[ph.csf_mask].astype(np.float64).mean())) < 1e-7
    assert info['reference'] == 'csf'
    assert info['update_ratio'][-1] < 0.1 or info['iterations'] == 10
