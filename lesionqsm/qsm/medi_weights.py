"""Weights of the MEDI cost function: data weights, the magnitude edge mask, MERIT reweighting."""

import numpy as np

from .background import data_weights
from .gradient import gradient

__all__ = ['data_weights', 'gradient_mask', 'inside_differences', 'merit_noise_update']


def gradient_mask(magnitude, mask, voxel_size, *, edge_fraction=0.9):
    """Binary TV weights M_G from the magnitude gradient (MEDI's ``gradient_mask``).

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z)
        Magnitude image, any (arbitrary) scale.
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask; the magnitude is zeroed outside it before the gradient is taken.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    edge_fraction : float, optional
        Number of *edge* gradient components, as a fraction of the number of mask voxels.

    Returns
    -------
    m_g : float32 ndarray, shape (3, X, Y, Z)
        1 where a gradient component is regularised (smooth magnitude), 0 on edges.
    threshold : float
        Magnitude-gradient threshold (magnitude units per mm): components above it are edges.

    Raises
    ------
    ValueError
        If ``edge_fraction`` is not in [0, 3] or the shapes differ.

    Notes
    -----
    As in the MEDI toolbox, the gradient has 3 components per voxel and the count of edge
    components (gradient magnitude above the threshold) is set to ``edge_fraction`` times the
    number of *voxels* in the mask: with the default 0.9 about 30 % of the gradient components
    inside the brain are edges and escape the TV penalty, and 70 % are regularised.  The
    toolbox reaches the threshold by multiplying ``0.01 · max(magnitude)`` by 1.05 (or 0.95)
    until the count crosses the target; here the threshold is the exact order statistic, so
    the count matches the target to one component and the result does not depend on the
    magnitude's scale.
    """
    magnitude = np.asarray(magnitude, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if magnitude.shape != mask.shape:
        raise ValueError(f'magnitude {magnitude.shape} and mask {mask.shape} shapes differ')
    if not 0 <= edge_fraction <= 3:
        raise ValueError(f'edge_fraction must be in [0, 3] (3 gradient components per voxel), '
                         f'got {edge_fraction}')
    g = np.abs(gradient(np.where(mask, magnitude, 0.0).astype(np.float32), voxel_size))
    n_edges = int(round(edge_fraction * int(mask.sum())))
    positive = g[g > 0]  # zeros (outside the mask, flat regions) are never edges
    if n_edges <= 0:
        threshold = float(g.max())
    elif n_edges >= positive.size:
        threshold = 0.0
    else:
        # the n_edges largest components are edges: threshold = the next largest value
        k = positive.size - n_edges - 1
        threshold = float(np.partition(positive, k)[k])
    return (g <= threshold).astype(np.float32), threshold


def inside_differences(m_g, mask):
    """The TV weights ``m_g`` kept only on forward differences between two mask voxels.

    Parameters
    ----------
    m_g : ndarray, shape (3, X, Y, Z)
        TV weights per forward-difference component (:func:`gradient_mask`).
    mask : ndarray of bool, shape (X, Y, Z)

    Returns
    -------
    float32 ndarray, shape (3, X, Y, Z)
        ``m_g[a][i]`` where voxel ``i`` and its neighbour ``i + e_a`` are both in the mask,
        0 elsewhere (no penalty across the mask's boundary or outside it).
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(np.shape(m_g), dtype=np.float32)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        both = mask[tuple(lo)] & mask[tuple(hi)]
        out[axis][tuple(lo)] = np.where(both, m_g[axis][tuple(lo)], 0.0)
    return out


def merit_noise_update(noise_std, residual, mask):
    """MERIT: inflate the noise where the data residual is an outlier (MEDI toolbox rule).

    Parameters
    ----------
    noise_std : ndarray, shape (X, Y, Z)
        Current noise standard deviation (any scale).
    residual : complex ndarray, shape (X, Y, Z)
        Weighted data residual ``m · exp(i D χ) - m · exp(i f)``.
    mask : ndarray of bool
        Brain mask.

    Returns
    -------
    float32 ndarray
        ``noise_std`` multiplied, inside the mask, by ``max(1, |r - mean r| / (6 std|r|))²``.
    """
    res = residual - residual[mask].mean()
    factor = 6.0 * float(np.std(np.abs(res[mask])))
    if factor == 0:
        return np.asarray(noise_std, dtype=np.float32)
    ratio = np.maximum(np.abs(res) / factor, 1.0)
    updated = np.array(noise_std, dtype=np.float32)
    updated[mask] *= (ratio[mask] ** 2).astype(np.float32)
    return updated
