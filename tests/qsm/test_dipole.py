"""The dipole kernel and the forward field against analytic answers."""

import numpy as np
import pytest

from lesionqsm.qsm.constants import ppm_to_radians, radians_to_ppm
from lesionqsm.qsm.dipole import dipole_kernel, forward_field
from lesionqsm.qsm.geometry import b0_direction, voxel_sizes


def test_dipole_kernel_on_axes():
    """D = 1/3 - cos²θ exactly, for any voxel size; float32 keeps ~7 digits, hence 1e-6."""
    D = dipole_kernel((8, 8, 8), voxel_size=(1.0, 1.0, 2.0))
    assert D[0, 0, 1] == pytest.approx(-2 / 3, rel=1e-6)  # k along B0
    assert D[1, 0, 0] == pytest.approx(1 / 3, rel=1e-6)  # k across B0
    assert D[0, 0, 0] == 0.0


def test_dipole_kernel_oblique_b0_matches_rotated_formula():
    """With B0 along (1, 0, 1)/√2, k along x has cos²θ = 1/2, so D = 1/3 - 1/2."""
    D = dipole_kernel((8, 8, 8), (1.0, 1.0, 1.0), b0_dir=(1.0, 0.0, 1.0))
    assert D[1, 0, 0] == pytest.approx(1 / 3 - 1 / 2, rel=1e-6)
    assert D[0, 1, 0] == pytest.approx(1 / 3, rel=1e-6)


@pytest.mark.parametrize('shape', [(8, 10, 12), (7, 10, 12), (8, 9, 11)])
def test_kernel_is_even_on_the_grid_for_oblique_b0(shape):
    """With B0 oblique to the grid, D(k) = D(-k) on the discrete grid too: on a Nyquist plane
    (where +k and -k are the same bin) the kernel is the mean of the two readings.  Then the
    field of a real χ is real, and the half-spectrum path gives the full one's field to float
    precision.  A kernel that reads the Nyquist bin as -n/2 only leaves an imaginary part of
    6-38 % of the field's maximum here."""
    b0 = np.array([0.1, 0.34, 0.93]) / np.linalg.norm([0.1, 0.34, 0.93])
    voxel = (1.0, 1.2, 2.0)
    full = dipole_kernel(shape, voxel, b0_dir=b0)
    negated = np.ix_(*[(-np.arange(n)) % n for n in shape])
    assert np.array_equal(full, full[negated])
    chi = np.random.default_rng(0).standard_normal(shape)
    field = np.fft.ifftn(full * np.fft.fftn(chi))
    assert np.abs(field.imag).max() <= 1e-6 * np.abs(field.real).max()
    half = dipole_kernel(shape, voxel, b0_dir=b0, rfft=True)
    half_field = np.fft.irfftn(half * np.fft.rfftn(chi), s=shape, axes=(0, 1, 2))
    np.testing.assert_allclose(half_field, field.real, atol=1e-6 * np.abs(field.real).max())


def test_kernel_with_b0_along_an_axis_is_the_plain_formula():
    """With B0 along an array axis the Nyquist readings agree: the kernel is the formula
    evaluated at numpy's FFT frequencies, bit for bit (axial scans are unchanged)."""
    shape, voxel = (8, 10, 12), (1.0, 1.2, 2.0)
    kx, ky, kz = np.meshgrid(*[np.fft.fftfreq(n, d=h) for n, h in zip(shape, voxel, strict=True)],
                             indexing='ij')
    with np.errstate(divide='ignore', invalid='ignore'):
        formula = (1.0 / 3.0 - kz**2 / (kx**2 + ky**2 + kz**2)).astype(np.float32)
    formula[0, 0, 0] = 0.0
    assert np.array_equal(dipole_kernel(shape, voxel), formula)


def test_rfft_kernel_is_half_of_full_kernel():
    full = dipole_kernel((6, 8, 10), (1.0, 1.5, 2.0))
    half = dipole_kernel((6, 8, 10), (1.0, 1.5, 2.0), rfft=True)
    assert half.shape == (6, 8, 6)
    np.testing.assert_allclose(half, full[:, :, :6], atol=1e-7)


def test_forward_field_of_sphere_matches_analytic_dipole():
    """Outside a uniformly magnetised sphere δB/B0 = χ a³ (3cos²θ − 1) / (3 r³); inside 0.

    A voxelised sphere of radius 8 voxels is not a perfect sphere and the zero-padded FFT
    convolution is exact only to discretisation, so 5 % of the peak outside value is allowed,
    and 2 % of χ inside.
    """
    n, radius, chi = 64, 8.0, 1.0
    grid = np.indices((n, n, n)) - n // 2
    r = np.sqrt((grid**2).sum(axis=0))
    sphere = (r <= radius).astype(np.float32) * chi
    field = forward_field(sphere, (1.0, 1.0, 1.0))
    centre = n // 2
    assert abs(field[centre, centre, centre]) < 0.02 * chi
    a3 = float(sphere.sum()) * 3 / (4 * np.pi)  # equivalent radius cubed of the voxelised sphere
    for offset in (14, 18, 24):
        along = float(field[centre, centre, centre + offset])
        across = float(field[centre + offset, centre, centre])
        peak = chi * a3 * 2 / (3 * offset**3)
        assert along == pytest.approx(peak, abs=0.05 * peak)
        assert across == pytest.approx(-peak / 2, abs=0.05 * peak)


def test_b0_direction_from_affines():
    assert np.allclose(b0_direction(np.diag([1.5, 1.5, 3.0, 1.0])), (0, 0, 1))
    theta = np.deg2rad(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(theta), -np.sin(theta)],
                         [0, np.sin(theta), np.cos(theta)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.0, 1.0, 2.0])
    b0 = b0_direction(affine)
    # world z expressed in the rotated array axes: third row of the rotation
    np.testing.assert_allclose(b0, rotation[2], atol=1e-12)
    assert voxel_sizes(affine) == pytest.approx((1.0, 1.0, 2.0))
    flipped = np.diag([-1.0, 1.0, -1.0, 1.0])
    np.testing.assert_allclose(b0_direction(flipped), (0, 0, -1))
    with pytest.raises(ValueError, match='singular'):
        b0_direction(np.zeros((4, 4)))


def test_ppm_radian_round_trip():
    """1 ppm at 3 T over 4.5 ms is 2π·42.577478e6·3·1e-6·0.0045 rad."""
    rad = ppm_to_radians(1.0, field_strength=3.0, delta_te=0.0045)
    assert rad == pytest.approx(2 * np.pi * 42.577478 * 3 * 0.0045, rel=1e-12)
    assert radians_to_ppm(rad, field_strength=3.0, delta_te=0.0045) == pytest.approx(1.0)
