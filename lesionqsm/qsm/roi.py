"""Region-of-interest statistics of a lesion: mean χ, normal-appearing white matter, volume."""

import numpy as np
from scipy import ndimage


def ball(radius_mm, voxel_size):
    """Boolean ellipsoidal structuring element of a physical radius on an anisotropic grid.

    Parameters
    ----------
    radius_mm : float
        Radius in mm.
    voxel_size : tuple of 3 float
        Voxel size in mm.

    Returns
    -------
    bool ndarray
        Odd-sized in every axis, at least 3 voxels along an axis whose voxel is smaller than
        the radius, 1 voxel otherwise.
    """
    half = [int(np.floor(radius_mm / v)) for v in voxel_size]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * v for h, v in zip(half, voxel_size,
                                                                      strict=True)],
                        indexing='ij')
    return sum(g**2 for g in grids) <= radius_mm**2 + 1e-9


def dilate_mm(mask, radius_mm, voxel_size):
    """Binary dilation by a physical radius (mm)."""
    if radius_mm <= 0:
        return mask.copy()
    return ndimage.binary_dilation(mask, structure=ball(radius_mm, voxel_size))


def nawm_shell(lesion, *, exclude, brain_mask, voxel_size, inner_mm=1.0, outer_mm=5.0):
    """Shell of tissue around a lesion, for its normal-appearing white-matter reference.

    Parameters
    ----------
    lesion : bool ndarray
        The lesion's ROI.
    exclude : bool ndarray
        Voxels never counted as NAWM: every lesion at any visit, CSF, veins.
    brain_mask : bool ndarray
        Brain mask; the shell stays inside it.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    inner_mm, outer_mm : float
        The shell spans distances in (inner_mm, outer_mm] from the lesion (mm): the inner gap
        keeps partial-volume voxels of the lesion edge out of the reference.

    Returns
    -------
    bool ndarray
    """
    outer = dilate_mm(lesion, outer_mm, voxel_size)
    inner = dilate_mm(lesion, inner_mm, voxel_size)
    return outer & ~inner & ~exclude & brain_mask


def lesion_chi_statistics(chi, lesion, shell, *, vein_mask=None):
    """Mean χ in a lesion and in its NAWM shell.

    Parameters
    ----------
    chi : ndarray
        Susceptibility in ppm.
    lesion, shell : bool ndarray
        Lesion ROI and NAWM shell (see :func:`nawm_shell`).
    vein_mask : bool ndarray, optional
        Central-vein voxels removed from the lesion ROI (the paper removes them by hand).

    Returns
    -------
    dict
        ``chi_lesion_ppb`` (mean over the ROI), ``chi_nawm_ppb`` (median over the shell: robust
        to the odd grey-matter or vessel voxel that an automatic shell cannot avoid without a
        tissue segmentation), ``chi_rel_ppb`` (their difference), ``n_voxels`` and
        ``n_shell_voxels``; χ values in ppb.  NaN where a region is empty.
    """
    roi = lesion if vein_mask is None else lesion & ~vein_mask
    n_roi, n_shell = int(roi.sum()), int(shell.sum())
    chi_lesion = float(chi[roi].mean()) * 1000 if n_roi else np.nan
    chi_nawm = float(np.median(chi[shell])) * 1000 if n_shell else np.nan
    return {
        'chi_lesion_ppb': chi_lesion,
        'chi_nawm_ppb': chi_nawm,
        'chi_rel_ppb': chi_lesion - chi_nawm,
        'n_voxels': n_roi,
        'n_shell_voxels': n_shell,
    }


def label_volumes_mm3(labels, voxel_size):
    """Volume (mm³) of every positive integer label in a label map, as a dict label -> mm³."""
    labels = np.asarray(labels).astype(np.int64)
    voxel_volume = float(np.prod(voxel_size))
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return {int(i): float(c) * voxel_volume for i, c in zip(ids, counts, strict=True)}
