"""Visits that test the brain mask and the zero reference: bias field, field of view, ventricles.

Each variant is one visit of the ``tiny`` preset's first patient (3 mm voxels, 5 echoes, same
lesions and noise model as :mod:`lesionqsm.synth.cohort`) with one thing changed:

==================  ======================================================================
variant             what changes
==================  ======================================================================
``bias``            a strong receive bias field: the magnitude falls 6-fold across the head
``crop``            a 72 × 84 × 48 mm field of view inside the brain (no air, no skull),
                    with the bias field of ``bias`` (as a crop of a real scan)
``topcut``          the whole head down to the skull base, but the top 36 mm of the brain
                    are outside the field of view
``neck``            the whole head and 65 mm of neck (soft tissue, vertebrae, spinal canal
                    and cord) in the field of view
``smallventricles`` ventricles at 0.35 × their size (about 0.6 mL in all)
``noventricles``    no ventricles
==================  ======================================================================

:func:`simulate_variant` returns the arrays; :func:`write_variants` writes a BIDS dataset of one
subject per variant (``sub-<variant>``, ``ses-01``) with the ground truth in
``derivatives/groundtruth``: ``Chimap`` (ppm, CSF = 0), ``desc-tissue_dseg`` and
``desc-brain_mask`` (the brain tissue labels, the reference a brain mask is judged against).
"""

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from lesionqsm.synth import bids_writer as bw
from lesionqsm.synth import cohort
from lesionqsm.synth import forward as fw
from lesionqsm.synth import phantom as ph
from lesionqsm.synth.phantom import Capsule, Ellipsoid

#: Tissue labels that make up the brain of a truth mask (the spinal cord is painted as white
#: matter, so a mask that keeps the cord inside the field of view is not penalised for it).
BRAIN_TISSUES = ('csf', 'gm', 'wm', 'ventricle', 'caudate', 'putamen', 'pallidum', 'thalamus',
                 'vein')

#: Ratio of the bias field's largest to smallest value across the head (``bias``).
BIAS_RATIO = 6.0


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a variant differs from the tiny preset's visit (lengths in mm, GRE voxels of 3 mm).

    Attributes
    ----------
    name : str
    description : str
    gre_shape : tuple of 3 int
    gre_centre_mm : tuple of 3 float
    ventricle_scale : float
        0 removes the ventricles.
    neck : bool
        Add a neck (soft tissue, vertebrae, spinal canal and cord) below the head.
    bias : bool
        Multiply the magnitude by a smooth bias field (:data:`BIAS_RATIO`).
    """

    name: str
    description: str
    gre_shape: tuple = (64, 72, 24)
    gre_centre_mm: tuple = (0.0, -5.0, 10.0)
    ventricle_scale: float = 1.0
    neck: bool = False
    bias: bool = False


VARIANTS = {v.name: v for v in (
    Variant('bias', f'receive bias field, magnitude varying {BIAS_RATIO:g}-fold across the head',
            bias=True),
    Variant('crop', 'field of view of 72 x 84 x 48 mm inside the brain, with the bias field',
            gre_shape=(24, 28, 16), gre_centre_mm=(0.0, -5.0, 8.0), bias=True),
    Variant('topcut', 'whole head except the top 36 mm of the brain',
            gre_shape=(56, 68, 44), gre_centre_mm=(0.0, -5.0, -31.0)),
    Variant('neck', 'whole head and 65 mm of neck', gre_shape=(56, 68, 80),
            gre_centre_mm=(0.0, -5.0, -38.0), neck=True),
    Variant('smallventricles', 'ventricles at 0.35 x their size', ventricle_scale=0.35),
    Variant('noventricles', 'no ventricles', ventricle_scale=0.0),
)}


def _neck_shapes(head):
    """Neck soft tissue (under the head), and vertebrae, spinal canal and cord (over it)."""
    sx, sy, sz = head.scale
    under = (Ellipsoid('scalp', (0.0, -15.0 * sy, -125.0 * sz), (50 * sx, 55 * sy, 75 * sz)),)
    bottom = -175.0 * sz
    over = (Capsule('skull', (0.0, -22.0 * sy, -92.0 * sz), (0.0, -22.0 * sy, bottom), 11.0),
            Capsule('csf', (0.0, -22.0 * sy, -58.0 * sz), (0.0, -22.0 * sy, bottom), 6.5),
            Capsule('wm', (0.0, -18.0 * sy, -50.0 * sz), (0.0, -22.0 * sy, bottom), 4.0))
    return under, over


def variant_head(variant, head):
    """The anatomy of a variant: ``head`` with its ventricles scaled or removed, and a neck."""
    shapes = list(head.shapes)
    if variant.ventricle_scale != 1.0:
        kept = []
        for shape in shapes:
            if shape.tissue != 'ventricle':
                kept.append(shape)
            elif variant.ventricle_scale > 0:
                kept.append(dataclasses.replace(shape, semi_axes=tuple(
                    a * variant.ventricle_scale for a in shape.semi_axes)))
        shapes = kept
    if variant.neck:
        under, over = _neck_shapes(head)
        shapes = [*under, *shapes, *over]
    return dataclasses.replace(head, shapes=tuple(shapes))


def bias_field(shape, affine, *, ratio=BIAS_RATIO, radius_mm=80.0):
    """A smooth multiplicative receive bias: ``exp(k u·r / radius_mm)``, ``u`` a diagonal.

    Parameters
    ----------
    shape : tuple of 3 int
    affine : (4, 4) ndarray
        Voxel to world (mm).
    ratio : float
        Value at ``+radius_mm`` along ``u`` over the value at ``-radius_mm``.
    radius_mm : float
        Half the distance over which the field changes by ``ratio`` (about a head's radius).

    Returns
    -------
    float32 ndarray, shape ``shape``
        1 at the world origin.
    """
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    u = np.array([1.0, 1.0, 1.0]) / np.sqrt(3.0)
    k = np.log(ratio) / 2.0
    return np.exp(k * (u @ world) / radius_mm).reshape(shape).astype(np.float32)


def _fine_grid(p, variant):
    gre = fw.axial_grid(p.gre_shape, p.gre_voxel_mm, p.gre_centre_mm)
    if not variant.neck:
        return cohort.fine_grid_for(p)
    centre = np.array([0.0, -10.0, -50.0])
    half = np.array([90.0, 110.0, 150.0])
    return fw.FineGrid(gre, p.fine_voxel_mm, (centre - half, centre + half))


def simulate_variant(name, *, seed=0):
    """Simulate one variant's visit.

    Parameters
    ----------
    name : str
        A key of :data:`VARIANTS`.
    seed : int
        Seed of the anatomy, lesions and noise.

    Returns
    -------
    dict
        ``mag`` (float32, X × Y × Z × echoes, file units), ``phase`` (rad, wrapped),
        ``affine``, ``echo_times`` (s), ``chi`` (true χ, ppm, CSF = 0, air 9.4),
        ``tissue`` (uint8 majority label, :data:`lesionqsm.synth.phantom.TISSUES`),
        ``brain`` (bool: the brain tissues of :data:`BRAIN_TISSUES`), ``preset``, ``variant``.

    Raises
    ------
    ValueError
        An unknown variant (the message lists them).
    """
    if name not in VARIANTS:
        raise ValueError(f'unknown field-of-view variant {name!r}; choose one of '
                         f'{", ".join(VARIANTS)}')
    variant = VARIANTS[name]
    p = cohort.resolve_preset('tiny', gre_shape=variant.gre_shape,
                              gre_centre_mm=variant.gre_centre_mm)
    subject = cohort.design_cohort(p, int(seed))[0]
    subject = dataclasses.replace(subject, head=variant_head(variant, subject.head))
    fine = _fine_grid(p, variant)
    gre = cohort.simulate_gre(p, subject, 0, fine, np.random.default_rng([int(seed), 7]))
    mag = gre['mag']
    if variant.bias:
        mag = mag * bias_field(p.gre_shape, fine.gre.affine)[..., None]
    tissue = gre['tissue_gre']
    brain = np.isin(tissue, [ph.LABEL[t] for t in BRAIN_TISSUES])
    return {'mag': mag.astype(np.float32), 'phase': gre['phase'], 'affine': fine.gre.affine,
            'echo_times': p.echo_times, 'chi': gre['chi_gre'], 'tissue': tissue,
            'brain': brain, 'preset': p, 'variant': variant}


def write_variants(out_dir, names=None, *, seed=0):
    """Write a BIDS dataset with one subject per variant, one visit each, and its truth.

    Parameters
    ----------
    out_dir : str or Path
        Root of the dataset (created if missing).
    names : list of str, optional
        Variants to write (default: all of :data:`VARIANTS`); subject label = variant name.
    seed : int

    Returns
    -------
    Path
        ``out_dir``.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    names = list(VARIANTS) if names is None else list(names)
    bw.write_raw_dataset_files(root, preset_name='tiny', seed=seed,
                               readme_extra='Field-of-view and anatomy variants: '
                                            + ', '.join(names) + '.')
    bw.write_tsv(root / 'participants.tsv', ['participant_id', 'age', 'sex'],
                 [{'participant_id': f'sub-{n}', 'age': 40.0, 'sex': 'F'} for n in names],
                 float_format='.1f')
    gt = root / 'derivatives' / 'groundtruth'
    bw.write_derivative_description(gt, name='Simulation ground truth',
                                    description='True susceptibility, tissue labels and brain '
                                                'masks of the field-of-view variants.')
    when = dt.datetime(2020, 1, 6, 9, 0)
    for name in names:
        visit = simulate_variant(name, seed=seed)
        p, affine = visit['preset'], visit['affine']
        bw.write_tsv(root / f'sub-{name}' / f'sub-{name}_sessions.tsv',
                     ['session_id', 'acq_time'],
                     [{'session_id': 'ses-01', 'acq_time': when.strftime('%Y-%m-%dT%H:%M:%S')}])
        prefix, adir = bw.raw_prefix(name, '01'), bw.anat_dir(root, name, '01')
        common = {'MagneticFieldStrength': p.field_strength, 'MRAcquisitionType': '3D',
                  'Manufacturer': 'lesionqsm-synth', 'RepetitionTime': fw.GRE_TR_MS / 1000,
                  'FlipAngle': fw.GRE_FLIP_DEG}
        scale = 30000.0 / max(float(visit['mag'].max()), 1.0)  # int16 without clipping
        for e, te in enumerate(visit['echo_times']):
            stem = adir / f'{prefix}_echo-{e + 1}_part-mag_MEGRE'
            bw.write_nifti(f'{stem}.nii.gz', visit['mag'][..., e] * min(scale, 1.0), affine,
                           dtype=np.int16)
            bw.write_json(f'{stem}.json', {**common, 'EchoTime': te})
            stem = adir / f'{prefix}_echo-{e + 1}_part-phase_MEGRE'
            bw.write_nifti(f'{stem}.nii.gz', visit['phase'][..., e], affine, dtype=np.float32)
            bw.write_json(f'{stem}.json', {**common, 'EchoTime': te, 'Units': 'rad'})
        gdir = bw.anat_dir(gt, name, '01')
        bw.write_nifti(gdir / f'{prefix}_Chimap.nii.gz', visit['chi'], affine, dtype=np.float32)
        bw.write_json(gdir / f'{prefix}_Chimap.json', {
            'Units': 'ppm', 'Description': 'True susceptibility relative to CSF (air = 9.4 ppm).'})
        tissue = gdir / f'{prefix}_desc-tissue_dseg'
        bw.write_nifti(f'{tissue}.nii.gz', visit['tissue'], affine, dtype=np.uint8)
        bw.write_tsv(f'{tissue}.tsv', ['index', 'name'],
                     [{'index': i, 'name': n} for i, n in enumerate(ph.TISSUES)])
        mask = gdir / f'{prefix}_desc-brain_mask'
        bw.write_nifti(f'{mask}.nii.gz', visit['brain'], affine, dtype=np.uint8)
        bw.write_json(f'{mask}.json', {'Type': 'Brain', 'Variant': visit['variant'].description,
                                       'Tissues': list(BRAIN_TISSUES)})
    return root
