"""Piecewise-constant 3 T head phantom for background removal and MEDI+0 tests.

Geometry is defined in millimetres on a reference field of view of 144 × 144 × 96 mm (array
axes x = left-right, y = posterior-anterior, z = inferior-superior = B0); a smaller field of
view shrinks the axes that do not fit, a larger one leaves air around the head.  χ is in ppm
relative to water/CSF: brain tissue with literature values (ventricles 0), bone −2 ppm, air
+9.4 ppm in the sinus, ear canals and around the head, so the total field has a strong
background inside the brain.
"""

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from lesionqsm.lesions.regions import nawm_shell
from lesionqsm.qsm.constants import ppm_to_radians
from lesionqsm.qsm.dipole import forward_field

REFERENCE_FOV_MM = (144.0, 144.0, 96.0)

#: Susceptibility (ppm, CSF = 0) of the brain tissues, after Li W et al. NeuroImage 2011 and
#: Liu Z et al. MRM 2018 (MEDI+0) ROI values at 3 T.
CHI_PPM = {
    'wm': -0.030, 'gm': 0.005, 'csf': 0.0, 'gp': 0.190, 'putamen': 0.100, 'caudate': 0.080,
    'thalamus': 0.040, 'bone': -2.0, 'air': 9.4, 'scalp': 0.0,
}
#: T2*-weighted magnitude (arbitrary units) of each tissue.
MAGNITUDE = {
    'wm': 0.80, 'gm': 0.90, 'csf': 1.00, 'gp': 0.45, 'putamen': 0.65, 'caudate': 0.70,
    'thalamus': 0.75, 'lesion': 0.95, 'bone': 0.05, 'air': 0.0, 'scalp': 0.5,
}
#: Deep grey nuclei: (centre mm, semi-axes mm), each mirrored left/right.
NUCLEI = {
    'gp': ((16.0, 2.0, -4.0), (4.0, 7.0, 4.0)),
    'putamen': ((25.0, 4.0, -2.0), (4.5, 12.0, 7.0)),
    'caudate': ((15.0, 24.0, 8.0), (3.5, 5.0, 5.0)),
    'thalamus': ((9.0, -14.0, 0.0), (5.5, 9.0, 5.0)),
}
#: White-matter lesions: (centre mm, radius mm, χ relative to WM in ppb).
LESIONS = (
    ((-30.0, -30.0, 12.0), 4.0, -5.0),
    ((33.0, -25.0, 14.0), 3.5, 0.0),
    ((-30.0, 22.0, 16.0), 4.5, 5.0),
    ((30.0, 30.0, 10.0), 5.0, 10.0),
    ((-20.0, -42.0, 5.0), 5.5, 15.0),
    ((22.0, -44.0, -4.0), 6.0, 20.0),
    ((-36.0, 0.0, -10.0), 4.5, 30.0),
    ((34.0, 12.0, 14.0), 6.5, 40.0),
)


@dataclass
class HeadPhantom:
    """Arrays of one phantom; fields in rad per ΔTE, χ in ppm."""

    chi: np.ndarray  # total χ, ppm
    brain_mask: np.ndarray
    csf_mask: np.ndarray
    magnitude: np.ndarray
    noise_std: np.ndarray  # field noise σ, rad per ΔTE (0 outside the head)
    total_field: np.ndarray  # with noise
    local_field: np.ndarray  # truth: field of the sources inside the brain mask, no noise
    labels: dict = field(default_factory=dict)  # name -> bool mask
    lesions: list = field(default_factory=list)  # (bool mask, Δχ vs WM in ppb)
    voxel_size: tuple = (1.5, 1.5, 1.5)
    field_strength: float = 3.0
    delta_te: float = 4.5e-3


def _ellipsoid(coords, centre, semi):
    return sum(((c - c0) / s) ** 2 for c, c0, s in zip(coords, centre, semi, strict=True)) <= 1


def head_phantom(shape=(96, 96, 64), voxel_size=(1.5, 1.5, 1.5), *, rng=None,
                 noise_std_rad=0.01, magnitude_snr=40.0, field_strength=3.0, delta_te=4.5e-3,
                 b0_dir=(0.0, 0.0, 1.0), lesions=True, field_noise=True, uniform_brain=False):
    """Build the head phantom and its noisy total field.

    Parameters
    ----------
    shape, voxel_size : tuple of 3
        Matrix and voxel size (mm); axes of the reference geometry larger than the FOV shrink.
    rng : numpy.random.Generator, optional
        Noise source (``default_rng(0)`` if None).
    noise_std_rad : float
        Field noise σ in rad per ΔTE where the magnitude equals the mean brain magnitude;
        σ ∝ 1 / magnitude elsewhere (0.01 rad at 3 T, ΔTE 4.5 ms is 2.8 ppb of field).
    magnitude_snr : float
        Mean brain magnitude over the Gaussian magnitude noise σ.
    field_strength, delta_te : float
        B0 (T) and echo spacing (s).
    b0_dir : tuple of 3 float
        B0 direction in array axes.
    lesions : bool
        Include the white-matter lesions.
    field_noise : bool
        Add the field noise (``noise_std`` is returned either way).
    uniform_brain : bool
        Set WM, GM and CSF inside the brain to χ = 0 (lesions to their Δχ), so the only
        sources inside the brain are compact (nuclei, lesions): the background-removal test.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    scale = [min(1.0, n * v / ref)
             for n, v, ref in zip(shape, voxel_size, REFERENCE_FOV_MM, strict=True)]
    coords = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v / s
                           for n, v, s in zip(shape, voxel_size, scale, strict=True)],
                         indexing='ij', sparse=True)
    head = _ellipsoid(coords, (0, 0, 0), (66.0, 71.0, 47.0))
    skull = _ellipsoid(coords, (0, 0, 0), (62.0, 69.0, 44.0))
    skull_inner = _ellipsoid(coords, (0, 0, 0), (58.0, 66.0, 41.0))
    brain = _ellipsoid(coords, (0, 0, 0), (55.0, 64.0, 38.0))
    inner_gm = _ellipsoid(coords, (0, 0, 0), (51.0, 60.0, 34.0))
    chi = np.full(shape, CHI_PPM['air'], dtype=np.float64)
    mag = np.zeros(shape, dtype=np.float64)
    names = {}

    def paint(region, name, magnitude_name=None):
        chi[region] = CHI_PPM[name]
        mag[region] = MAGNITUDE[magnitude_name or name]

    paint(head, 'scalp')
    paint(skull & ~skull_inner, 'bone')
    paint(skull_inner & ~brain, 'csf')  # subarachnoid CSF between brain and skull
    sinus = _ellipsoid(coords, (0, 52.0, -38.0), (13.0, 9.0, 7.0)) & ~brain
    ears = (_ellipsoid(coords, (-50.0, 5.0, -30.0), (5.0, 5.0, 5.0))
            | _ellipsoid(coords, (50.0, 5.0, -30.0), (5.0, 5.0, 5.0))) & ~brain
    paint(sinus | ears, 'air')
    paint(brain, 'gm')
    paint(inner_gm, 'wm')
    names['gm'] = brain & ~inner_gm
    for name, (centre, semi) in NUCLEI.items():
        region = np.zeros(shape, dtype=bool)
        for side in (-1, 1):
            region |= _ellipsoid(coords, (side * centre[0], centre[1], centre[2]), semi)
        paint(region, name)
        names[name] = region
    ventricles = (_ellipsoid(coords, (-8.0, 5.0, 10.0), (5.0, 22.0, 7.0))
                  | _ellipsoid(coords, (8.0, 5.0, 10.0), (5.0, 22.0, 7.0)))
    paint(ventricles, 'csf')
    names['csf'] = ventricles
    for name in NUCLEI:
        names[name] &= ~ventricles
    lesion_list = []
    if lesions:
        for centre, radius, dchi_ppb in LESIONS:
            region = _ellipsoid(coords, centre, (radius,) * 3) & inner_gm
            chi[region] = CHI_PPM['wm'] + dchi_ppb * 1e-3
            mag[region] = MAGNITUDE['lesion']
            lesion_list.append((region, dchi_ppb))
    wm = inner_gm & ~ventricles
    for name in NUCLEI:
        wm &= ~names[name]
    for region, _ in lesion_list:
        wm &= ~region
    names['wm'] = wm
    if uniform_brain:
        compact = np.zeros(shape, dtype=bool)
        for name in NUCLEI:
            compact |= names[name]
        chi[brain & ~compact] = 0.0
        for region, dchi_ppb in lesion_list:
            chi[region] = dchi_ppb * 1e-3

    mean_mag = mag[brain].mean()
    magnitude = mag + rng.normal(0.0, mean_mag / magnitude_snr, size=shape)
    magnitude = np.abs(magnitude).astype(np.float32)
    with np.errstate(divide='ignore'):
        noise_std = np.where(mag > 0.02, noise_std_rad * mean_mag / np.maximum(mag, 0.02), 0.0)
    # the forward model is referenced to air (0 outside the field of view = air, as around a
    # real head); a uniform offset of χ creates no field, so this only removes the spurious
    # field of a box of air embedded in water that the CSF reference would imply
    field_ppm = forward_field(chi - CHI_PPM['air'], voxel_size, b0_dir=b0_dir)
    local_ppm = forward_field(np.where(brain, chi, 0.0), voxel_size, b0_dir=b0_dir)
    to_rad = dict(field_strength=field_strength, delta_te=delta_te)
    total = ppm_to_radians(field_ppm.astype(np.float64), **to_rad)
    if field_noise:
        total = total + noise_std * rng.standard_normal(shape)
    local = ppm_to_radians(local_ppm.astype(np.float64), **to_rad)
    return HeadPhantom(
        chi=chi.astype(np.float32), brain_mask=brain, csf_mask=ventricles & brain,
        magnitude=magnitude, noise_std=noise_std.astype(np.float32),
        total_field=total.astype(np.float32), local_field=local.astype(np.float32),
        labels=names, lesions=lesion_list, voxel_size=tuple(voxel_size),
        field_strength=field_strength, delta_te=delta_te,
    )


def roi_errors(chi_est, phantom, *, shell_mm=5.0):
    """Per-ROI estimates against the truth, all relative to the phantom's WM mean, in ppb.

    Returns
    -------
    dict with ``lesion_true``, ``lesion_est`` (lesion mean − WM mean), ``lesion_est_shell``
    (lesion mean − mean of the WM within ``shell_mm`` of the lesion), ``lesion_est_nawm``
    (lesion mean − median of the 1-5 mm NAWM shell of
    :func:`lesionqsm.lesions.regions.nawm_shell`, the pipeline's reference), all with
    truth ``lesion_true``; ``nuclei_true``,
    ``nuclei_est`` (nucleus mean − CSF mean, the MEDI+0 reference), and ``nrmse`` (whole-brain
    ||χ_est − χ_true|| / ||χ_true|| inside the brain mask, both CSF-referenced).
    """
    wm = phantom.labels['wm']
    csf = phantom.csf_mask
    wm_est = chi_est[wm].mean()
    wm_true = phantom.chi[wm].mean()
    out = {'lesion_true': [], 'lesion_est': [], 'lesion_est_shell': [], 'lesion_est_nawm': [],
           'nuclei_true': [], 'nuclei_est': []}
    all_lesions = np.zeros(wm.shape, dtype=bool)
    for region, _ in phantom.lesions:
        all_lesions |= region
    ball = _ellipsoid(np.meshgrid(*[np.arange(-4, 5) * v for v in phantom.voxel_size],
                                  indexing='ij', sparse=True), (0, 0, 0), (shell_mm,) * 3)
    for region, _ in phantom.lesions:
        out['lesion_true'].append(1e3 * (phantom.chi[region].mean() - wm_true))
        out['lesion_est'].append(1e3 * (chi_est[region].mean() - wm_est))
        shell = ndi.binary_dilation(region, structure=ball) & wm
        out['lesion_est_shell'].append(1e3 * (chi_est[region].mean() - chi_est[shell].mean()))
        nawm = nawm_shell(region, exclude=all_lesions | csf, brain_mask=phantom.brain_mask,
                          voxel_size=phantom.voxel_size)
        out['lesion_est_nawm'].append(1e3 * (chi_est[region].mean()
                                             - np.median(chi_est[nawm])))
    for name in NUCLEI:
        region = phantom.labels[name]
        out['nuclei_true'].append(1e3 * (phantom.chi[region].mean() - phantom.chi[csf].mean()))
        out['nuclei_est'].append(1e3 * (chi_est[region].mean() - chi_est[csf].mean()))
    brain = phantom.brain_mask
    truth = phantom.chi[brain] - phantom.chi[csf].mean()
    est = chi_est[brain] - chi_est[csf].mean()
    out['nrmse'] = float(np.linalg.norm(est - truth) / np.linalg.norm(truth))
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in out.items()}
