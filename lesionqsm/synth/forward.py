"""Forward model: tissue maps of a moved head -> χ, field, multi-echo GRE, FLAIR and T1w signals.

Grids.  The GRE grid is fixed in the scanner and axial (B0 along its third axis).  The *fine
grid* on which χ and the field are computed is the GRE grid with every voxel split into
``block`` isotropic sub-voxels, extended (or cut) to cover the whole head with a margin of air:
a GRE voxel's signal is then the exact mean of the complex signal of its sub-voxels, so
intravoxel dephasing near air, bone and veins comes out of the physics.

Field.  The dipole convolution runs on χ referenced to air (χ − 9.4 ppm for tissue), so that
the zero-padding around the grid is air, as it is around a real head; a constant offset of χ
does not change the field (D(0) = 0).  Sign convention of :mod:`lesionqsm.qsm.constants`::

    S(TE) = M0 · exp(−R2* TE) · exp(i (φ0 + GAMMA_RAD · B0 · δB/B0 · TE))

so a paramagnetic lesion's phase grows with TE.
"""

import numpy as np
import scipy.fft

from lesionqsm.qsm.constants import GAMMA_RAD
from lesionqsm.qsm.dipole import forward_field
from lesionqsm.qsm.geometry import b0_direction
from lesionqsm.synth.phantom import CHI_AIR_PPM, Grid

#: GRE sequence (the paper: TR 49–58 ms, flip 15–20°).
GRE_TR_MS = 50.0
GRE_FLIP_DEG = 15.0
#: 3D FLAIR (TR, TE in ms; TI is chosen to null CSF).
FLAIR_TR_MS = 9000.0
FLAIR_TE_MS = 120.0
#: T1-weighted spoiled gradient echo.
T1W_TR_MS = 20.0
T1W_FLIP_DEG = 25.0


def rigid_matrix(rotation_deg, translation_mm):
    """4×4 rigid transform ``x -> R x + t`` (world mm), R = Rz · Ry · Rx.

    Parameters
    ----------
    rotation_deg : tuple of 3 float
        Rotations about the world x, y and z axes, in degrees, applied x first.
    translation_mm : tuple of 3 float
        Translation in mm.
    """
    ax, ay, az = np.deg2rad(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = translation_mm
    return m


def axial_grid(shape, voxel_size, centre):
    """Axis-aligned RAS+ grid of ``shape`` voxels of ``voxel_size`` mm centred on ``centre``."""
    affine = np.diag([*map(float, voxel_size), 1.0])
    affine[:3, 3] = (np.asarray(centre, float)
                     - (np.asarray(shape) - 1) / 2.0 * np.asarray(voxel_size, float))
    return Grid(tuple(int(n) for n in shape), affine)


class FineGrid:
    """The fine isotropic grid of the field computation, nested in a GRE grid.

    Parameters
    ----------
    gre : Grid
        Axis-aligned GRE grid.
    fine_voxel_mm : float
        Isotropic fine voxel size; must divide every GRE voxel edge.
    world_box : tuple of 2 array_like
        World (mm) corners the fine grid must cover (the head at any visit, plus a margin).

    Attributes
    ----------
    grid : Grid
        The fine grid.
    block : tuple of 3 int
        Sub-voxels per GRE voxel along each axis.
    gre_slices : tuple of 3 slice
        GRE voxels covered by the fine grid.
    fine_slices : tuple of 3 slice
        The fine voxels that cover ``gre_slices``.

    Raises
    ------
    ValueError
        If the fine voxel does not divide the GRE voxel, or the GRE grid is not axis-aligned.
    """

    def __init__(self, gre, fine_voxel_mm, world_box):
        rot = gre.affine[:3, :3]
        if not np.allclose(rot, np.diag(np.diag(rot))) or np.any(np.diag(rot) <= 0):
            raise ValueError('the GRE grid must be axis-aligned RAS+ to nest a fine grid in it')
        dx = np.diag(rot)
        ratio = dx / fine_voxel_mm
        block = np.rint(ratio).astype(int)
        if np.any(np.abs(ratio - block) > 1e-6) or np.any(block < 1):
            raise ValueError(f'fine voxel {fine_voxel_mm} mm does not divide the GRE voxel '
                             f'{tuple(dx)} mm')
        corner = gre.affine[:3, 3] - dx / 2  # world position of the GRE grid's outer corner
        lo = np.floor((np.asarray(world_box[0]) - corner) / dx).astype(int)
        hi = np.ceil((np.asarray(world_box[1]) - corner) / dx).astype(int)
        for axis in range(3):  # grow until the zero-padded FFT length is 5-smooth (fast)
            while scipy.fft.next_fast_len(int(2 * (hi[axis] - lo[axis]) * block[axis]),
                                          real=True) != 2 * (hi[axis] - lo[axis]) * block[axis]:
                hi[axis] += 1
        self.gre = gre
        self.block = tuple(int(b) for b in block)
        shape = tuple(int(n) for n in (hi - lo) * block)
        affine = np.diag([fine_voxel_mm] * 3 + [1.0])
        affine[:3, 3] = corner + lo * dx + fine_voxel_mm / 2
        self.grid = Grid(shape, affine)
        g_lo = np.maximum(lo, 0)
        g_hi = np.minimum(hi, gre.shape)
        self.gre_slices = tuple(slice(int(a), int(b)) for a, b in zip(g_lo, g_hi, strict=True))
        self.fine_slices = tuple(slice(int((a - o) * b), int((c - o) * b)) for a, c, o, b in
                                 zip(g_lo, g_hi, lo, block, strict=True))

    def to_gre(self, fine, *, fill=0.0):
        """Mean of a fine array over each GRE voxel; ``fill`` where the fine grid is absent."""
        sub = fine[self.fine_slices]
        n = [s.stop - s.start for s in self.gre_slices]
        b = self.block
        means = sub.reshape(n[0], b[0], n[1], b[1], n[2], b[2]).mean(axis=(1, 3, 5))
        out = np.full(self.gre.shape, fill, dtype=means.dtype)
        out[self.gre_slices] = means
        return out


def field_ppm(chi_ppm, fine):
    """Field perturbation δB/B0 (ppm) on the fine grid of a χ map referenced to CSF (ppm).

    The map is shifted to air = 0 before the zero-padded dipole convolution (see module doc).
    """
    chi_air = np.asarray(chi_ppm, dtype=np.float32) - np.float32(CHI_AIR_PPM)
    return forward_field(chi_air, fine.grid.voxel_size, b0_dir=b0_direction(fine.grid.affine),
                         pad=True)


def spoiled_gre_m0(pd, t1_ms, *, tr_ms, flip_deg):
    """Steady-state spoiled gradient-echo signal at TE = 0 (arbitrary units, PD = 1 water)."""
    e1 = np.exp(-tr_ms / np.maximum(t1_ms, 1e-3))
    a = np.deg2rad(flip_deg)
    return (pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1)).astype(np.float32)


def flair_signal(pd, t1_ms, t2_ms, *, tr_ms=FLAIR_TR_MS, te_ms=FLAIR_TE_MS, ti_ms=None):
    """Inversion-recovery (FLAIR) magnitude signal; TI nulls CSF (T1 = 4000 ms) by default."""
    if ti_ms is None:
        ti_ms = -4000.0 * np.log((1 + np.exp(-tr_ms / 4000.0)) / 2)
    t1 = np.maximum(t1_ms, 1e-3)
    mz = 1 - 2 * np.exp(-ti_ms / t1) + np.exp(-tr_ms / t1)
    return (pd * np.abs(mz) * np.exp(-te_ms / np.maximum(t2_ms, 1e-3))).astype(np.float32)


def gre_echoes(m0, r2star, field, fine, echo_times, *, field_strength):
    """Noise-free complex multi-echo GRE on the GRE grid, from fine-grid tissue maps.

    Parameters
    ----------
    m0 : float32 ndarray
        Signal at TE = 0 on the fine grid (arbitrary units).
    r2star : float32 ndarray
        R2* on the fine grid, 1/s.
    field : float32 ndarray
        δB/B0 on the fine grid, ppm.
    fine : FineGrid
    echo_times : sequence of float
        Echo times in s.
    field_strength : float
        B0 in T.

    Returns
    -------
    complex64 ndarray, shape ``gre.shape + (n_echoes,)``
        Mean over each GRE voxel of ``m0 · exp(−R2* TE) · exp(i GAMMA_RAD B0 δB TE)``.
    """
    sl = fine.fine_slices
    m0, r2star = m0[sl], r2star[sl]
    omega = (field[sl] * np.float32(1e-6 * GAMMA_RAD * field_strength)).astype(np.float32)
    out = np.zeros(fine.gre.shape + (len(echo_times),), dtype=np.complex64)
    n = [s.stop - s.start for s in fine.gre_slices]
    b = fine.block
    for e, te in enumerate(echo_times):
        te = np.float32(te)
        sub = (m0 * np.exp(-r2star * te)) * np.exp(1j * (omega * te))
        out[fine.gre_slices + (e,)] = sub.reshape(n[0], b[0], n[1], b[1], n[2], b[2]).mean(
            axis=(1, 3, 5))
    return out


def smooth_phase_offset(shape, rng):
    """Smooth receive-phase offset φ0 (rad) on a grid: random constant, gradients, curvature."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing='ij', sparse=True)
    c = rng.uniform(-np.pi, np.pi)
    g = rng.normal(0.0, 0.8, size=3)
    q = rng.normal(0.0, 0.4, size=2)
    return (c + g[0] * x + g[1] * y + g[2] * z + q[0] * (x**2 + y**2) + q[1] * z**2).astype(
        np.float32)


def wrap_phase(phase):
    """Wrap radians to [-π, π)."""
    return ((np.asarray(phase) + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)


def phase_to_arbitrary(phase_rad):
    """Radians in [-π, π) to scanner integers in [-4096, 4095] (int16): round(φ · 4096 / π)."""
    k = np.rint(np.asarray(phase_rad, dtype=np.float64) * 4096.0 / np.pi).astype(np.int64)
    return (((k + 4096) % 8192) - 4096).astype(np.int16)


def arbitrary_to_phase(values):
    """Scanner integers in [-4096, 4095] to radians in [-π, π): v · π / 4096."""
    return (np.asarray(values, dtype=np.float64) * np.pi / 4096.0).astype(np.float32)


def complex_noise(shape, sigma, rng):
    """Circular complex Gaussian noise with standard deviation ``sigma`` per real channel."""
    noise = rng.standard_normal(shape + (2,), dtype=np.float32) * np.float32(sigma)
    return noise[..., 0] + 1j * noise[..., 1]
