"""Brain mask from the GRE magnitude (no FSL), built with :mod:`lesionqsm.morphology`."""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..morphology import dilate_mm, erode_mm
from ..options import option
from .plausibility import check_brain_mask


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


#: Default brain threshold, as a fraction of the local tissue intensity.
DEFAULT_THRESHOLD = 0.4


def _wide_gaussian(volume, sigma_mm, voxel_size):
    """Gaussian smoothing of width ``sigma_mm`` computed on blocks of at most ``sigma_mm / 5``:
    block means, the Gaussian on the coarse grid, linear interpolation back (the blocks add
    a blur of under a tenth of ``sigma_mm``, at ~1/64 of the cost on 1 mm voxels)."""
    factors = [max(1, int(sigma_mm / (5.0 * v))) for v in voxel_size]
    shape = volume.shape
    if factors == [1, 1, 1]:
        return ndimage.gaussian_filter(volume, [sigma_mm / v for v in voxel_size],
                                       mode='nearest')
    padded = np.pad(volume, [(0, (-n) % f) for n, f in zip(shape, factors, strict=True)],
                    mode='edge')
    coarse = padded.reshape(padded.shape[0] // factors[0], factors[0],
                            padded.shape[1] // factors[1], factors[1],
                            padded.shape[2] // factors[2], factors[2]).mean(axis=(1, 3, 5))
    coarse = ndimage.gaussian_filter(
        coarse, [sigma_mm / (v * f) for v, f in zip(voxel_size, factors, strict=True)],
        mode='nearest')
    # back to the fine grid, one axis at a time: fine voxel i lies at coarse coordinate
    # (i - (f - 1) / 2) / f; linear interpolation, the edge value beyond the outer centres
    for axis, (n, f) in enumerate(zip(shape, factors, strict=True)):
        position = np.clip((np.arange(n) - (f - 1) / 2.0) / f, 0, coarse.shape[axis] - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, coarse.shape[axis] - 1)
        weight = (position - low).astype(np.float32).reshape(
            [-1 if a == axis else 1 for a in range(3)])
        coarse = (np.take(coarse, low, axis=axis) * (1 - weight)
                  + np.take(coarse, high, axis=axis) * weight)
    return coarse.astype(np.float32)


def tissue_level(magnitude, voxel_size, *, sigma_mm=20.0, tissue_fraction=0.5, n_iter=3):
    """Local intensity of tissue: a smooth estimate of the receive bias field times the tissue
    signal, by normalised convolution over the voxels that look like tissue.

    ``level = G(m · w) / G(w)``, with ``G`` a Gaussian of ``sigma_mm`` and ``w`` the tissue
    voxels: first those above half of Otsu's threshold of the magnitude, then, ``n_iter``
    times, those above ``tissue_fraction`` of the current level.  Dark tissue on the weak
    side of a strong bias field is thereby measured against its own neighbourhood, not
    against the bright side of the head.

    Parameters
    ----------
    magnitude : float ndarray, shape (X, Y, Z)
        Magnitude, any scale, non-negative and finite.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    sigma_mm : float, optional
        Width of the Gaussian, mm: much wider than a sulcus or the skull, much narrower than
        the variation of a coil's sensitivity.
    tissue_fraction : float, optional
        A voxel is tissue when its magnitude exceeds this fraction of the local level.
    n_iter : int, optional
        Refinements of the tissue voxels.

    Returns
    -------
    level : float32 ndarray, shape (X, Y, Z)
        Local tissue intensity in the units of ``magnitude``; 0 where fewer than 5 % of the
        Gaussian's weight falls on tissue (air far from the head).
    """
    mag = np.asarray(magnitude, dtype=np.float32)
    weight = (mag > 0.5 * otsu_threshold(mag)).astype(np.float32)
    level = np.zeros_like(mag)
    for _ in range(n_iter + 1):
        support = _wide_gaussian(weight, sigma_mm, voxel_size)
        smooth = _wide_gaussian(mag * weight, sigma_mm, voxel_size)
        defined = support > 0.05
        level = np.where(defined, smooth / np.maximum(support, 1e-6), 0).astype(np.float32)
        weight = (defined & (mag > tissue_fraction * level)).astype(np.float32)
    return level


def brain_mask_from_magnitude(magnitude, voxel_size, *, threshold=None, opening_mm=4.0,
                              erosion_mm=1.0, fill_holes=True, bias_sigma_mm=20.0):
    """Brain mask from the GRE magnitude, robust to the receive bias field and to a field of
    view that cuts or crops the head.

    Steps: root-sum-of-squares over echoes (4-D input); division by the local tissue level
    (:func:`tissue_level`, which removes the bias field); a threshold on this flattened image
    (tissue ≈ 1; air, bone and the skull ≈ 0-0.2); an opening by a ``opening_mm`` ball cuts
    thin bridges across the skull; the largest connected component is the brain; it is
    dilated back inside the thresholded voxels, a morphological closing by ``opening_mm``
    smooths its surface, its holes (ventricles dark at late echoes, iron-rich nuclei, veins)
    are filled in 3-D and slice by slice, and it is eroded by ``erosion_mm`` to drop the
    unreliable phase at the brain's surface.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z) or (X, Y, Z, E)
        Magnitude, any scale; with echoes, their root-sum-of-squares is used.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    threshold : float, optional
        Threshold as a fraction of the local tissue level (:func:`tissue_level`); default
        0.4, between the skull and air (below 0.2) and the darkest tissue (CSF and iron-rich
        nuclei at late echoes, above 0.5 of their neighbourhood in the echoes' RSS).
    opening_mm : float, optional
        Radius of the opening that separates brain from scalp, and of the closing, in mm.
    erosion_mm : float, optional
        Final erosion in mm (0 keeps the thresholded brain surface).
    fill_holes : bool, optional
        Fill enclosed holes.
    bias_sigma_mm : float, optional
        Width of the smoothing that estimates the bias field, mm (:func:`tissue_level`).

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
    Replaces FSL BET (the MEDI toolbox's default); ``--brain-mask bet`` runs BET instead and
    ``--derivatives`` takes a mask made elsewhere.  It relies on the skull being dark in
    GRE, true at every echo.  A field of view inside the brain (no air, no skull) gives a
    mask of nearly the whole field of view: the threshold is relative to the local tissue
    level, not to a global histogram that would split grey from white matter.
    """
    mag = np.asarray(magnitude, dtype=np.float32)
    if mag.ndim == 4:
        mag = np.sqrt(np.sum(mag * mag, axis=-1))
    if mag.ndim != 3:
        raise ValueError(f'magnitude must be 3-D or 4-D, got shape {mag.shape}')
    mag = np.where(np.isfinite(mag), np.abs(mag), 0)
    p99 = float(np.percentile(mag, 99))
    if p99 <= 0 or mag.min() == mag.max():
        raise ValueError('the magnitude is zero or constant (nearly everywhere): no brain to '
                         'mask')
    norm = np.minimum(mag / np.float32(p99), 2.0)
    level = tissue_level(norm, voxel_size, sigma_mm=bias_sigma_mm)
    flat = np.where(level > 0, norm / np.maximum(level, 1e-6), 0)
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    foreground = flat > threshold
    if not foreground.any():
        raise ValueError(f'no voxel is above {threshold:.3g} of the local tissue intensity')
    # Work in the bounding box of the foreground (plus a margin): same result, less work.
    margin = [int(np.ceil(max(opening_mm, erosion_mm, 0) / v)) + 2 for v in voxel_size]
    box = tuple(slice(max(int(np.min(i)) - m, 0), int(np.max(i)) + m + 1)
                for i, m in zip(np.nonzero(foreground), margin, strict=True))
    head = foreground[box]
    opened = erode_mm(head, opening_mm, voxel_size)
    core = largest_component(opened if opened.any() else head)
    brain = dilate_mm(core, opening_mm, voxel_size) & head
    brain = largest_component(brain)
    # closing: the dilation pads with background beyond the array, the erosion then must not
    # eat the faces of a field of view that cuts the brain
    closed = dilate_mm(brain, opening_mm, voxel_size)
    pad = [int(np.ceil(opening_mm / v)) + 1 for v in voxel_size]
    closed = np.pad(closed, [(p, p) for p in pad], mode='edge')
    closed = erode_mm(closed, opening_mm, voxel_size)
    brain = closed[tuple(slice(p, -p) for p in pad)] | brain
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

    mask_threshold: float = option(
        DEFAULT_THRESHOLD, doc='brain threshold as a fraction of the local tissue intensity '
                               '(bias-field corrected magnitude)', low=0.0, high=1.0,
        low_open=True, high_open=True)
    mask_opening_mm: float = option(4.0, doc='opening radius separating brain and scalp, mm',
                                    low=0.0)
    mask_erosion_mm: float = option(1.0, doc='final erosion of the brain mask, mm', low=0.0)
    mask_bias_sigma_mm: float = option(20.0, doc='width of the smoothing that estimates the '
                                                 'bias field, mm', low=0.0, low_open=True)


#: What the sidecar's ``Decisions.brain_mask`` says for each source of the mask.
MASK_SOURCES = {'magnitude': 'magnitude', 'user': 'user-supplied mask',
                'bet': 'magnitude by FSL BET'}


@dataclass
class BrainMaskResult:
    """The brain mask of one visit and where it came from.

    Attributes
    ----------
    mask : bool ndarray, shape (X, Y, Z)
    source : str
        A key of :data:`MASK_SOURCES`: ``'magnitude'`` (:func:`brain_mask_from_magnitude`),
        ``'user'`` (given) or ``'bet'`` (FSL BET).
    decisions : dict
        Source, volume (mL), field of view (mL), the faces the mask reaches, for the sidecar.
    warnings : list of str
        Implausible volume or a field of view that cuts the brain
        (:func:`lesionqsm.qsm.plausibility.check_brain_mask`).
    """

    mask: np.ndarray
    source: str
    decisions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def make_brain_mask(magnitude, voxel_size, options=MaskOptions(), *, user_mask=None,
                    source='user', source_file=None):
    """The brain mask step: a given mask when there is one, else one from the magnitude; then
    the plausibility checks of :func:`lesionqsm.qsm.plausibility.check_brain_mask`.

    Parameters
    ----------
    magnitude : float ndarray, shape (X, Y, Z)
        Root-sum-of-squares magnitude, any scale.
    voxel_size : tuple of 3 float
        mm.
    options : MaskOptions
    user_mask : bool ndarray, shape (X, Y, Z), optional
        A mask made elsewhere, on the same grid (resampled beforehand if needed).
    source : {'user', 'bet'}, optional
        Where ``user_mask`` comes from.
    source_file : str, optional
        The file ``user_mask`` was read from (recorded in the sidecar).

    Returns
    -------
    BrainMaskResult

    Raises
    ------
    ValueError
        The given mask has another shape or is empty, or no brain is found.
    """
    if user_mask is not None:
        mask = np.asarray(user_mask) > 0
        if mask.shape != np.shape(magnitude):
            raise ValueError(f'the brain mask has shape {mask.shape}, the echoes '
                             f'{np.shape(magnitude)}')
        if source not in ('user', 'bet'):
            raise ValueError(f"source must be 'user' or 'bet', got {source!r}")
        if not mask.any():
            where = f' {source_file}' if source_file else ''
            raise ValueError(f'the brain mask{where} is empty on the grid of the echoes')
    else:
        mask = brain_mask_from_magnitude(
            magnitude, voxel_size, threshold=options.mask_threshold,
            opening_mm=options.mask_opening_mm, erosion_mm=options.mask_erosion_mm,
            bias_sigma_mm=options.mask_bias_sigma_mm)
        source = 'magnitude'
    if not mask.any():
        raise ValueError('the brain mask is empty')
    checks, warnings = check_brain_mask(mask, voxel_size)
    decisions = {'brain_mask': MASK_SOURCES[source], **checks}
    if source_file:
        decisions['brain_mask_file'] = str(source_file)
    return BrainMaskResult(mask=mask, source=source, decisions=decisions, warnings=warnings)
