"""Analytic head phantom for the QSM part-A tests: ellipsoids of air, scalp, skull, brain.

Lengths are in mm (multiplied by ``scale``), the grid is centred on the head, B0 is along the
last array axis unless an affine says otherwise.  χ is in ppm relative to CSF = 0, with air
at +9.4 ppm (air - water) so the background field is realistic and wraps.
"""

from dataclasses import dataclass, field

import numpy as np

from lesionqsm.qsm.constants import GAMMA_HZ
from lesionqsm.qsm.dipole import forward_field

AIR, SCALP, SKULL, WM, CSF, CAUDATE, PUTAMEN, PALLIDUS, LESION = range(9)

#: label: (χ ppm, R2* 1/s, proton density a.u.)
TISSUES = {
    AIR: (9.4, 0.0, 0.0),
    SCALP: (0.0, 40.0, 0.9),
    SKULL: (-2.0, 300.0, 0.04),
    WM: (-0.03, 20.0, 0.75),
    CSF: (0.0, 2.0, 1.0),
    CAUDATE: (0.06, 25.0, 0.8),
    PUTAMEN: (0.08, 30.0, 0.8),
    PALLIDUS: (0.15, 45.0, 0.75),
    LESION: (None, 22.0, 0.85),
}

#: (centre mm, semi-axes mm) of each deep grey nucleus, both hemispheres.
NUCLEI = {
    CAUDATE: [((s * 17, 14, 8), (5, 10, 8)) for s in (-1, 1)],
    PUTAMEN: [((s * 30, 2, 0), (6, 14, 10)) for s in (-1, 1)],
    PALLIDUS: [((s * 22, -10, 0), (4, 6, 6)) for s in (-1, 1)],
}
VENTRICLES = [((-8, 8, 12), (5, 20, 8)), ((8, 8, 12), (5, 20, 8)), ((0, -10, 0), (2.5, 8, 7))]
#: (centre mm, radius mm, χ ppm relative to white matter) of each lesion.
LESIONS = [((-40, 20, 20), 5.0, 0.040), ((40, -30, 10), 5.0, 0.020),
           ((-35, -40, -15), 5.0, 0.030), ((30, 40, -20), 5.0, -0.010),
           ((0, 45, 30), 5.0, 0.050)]


@dataclass
class HeadPhantom:
    """Everything a test needs; maps have the grid's shape."""

    labels: np.ndarray  # int, see the label constants
    chi: np.ndarray  # ppm
    r2star: np.ndarray  # 1/s
    proton_density: np.ndarray
    field_ppm: np.ndarray  # δB/B0 of chi, ppm
    voxel_size: tuple
    affine: np.ndarray
    field_strength: float
    echo_times: np.ndarray = field(default=None)
    signal: np.ndarray = field(default=None)  # complex (X, Y, Z, E)
    lesions: list = field(default_factory=list)  # bool masks
    lesion_chi: list = field(default_factory=list)  # ppm relative to WM
    nuclei: dict = field(default_factory=dict)  # label -> bool mask

    @property
    def brain(self):
        return self.labels >= WM


def _ellipsoid(grids, centre, axes):
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, axes, strict=True)) <= 1


def head_phantom(voxel_size=(3.0, 3.0, 3.0), *, scale=1.0, ventricles=3, lesions=True,
                 field_strength=3.0, echo_times=None, snr=100.0, phase_offset=True,
                 margin_mm=12.0, rng=None):
    """Build a head phantom and (with ``echo_times``) its noisy complex multi-echo signal.

    Parameters
    ----------
    voxel_size : tuple of 3 float
        Voxel size in mm.
    scale : float
        Multiplies every length of the anatomy.
    ventricles : int
        How many of the 3 ventricles to include (0 for a brain without CSF).
    lesions : bool
        Include the white-matter lesions.
    field_strength : float
        B0 in T.
    echo_times : sequence of float, optional
        Echo times in s; with them the complex signal is simulated.
    snr : float
        White-matter magnitude at TE = 0 over the noise σ of one real channel.
    phase_offset : bool
        Add a smooth receiver phase offset (the initial phase the fit must absorb).
    margin_mm : float
        Air around the head in mm.
    rng : numpy.random.Generator, optional
        Noise generator (default seed 0).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    voxel_size = tuple(float(v) for v in voxel_size)
    outer = np.array([78.0, 93.0, 73.0]) * scale
    shape = tuple(int(np.ceil(2 * (a + margin_mm) / v)) for a, v in zip(outer, voxel_size,
                                                                         strict=True))
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel_size,
                                                                             strict=True)],
                        indexing='ij', sparse=True)
    labels = np.full(shape, AIR, np.int8)
    labels[_ellipsoid(grids, (0, 0, 0), outer)] = SCALP
    labels[_ellipsoid(grids, (0, 0, 0), np.array([72.0, 87.0, 67.0]) * scale)] = SKULL
    labels[_ellipsoid(grids, (0, 0, 0), np.array([65.0, 80.0, 60.0]) * scale)] = WM
    nuclei = {}
    for label, parts in NUCLEI.items():
        region = np.zeros(shape, bool)
        for centre, axes in parts:
            region |= _ellipsoid(grids, np.multiply(centre, scale), np.multiply(axes, scale))
        labels[region] = label
        nuclei[label] = region
    for centre, axes in VENTRICLES[:ventricles]:
        labels[_ellipsoid(grids, np.multiply(centre, scale), np.multiply(axes, scale))] = CSF
    chi = np.zeros(shape, np.float32)
    r2s = np.zeros(shape, np.float32)
    rho = np.zeros(shape, np.float32)
    for label, (x, r, p) in TISSUES.items():
        region = labels == label
        if x is not None:
            chi[region] = x
        r2s[region] = r
        rho[region] = p
    lesion_masks, lesion_chi = [], []
    if lesions:
        for centre, radius, dchi in LESIONS:
            region = _ellipsoid(grids, np.multiply(centre, scale), (radius * scale,) * 3)
            region &= labels == WM
            labels[region] = LESION
            chi[region] = TISSUES[WM][0] + dchi
            r2s[region] = TISSUES[LESION][1]
            rho[region] = TISSUES[LESION][2]
            lesion_masks.append(region)
            lesion_chi.append(dchi)
    for label in nuclei:
        nuclei[label] = labels == label
    field_ppm = forward_field(chi, voxel_size, pad=True)
    affine = np.diag(list(voxel_size) + [1.0])
    affine[:3, 3] = -np.multiply(voxel_size, np.array(shape) - 1) / 2
    phantom = HeadPhantom(labels=labels, chi=chi, r2star=r2s, proton_density=rho,
                          field_ppm=field_ppm, voxel_size=voxel_size, affine=affine,
                          field_strength=field_strength, lesions=lesion_masks,
                          lesion_chi=lesion_chi, nuclei=nuclei)
    if echo_times is not None:
        te = np.asarray(echo_times, dtype=float)
        phantom.echo_times = te
        phantom.signal = simulate_signal(phantom, te, snr=snr, phase_offset=phase_offset,
                                         rng=rng)
    return phantom


def simulate_signal(phantom, echo_times, *, snr=100.0, phase_offset=True, rng=None):
    """Complex GRE echoes ``ρ exp(-R2* TE) exp(i(φ0 + 2π γ B0 δB TE))`` plus Gaussian noise."""
    rng = np.random.default_rng(0) if rng is None else rng
    te = np.asarray(echo_times, dtype=float)
    shape = phantom.chi.shape
    freq_hz = GAMMA_HZ * phantom.field_strength * phantom.field_ppm * 1e-6
    if phase_offset:
        grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing='ij', sparse=True)
        phi0 = 0.6 * grids[0] - 0.4 * grids[1] + 0.3
    else:
        phi0 = np.zeros(shape)
    signal = np.empty(shape + (te.size,), np.complex64)
    sigma = TISSUES[WM][2] / snr
    for n, t in enumerate(te):
        clean = phantom.proton_density * np.exp(-phantom.r2star * t) * np.exp(
            1j * (phi0 + 2 * np.pi * freq_hz * t))
        noise = sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
        signal[..., n] = clean + noise
    return signal


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
