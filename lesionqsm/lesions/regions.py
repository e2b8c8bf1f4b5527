"""A lesion's regions and measures: NAWM shell, partial-volume corrected χ, label volumes."""

import numpy as np

from ..morphology import ball, dilate_mm  # noqa: F401 (ball: part of this module's API)


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


def label_volumes_mm3(labels, voxel_size):
    """Volume (mm³) of every positive integer label in a label map, as a dict label -> mm³."""
    labels = np.asarray(labels).astype(np.int64)
    voxel_volume = float(np.prod(voxel_size))
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return {int(i): float(c) * voxel_volume for i, c in zip(ids, counts, strict=True)}


def lesion_excess_statistics(chi, fraction, *, exclude, brain_mask, voxel_size, others=None,
                             dilation_mm=2.0, inner_mm=1.0, outer_mm=5.0, vein_mask=None):
    """Lesion susceptibility relative to NAWM, corrected for partial volume.

    A voxel that is a fraction ``f`` lesion holds ``f·χ_lesion + (1 − f)·χ_NAWM`` (the
    reconstruction also spreads a little of the lesion into its neighbours).  Summing the
    excess ``χ − χ_NAWM`` over a neighbourhood ``N`` that contains the lesion and that spread
    and dividing by the lesion's volume ``Σ f`` gives the lesion's mean excess whatever its
    inner distribution (rim or not) and however coarse the voxels::

        χ_rel = Σ_{i ∈ N} (χ_i − χ_NAWM) / Σ_i f_i

    The plain ROI mean (voxels with ``f >= 0.5``) is diluted by its partial-volume voxels: with
    2 × 2 × 3 mm voxels and lesions of a few hundred mm³ it underestimates χ_rel by 20–40 %.

    Parameters
    ----------
    chi : ndarray
        Susceptibility in ppm.
    fraction : ndarray
        This lesion's partial-volume fraction per voxel, in [0, 1] (from
        :func:`lesionqsm.lesions.fractions.partial_volume_fraction`).
    exclude : bool ndarray
        Voxels never used as NAWM (every lesion at any visit, CSF, veins).
    brain_mask : bool ndarray
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size of ``chi`` in mm.
    others : bool ndarray, optional
        Voxels of other lesions, kept out of the neighbourhood ``N``.
    dilation_mm : float
        ``N`` is the lesion's support (``f > 0.01``) dilated by this distance (mm).
    inner_mm, outer_mm : float
        The NAWM shell around the support (see :func:`nawm_shell`).
    vein_mask : bool ndarray, optional
        Central-vein voxels, dropped from ``N`` and from the ROI.

    Returns
    -------
    dict
        ``chi_rel_ppb`` (partial-volume corrected), ``chi_nawm_ppb`` (median over the shell),
        ``chi_lesion_ppb`` (their sum), ``chi_rel_roi_mean_ppb`` (plain ROI mean minus NAWM),
        ``n_voxels`` (ROI voxels, ``f >= 0.5``), ``n_shell_voxels``; NaN where a region is empty.
    """
    support = fraction > 0.01
    shell = nawm_shell(support, exclude=exclude, brain_mask=brain_mask, voxel_size=voxel_size,
                       inner_mm=inner_mm, outer_mm=outer_mm)
    neighbourhood = dilate_mm(support, dilation_mm, voxel_size) & brain_mask
    if others is not None:
        neighbourhood &= ~others
    roi = fraction >= 0.5
    if vein_mask is not None:
        neighbourhood &= ~vein_mask
        roi &= ~vein_mask
    n_shell = int(shell.sum())
    volume_voxels = float(fraction[neighbourhood].sum())
    if not n_shell or volume_voxels <= 0:
        nan = float('nan')
        return {'chi_rel_ppb': nan, 'chi_nawm_ppb': nan, 'chi_lesion_ppb': nan,
                'chi_rel_roi_mean_ppb': nan, 'n_voxels': int(roi.sum()),
                'n_shell_voxels': n_shell}
    nawm = float(np.median(chi[shell]))
    excess = float(np.sum(chi[neighbourhood] - nawm, dtype=np.float64)) / volume_voxels
    roi_mean = float(chi[roi].mean()) - nawm if roi.any() else float('nan')
    return {
        'chi_rel_ppb': 1000 * excess,
        'chi_nawm_ppb': 1000 * nawm,
        'chi_lesion_ppb': 1000 * (nawm + excess),
        'chi_rel_roi_mean_ppb': 1000 * roi_mean,
        'n_voxels': int(roi.sum()),
        'n_shell_voxels': n_shell,
    }
