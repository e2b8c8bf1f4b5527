"""Multi-echo field fit: known frequency, noise propagation, uneven echoes, linear fit."""

import numpy as np
import pytest

from lesionqsm.qsm.multiecho import fit_multiecho_complex


def _signal(echo_times, *, freq_hz, phase0, shape, sigma, rng, r2star=20.0, amplitude=100.0):
    te = np.asarray(echo_times)
    clean = amplitude * np.exp(-r2star * te) * np.exp(1j * (phase0 + 2 * np.pi * freq_hz * te))
    noise = sigma * (rng.standard_normal(shape + (te.size,))
                     + 1j * rng.standard_normal(shape + (te.size,)))
    return (clean + noise).astype(np.complex64)


def _wrap(x):
    return (x + np.pi) % (2 * np.pi) - np.pi


@pytest.mark.parametrize('echo_times', [
    [0.004, 0.008, 0.012, 0.016, 0.020],   # even spacing
    [0.003, 0.0055, 0.010, 0.018],          # uneven spacing
])
def test_complex_fit_recovers_frequency_and_noise(echo_times):
    """25 Hz is recovered; noise_std equals the Monte Carlo spread of the estimate.

    20,000 independent voxels: the sample mean has a standard error of std/√20000 ≈ 0.7 % of
    the spread, so 5 standard errors bound the bias; the sample std of 20,000 draws is
    within ±1.5 % (5 × 1/√(2·20000)) of the true std, and the σ estimate from pooled residuals
    agrees with it to a few %, hence 5 %.
    """
    rng = np.random.default_rng(1)
    te = np.asarray(echo_times)
    dte = te[1] - te[0]
    sig = _signal(te, freq_hz=25.0, phase0=0.7, shape=(50, 40, 10), sigma=4.0, rng=rng)
    fit = fit_multiecho_complex(sig, te)
    assert fit.delta_te == pytest.approx(dte)
    truth = 2 * np.pi * 25.0 * dte
    err = _wrap(fit.field_rad - truth)
    spread = err.std()
    assert abs(err.mean()) < 5 * spread / np.sqrt(err.size)
    assert np.mean(fit.field_hz) == pytest.approx(25.0, abs=5 * spread / (2 * np.pi * dte)
                                                  / np.sqrt(err.size))
    assert np.mean(fit.noise_std) == pytest.approx(spread, rel=0.05)
    assert fit.noise_sigma == pytest.approx(4.0, rel=0.05)
    assert np.mean(_wrap(fit.phase0 - (0.7 + 2 * np.pi * 25.0 * te[0]))) == pytest.approx(
        0.0, abs=0.01)
    assert fit.field_rad.dtype == np.float32


def test_complex_fit_is_scale_invariant_and_handles_large_frequency():
    """A 0.9·π rad/ΔTE field fits within 6 propagated σ at each of 2,000 voxels (a 6σ
    excursion has probability 2e-9 per voxel); multiplying the signal by 1e-3 or 1e3 changes
    neither the field nor noise_std (float32: relative 1e-5)."""
    rng = np.random.default_rng(2)
    te = np.array([0.005, 0.010, 0.015, 0.020])
    freq = 0.9 * np.pi / (2 * np.pi * 0.005)
    sig = _signal(te, freq_hz=freq, phase0=-2.0, shape=(20, 20, 5), sigma=0.5, rng=rng)
    fits = [fit_multiecho_complex(sig * np.complex64(s), te) for s in (1e-3, 1.0, 1e3)]
    assert np.all(np.abs(_wrap(fits[1].field_rad - 0.9 * np.pi)) < 6 * fits[1].noise_std)
    for fit in (fits[0], fits[2]):
        np.testing.assert_allclose(fit.field_rad, fits[1].field_rad, atol=1e-5)
        np.testing.assert_allclose(fit.noise_std, fits[1].noise_std, rtol=1e-4)


def test_complex_fit_mask_and_errors():
    rng = np.random.default_rng(3)
    te = [0.005, 0.010, 0.015]
    sig = _signal(te, freq_hz=10.0, phase0=0.0, shape=(6, 6, 4), sigma=1.0, rng=rng)
    mask = np.zeros((6, 6, 4), bool)
    mask[2:4, 2:4, 1:3] = True
    fit = fit_multiecho_complex(sig, te, mask=mask)
    assert np.all(fit.field_rad[~mask] == 0) and np.all(fit.field_rad[mask] != 0)
    with pytest.raises(ValueError, match='echo times'):
        fit_multiecho_complex(sig, te[:2])
    with pytest.raises(ValueError, match='increase'):
        fit_multiecho_complex(sig, [0.01, 0.005, 0.015])
    with pytest.raises(ValueError, match='4-D'):
        fit_multiecho_complex(sig[..., 0], te)
    with pytest.raises(ValueError, match='mask shape'):
        fit_multiecho_complex(sig, te, mask=mask[:, :, :2])


def test_two_echoes_take_noise_from_background():
    """With 2 echoes σ comes from the Rayleigh background; 10 % for 4,000 air voxels."""
    rng = np.random.default_rng(4)
    te = [0.005, 0.010]
    sig = _signal(te, freq_hz=10.0, phase0=0.0, shape=(40, 40, 5), sigma=2.0, rng=rng)
    sig[:20] = 2.0 * (rng.standard_normal((20, 40, 5, 2)) + 1j * rng.standard_normal(
        (20, 40, 5, 2)))
    fit = fit_multiecho_complex(sig, te)
    assert fit.noise_sigma == pytest.approx(2.0, rel=0.1)
