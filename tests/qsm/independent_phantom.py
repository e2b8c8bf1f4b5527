"""Head phantoms simulated by an independent forward model (qsm-forward), and their scoring.

The tissue maps (χ, M0, R1, R2*, brain mask, segmentation) are built here in millimetres and
written as NIfTI files; ``qsm_forward.generate_bids`` turns them into multi-echo magnitude and
phase images with its own dipole kernel (2x zero-padded, padded with the corner χ), its own
second-order shim, its own quadratic phase offset, SPGR signal equation, k-space cropping
(when the tissue grid is finer than the acquisition) and complex noise at a peak SNR.  Nothing
here uses :mod:`lesionqsm.synth` or the project's forward model, so the accuracy tests score
the chain against a truth it did not make.

Geometry (scale 1, mm, array axes x = left-right, y = posterior-anterior, z = inferior-superior
= B0): an ellipsoidal brain (semi-axes 68, 82, 58 mm) with a gyral ripple on its surface, a
3 mm cortical ribbon, lateral and third ventricles (χ = 0, the reference), caudate, putamen,
globus pallidus, thalamus and red nucleus, deep white-matter lesions, juxtacortical lesions
(edge within 3 mm of the cortex) and a lesion with a paramagnetic rim.  With ``air_skull``
the brain sits in a 1.5 mm dural layer, 6 mm of bone, 6 mm of scalp, with a frontal sinus and
two ear canals (air) and air around the head; without it the layers are thinner (1.5, 3 and
3 mm, so the magnitude still shows a dark gap between brain and scalp, which the chain's mask
relies on as with real data) and everything outside the brain has χ = 0: no background
sources.  ``scale`` shrinks the brain and moves the structures with it (their sizes, the
cortex and the skull stay as in an adult) to keep matrices small.
"""

import glob
import os
from dataclasses import dataclass, field, replace

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi

from lesionqsm.lesions import regions

# segmentation labels (lesions are LESION_BASE + index)
OUTSIDE, WM, GM, CSF, CAUDATE, PUTAMEN, PALLIDUM, THALAMUS, RED_NUCLEUS = range(9)
DURA, BONE, SCALP, AIR = 10, 11, 12, 13
LESION_BASE = 100
NUCLEI = (CAUDATE, PUTAMEN, PALLIDUM, THALAMUS, RED_NUCLEUS)

#: χ (ppm, relative to CSF), M0 (a.u.), R1 (1/s), R2* at 3 T (1/s) per tissue.
TISSUE = {
    WM: (-0.025, 0.70, 1.00, 21.0),
    GM: (0.010, 0.85, 0.70, 16.0),
    CSF: (0.0, 1.00, 0.30, 2.0),
    CAUDATE: (0.065, 0.80, 0.85, 24.0),
    PUTAMEN: (0.045, 0.80, 0.85, 27.0),
    PALLIDUM: (0.150, 0.65, 0.95, 45.0),
    THALAMUS: (0.025, 0.75, 0.90, 22.0),
    RED_NUCLEUS: (0.110, 0.65, 0.95, 40.0),
    DURA: (0.0, 0.25, 0.50, 25.0),
    BONE: (-2.2, 0.04, 1.50, 350.0),
    SCALP: (0.0, 0.60, 2.50, 30.0),
    AIR: (9.4, 0.0, 0.10, 0.0),
}
LESION_TISSUE = (0.85, 0.80, 17.0)  # M0, R1, R2* (3 T); χ is per lesion

#: Deep grey nuclei at scale 1: label, centre (mm), semi-axes (mm); mirrored left/right
#: except the ones on the midline.
NUCLEUS_SHAPES = (
    (CAUDATE, (15.0, 14.0, 8.0), (3.5, 8.0, 6.0)),
    (PUTAMEN, (26.0, 2.0, 0.0), (4.5, 12.0, 8.0)),
    (PALLIDUM, (18.5, -1.0, -2.0), (3.0, 6.0, 4.5)),
    (THALAMUS, (9.0, -17.0, 3.0), (5.5, 9.0, 6.0)),
    (RED_NUCLEUS, (4.5, -24.0, -13.0), (3.0, 3.0, 3.0)),
)
VENTRICLES = (((7.0, 4.0, 12.0), (3.5, 22.0, 7.0)), ((-7.0, 4.0, 12.0), (3.5, 22.0, 7.0)),
              ((0.0, -5.0, 0.0), (1.5, 10.0, 6.0)))
#: Deep white-matter lesions: centre (mm), radius (mm), χ relative to WM (ppb).
DEEP_LESIONS = (
    ((-24.0, -12.0, 30.0), 5.0, 30.0),
    ((-26.0, 24.0, 26.0), 4.5, 15.0),
    ((22.0, 30.0, 24.0), 4.5, -6.0),
    ((-18.0, -40.0, 14.0), 5.0, 20.0),
    ((32.0, -34.0, 10.0), 4.0, 8.0),
)
#: Lesion with a paramagnetic rim: centre, radius, core and rim χ relative to WM (ppb), rim mm.
RIM_LESION = ((24.0, -8.0, 32.0), 6.0, 5.0, 45.0, 1.5)
#: Juxtacortical lesions: direction from the centre, radius (mm), χ relative to WM (ppb); the
#: lesion's edge lies 1 mm below the cortex's inner boundary.
JUXTACORTICAL_LESIONS = (
    ((0.2, 1.0, 0.35), 4.0, 25.0),
    ((-1.0, -0.2, 0.4), 4.0, 12.0),
    ((0.8, -0.5, 0.9), 3.5, 35.0),
    ((-0.3, -1.0, 0.3), 4.0, -5.0),
)
CORTEX_MM = 3.0


#: The phantoms of the default test run (tests/qsm/test_independent_accuracy.py): between them
#: every resolution, both field strengths, both ends of the SNR range and the brain with and
#: without air and skull around it, on matrices small enough for CI.
TEST_PHANTOMS = {
    '1.5mm-3T-skull-snr100': dict(voxel_size=(1.5, 1.5, 1.5), field_strength=3.0,
                                  air_skull=True, peak_snr=100.0, n_echoes=8, scale=0.75,
                                  seed=1),
    '1mm-7T-snr200': dict(voxel_size=(1.0, 1.0, 1.0), field_strength=7.0, air_skull=False,
                          peak_snr=200.0, n_echoes=6, scale=0.45, seed=2),
    '0.6x0.6x2mm-3T-snr50': dict(voxel_size=(0.6, 0.6, 2.0), field_strength=3.0,
                                 air_skull=False, peak_snr=50.0, n_echoes=8, scale=0.45, seed=3),
}


@dataclass
class Lesion:
    """One lesion of the phantom: label in the segmentation, kind and true contrast (ppb)."""

    label: int
    kind: str  # 'deep', 'juxtacortical' or 'rim'
    contrast_ppb: float  # nominal χ relative to WM (mean over the lesion for the rim lesion)


@dataclass
class IndependentPhantom:
    """What the chain gets (echoes, echo times, field, affine) and what it is scored against."""

    signal: np.ndarray  # complex64, (X, Y, Z, E)
    echo_times: np.ndarray  # s
    field_strength: float  # T
    affine: np.ndarray  # voxel to world, mm
    chi: np.ndarray  # simulator's truth at the acquisition resolution, ppm (CSF = 0)
    labels: np.ndarray  # segmentation at the acquisition resolution (nearest neighbour)
    field_ppm: np.ndarray  # noise-free field the echoes carry (shimmed, before the phase offset)
    voxel_size: tuple
    lesions: list = field(default_factory=list)
    description: str = ''


def _grid(shape, voxel_size):
    return np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * v
                         for n, v in zip(shape, voxel_size, strict=True)],
                       indexing='ij', sparse=True)


def _ellipsoid(coords, centre, semi):
    return sum(((c - c0) / s) ** 2 for c, c0, s in zip(coords, centre, semi, strict=True)) <= 1.0


def tissue_maps(voxel_size, *, scale=0.75, air_skull=True, field_strength=3.0):
    """Tissue maps of the head on a grid of ``voxel_size`` mm.

    Returns
    -------
    maps : dict
        ``chi`` (ppm), ``M0``, ``R1`` (1/s), ``R2star`` (1/s), ``mask`` (brain), ``seg``
        (labels), float32 or int16 arrays of one shape.
    lesions : list of Lesion
    """
    voxel_size = tuple(float(v) for v in voxel_size)
    brain_semi = np.array([68.0, 82.0, 58.0]) * scale
    # without air and skull the head keeps its layers in the magnitude (the mask needs a dark
    # gap between brain and scalp, as in real data) but has χ = 0 outside the brain
    layers = ((DURA, 1.5), (BONE, 7.5), (SCALP, 13.5)) if air_skull else (
        (DURA, 1.5), (BONE, 4.5), (SCALP, 7.5))
    shell = layers[-1][1]
    extent = brain_semi * 1.04 + shell + 3.0
    shape = tuple(int(2 * np.ceil(e / v)) for e, v in zip(extent, voxel_size, strict=True))
    x, y, z = _grid(shape, voxel_size)
    xs, ys, zs = x / brain_semi[0], y / brain_semi[1], z / brain_semi[2]
    rho = np.sqrt(xs**2 + ys**2 + zs**2)
    phi = np.arctan2(ys, xs)
    theta = np.arccos(np.clip(zs / np.maximum(rho, 1e-9), -1, 1))
    brain = rho <= 1.0 + 0.03 * np.sin(6 * phi) * np.sin(5 * theta)
    brain = ndi.binary_opening(brain, iterations=1)

    def s(v):
        return tuple(scale * np.asarray(v, dtype=float))

    seg = np.zeros(shape, np.int16)
    seg[brain] = WM
    depth = ndi.distance_transform_edt(brain, sampling=voxel_size)  # mm to the outside
    seg[brain & (depth <= CORTEX_MM)] = GM
    coords = (x, y, z)
    for label, centre, semi in NUCLEUS_SHAPES:
        for sign in (1, -1):
            c = (sign * centre[0],) + tuple(centre[1:])
            seg[_ellipsoid(coords, s(c), semi) & brain] = label
    for centre, semi in VENTRICLES:
        seg[_ellipsoid(coords, s(centre), (semi[0], scale * semi[1], semi[2])) & brain] = CSF

    lesion_chi = {}
    lesions = []
    label = LESION_BASE
    for centre, radius, dchi in DEEP_LESIONS:
        region = _ellipsoid(coords, s(centre), (radius,) * 3) & (seg == WM)
        seg[region] = label
        lesion_chi[label] = dchi
        lesions.append(Lesion(label, 'deep', dchi))
        label += 1
    # rim lesion: mean contrast over its volume is the truth the chain should report
    centre, radius, core, rim, rim_mm = RIM_LESION
    dist = np.sqrt(sum((c - c0) ** 2 for c, c0 in zip(coords, s(centre), strict=True)))
    region = (dist <= radius) & (seg == WM)
    seg[region] = label
    rim_part = region & (dist > radius - rim_mm)
    lesions.append(Lesion(label, 'rim', float(
        (core * (region & ~rim_part).sum() + rim * rim_part.sum()) / region.sum())))
    rim_label = label
    label += 1
    for direction, radius, dchi in JUXTACORTICAL_LESIONS:
        r = radius
        u = np.asarray(direction, float) / np.linalg.norm(direction)
        target = CORTEX_MM + 1.0 + r  # lesion edge 1 mm below the cortex
        point = None
        for t in np.arange(0.0, 1.2 * brain_semi.max(), min(voxel_size) / 2):
            p = (1.2 * brain_semi.max() - t) * u
            idx = tuple(int(round(pi / v + (n - 1) / 2.0))
                        for pi, v, n in zip(p, voxel_size, shape, strict=True))
            if not all(0 <= i < n for i, n in zip(idx, shape, strict=True)):
                continue
            if depth[idx] >= target:
                point = p
                break
        region = _ellipsoid(coords, point, (r,) * 3) & (seg == WM)
        seg[region] = label
        lesion_chi[label] = dchi
        lesions.append(Lesion(label, 'juxtacortical', dchi))
        label += 1

    scale_r2 = 1.0 if field_strength <= 3.0 else field_strength / 3.0 * 0.8
    chi = np.zeros(shape, np.float32)
    m0 = np.zeros(shape, np.float32)
    r1 = np.full(shape, 0.1, np.float32)
    r2s = np.zeros(shape, np.float32)
    outside = ndi.distance_transform_edt(~brain, sampling=voxel_size)
    lo = 0.0
    for tissue, hi in layers:
        seg[(~brain) & (outside > lo) & (outside <= hi)] = tissue
        lo = hi
    seg[(~brain) & (outside > shell)] = AIR
    head = seg != AIR
    if air_skull:
        for centre, semi in (((0.0, 60.0, -44.0), (13.0, 9.0, 9.0)),
                             ((70.0, 0.0, -26.0), (9.0, 4.5, 4.5)),
                             ((-70.0, 0.0, -26.0), (9.0, 4.5, 4.5))):
            cavity = _ellipsoid(coords, s(centre), s(semi)) & (outside > 2.5) & head
            seg[cavity] = AIR
    for tissue, (x_ppm, m, rr1, rr2) in TISSUE.items():
        region = seg == tissue
        chi[region], m0[region], r1[region] = x_ppm, m, rr1
        r2s[region] = rr2 * (1.0 if tissue in (CSF, AIR) else scale_r2)
    if not air_skull:
        chi[~brain] = 0.0
    wm_chi = TISSUE[WM][0]
    for les in lesions:
        region = seg == les.label
        m0[region], r1[region] = LESION_TISSUE[0], LESION_TISSUE[1]
        r2s[region] = LESION_TISSUE[2] * scale_r2
        if les.label == rim_label:
            chi[region & ~rim_part] = wm_chi + core * 1e-3
            chi[rim_part] = wm_chi + rim * 1e-3
        else:
            chi[region] = wm_chi + lesion_chi[les.label] * 1e-3
    maps = {'chi': chi, 'M0': m0, 'R1': r1, 'R2star': r2s, 'mask': brain.astype(np.float32),
            'seg': seg.astype(np.float32)}
    return maps, lesions


def simulate(workdir, *, voxel_size=(1.5, 1.5, 1.5), field_strength=3.0, air_skull=True,
             peak_snr=100.0, n_echoes=10, first_te=None, delta_te=None, scale=0.75,
             oversample=1, seed=0, tilt_deg=0.0):
    """Simulate one visit with qsm-forward from tissue maps written as NIfTI in ``workdir``.

    Parameters
    ----------
    workdir : path
        Empty directory for the tissue maps and the BIDS output of qsm-forward.
    voxel_size : tuple of 3 float
        Acquisition voxel size, mm.
    field_strength : float
        B0, T (3 or 7).
    air_skull : bool
        Air, bone, sinus and ear canals around the brain (the realistic background field).
    peak_snr : float
        Peak SNR of each echo (qsm-forward's definition: max |signal| / noise σ).
    n_echoes : int
        Number of echoes.
    first_te, delta_te : float, optional
        Echo times in s; default 4 ms and 4 ms at 3 T, 3 ms and 2.5 ms at 7 T.
    scale : float
        Size of the anatomy relative to an adult brain (smaller = smaller matrix).
    oversample : int
        The tissue maps are drawn on a grid this many times finer on each axis, and
        qsm-forward crops k-space to the acquisition grid (partial volume, Gibbs ringing).
    seed : int
        Noise seed.
    tilt_deg : float
        Obliquity of the acquisition, degrees: the slices are tilted about the first array
        axis, so B0 lies along ``(0, sin, cos)`` of the tilt in array axes; qsm-forward writes
        the same rotation into the images' affine, as an oblique scan's header has it.

    Returns
    -------
    IndependentPhantom
    """
    import qsm_forward

    os.makedirs(workdir, exist_ok=True)
    voxel_size = tuple(float(v) for v in voxel_size)
    fine = tuple(v / oversample for v in voxel_size)
    maps, lesions = tissue_maps(fine, scale=scale, air_skull=air_skull,
                                field_strength=field_strength)
    affine = np.diag(list(fine) + [1.0])
    names = {}
    for key, data in maps.items():
        names[key] = f'{key}.nii.gz'
        img = nib.Nifti1Image(data, affine)
        img.header.set_zooms(fine)
        nib.save(img, os.path.join(workdir, names[key]))
    if first_te is None:
        first_te = 0.004 if field_strength <= 3.0 else 0.003
    if delta_te is None:
        delta_te = 0.004 if field_strength <= 3.0 else 0.0025
    echo_times = first_te + delta_te * np.arange(n_echoes)
    tissue = qsm_forward.TissueParams(root_dir=workdir, chi=names['chi'], M0=names['M0'],
                                      R1=names['R1'], R2star=names['R2star'],
                                      mask=names['mask'], seg=names['seg'])
    tilt = np.deg2rad(tilt_deg)
    recon = qsm_forward.ReconParams(voxel_size=np.array(voxel_size), B0=field_strength,
                                    B0_dir=np.array([0.0, np.sin(tilt), np.cos(tilt)]),
                                    TEs=echo_times, TR=0.05, flip_angle=15,
                                    peak_snr=peak_snr, random_seed=seed, subject='1')
    bids = os.path.join(workdir, 'bids')
    _quiet(qsm_forward.generate_bids, tissue_params=tissue, recon_params=recon,
           bids_dir=bids, save_shimmed_field=True)
    anat = os.path.join(bids, 'sub-1', 'anat')
    echoes = []
    for i in range(1, n_echoes + 1):
        mag = nib.load(glob.glob(os.path.join(anat, f'*echo-{i}_part-mag_MEGRE.nii'))[0])
        phase = nib.load(glob.glob(os.path.join(anat, f'*echo-{i}_part-phase_MEGRE.nii'))[0])
        echoes.append(mag.get_fdata(dtype=np.float32) * np.exp(1j * phase.get_fdata(
            dtype=np.float32)))
        out_affine = mag.affine
    deriv = os.path.join(bids, 'derivatives', 'qsm-forward', 'sub-1', 'anat')
    chi = nib.load(glob.glob(os.path.join(deriv, '*_Chimap.nii'))[0]).get_fdata(
        dtype=np.float32)
    labels = np.rint(nib.load(glob.glob(os.path.join(deriv, '*_dseg.nii'))[0]).get_fdata(
        dtype=np.float32)).astype(np.int16)
    field_ppm = nib.load(glob.glob(os.path.join(deriv, '*_desc-shimmed_fieldmap.nii'))[0]
                         ).get_fdata(dtype=np.float32)
    description = (f'{"x".join(f"{v:g}" for v in voxel_size)} mm, {field_strength:g} T, '
                   f'{"air/skull" if air_skull else "no air/skull"}, SNR {peak_snr:g}, '
                   f'{n_echoes} echoes, scale {scale:g}, matrix {chi.shape}')
    return IndependentPhantom(signal=np.stack(echoes, axis=-1).astype(np.complex64),
                              echo_times=echo_times, field_strength=float(field_strength),
                              affine=out_affine, chi=chi, labels=labels,
                              field_ppm=field_ppm, voxel_size=voxel_size, lesions=lesions,
                              description=description)


def slab(phantom, first, stop):
    """The same head acquired as a slab: slices ``first:stop`` (array axis 2) of every map.

    The echoes keep the field of the whole head, the sources outside the slab included, as a
    scanner's would; the affine moves to the first kept slice.
    """
    kept = (slice(None), slice(None), slice(first, stop))
    affine = phantom.affine.copy()
    affine[:3, 3] = phantom.affine[:3, :3] @ np.array([0.0, 0.0, first]) + phantom.affine[:3, 3]
    return replace(phantom, signal=np.ascontiguousarray(phantom.signal[kept]),
                   chi=phantom.chi[kept], labels=phantom.labels[kept],
                   field_ppm=phantom.field_ppm[kept], affine=affine,
                   description=f'{phantom.description}, slices {first}-{stop - 1} only')


def brain_tissue(labels):
    """True brain tissue of a label map: not outside the head, not dura, bone, scalp or air;
    lesions included."""
    return ((labels != OUTSIDE) & (labels < DURA)) | (labels >= LESION_BASE)


def _quiet(func, **kwargs):
    """qsm-forward prints its progress; keep the test output readable."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return func(**kwargs)


def run_chain(ph, method=None, options=None):
    """The chain from the echoes, with its own mask: :func:`lesionqsm.qsm.reconstruct_session`
    with its default options, or with background ``method`` (one of
    :data:`lesionqsm.qsm.background_methods.METHODS`) and other ``options`` (a ``qsm``
    config section).

    Returns
    -------
    chi : float32 ndarray
        χ in ppm.
    chi_mask, brain_mask : bool ndarray
        Where χ is defined; the chain's brain mask.
    timings : dict
        Seconds per step.
    reconstruction : lesionqsm.qsm.pipeline.SessionReconstruction
        Every map of the chain (``local_mask``, ``reliable_mask``, ...).
    """
    from lesionqsm.qsm.pipeline import reconstruct_session

    options = dict(options or {})
    if method is not None:
        options['background'] = method
    r = reconstruct_session(ph.signal, ph.echo_times, field_strength=ph.field_strength,
                            affine=ph.affine, options=options)
    return r.chi_ppm, r.local_mask, r.brain_mask, dict(r.timings), r


def true_field_rad(phantom, mask, delta_te, *, sources='inside'):
    """The field, inside ``mask``, of the phantom's true χ inside (or outside) ``mask``.

    Parameters
    ----------
    phantom : IndependentPhantom
    mask : bool ndarray
        Usually the chain's brain mask.
    delta_te : float
        Echo spacing of the chain's field, s.
    sources : {'inside', 'outside'}
        ``'inside'``: the true local field of ``mask``; ``'outside'``: its true background
        field.

    Returns
    -------
    float32 ndarray
        Radians per echo spacing, computed by the project's forward model
        (:func:`lesionqsm.qsm.dipole.forward_field`), 0 outside ``mask``.
    """
    from lesionqsm.qsm.constants import ppm_to_radians
    from lesionqsm.qsm.dipole import forward_field
    from lesionqsm.qsm.geometry import b0_direction

    if sources not in ('inside', 'outside'):
        raise ValueError(f"sources must be 'inside' or 'outside', got {sources!r}")
    source_region = mask if sources == 'inside' else ~mask
    chi = np.where(source_region, phantom.chi, 0)
    field = forward_field(chi, phantom.voxel_size, b0_dir=b0_direction(phantom.affine))
    field = ppm_to_radians(field, field_strength=phantom.field_strength, delta_te=delta_te)
    return np.where(mask, field, 0).astype(np.float32)


def scored_tissue(brain_mask, labels):
    """The voxels the NRMSE is taken over: the chain's brain mask ∩ true brain tissue (not
    outside the head, not dura, bone, scalp or air; lesions included)."""
    return brain_mask & brain_tissue(labels)


def score(chi_est, chi_mask, brain_mask, phantom, reliable_mask=None):
    """Accuracy figures of a χ map (ppm) against the simulator's truth.

    Parameters
    ----------
    chi_est : ndarray
        Estimated χ in ppm (CSF-referenced by the chain), 0 outside ``chi_mask``.
    chi_mask : bool ndarray
        Voxels where the chain defines χ.
    brain_mask : bool ndarray
        The chain's brain mask (before any erosion by the background step).
    phantom : IndependentPhantom
    reliable_mask : bool ndarray, optional
        The chain's ``reliable_mask``: adds ``nrmse_reliable``, the NRMSE over its voxels ∩
        true brain tissue.

    Returns
    -------
    dict
        ``slope``: regression slope of estimated on true contrast to WM over deep grey nuclei
        and lesions; ``lesion_errors`` (ppb, per lesion, estimated minus true contrast to its
        own 1-5 mm NAWM shell: lesion mean minus shell median, the pipeline's measure
        (:mod:`lesionqsm.lesions.regions`), with the shell restricted to true WM);
        ``lesion_kinds``; ``median_lesion``, ``max_lesion``, ``median_juxtacortical`` (ppb);
        ``nrmse`` (||χ - χ_true|| / ||χ_true||) over the voxels with χ in the chain's brain mask
        ∩ true brain tissue, ``nrmse_brain`` over the whole of it (χ = 0 where the chain gave
        none, so an eroded rim counts as a 100 % error); ``voxels_lost`` (brain-mask voxels
        without χ) and ``layers_lost`` (largest distance, in voxels, from a lost voxel to the
        outside of the brain mask).
    """
    labels = phantom.labels
    truth = phantom.chi
    voxel = phantom.voxel_size
    wm = (labels == WM) & chi_mask
    wm_core = ndi.binary_erosion(labels == WM, iterations=2) & chi_mask
    ref_est = float(np.median(chi_est[wm_core]))
    ref_true = float(np.median(truth[wm_core]))
    x, y = [], []
    for label in NUCLEI:
        region = (labels == label) & chi_mask
        if region.sum() < 4:  # too small to measure (or not in the χ mask)
            continue
        x.append(1e3 * (float(truth[region].mean()) - ref_true))
        y.append(1e3 * (float(chi_est[region].mean()) - ref_est))
    lesion_mask = labels >= LESION_BASE
    errors, kinds = [], []
    for les in phantom.lesions:
        region = (labels == les.label) & chi_mask
        shell = regions.nawm_shell(region, exclude=lesion_mask | ~wm, brain_mask=chi_mask,
                                   voxel_size=voxel)
        if not region.any() or not shell.any():  # lesion lost with the chain's mask
            errors.append(np.nan)
            kinds.append(les.kind)
            continue
        est = 1e3 * (float(chi_est[region].mean()) - float(np.median(chi_est[shell])))
        true = 1e3 * (float(truth[region].mean()) - float(np.median(truth[shell])))
        x.append(true)
        y.append(est)
        errors.append(est - true)
        kinds.append(les.kind)
    errors = np.asarray(errors)
    kinds = np.asarray(kinds)
    brain = scored_tissue(brain_mask, labels)
    est_full = np.where(chi_mask, chi_est, 0.0)
    kept = brain & chi_mask
    nrmse = float(np.linalg.norm((chi_est - truth)[kept]) / np.linalg.norm(truth[kept]))
    nrmse_brain = float(np.linalg.norm((est_full - truth)[brain]) / np.linalg.norm(truth[brain]))
    lost = brain_mask & ~chi_mask
    layers = ndi.distance_transform_cdt(brain_mask, metric='taxicab')
    extra = {}
    if reliable_mask is not None:
        reliable = brain & reliable_mask & chi_mask
        extra['nrmse_reliable'] = float(np.linalg.norm((chi_est - truth)[reliable])
                                        / np.linalg.norm(truth[reliable]))
    return {
        **extra,
        'slope': float(np.polyfit(x, y, 1)[0]),
        'lesion_errors': errors,
        'lesion_kinds': kinds,
        'median_lesion': float(np.nanmedian(np.abs(errors))),
        'max_lesion': float(np.nanmax(np.abs(errors))),
        'median_juxtacortical': float(np.nanmedian(np.abs(errors[kinds == 'juxtacortical']))),
        'nrmse': nrmse,
        'nrmse_brain': nrmse_brain,
        'voxels_lost': int(lost.sum()),
        'layers_lost': int(layers[lost].max()) if lost.any() else 0,
        'brain_voxels': int(brain_mask.sum()),
    }
