"""Physics of the forward model against analytic answers."""

import numpy as np
import pytest

from lesionqsm.qsm.constants import GAMMA_RAD
from lesionqsm.synth import forward as fw
from lesionqsm.synth import phantom as ph


def _sphere_field(n=64, radius=8.0, chi=1.0):
    grid = np.arange(n) - n / 2
    x, y, z = np.meshgrid(grid, grid, grid, indexing='ij')
    r = np.sqrt(x**2 + y**2 + z**2)
    field = fw.forward_field((r <= radius) * np.float32(chi), (1.0, 1.0, 1.0))
    return x, y, z, r, field


def test_sphere_field_outside_matches_dipole():
    """Outside a uniformly magnetised sphere δB/B0 = χ a³/3 (3cos²θ − 1)/r³ exactly.

    The radius is taken from the voxelised sphere's volume (2109 voxels, a = 7.95 for a drawn
    a = 8).  The staircase surface adds higher multipoles that decay as 1/r⁵: beyond r = 2a
    they stay below 1.5 % of the largest field there (0.082 ppm on the B0 axis), hence the
    tolerance of 0.002 ppm (measured 0.0011).
    """
    x, y, z, r, field = _sphere_field()
    a3 = 3 * np.count_nonzero(r <= 8.0) / (4 * np.pi)
    outside = (r >= 16.0) & (r <= 24.0)
    cos2 = z[outside] ** 2 / r[outside] ** 2
    analytic = a3 / 3 * (3 * cos2 - 1) / r[outside] ** 3
    assert np.max(np.abs(field[outside] - analytic)) < 0.002
    on_axis = field[32, 32, 32 + 20]  # r = 20 voxels along B0: 2/3 · a³/r³
    assert on_axis == pytest.approx(2 / 3 * a3 / 20.0**3, rel=0.02)
    equator = field[32 + 20, 32, 32]  # perpendicular to B0: −1/3 · a³/r³
    assert equator == pytest.approx(-1 / 3 * a3 / 20.0**3, rel=0.03)


def test_sphere_field_inside_is_zero():
    """Inside the sphere the Lorentz-corrected field (the 1/3 term of D) is 0.

    Staircase surface ripples reach the interior; within r < a/2 they stay < 1 % of χ.
    """
    _, _, _, r, field = _sphere_field()
    inside = r <= 4.0
    assert np.max(np.abs(field[inside])) < 0.01
    assert abs(np.mean(field[inside])) < 0.003


def test_constant_chi_offset_does_not_change_field():
    """field_ppm references χ to air; the field of a head is unchanged by a χ offset inside it."""
    gre = fw.axial_grid((16, 16, 8), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    fine = fw.FineGrid(gre, 1.0, ((-20, -20, -12), (20, 20, 12)))
    chi = np.full(fine.grid.shape, ph.CHI_AIR_PPM, np.float32)  # all air: no field at all
    assert np.max(np.abs(fw.field_ppm(chi, fine))) < 1e-5


def test_echo_phase_linear_in_te_and_magnitude_decays_with_r2star():
    """Uniform field and R2*: phase = γ B0 δB TE and |S| = M0 exp(−R2* TE), float32 exact.

    A 0.05 ppm field at 3 T gives 2π · 6.39 Hz; float32 keeps ~1e-6 relative, hence 1e-5 rad.
    """
    gre = fw.axial_grid((4, 4, 2), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0))
    fine = fw.FineGrid(gre, 1.0, ((-4, -4, -3), (4, 4, 3)))
    shape = fine.grid.shape
    tes = np.array([0.0045, 0.0093, 0.0141, 0.0189, 0.0237, 0.0477])
    signal = fw.gre_echoes(np.full(shape, 0.8, np.float32), np.full(shape, 25.0, np.float32),
                           np.full(shape, 0.05, np.float32), fine, tes, field_strength=3.0)
    phase = np.unwrap(np.angle(signal[1, 1, 0]))
    expected = GAMMA_RAD * 3.0 * 0.05e-6 * tes
    np.testing.assert_allclose(phase, expected, atol=1e-5)
    slope = np.polyfit(tes, phase, 1)[0]
    assert slope == pytest.approx(GAMMA_RAD * 3.0 * 0.05e-6, rel=1e-4)
    np.testing.assert_allclose(np.abs(signal[1, 1, 0]), 0.8 * np.exp(-25.0 * tes), rtol=1e-5)


def test_paramagnetic_lesion_phase_grows_with_te():
    """Sign convention: inside a paramagnetic sphere along B0 the phase increases with TE.

    A χ = +0.5 ppm sphere in tissue: on the B0 axis just outside it the field is +2/3·χ·(a/r)³
    > 0, so the phase there must rise with TE (constants.py); the GRE voxel average of a
    smooth positive field keeps its sign.
    """
    gre = fw.axial_grid((16, 16, 16), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    fine = fw.FineGrid(gre, 1.0, ((-16, -16, -16), (16, 16, 16)))
    g = fine.grid
    ijk = np.indices(g.shape).reshape(3, -1)
    xyz = (g.affine[:3, :3] @ ijk + g.affine[:3, 3:4]).reshape((3,) + g.shape)
    r = np.sqrt((xyz**2).sum(axis=0))
    chi = np.where(r <= 4.0, 0.5, 0.0).astype(np.float32)
    field = fw.forward_field(chi, g.voxel_size)
    shape = g.shape
    signal = fw.gre_echoes(np.ones(shape, np.float32), np.full(shape, 20.0, np.float32), field,
                           fine, [0.005, 0.010, 0.015], field_strength=3.0)
    k = 8 + 3  # GRE voxel centred at z = +7 mm on the B0 axis (x = y = +1 mm)
    phase = np.unwrap(np.angle(signal[8, 8, k]))
    assert phase[0] > 0 and np.all(np.diff(phase) > 0)


def test_phase_wrapping_and_arbitrary_units_round_trip():
    """Wrapped phase lies in [−π, π); scanner integers round-trip within π/4096 (rounding)."""
    phase = fw.wrap_phase(np.linspace(-20, 20, 10001))
    assert phase.min() >= -np.pi and phase.max() < np.pi
    ints = fw.phase_to_arbitrary(phase)
    assert ints.min() >= -4096 and ints.max() <= 4095
    back = fw.arbitrary_to_phase(ints)
    diff = np.angle(np.exp(1j * (back - phase)))
    assert np.max(np.abs(diff)) <= np.pi / 4096 / 2 + 1e-6


def test_fine_grid_refuses_non_dividing_voxel():
    gre = fw.axial_grid((4, 4, 4), (1.75, 1.75, 3.0), (0, 0, 0))
    with pytest.raises(ValueError, match='does not divide'):
        fw.FineGrid(gre, 1.0, ((-4, -4, -4), (4, 4, 4)))


def test_block_average_is_exact_mean():
    gre = fw.axial_grid((4, 4, 2), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0))
    fine = fw.FineGrid(gre, 1.0, ((-4, -4, -3), (4, 4, 3)))
    values = np.arange(np.prod(fine.grid.shape), dtype=np.float64).reshape(fine.grid.shape)
    out = fine.to_gre(values)
    fs, gs = fine.fine_slices, fine.gre_slices
    i0, j0, k0 = fs[0].start, fs[1].start, fs[2].start
    assert out[gs[0].start, gs[1].start, gs[2].start] == pytest.approx(
        values[i0:i0 + 2, j0:j0 + 2, k0:k0 + 3].mean())


def test_flair_nulls_csf_and_lesions_are_hyperintense():
    """TI chosen to null CSF (T1 4000 ms); lesion (T1 1150, T2 140) brighter than WM and GM."""
    csf = fw.flair_signal(1.0, 4000.0, 1500.0)
    wm = fw.flair_signal(0.69, 830.0, 80.0)
    gm = fw.flair_signal(0.80, 1330.0, 110.0)
    lesion = fw.flair_signal(0.78, 1150.0, 140.0)
    assert csf < 1e-6
    assert lesion > gm > wm


def test_rigid_matrix_is_rotation_plus_translation():
    m = fw.rigid_matrix((3.0, -2.0, 4.0), (1.0, -2.0, 0.5))
    rot = m[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_allclose(m[:3, 3], (1.0, -2.0, 0.5))
    assert np.degrees(np.arccos((np.trace(rot) - 1) / 2)) < 6.0
