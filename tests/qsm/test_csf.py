"""Ventricular CSF mask (MEDI+0's rule) on the head phantom, with 3, 1 and no ventricles."""

import numpy as np
import pytest
from _phantoms_a import CSF, WM, head_phantom

from lesionqsm.qsm.csf import ventricular_csf_mask
from lesionqsm.qsm.masking import erode_mm
from lesionqsm.qsm.r2star import r2star_arlo

TE = 0.005 * np.arange(1, 6)


def _r2star(phantom):
    return r2star_arlo(np.abs(phantom.signal), TE, mask=phantom.brain)


@pytest.mark.parametrize('ventricles', [3, 1])
def test_finds_the_ventricles(ventricles):
    """CSF R2* = 2 /s and WM = 20 /s at SNR 100 are 20 noise σ apart, so the mask is exactly
    the ventricles (no WM voxel falls below 5 /s); one ventricle is used with a message."""
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=ventricles)
    result = ventricular_csf_mask(_r2star(phantom), phantom.brain, phantom.voxel_size)
    truth = phantom.labels == CSF
    assert result.reference == 'ventricular_csf'
    assert result.n_seeds == ventricles
    np.testing.assert_array_equal(result.mask, truth)
    if ventricles < 3:
        assert f'only {ventricles} of the 3' in result.message


def test_no_csf_falls_back_to_whole_brain():
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=0)
    result = ventricular_csf_mask(_r2star(phantom), phantom.brain, phantom.voxel_size)
    assert result.reference == 'whole_brain'
    assert 'no CSF found' in result.message
    np.testing.assert_array_equal(result.mask, phantom.brain)


def test_seed_must_be_central_and_large_enough():
    """Low-R2* regions outside the 30 mm sphere are not seeds; specks below the minimum
    volume are ignored; a peripheral region connected to a seed is grown into."""
    shape, voxel = (60, 60, 40), (2.0, 2.0, 2.0)
    brain = np.ones(shape, bool)
    r2s = np.full(shape, 20.0, np.float32)
    r2s[50:54, 28:32, 18:22] = 1.0          # far from the centre (40 mm)
    r2s[30, 30, 20] = 1.0                   # one central voxel, 8 mm3 < 30 mm3
    result = ventricular_csf_mask(r2s, brain, voxel)
    assert result.reference == 'whole_brain'
    r2s[26:34, 28:32, 18:22] = 1.0          # central region, grown along a bridge to the far one
    r2s[34:50, 29:31, 19:21] = 1.0
    result = ventricular_csf_mask(r2s, brain, voxel)
    assert result.reference == 'ventricular_csf' and result.n_seeds == 1
    assert result.mask[52, 30, 20] and result.mask[30, 30, 20]
    assert result.mask.sum() == np.sum(r2s < 5)


def test_erosion_and_errors():
    """Low R2* within 10 mm of the brain surface is never CSF (MEDI's erosion)."""
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=0)
    r2s = _r2star(phantom)
    band = phantom.brain & ~erode_mm(phantom.brain, 10.0, phantom.voxel_size)
    r2s[band & (phantom.labels == WM)] = 1.0
    result = ventricular_csf_mask(r2s, phantom.brain, phantom.voxel_size, sphere_radius_mm=200)
    assert result.reference == 'whole_brain'
    with pytest.raises(ValueError, match='same 3-D shape'):
        ventricular_csf_mask(r2s[:5], phantom.brain, phantom.voxel_size)
    with pytest.raises(ValueError, match='empty'):
        ventricular_csf_mask(r2s, np.zeros_like(phantom.brain), phantom.voxel_size)
