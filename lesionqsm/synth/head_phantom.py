"""A voxel head phantom with known χ, for testing and benchmarking the QSM chain.

An analytic head of ellipsoids (scalp, skull, optionally a layer of CSF, white matter, three
ventricles, caudate, putamen and globus pallidus in both hemispheres, five spherical
white-matter lesions) point-sampled on a regular grid, so that every region's true χ is
exact.  From it, :func:`head_phantom` makes:

- the true χ map (ppm, CSF = 0), the total field δB/B0 of every source and the local field
  of the sources inside the brain, with the space outside the grid taken as air (as around a
  real head; air at +9.4 ppm makes the background field wrap inside the brain);
- with ``echo_times``, the noisy complex multi-echo GRE signal
  ``ρ exp(-R2* TE) exp(i(φ0 + 2π γ B0 δB TE))`` (the input of
  :func:`lesionqsm.qsm.reconstruct_session`);
- with ``delta_te``, the inputs of the background-removal and dipole-inversion steps alone:
  total and local field in rad per echo spacing, a field noise map and a magnitude.

Array axes are x (left-right), y (posterior-anterior), z (inferior-superior, along B0);
lengths in mm.  This is not the synthetic cohort's anatomy (:mod:`lesionqsm.synth.phantom`):
that one has veins, a folded cortex and extracerebral CSF, painted on a fine grid and averaged
for partial volume; here every voxel is one tissue, so that a test can require, for example,
the CSF mask to be exactly the ventricles.

=============  ========  ========  ====
tissue         χ (ppm)   R2* (/s)  PD
=============  ========  ========  ====
air            +9.40     0         0
scalp          0.00      40        0.90
skull          -2.00     300       0.04
white matter   -0.030    20        0.75
(outer) CSF    0.00      2         1.00
caudate        +0.060    25        0.80
putamen        +0.080    30        0.80
pallidum       +0.150    45        0.75
lesion         WM + Δχ   22        0.85
=============  ========  ========  ====
"""

from dataclasses import dataclass, field

import numpy as np

from lesionqsm.lesions.regions import nawm_shell
from lesionqsm.qsm.constants import GAMMA_HZ, ppm_to_radians
from lesionqsm.qsm.dipole import forward_field
from lesionqsm.synth.phantom import Ellipsoid

#: Tissue names in label order; the label of a tissue is its index.  Labels from ``wm`` on
#: are brain; ``outer_csf`` is the CSF between brain and skull.
TISSUES = ('air', 'scalp', 'skull', 'outer_csf', 'wm', 'csf', 'caudate', 'putamen', 'pallidum',
           'lesion')
LABEL = {name: i for i, name in enumerate(TISSUES)}
#: χ relative to CSF (ppm; a lesion's is white matter's plus its Δχ), R2* (1/s), PD.
PROPERTIES = {
    'air': (9.4, 0.0, 0.0),
    'scalp': (0.0, 40.0, 0.9),
    'skull': (-2.0, 300.0, 0.04),
    'outer_csf': (0.0, 2.0, 1.0),
    'wm': (-0.03, 20.0, 0.75),
    'csf': (0.0, 2.0, 1.0),
    'caudate': (0.06, 25.0, 0.8),
    'putamen': (0.08, 30.0, 0.8),
    'pallidum': (0.15, 45.0, 0.75),
    'lesion': (None, 22.0, 0.85),
}
NUCLEI = ('caudate', 'putamen', 'pallidum')
#: Shapes at scale 1, painted in this order (a later one overwrites); deep grey nuclei in both
#: hemispheres, then the ventricles (lateral left, lateral right, third).
HEAD = (
    Ellipsoid('scalp', (0, 0, 0), (78, 93, 73)),
    Ellipsoid('skull', (0, 0, 0), (72, 87, 67)),
    Ellipsoid('wm', (0, 0, 0), (65, 80, 60)),
    *(Ellipsoid('caudate', (s * 17, 14, 8), (5, 10, 8)) for s in (-1, 1)),
    *(Ellipsoid('putamen', (s * 30, 2, 0), (6, 14, 10)) for s in (-1, 1)),
    *(Ellipsoid('pallidum', (s * 22, -10, 0), (4, 6, 6)) for s in (-1, 1)),
)
#: CSF between brain and skull (``outer_csf=True``): 4 mm thick, leaving 3 mm of skull.
OUTER_CSF = Ellipsoid('outer_csf', (0, 0, 0), (69, 84, 64))
VENTRICLES = (Ellipsoid('csf', (-8, 8, 12), (5, 20, 8)), Ellipsoid('csf', (8, 8, 12), (5, 20, 8)),
              Ellipsoid('csf', (0, -10, 0), (2.5, 8, 7)))
#: Spheres of 5 mm radius at scale 1 and their Δχ relative to white matter (ppm); each
#: lesion is the part of its sphere in white matter.
LESIONS = tuple((Ellipsoid('lesion', centre, (5.0, 5.0, 5.0)), dchi) for centre, dchi in (
    ((-40, 20, 20), 0.040), ((40, -30, 10), 0.020), ((-35, -40, -15), 0.030),
    ((30, 40, -20), -0.010), ((0, 45, 30), 0.050)))


@dataclass
class HeadPhantom:
    """One voxelised head phantom; every map has the grid's shape.

    Maps in rad (``total_field``, ``local_field``, ``noise_std``) and ``magnitude`` are set
    when the phantom was built with ``delta_te``; ``signal`` with ``echo_times``.
    """

    labels: np.ndarray  # uint8, index into TISSUES
    chi: np.ndarray  # true χ, ppm, CSF = 0
    r2star: np.ndarray  # 1/s
    proton_density: np.ndarray
    field_ppm: np.ndarray  # δB/B0 of every source (outside the grid: air), ppm
    voxel_size: tuple  # mm
    affine: np.ndarray  # voxel to world, mm
    field_strength: float  # T
    nuclei: dict = field(default_factory=dict)  # name -> bool mask, both hemispheres
    lesions: list = field(default_factory=list)  # bool masks
    lesion_chi: list = field(default_factory=list)  # Δχ relative to white matter, ppm
    echo_times: np.ndarray = None  # s
    signal: np.ndarray = None  # complex64 (X, Y, Z, E)
    delta_te: float = None  # s
    total_field: np.ndarray = None  # rad per ΔTE, with field noise if asked for
    local_field: np.ndarray = None  # rad per ΔTE, of the sources inside the brain, no noise
    noise_std: np.ndarray = None  # field noise σ, rad per ΔTE (0 where no signal)
    magnitude: np.ndarray = None  # T2*-weighted magnitude at TE = 4 ΔTE, with noise

    def region(self, name):
        """Boolean mask of one tissue of :data:`TISSUES`."""
        return self.labels == LABEL[name]

    @property
    def brain_mask(self):
        """White matter, ventricles, deep grey nuclei and lesions."""
        return self.labels >= LABEL['wm']

    @property
    def csf_mask(self):
        """The ventricles."""
        return self.region('csf')


def head_phantom(voxel_size=(3.0, 3.0, 3.0), *, scale=1.0, margin_mm=12.0, shape=None,
                 outer_csf=False, ventricles=3, lesions=True, uniform_brain=False,
                 field_strength=3.0, echo_times=None, snr=100.0, delta_te=None,
                 field_noise_rad=0.01, field_noise=True, rng=None):
    """Build the head phantom, its fields and (optionally) its GRE signal.

    Parameters
    ----------
    voxel_size : tuple of 3 float
        Voxel size in mm.
    scale : float
        Multiplies every length of the anatomy (1: a head of 156 × 186 × 146 mm).
    margin_mm : float
        Air between the head and the edge of the grid, mm (when ``shape`` is None).
    shape : tuple of 3 int, optional
        Matrix size; the head is centred in it (default: the head plus ``margin_mm``).
    outer_csf : bool
        Put a layer of CSF between brain and skull (else the brain touches the bone, as where
        a brain mask is tight).
    ventricles : int
        How many of the three ventricles to include, 0 for a brain without CSF.
    lesions : bool
        Include the white-matter lesions.
    uniform_brain : bool
        χ = 0 in white matter and CSF and Δχ in the lesions, so that the only sources in the
        brain are compact (deep grey nuclei, lesions).
    field_strength : float
        B0 in T.
    echo_times : sequence of float, optional
        Echo times in s; with them the complex signal is simulated.
    snr : float
        White-matter magnitude at TE = 0 over the noise σ of one real channel of the signal.
    delta_te : float, optional
        Echo spacing in s; with it the fields in rad and the field noise map are made.
    field_noise_rad : float
        Field noise σ in rad per ΔTE where the magnitude equals the mean brain magnitude,
        ∝ 1 / magnitude elsewhere: the map ``noise_std`` (0.01 rad at 3 T and ΔTE 4.5 ms is
        2.8 ppb of field).
    field_noise : bool
        Add that noise to ``total_field``.
    rng : numpy.random.Generator, optional
        Noise source (default ``default_rng(0)``); the signal's noise is drawn first.

    Returns
    -------
    HeadPhantom
    """
    rng = np.random.default_rng(0) if rng is None else rng
    voxel_size = tuple(float(v) for v in voxel_size)
    if shape is None:
        outer = np.multiply(HEAD[0].semi_axes, scale)
        shape = tuple(int(np.ceil(2 * (a + margin_mm) / v))
                      for a, v in zip(outer, voxel_size, strict=True))
    shape = tuple(int(n) for n in shape)
    affine = np.diag([*voxel_size, 1.0])
    affine[:3, 3] = -np.multiply(voxel_size, np.subtract(shape, 1)) / 2
    x, y, z = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v
                            for n, v in zip(shape, voxel_size, strict=True)],
                          indexing='ij', sparse=True)

    def inside(part):
        return Ellipsoid(part.tissue, tuple(np.multiply(part.centre, scale)),
                         tuple(np.multiply(part.semi_axes, scale))).inside(x, y, z)

    labels = np.full(shape, LABEL['air'], np.uint8)
    layer = (OUTER_CSF,) if outer_csf else ()
    for part in HEAD[:2] + layer + HEAD[2:] + VENTRICLES[:ventricles]:
        labels[inside(part)] = LABEL[part.tissue]
    lesion_masks, lesion_chi = [], []
    if lesions:
        for sphere, dchi in LESIONS:
            region = inside(sphere) & (labels == LABEL['wm'])
            labels[region] = LABEL['lesion']
            lesion_masks.append(region)
            lesion_chi.append(dchi)
    chi, r2s, rho = (np.array([np.nan if PROPERTIES[t][i] is None else PROPERTIES[t][i]
                               for t in TISSUES], np.float32)[labels] for i in range(3))
    wm_chi = 0.0 if uniform_brain else PROPERTIES['wm'][0]
    for region, dchi in zip(lesion_masks, lesion_chi, strict=True):
        chi[region] = wm_chi + dchi
    brain = labels >= LABEL['wm']
    if uniform_brain:
        chi[np.isin(labels, [LABEL['wm'], LABEL['csf']])] = 0.0
    # zero outside the grid is air, as around a real head: a uniform χ makes no field
    air = PROPERTIES['air'][0]
    phantom = HeadPhantom(
        labels=labels, chi=chi, r2star=r2s, proton_density=rho,
        field_ppm=forward_field(chi - air, voxel_size), voxel_size=voxel_size, affine=affine,
        field_strength=float(field_strength),
        nuclei={name: labels == LABEL[name] for name in NUCLEI},
        lesions=lesion_masks, lesion_chi=lesion_chi)
    if echo_times is not None:
        phantom.echo_times = np.asarray(echo_times, dtype=float)
        phantom.signal = _gre_signal(phantom, snr=snr, rng=rng)
    if delta_te is not None:
        _field_maps(phantom, brain, delta_te, field_noise_rad, rng, add_noise=field_noise)
    return phantom


def _gre_signal(phantom, *, snr, rng):
    """Complex GRE echoes ``ρ exp(-R2* TE) exp(i(φ0 + 2π γ B0 δB TE))`` plus Gaussian noise.

    φ0 is a smooth receiver phase offset (the initial phase a multi-echo fit absorbs).
    """
    shape = phantom.chi.shape
    freq_hz = GAMMA_HZ * phantom.field_strength * phantom.field_ppm * 1e-6
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing='ij', sparse=True)
    phi0 = 0.6 * g[0] - 0.4 * g[1] + 0.3
    sigma = PROPERTIES['wm'][2] / snr
    signal = np.empty(shape + (phantom.echo_times.size,), np.complex64)
    for n, te in enumerate(phantom.echo_times):
        clean = phantom.proton_density * np.exp(-phantom.r2star * te) * np.exp(
            1j * (phi0 + 2 * np.pi * freq_hz * te))
        signal[..., n] = clean + sigma * (rng.standard_normal(shape)
                                          + 1j * rng.standard_normal(shape))
    return signal


def _field_maps(phantom, brain, delta_te, noise_rad, rng, *, add_noise):
    """Set the fields in rad per ΔTE, the field noise map and the magnitude of a phantom.

    The magnitude is ρ exp(-R2* 4 ΔTE) plus Gaussian noise of σ = 1/40 of its brain mean.
    """
    to_rad = dict(field_strength=phantom.field_strength, delta_te=delta_te)
    clean = phantom.proton_density * np.exp(-phantom.r2star * 4 * delta_te)
    mean = float(clean[brain].mean())
    noise_std = np.where(clean > 0.02, noise_rad * mean / np.maximum(clean, 0.02), 0.0)
    total = ppm_to_radians(phantom.field_ppm.astype(np.float64), **to_rad)
    if add_noise:
        total = total + noise_std * rng.standard_normal(total.shape)
    local = forward_field(np.where(brain, phantom.chi, 0.0), phantom.voxel_size)
    magnitude = np.abs(clean + rng.normal(0.0, mean / 40.0, size=clean.shape))
    phantom.delta_te = float(delta_te)
    phantom.total_field = total.astype(np.float32)
    phantom.local_field = ppm_to_radians(local.astype(np.float64), **to_rad).astype(np.float32)
    phantom.noise_std = noise_std.astype(np.float32)
    phantom.magnitude = magnitude.astype(np.float32)


def roi_errors(chi_est, phantom, *, mask=None):
    """Region values of a χ map and their truth, in ppb, as the tests and benchmarks score them.

    Parameters
    ----------
    chi_est : ndarray
        Estimated χ, ppm, on the phantom's grid.
    phantom : HeadPhantom
    mask : bool ndarray, optional
        Where the estimate is defined (e.g. an eroded background-removal mask); default the
        phantom's brain.  Every region is cut to it.

    Returns
    -------
    dict of float ndarray, all in ppb
        ``wm_true``, ``wm_est``: white-matter median (one value each); ``nuclei_true``,
        ``nuclei_est``: mean of each nucleus of :data:`NUCLEI` as referenced in the maps (the
        truth's CSF is 0); ``lesion_true``: each lesion's Δχ to white matter;
        ``lesion_est``: lesion mean − white-matter median; ``lesion_est_nawm``: lesion
        mean − median of its 1-5 mm normal-appearing white-matter shell
        (:func:`lesionqsm.lesions.regions.nawm_shell`, the pipeline's reference); ``nrmse``:
        ||χ_est − χ_true|| / ||χ_true|| over the masked brain without CSF (one value).
    """
    mask = phantom.brain_mask if mask is None else mask
    wm = phantom.region('wm') & mask
    all_lesions = np.zeros(wm.shape, dtype=bool)
    for region in phantom.lesions:
        all_lesions |= region
    wm_est = float(np.median(chi_est[wm]))
    out = {'wm_true': np.median(phantom.chi[wm]), 'wm_est': wm_est,
           'nuclei_true': [phantom.chi[phantom.nuclei[n] & mask].mean() for n in NUCLEI],
           'nuclei_est': [chi_est[phantom.nuclei[n] & mask].mean() for n in NUCLEI],
           'lesion_true': phantom.lesion_chi, 'lesion_est': [], 'lesion_est_nawm': []}
    for region in phantom.lesions:
        mean = float(chi_est[region & mask].mean())
        nawm = nawm_shell(region, exclude=all_lesions | phantom.csf_mask, brain_mask=mask,
                          voxel_size=phantom.voxel_size)
        out['lesion_est'].append(mean - wm_est)
        out['lesion_est_nawm'].append(mean - float(np.median(chi_est[nawm])))
    out = {key: 1e3 * np.asarray(value, dtype=float) for key, value in out.items()}
    tissue = mask & ~phantom.csf_mask
    out['nrmse'] = float(np.linalg.norm((chi_est - phantom.chi)[tissue])
                         / np.linalg.norm(phantom.chi[tissue]))
    return out
