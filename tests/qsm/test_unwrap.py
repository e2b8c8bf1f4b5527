"""Phase unwrapping: Laplacian up to a constant, region growing exactly congruent and true."""

import numpy as np
import pytest

from lesionqsm.qsm.unwrap import (
    unwrap_laplacian,
    unwrap_quality,
    unwrap_region_growing,
    unwrap_region_growing_heap,
)


def _wrap(x):
    return (x + np.pi) % (2 * np.pi) - np.pi


def smooth_wrapped_field(shape, voxel_size, *, amplitude=20.0, rng=None):
    """A smooth field (rad) that wraps several times, and a magnitude that is dark at the edge.

    Every neighbour difference of the truth is below π/2, so an exact unwrapper recovers it.
    """
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel_size,
                                                                             strict=True)],
                        indexing='ij')
    extent = [n * v / 2 for n, v in zip(shape, voxel_size, strict=True)]
    u = [g / e for g, e in zip(grids, extent, strict=True)]
    r2 = u[0] ** 2 + u[1] ** 2 + u[2] ** 2
    truth = amplitude * np.exp(-r2 / 0.5) + 6.0 * u[0] - 4.0 * u[1] * u[2] + 1.0
    magnitude = np.exp(-r2)
    if rng is not None:
        magnitude = magnitude + 0.01 * rng.standard_normal(shape)
    return truth.astype(np.float32), np.abs(magnitude).astype(np.float32)


@pytest.fixture(scope='module')
def smooth():
    shape, voxel = (48, 40, 24), (1.0, 1.2, 2.0)
    truth, magnitude = smooth_wrapped_field(shape, voxel, rng=np.random.default_rng(0))
    assert np.ptp(truth) > 6 * np.pi   # wraps at least three times
    return truth, magnitude, voxel


def test_laplacian_recovers_smooth_field_up_to_constant(smooth):
    """Every true neighbour difference is < π, so the least-squares solution equals the truth
    plus a constant; float32 DCTs of a 46k-voxel grid keep ~1e-4 rad."""
    truth, _, voxel = smooth
    result = unwrap_laplacian(_wrap(truth), voxel)
    diff = result - truth
    assert np.ptp(diff) < 1e-3
    assert result.dtype == np.float32


def test_laplacian_with_noise_errs_smoothly():
    """Noise of 0.3 rad (not aliased) leaves the unwrapped field within noise of the truth:
    the residual minus its mean has an RMS below the 0.3 rad of the added noise."""
    rng = np.random.default_rng(1)
    shape, voxel = (40, 40, 20), (1.0, 1.0, 1.0)
    truth, _ = smooth_wrapped_field(shape, voxel)
    noisy = truth + 0.3 * rng.standard_normal(shape).astype(np.float32)
    diff = unwrap_laplacian(_wrap(noisy), voxel) - truth
    assert np.sqrt(np.mean((diff - diff.mean()) ** 2)) < 0.3
    with pytest.raises(ValueError, match='3-D'):
        unwrap_laplacian(truth[..., 0], voxel)


def test_region_growing_is_exact_and_congruent(smooth):
    """Result - input is 2π·n at every voxel (to float32 rounding, 1e-5 cycles), and equals
    the truth everywhere up to one global 2π·k (the seed's wrap)."""
    truth, magnitude, _ = smooth
    wrapped = _wrap(truth).astype(np.float32)
    result = unwrap_region_growing(wrapped, magnitude)
    cycles = (result.astype(np.float64) - wrapped) / (2 * np.pi)
    assert np.max(np.abs(cycles - np.round(cycles))) < 1e-5
    offset = np.round((result - truth) / (2 * np.pi))
    assert np.all(offset == offset.flat[0])
    np.testing.assert_allclose(result - 2 * np.pi * offset.flat[0], truth, atol=1e-5)


def test_region_growing_respects_mask_and_matches_heap_reference(smooth):
    """Inside the mask the bucket queue and the plain heap both give the truth (same global
    offset); outside, the input is returned untouched.  Two separate components are each
    unwrapped from their own seed."""
    truth, magnitude, _ = smooth
    truth, magnitude = truth[:24, :20, :12], magnitude[:24, :20, :12]
    wrapped = _wrap(truth).astype(np.float32)
    mask = np.zeros(truth.shape, bool)
    mask[2:12, 2:18, 2:10] = True
    mask[14:22, 2:18, 2:10] = True   # second component
    fast = unwrap_region_growing(wrapped, magnitude, mask=mask)
    slow = unwrap_region_growing_heap(wrapped, magnitude, mask=mask)
    np.testing.assert_array_equal(fast[~mask], wrapped[~mask])
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    for component in (slice(2, 12), slice(14, 22)):
        d = (fast - truth)[component][mask[component]]
        assert np.ptp(d) < 1e-4
        assert d[0] / (2 * np.pi) == pytest.approx(np.round(d[0] / (2 * np.pi)), abs=1e-5)


def test_region_growing_noise_region_stays_congruent():
    """Pure-noise voxels (no signal) are unwrapped last and never disturb the bright object:
    the bright half is exact, and every voxel stays congruent."""
    rng = np.random.default_rng(2)
    shape, voxel = (32, 32, 16), (1.0, 1.0, 1.0)
    truth, magnitude = smooth_wrapped_field(shape, voxel)
    wrapped = _wrap(truth).astype(np.float32)
    wrapped[:, 24:] = rng.uniform(-np.pi, np.pi, (32, 8, 16)).astype(np.float32)
    magnitude[:, 24:] = 0.01 * rng.random((32, 8, 16))
    result = unwrap_region_growing(wrapped, magnitude)
    cycles = (result.astype(np.float64) - wrapped) / (2 * np.pi)
    assert np.max(np.abs(cycles - np.round(cycles))) < 1e-5
    d = (result - truth)[:, :22]
    assert np.ptp(d) < 1e-4


def test_quality_is_scale_invariant_and_errors():
    truth, magnitude = smooth_wrapped_field((16, 16, 8), (1.0, 1.0, 1.0))
    valid = np.ones(truth.shape, bool)
    q1 = unwrap_quality(_wrap(truth), magnitude * 1e-3, valid)
    q2 = unwrap_quality(_wrap(truth), magnitude * 1e3, valid)
    np.testing.assert_allclose(q1, q2, rtol=1e-5)
    with pytest.raises(ValueError, match='magnitude shape'):
        unwrap_region_growing(truth, magnitude[:8])
    with pytest.raises(ValueError, match='mask shape'):
        unwrap_region_growing(truth, magnitude, mask=valid[:8])
