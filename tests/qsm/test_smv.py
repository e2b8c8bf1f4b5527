"""SMV filter, its kernel, and the finite-difference gradient used by MEDI's TV term."""

import numpy as np
import pytest

from lesionqsm.qsm.gradient import gradient, gradient_adjoint
from lesionqsm.qsm.smv import smv_filter, smv_kernel


def test_smv_kernel_is_normalised_and_real():
    """S(k = 0) = 1 exactly: the sphere is normalised to unit sum (float32 rounding: 1e-6)."""
    kernel = smv_kernel((16, 16, 12), (1.0, 1.0, 2.0), 4.0)
    assert kernel[0, 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert kernel.dtype == np.float32
    half = smv_kernel((16, 16, 12), (1.0, 1.0, 2.0), 4.0, rfft=True)
    assert half.shape == (16, 16, 7)
    np.testing.assert_allclose(half, kernel[..., :7], atol=1e-6)


def test_smv_preserves_harmonic_functions():
    """Mean value property: a sphere mean of x, and of x² - y² (isotropic voxels, symmetric
    sphere), equals the centre value exactly away from the edges; float32 FFT: 1e-4 rel."""
    n = 32
    x, y, z = np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing='ij')
    radius = 3.0
    inner = (slice(5, -5),) * 3
    for f in (2.0 * x + 0.5 * z, (x - 16.0) ** 2 - (y - 15.0) ** 2):
        filtered = smv_filter(f, (1.0, 1.0, 1.0), radius)
        scale = np.abs(f[inner]).max()
        np.testing.assert_allclose(filtered[inner], f[inner], atol=1e-4 * scale)


def test_smv_rejects_bad_radius():
    with pytest.raises(ValueError, match='radius'):
        smv_kernel((8, 8, 8), (1.0, 1.0, 1.0), 0.0)


def test_gradient_adjoint_is_exact_transpose():
    """<∇x, g> = <x, ∇ᵀg> for random x, g: an identity, so float64 rounding (1e-12)."""
    rng = np.random.default_rng(3)
    voxel = (0.8, 1.1, 2.5)
    x = rng.standard_normal((9, 10, 7))
    g = rng.standard_normal((3, 9, 10, 7))
    lhs = np.vdot(gradient(x, voxel), g)
    rhs = np.vdot(x, gradient_adjoint(g, voxel))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_gradient_of_ramp():
    """Forward difference of 3·i mm-spaced by 1.5 mm is 2 per mm; 0 on the last plane."""
    x = np.broadcast_to(3.0 * np.arange(6.0)[:, None, None], (6, 4, 4))
    g = gradient(x, (1.5, 1.0, 1.0))
    assert np.allclose(g[0, :-1], 2.0) and np.all(g[0, -1] == 0)
    assert np.all(g[1:] == 0)
