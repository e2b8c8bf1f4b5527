"""Brain mask from the GRE magnitude (no FSL), and millimetre-sized binary morphology."""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..options import option


def _small_ball(radius_mm, voxel_size, max_voxels=2):
    """Ball structuring element ``|offset| <= radius_mm`` if it spans at most ``max_voxels``
    voxels per side (binary morphology is then faster than a distance transform), else None."""
    half = [int(np.floor(radius_mm / v + 1e-9)) for v in voxel_size]
    if max(half) > max_voxels:
        return None
    offsets = np.meshgrid(*[np.arange(-h, h + 1) * v for h, v in zip(half, voxel_size,
                                                                       strict=True)],
                          indexing='ij')
    return sum(o**2 for o in offsets) <= radius_mm**2 + 1e-9


def erode_mm(mask, radius_mm, voxel_size):
    """Binary erosion by a ball of physical radius (mm), by Euclidean distance transform.

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
    ball = _small_ball(radius_mm, voxel_size)
    if ball is not None:
        return ndimage.binary_erosion(mask, structure=ball, border_value=0)
    padded = np.pad(mask, 1)
    distance = ndimage.distance_transform_edt(padded, sampling=voxel_size)
    return distance[1:-1, 1:-1, 1:-1] > radius_mm


def dilate_mm(mask, radius_mm, voxel_size):
    """Binary dilation by a ball of physical radius (mm), by Euclidean distance transform."""
    mask = np.asarray(mask, dtype=bool)
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    ball = _small_ball(radius_mm, voxel_size)
    if ball is not None:
        return ndimage.binary_dilation(mask, structure=ball)
    distance = ndimage.distance_transform_edt(~mask, sampling=voxel_size)
    return distance <= radius_mm


def largest_component(mask):
    """The largest 6-connected component of a mask (empty stays empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == np.argmax(sizes)


def otsu_threshold(values, *, bins=256):
    """Otsu's threshold of a sample: maximises the between-class variance of a histogram.

    Parameters
    ----------
    values : ndarray
        Sample (any shape); non-finite values are ignored.
    bins : int, optional
        Histogram bins.

    Returns
    -------
    float
        Threshold in the units of ``values``; class 1 is ``values > threshold``.

    Raises
    ------
    ValueError
        If there are no finite values or all are equal.
    """
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        raise ValueError('Otsu threshold needs at least two distinct finite values')
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    sum0 = np.cumsum(hist * centres)
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (sum0[-1] - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(edges[1:][np.argmax(between)])


def brain_mask_from_magnitude(magnitude, voxel_size, *, threshold=None, opening_mm=4.0,
                              erosion_mm=1.0, fill_holes=True):
    """Brain mask from the GRE magnitude: threshold, opening, largest component, hole filling.

    Steps: root-sum-of-squares over echoes (4-D input); intensity threshold (Otsu on the
    voxels above 2 % of the 99th percentile, i.e. on the head, which separates brain and
    scalp from the dark skull, air and bone); an opening by a ``opening_mm`` ball cuts thin
    bridges across the skull; the largest connected component is the brain; it is dilated
    back inside the thresholded voxels, its holes (ventricles dark at late echoes, iron-rich
    nuclei, veins) filled in 3-D and slice by slice, and it is eroded by ``erosion_mm`` to drop
    the unreliable phase at the brain's surface.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z) or (X, Y, Z, E)
        Magnitude, any scale; with echoes, their root-sum-of-squares is used.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    threshold : float, optional
        Intensity threshold as a fraction of the 99th percentile of the (combined) magnitude;
        default: Otsu's threshold.
    opening_mm : float, optional
        Radius of the opening that separates brain from scalp, in mm.
    erosion_mm : float, optional
        Final erosion in mm (0 keeps the thresholded brain surface).
    fill_holes : bool, optional
        Fill enclosed holes.

    Returns
    -------
    bool ndarray, shape (X, Y, Z)

    Raises
    ------
    ValueError
        If the magnitude is not 3-D or 4-D, is empty or constant, or no voxel survives the
        threshold.

    Notes
    -----
    Replaces FSL BET (the MEDI toolbox's default).  It relies on the skull being dark
    in GRE, true at every echo; a user-supplied mask (``brain_mask=`` of the pipeline) is
    used as given.
    """
    mag = np.asarray(magnitude, dtype=np.float32)
    if mag.ndim == 4:
        mag = np.sqrt(np.sum(mag * mag, axis=-1))
    if mag.ndim != 3:
        raise ValueError(f'magnitude must be 3-D or 4-D, got shape {mag.shape}')
    mag = np.where(np.isfinite(mag), mag, 0)
    p99 = float(np.percentile(mag, 99))
    if p99 <= 0:
        raise ValueError('the magnitude is zero (or nearly everywhere): no brain to mask')
    norm = mag / np.float32(p99)
    if threshold is None:
        head = norm[norm > 0.02]
        threshold = otsu_threshold(np.minimum(head, 1.5))
    foreground = norm > threshold
    if not foreground.any():
        raise ValueError(f'no voxel is above the threshold {threshold:.3g} of the 99th '
                         'percentile of the magnitude')
    # Work in the bounding box of the foreground (plus a margin): same result, less work.
    margin = [int(np.ceil(max(opening_mm, erosion_mm, 0) / v)) + 2 for v in voxel_size]
    box = tuple(slice(max(int(np.min(i)) - m, 0), int(np.max(i)) + m + 1)
                for i, m in zip(np.nonzero(foreground), margin, strict=True))
    head = foreground[box]
    opened = erode_mm(head, opening_mm, voxel_size)
    core = largest_component(opened if opened.any() else head)
    brain = dilate_mm(core, opening_mm, voxel_size) & head
    brain = largest_component(brain)
    if fill_holes:
        brain = ndimage.binary_fill_holes(brain)
        for z in range(brain.shape[2]):
            brain[:, :, z] = ndimage.binary_fill_holes(brain[:, :, z])
    eroded = erode_mm(brain, erosion_mm, voxel_size)
    if eroded.any():
        brain = largest_component(eroded)
    out = np.zeros(mag.shape, bool)
    out[box] = brain
    return out


@dataclass(frozen=True)
class MaskOptions:
    """Options of the automatic brain mask (:func:`brain_mask_from_magnitude`)."""

    mask_threshold: float | None = option(
        None, doc='intensity threshold as a fraction of the 99th percentile of the magnitude '
                  '(null: Otsu)', low=0.0, high=1.0, low_open=True)
    mask_opening_mm: float = option(4.0, doc='opening radius separating brain and scalp, mm',
                                    low=0.0)
    mask_erosion_mm: float = option(1.0, doc='final erosion of the brain mask, mm', low=0.0)


@dataclass
class BrainMaskResult:
    """The brain mask of one visit and where it came from.

    Attributes
    ----------
    mask : bool ndarray, shape (X, Y, Z)
    source : str
        ``'user'`` (given, used as is) or ``'magnitude'`` (:func:`brain_mask_from_magnitude`).
    decisions : dict
        Source, volume (mL) and thresholds, for the sidecar.
    """

    mask: np.ndarray
    source: str
    decisions: dict = field(default_factory=dict)


def make_brain_mask(magnitude, voxel_size, options=MaskOptions(), *, user_mask=None):
    """The brain mask step: the user's mask when given, else one from the magnitude.

    Parameters
    ----------
    magnitude : float ndarray, shape (X, Y, Z)
        Root-sum-of-squares magnitude, any scale.
    voxel_size : tuple of 3 float
        mm.
    options : MaskOptions
    user_mask : bool ndarray, shape (X, Y, Z), optional
        A mask given by the user, on the same grid.

    Returns
    -------
    BrainMaskResult

    Raises
    ------
    ValueError
        The user's mask has another shape or is empty, or no brain is found.
    """
    if user_mask is not None:
        mask = np.asarray(user_mask) > 0
        if mask.shape != np.shape(magnitude):
            raise ValueError(f'the brain mask has shape {mask.shape}, the echoes '
                             f'{np.shape(magnitude)}')
        source = 'user'
    else:
        mask = brain_mask_from_magnitude(
            magnitude, voxel_size, threshold=options.mask_threshold,
            opening_mm=options.mask_opening_mm, erosion_mm=options.mask_erosion_mm)
        source = 'magnitude'
    if not mask.any():
        raise ValueError('the brain mask is empty')
    volume_ml = float(mask.sum() * np.prod(voxel_size) / 1000.0)
    return BrainMaskResult(mask=mask, source=source,
                           decisions={'brain_mask': source, 'brain_volume_ml': volume_ml})
