"""Spherical mean value (SMV) filter: convolution with a normalised sphere, via real FFTs."""

from functools import lru_cache

import numpy as np
import scipy.fft


@lru_cache(maxsize=8)
def _smv_kernel_cached(shape, voxel_size, radius_mm, rfft):
    coords = []
    for n, dx in zip(shape, voxel_size, strict=True):
        idx = np.arange(n)
        idx = np.where(idx > n // 2, idx - n, idx)  # wrapped distance from voxel 0
        coords.append(idx * dx)
    x, y, z = np.meshgrid(*coords, indexing='ij', sparse=True)
    sphere = (x**2 + y**2 + z**2 <= radius_mm**2).astype(np.float64)
    sphere /= sphere.sum()
    if rfft:
        kernel = scipy.fft.rfftn(sphere).real
    else:
        kernel = scipy.fft.fftn(sphere).real
    kernel = kernel.astype(np.float32)
    kernel.setflags(write=False)
    return kernel


def smv_kernel(shape, voxel_size, radius_mm, *, rfft=False):
    """k-space response of the spherical mean value operator.

    Parameters
    ----------
    shape : tuple of 3 int
        Matrix size, in voxels.
    voxel_size : tuple of 3 float
        Voxel edge lengths in mm, in array-axis order.
    radius_mm : float
        Sphere radius in mm.  Voxel centres within the radius belong to the sphere (the voxel
        at the centre always does).
    rfft : bool, optional
        Return the half spectrum of a real-to-complex FFT (last axis ``n // 2 + 1``).

    Returns
    -------
    S : float32 ndarray, read-only, dimensionless
        Unshifted FFT order; ``S[0, 0, 0] = 1`` (the sphere is normalised to unit sum) and S is
        real because the sphere is point-symmetric about voxel 0.  Cached.

    Raises
    ------
    ValueError
        If the radius is not positive.
    """
    if not radius_mm > 0:
        raise ValueError(f'SMV radius must be positive, got {radius_mm} mm')
    return _smv_kernel_cached(
        tuple(int(n) for n in shape),
        tuple(float(v) for v in voxel_size),
        float(radius_mm),
        bool(rfft),
    )


def smv_filter(x, voxel_size, radius_mm):
    """Spherical mean of ``x`` over a ball of radius ``radius_mm`` (periodic boundaries).

    Parameters
    ----------
    x : ndarray, shape (X, Y, Z)
        Real volume, any unit.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    radius_mm : float
        Sphere radius in mm.

    Returns
    -------
    float32 ndarray, same shape and unit as ``x``
        The mean of ``x`` over the sphere centred on each voxel.  Values within ``radius_mm``
        of the array edge mix in the opposite edge (circular convolution), as in MEDI.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f'smv_filter needs a 3-D volume, got shape {x.shape}')
    kernel = smv_kernel(x.shape, voxel_size, radius_mm, rfft=True)
    spectrum = scipy.fft.rfftn(x, workers=-1)
    spectrum *= kernel
    return scipy.fft.irfftn(spectrum, s=x.shape, workers=-1).astype(np.float32, copy=False)
