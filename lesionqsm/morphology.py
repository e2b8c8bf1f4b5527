"""Binary morphology in millimetres: balls of a physical radius on anisotropic grids.

Shared by the brain and CSF masks (:mod:`lesionqsm.qsm.masking`) and the lesion regions
(:mod:`lesionqsm.lesions.regions`).
"""

import numpy as np
import scipy.fft
from scipy import ndimage

#: Balls spanning more voxels than this on each side of their centre use an FFT convolution
#: instead of ndimage's binary morphology (whose cost grows with the ball's size).
SMALL_BALL_VOXELS = 2


def ball(radius_mm, voxel_size):
    """Boolean ellipsoidal structuring element of a physical radius on an anisotropic grid.

    Parameters
    ----------
    radius_mm : float
        Radius in mm: the voxel offsets with ``|offset| <= radius_mm``.
    voxel_size : tuple of 3 float
        Voxel size in mm.

    Returns
    -------
    bool ndarray
        Odd-sized in every axis, at least 3 voxels along an axis whose voxel is smaller than
        the radius, 1 voxel otherwise.
    """
    half = [int(np.floor(radius_mm / v + 1e-9)) for v in voxel_size]
    offsets = np.meshgrid(*[np.arange(-h, h + 1) * v for h, v in zip(half, voxel_size,
                                                                       strict=True)],
                          indexing='ij', sparse=True)
    return sum(o**2 for o in offsets) <= radius_mm**2 + 1e-9


def _is_small(structure):
    return max(structure.shape) <= 2 * SMALL_BALL_VOXELS + 1


def _ball_counts(mask, structure):
    """How many voxels of ``mask`` the ball covers when centred on each voxel (the outside of
    the array counts as empty).

    A linear convolution by real FFTs on a grid padded by the ball's half-width.  Rounding
    in float32 is of order ``1e-7 log2(N) ||mask|| ||ball|| / sqrt(N)``, below 1e-3 for any
    volume and ball, so thresholds half-way between integer counts are exact.
    """
    half = [b // 2 for b in structure.shape]
    fft_shape = tuple(scipy.fft.next_fast_len(n + h, real=True)
                      for n, h in zip(mask.shape, half, strict=True))
    kernel = np.zeros(fft_shape, dtype=np.float32)
    kernel[tuple(slice(0, b) for b in structure.shape)] = structure
    kernel = np.roll(kernel, [-h for h in half], axis=(0, 1, 2))  # ball centre at voxel 0
    spectrum = scipy.fft.rfftn(mask.astype(np.float32), s=fft_shape, workers=-1)
    spectrum *= scipy.fft.rfftn(kernel, workers=-1)
    counts = scipy.fft.irfftn(spectrum, s=fft_shape, workers=-1, overwrite_x=True)
    return counts[tuple(slice(0, n) for n in mask.shape)]


def erode_mm(mask, radius_mm, voxel_size):
    """Binary erosion by a ball of physical radius (mm).

    Parameters
    ----------
    mask : bool ndarray, shape (X, Y, Z)
        Mask to erode; the outside of the array counts as background.
    radius_mm : float
        Ball radius in mm; 0 or less returns a copy.
    voxel_size : tuple of 3 float
        Voxel size in mm.

    Returns
    -------
    bool ndarray
        Voxels whose distance to the nearest background voxel exceeds ``radius_mm``
        (equal to MEDI's ``SMV(mask, r) > 0.999`` up to the ball's discretisation).
    """
    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0:
        return mask.copy()
    structure = ball(radius_mm, voxel_size)
    if _is_small(structure):
        return ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & (_ball_counts(mask, structure) > structure.sum() - 0.5)


def dilate_mm(mask, radius_mm, voxel_size):
    """Binary dilation by a ball of physical radius (mm): voxels within ``radius_mm`` of the
    mask.

    Only the mask's bounding box, grown by the ball's half-width, can change, so the
    dilation runs there (a lesion's box instead of the whole volume: 1.1 s to a few ms for
    a 5 mm ball on a 256 × 256 × 48 visit).
    """
    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    structure = ball(radius_mm, voxel_size)
    box = tuple(slice(max(int(i.min()) - b // 2, 0), int(i.max()) + b // 2 + 1)
                for i, b in zip(np.nonzero(mask), structure.shape, strict=True))
    inside = mask[box]
    out = np.zeros(mask.shape, dtype=bool)
    if _is_small(structure):
        out[box] = ndimage.binary_dilation(inside, structure=structure)
    else:
        out[box] = inside | (_ball_counts(inside, structure) > 0.5)
    return out
