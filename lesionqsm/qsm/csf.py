"""Ventricular CSF mask for the zero reference of MEDI+0 (MEDI toolbox ``extract_CSF.m``)."""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..morphology import erode_mm
from ..options import option


@dataclass
class CSFMaskResult:
    """The reference region of a χ map.

    Attributes
    ----------
    mask : bool ndarray
        Ventricular CSF, or the whole brain mask when no CSF was found.
    reference : str
        ``'ventricular_csf'`` or ``'whole_brain'``.
    message : str
        How the region was found (number of seed regions, volume, or why the fallback).
    n_seeds : int
        Low-R2* regions used as seeds near the brain's centre.
    """

    mask: np.ndarray
    reference: str
    message: str
    n_seeds: int = 0


def ventricular_csf_mask(r2star, brain_mask, voxel_size, *, r2star_threshold=5.0,
                         sphere_radius_mm=30.0, erosion_mm=10.0, n_components=3,
                         min_volume_mm3=30.0, min_total_ml=1.0):
    """Ventricular CSF by MEDI+0's rule: low R2* near the brain's centre, grown to all of it.

    1. Erode the brain mask by ``erosion_mm`` (MEDI: ``SMV(Mask, 10) > 0.999``).
    2. Candidate CSF: ``R2* < r2star_threshold`` inside the eroded mask.
    3. Seeds: the ``n_components`` largest 6-connected candidate regions inside a
       ``sphere_radius_mm`` sphere around the brain's centre of mass.
    4. The mask is every candidate region (in the eroded mask) that touches a seed.

    Parameters
    ----------
    r2star : ndarray, shape (X, Y, Z)
        R2* in 1/s.
    brain_mask : bool ndarray, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    r2star_threshold : float, optional
        CSF has R2* below this, 1/s (MEDI: 5).
    sphere_radius_mm : float, optional
        Seeds must lie within this distance of the brain's centre, mm (MEDI: 30).
    erosion_mm : float, optional
        Brain mask erosion before the search, mm (MEDI: 10).
    n_components : int, optional
        Number of seed regions (MEDI: 3, for the two lateral ventricles and the third).
    min_volume_mm3 : float, optional
        Seed regions smaller than this are noise, not ventricles (MEDI has no such limit).

    Returns
    -------
    CSFMaskResult
        ``reference='whole_brain'`` with the brain mask when no seed region exists.

    Raises
    ------
    ValueError
        If shapes differ, the brain mask is empty or a parameter is out of range.

    Notes
    -----
    Departures from ``extract_CSF.m``: the toolbox indexes the 3 largest regions and fails
    when fewer exist; here fewer are used and the message says so.  With none, the whole
    brain is the reference (mean χ over the brain = 0) and the message says so.  Seed
    regions below ``min_volume_mm3`` are ignored, so isolated noisy voxels in a brain without
    visible ventricles do not become the reference, and so is a CSF region of less than
    ``min_total_ml`` in all (small ventricles, a small field of view, a phantom's air bubble).
    """
    r2star = np.asarray(r2star, dtype=np.float32)
    brain_mask = np.asarray(brain_mask, dtype=bool)
    if r2star.shape != brain_mask.shape or r2star.ndim != 3:
        raise ValueError(f'R2* {r2star.shape} and brain mask {brain_mask.shape} must be the '
                         'same 3-D shape')
    if not brain_mask.any():
        raise ValueError('the brain mask is empty: no CSF reference can be found')
    if n_components < 1:
        raise ValueError(f'n_components must be at least 1, got {n_components}')
    if r2star_threshold <= 0 or sphere_radius_mm <= 0 or erosion_mm < 0:
        raise ValueError('r2star_threshold and sphere_radius_mm must be positive and '
                         f'erosion_mm not negative, got {r2star_threshold}, '
                         f'{sphere_radius_mm}, {erosion_mm}')
    voxel_size = np.asarray(voxel_size, dtype=float)
    voxel_volume = float(np.prod(voxel_size))

    centre = np.array(ndimage.center_of_mass(brain_mask))
    eroded = erode_mm(brain_mask, erosion_mm, voxel_size)
    candidate = (r2star < r2star_threshold) & eroded & np.isfinite(r2star)
    grids = np.ogrid[tuple(slice(0, n) for n in r2star.shape)]
    dist2 = sum(((g - c) * v) ** 2 for g, c, v in zip(grids, centre, voxel_size, strict=True))
    near = candidate & (dist2 <= sphere_radius_mm**2)

    labels, n_near = ndimage.label(near)
    sizes = np.bincount(labels.ravel(), minlength=n_near + 1)[1:]
    big = np.flatnonzero(sizes * voxel_volume >= min_volume_mm3) + 1
    big = big[np.argsort(-sizes[big - 1], kind='stable')][:n_components]
    if big.size == 0:
        return CSFMaskResult(
            mask=brain_mask.copy(), reference='whole_brain', n_seeds=0,
            message=(f'no CSF found: no region of R2* < {r2star_threshold:g} /s of at least '
                     f'{min_volume_mm3:g} mm3 within {sphere_radius_mm:g} mm of the brain '
                     f'centre (after a {erosion_mm:g} mm erosion); the whole brain is the '
                     'zero reference'))
    seeds = np.isin(labels, big)
    grown_labels, _ = ndimage.label(candidate)
    keep = np.unique(grown_labels[seeds])
    keep = keep[keep > 0]
    mask = np.isin(grown_labels, keep)
    volume_ml = mask.sum() * voxel_volume / 1000.0
    if volume_ml < min_total_ml:
        return CSFMaskResult(
            mask=brain_mask.copy(), reference='whole_brain', n_seeds=int(big.size),
            message=(f'the ventricular CSF found is {volume_ml:.2f} mL, less than '
                     f'{min_total_ml:g} mL: too small for a stable zero reference; the whole '
                     'brain is the zero reference'))
    shortfall = ('' if big.size == n_components else
                 f' (only {big.size} of the {n_components} requested regions exist)')
    return CSFMaskResult(
        mask=mask, reference='ventricular_csf', n_seeds=int(big.size),
        message=(f'ventricular CSF from {big.size} low-R2* region(s){shortfall}: '
                 f'{volume_ml:.1f} mL, R2* < {r2star_threshold:g} /s'))


@dataclass(frozen=True)
class CSFOptions:
    """Options of the ventricular CSF search (:func:`ventricular_csf_mask`)."""

    csf_r2star_threshold: float = option(5.0, doc='CSF has R2* below this, 1/s', low=0.0,
                                         low_open=True)
    csf_sphere_radius_mm: float = option(30.0, doc='seeds lie within this distance of the '
                                                   'brain centre, mm', low=0.0, low_open=True)
    csf_erosion_mm: float = option(10.0, doc='brain mask erosion before the search, mm',
                                   low=0.0)
    csf_min_volume_mm3: float = option(30.0, doc='smaller low-R2* regions are noise, mm3',
                                       low=0.0)
    csf_min_total_ml: float = option(1.0, doc='less CSF than this in all is no reference (the '
                                              'whole brain is), mL', low=0.0)


def find_reference_region(r2star, brain_mask, voxel_size, options=CSFOptions()):
    """The CSF step: the ventricular CSF, or the whole brain when none is found.

    Returns
    -------
    CSFMaskResult
        With the reason in ``message``.  Its ``mask`` is the ventricular CSF, empty when none
        was found (``reference='whole_brain'``: the inversion step then references the whole
        brain, and nothing is excluded from the white matter as "CSF").  Without an R2* map
        (``r2star`` None or not finite in the brain: a single echo) the whole brain is the
        reference.
    """
    brain_mask = np.asarray(brain_mask, dtype=bool)
    if r2star is None or not np.isfinite(np.asarray(r2star)[brain_mask]).any():
        return CSFMaskResult(mask=np.zeros_like(brain_mask), reference='whole_brain',
                             message='no R2* map (single echo): the CSF cannot be found; the '
                                     'whole brain is the zero reference')
    result = ventricular_csf_mask(
        r2star, brain_mask, voxel_size, r2star_threshold=options.csf_r2star_threshold,
        sphere_radius_mm=options.csf_sphere_radius_mm, erosion_mm=options.csf_erosion_mm,
        min_volume_mm3=options.csf_min_volume_mm3, min_total_ml=options.csf_min_total_ml)
    if result.reference != 'ventricular_csf':
        result.mask = np.zeros_like(result.mask)
    return result
