"""Finite-difference gradient and its adjoint, as used by the MEDI toolbox's TV term.

The forward gradient is ``fgrad`` of the MEDI toolbox: a forward difference along each array
axis divided by the voxel size, zero on the last plane of each axis.  :func:`gradient_adjoint`
is its exact adjoint (the toolbox's ``bdiv``, which despite its name returns ``-div``, i.e. a
positive semi-definite ``grad^T``), so ``grad^T W grad`` is symmetric for CG.
"""

import numpy as np


def gradient(x, voxel_size, *, out=None):
    """Forward-difference gradient, in units of ``x`` per mm.

    Parameters
    ----------
    x : ndarray, shape (X, Y, Z)
        Real volume (e.g. χ in any unit).
    voxel_size : tuple of 3 float
        Voxel edge lengths in mm, in array-axis order.
    out : ndarray, shape (3, X, Y, Z), optional
        Preallocated output (float32 avoids a copy in hot loops).

    Returns
    -------
    g : ndarray, shape (3, X, Y, Z)
        ``g[a][i] = (x[i + e_a] - x[i]) / voxel_size[a]``, and 0 on the last plane of axis a
        (MEDI's ``fgrad``).
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f'gradient needs a 3-D volume, got shape {x.shape}')
    if out is None:
        out = np.empty((3,) + x.shape, dtype=np.result_type(x.dtype, np.float32))
    for axis in range(3):
        g = out[axis]
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        last = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        last[axis] = slice(-1, None)
        np.subtract(x[tuple(hi)], x[tuple(lo)], out=g[tuple(lo)])
        g[tuple(lo)] *= np.float32(1.0 / voxel_size[axis])
        g[tuple(last)] = 0
    return out


def gradient_adjoint(g, voxel_size, *, out=None):
    """Adjoint of :func:`gradient` (``grad^T g``, MEDI's ``bdiv``), in units of ``g`` per mm.

    Parameters
    ----------
    g : ndarray, shape (3, X, Y, Z)
        A vector field, e.g. a weighted gradient.
    voxel_size : tuple of 3 float
        Voxel edge lengths in mm.
    out : ndarray, shape (X, Y, Z), optional
        Preallocated output.

    Returns
    -------
    d : ndarray, shape (X, Y, Z)
        ``<gradient(x), g> == <x, d>`` for every ``x`` (to rounding).
    """
    g = np.asarray(g)
    if g.ndim != 4 or g.shape[0] != 3:
        raise ValueError(f'gradient_adjoint needs an array of shape (3, X, Y, Z), got {g.shape}')
    if out is None:
        out = np.zeros(g.shape[1:], dtype=np.result_type(g.dtype, np.float32))
    else:
        out[...] = 0
    for axis in range(3):
        ga = g[axis]
        scale = np.float32(1.0 / voxel_size[axis])
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        # d[i] -= g[i] for i < n-1;  d[i+1] += g[i] for i < n-1
        if scale == 1:
            out[tuple(lo)] -= ga[tuple(lo)]
            out[tuple(hi)] += ga[tuple(lo)]
        else:
            scaled = ga[tuple(lo)] * scale
            out[tuple(lo)] -= scaled
            out[tuple(hi)] += scaled
    return out
