"""Plausibility checks of a visit's brain mask and χ map.

A brain mask that is implausible for an adult head is a warning (the log, the Chimap sidecar's
``Warnings`` and the subject's report show it): the χ map may still be usable, e.g. on a field
of view that covers part of the brain on purpose.  A χ map that cannot be a susceptibility map
of a brain (all zero, constant, or values of several ppm throughout) fails the visit, with the
reason: it would otherwise be measured as if it were one.
"""

import numpy as np

#: Whole adult brain volume range for the mask check, mL (intracranial volume is
#: ~1200-1700 mL; the mask drops skull, most extracerebral CSF and the 1 mm surface layer).
ADULT_BRAIN_ML = (800.0, 2000.0)
#: χ inside a brain lies within ±1 ppm of CSF at the 1st and 99th percentiles (the strongest
#: sources, veins and the iron-richest nuclei, are ~0.2-0.5 ppm); beyond that the phase was
#: scaled or unwrapped wrongly.
CHI_PERCENTILE_LIMIT_PPM = 1.0
#: A χ map whose 1st-99th percentile range is below this (ppm) is constant (float32 noise).
CHI_CONSTANT_PPM = 1e-6

FACE_NAMES = ('x first', 'x last', 'y first', 'y last', 'z first', 'z last')


class ImplausibleChiError(ValueError):
    """The χ map of a visit is not a susceptibility map (zero, constant or out of range)."""


def touched_faces(mask):
    """Faces of the array that the mask reaches.

    Parameters
    ----------
    mask : bool ndarray, shape (X, Y, Z)

    Returns
    -------
    list of str
        Names from :data:`FACE_NAMES` (array axes, first or last index).
    """
    mask = np.asarray(mask, dtype=bool)
    faces = []
    for axis in range(3):
        for end, index in (('first', 0), ('last', -1)):
            if np.take(mask, index, axis=axis).any():
                faces.append(f'{"xyz"[axis]} {end}')
    return faces


def check_brain_mask(mask, voxel_size, *, volume_range_ml=ADULT_BRAIN_ML):
    """Warnings about a brain mask that does not look like an adult brain in the field of view.

    Parameters
    ----------
    mask : bool ndarray, shape (X, Y, Z)
    voxel_size : tuple of 3 float
        mm.
    volume_range_ml : tuple of 2 float, optional
        Plausible whole-brain volume, mL.

    Returns
    -------
    decisions : dict
        ``brain_volume_ml``, ``field_of_view_ml``, ``mask_touches_faces`` (list of str).
    warnings : list of str
        - the mask reaches more than one face of the field of view (the brain is cut: χ near
          those faces rests on a truncated field, and the brain volume is not the whole
          brain's);
        - the volume is above the range, or below it although the mask touches no face and the
          field of view could hold a whole brain (the mask missed part of the brain).
    """
    mask = np.asarray(mask, dtype=bool)
    voxel_ml = float(np.prod(voxel_size)) / 1000.0
    volume = float(mask.sum()) * voxel_ml
    fov = float(mask.size) * voxel_ml
    faces = touched_faces(mask)
    low, high = volume_range_ml
    warnings = []
    if len(faces) > 1:
        warnings.append(f'the brain mask reaches {len(faces)} faces of the field of view '
                        f'({", ".join(faces)}): the brain is cut by the field of view, χ near '
                        'those faces is less reliable and the brain volume is partial')
    if volume > high:
        warnings.append(f'the brain mask is {volume:.0f} mL, more than the {high:.0f} mL of an '
                        'adult brain: it probably includes scalp, neck or background')
    elif volume < low and not faces and fov >= low:
        warnings.append(f'the brain mask is {volume:.0f} mL, less than the {low:.0f} mL of an '
                        f'adult brain, in a field of view of {fov:.0f} mL that does not cut it: '
                        'part of the brain is probably missing from the mask')
    decisions = {'brain_volume_ml': round(volume, 3), 'field_of_view_ml': round(fov, 3),
                 'mask_touches_faces': faces}
    return decisions, warnings


def check_chi(chi_ppm, mask, *, limit_ppm=CHI_PERCENTILE_LIMIT_PPM):
    """Fail a χ map that cannot be a brain's susceptibility.

    Parameters
    ----------
    chi_ppm : float ndarray, shape (X, Y, Z)
        χ in ppm.
    mask : bool ndarray, shape (X, Y, Z)
        Where χ is defined.
    limit_ppm : float, optional
        Largest plausible magnitude of the 1st and 99th percentiles inside the mask, ppm.

    Returns
    -------
    dict
        ``chi_p1_ppm``, ``chi_p99_ppm`` for the sidecar.

    Raises
    ------
    ImplausibleChiError
        The mask is empty; χ is all zero, constant, not finite, or a percentile lies beyond
        ``±limit_ppm`` (the message gives the values and the usual causes).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ImplausibleChiError('the χ map has no voxel inside the brain mask')
    values = np.asarray(chi_ppm)[mask].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImplausibleChiError(f'the χ map has {int(np.sum(~np.isfinite(values)))} '
                                  'non-finite values inside the brain')
    if not np.any(values):
        raise ImplausibleChiError('χ is exactly 0 everywhere inside the brain: the phase '
                                  'carries no field (check its units and scaling)')
    p1, p99 = (float(v) for v in np.percentile(values, [1, 99]))
    if p99 - p1 < CHI_CONSTANT_PPM:
        raise ImplausibleChiError(f'χ is constant ({p1:.3g} ppm) inside the brain: the phase '
                                  'carries no field (check its units and scaling)')
    if max(abs(p1), abs(p99)) > limit_ppm:
        raise ImplausibleChiError(
            f'χ inside the brain spans {p1:.2f} to {p99:.2f} ppm (1st-99th percentile), '
            f'beyond ±{limit_ppm:g} ppm for any brain tissue: the phase scaling, echo times, '
            'field strength or unwrapping is wrong')
    return {'chi_p1_ppm': round(p1, 6), 'chi_p99_ppm': round(p99, 6)}
