"""R2* by ARLO and by weighted log-linear least squares: known decay rates."""

import numpy as np
import pytest

from lesionqsm.qsm.r2star import r2star_arlo, r2star_loglinear


def _decay(r2star, echo_times, *, amplitude=1.0):
    te = np.asarray(echo_times)
    return amplitude * np.exp(-np.asarray(r2star)[..., None] * te)


@pytest.mark.parametrize('estimator', [r2star_arlo, r2star_loglinear])
def test_noiseless_decay_recovered(estimator):
    """Noise-free mono-exponential: log-linear is exact; ARLO's Simpson rule is exact to
    O((R2*·ΔTE)⁴/180) = 4e-4 relative at R2* = 100 /s, ΔTE = 5 ms; float32: 1e-3 relative."""
    te = 0.005 * np.arange(1, 9)
    truth = np.array([2.0, 10.0, 20.0, 45.0, 100.0], dtype=np.float32).reshape(5, 1, 1)
    for scale in (1e-3, 1e3):
        r2s = estimator(_decay(truth, te, amplitude=scale), te)
        np.testing.assert_allclose(r2s, truth, rtol=1e-3, atol=0.01)


@pytest.mark.parametrize('estimator', [r2star_arlo, r2star_loglinear])
def test_noisy_decay_unbiased(estimator):
    """SNR 100 at TE = 0, R2* = 25 /s, 6 echoes: the mean over 20,000 voxels is within 0.3 /s
    (the per-voxel spread is ~1.5 /s, so the standard error is 0.01 /s; 0.3 /s allows the
    small bias of each estimator at this SNR)."""
    rng = np.random.default_rng(0)
    te = 0.004 * np.arange(1, 7)
    signal = _decay(np.full((100, 200, 1), 25.0), te)
    noisy = np.abs(signal + 0.01 * (rng.standard_normal(signal.shape)
                                    + 1j * rng.standard_normal(signal.shape)))
    r2s = estimator(noisy, te)
    assert np.mean(r2s) == pytest.approx(25.0, abs=0.3)
    assert np.std(r2s) < 3.0


def test_loglinear_uneven_echoes_and_arlo_refuses():
    te = np.array([0.003, 0.0055, 0.010, 0.018])
    truth = np.full((3, 3, 3), 30.0)
    mag = _decay(truth, te)
    np.testing.assert_allclose(r2star_loglinear(mag, te), 30.0, rtol=1e-4)
    with pytest.raises(ValueError, match='evenly spaced'):
        r2star_arlo(mag, te)
    with pytest.raises(ValueError, match='at least 3 echoes'):
        r2star_arlo(mag[..., :2], te[:2])


def test_mask_zero_signal_and_errors():
    te = 0.005 * np.arange(1, 5)
    mag = _decay(np.full((4, 4, 4), 20.0), te)
    mag[0] = 0.0
    mask = np.ones((4, 4, 4), bool)
    mask[3] = False
    for estimator in (r2star_arlo, r2star_loglinear):
        r2s = estimator(mag, te, mask=mask)
        assert np.all(r2s[3] == 0) and np.all(np.isfinite(r2s))
        assert np.all(r2s[0] == 0)   # no signal: 0, not NaN
        np.testing.assert_allclose(r2s[1:3], 20.0, rtol=1e-3)
        with pytest.raises(ValueError, match='echo times'):
            estimator(mag, te[:3])
        with pytest.raises(ValueError, match='mask shape'):
            estimator(mag, te, mask=mask[:2])
