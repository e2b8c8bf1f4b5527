"""TKD: exact where the kernel is not truncated, and its units."""

import numpy as np
import pytest
import scipy.fft

from lesionqsm.qsm.constants import ppm_to_radians
from lesionqsm.qsm.dipole import dipole_kernel
from lesionqsm.qsm.tkd import tkd


def test_tkd_inverts_band_limited_susceptibility_exactly():
    """χ whose spectrum avoids |D| < threshold (and k = 0) is recovered exactly: float32 FFT
    round trips keep ~6 digits, hence 1e-4 of the maximum."""
    shape, voxel = (32, 32, 24), (1.0, 1.0, 1.5)
    rng = np.random.default_rng(0)
    kernel = dipole_kernel(shape, voxel)
    spectrum = scipy.fft.fftn(rng.standard_normal(shape))
    spectrum[np.abs(kernel) < 0.25] = 0
    spectrum[0, 0, 0] = 0
    chi = np.real(scipy.fft.ifftn(spectrum)) * 0.05  # ppm
    field_ppm = np.real(scipy.fft.ifftn(kernel * scipy.fft.fftn(chi)))
    field_rad = ppm_to_radians(field_ppm, field_strength=3.0, delta_te=5e-3)
    mask = np.ones(shape, dtype=bool)
    est = tkd(field_rad, mask, voxel, field_strength=3.0, delta_te=5e-3, threshold=0.19)
    np.testing.assert_allclose(est, chi, atol=1e-4 * np.abs(chi).max())


def test_tkd_zero_outside_mask_and_errors():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[2:6, 2:6, 2:6] = True
    est = tkd(np.ones((8, 8, 8)), mask, (1, 1, 1), field_strength=3.0, delta_te=5e-3)
    assert np.all(est[~mask] == 0)
    with pytest.raises(ValueError, match='threshold'):
        tkd(np.ones((8, 8, 8)), mask, (1, 1, 1), field_strength=3.0, delta_te=5e-3,
            threshold=0.0)
    with pytest.raises(ValueError, match='mask'):
        tkd(np.ones((8, 8, 8)), mask[:4], (1, 1, 1), field_strength=3.0, delta_te=5e-3)
