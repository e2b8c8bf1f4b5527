"""The unit dipole kernel in k-space, and the forward field of a susceptibility map."""

from functools import lru_cache

import numpy as np
import scipy.fft


@lru_cache(maxsize=8)
def _dipole_kernel_cached(shape, voxel_size, b0_dir, rfft):
    axes_freqs = []
    for axis, (n, dx) in enumerate(zip(shape, voxel_size, strict=True)):
        if rfft and axis == len(shape) - 1:
            axes_freqs.append(np.fft.rfftfreq(n, d=dx))
        else:
            axes_freqs.append(np.fft.fftfreq(n, d=dx))
    kx, ky, kz = np.meshgrid(*axes_freqs, indexing='ij', sparse=True)
    k_dot_b = kx * b0_dir[0] + ky * b0_dir[1] + kz * b0_dir[2]
    k_squared = kx**2 + ky**2 + kz**2
    with np.errstate(divide='ignore', invalid='ignore'):
        kernel = 1.0 / 3.0 - k_dot_b**2 / k_squared
    kernel[0, 0, 0] = 0.0
    kernel = kernel.astype(np.float32)
    kernel.setflags(write=False)
    return kernel


def dipole_kernel(shape, voxel_size, *, b0_dir=(0.0, 0.0, 1.0), rfft=False):
    """Unit dipole response in k-space, D(k) = 1/3 - (k · b0_dir)² / |k|².

    Parameters
    ----------
    shape : tuple of 3 int
        Matrix size of the field map, in voxels.
    voxel_size : tuple of 3 float
        Voxel edge lengths in mm, in array-axis order (``header.get_zooms()[:3]``).
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes, from :func:`lesionqsm.qsm.geometry.b0_direction`.
    rfft : bool, optional
        Return only the half spectrum of a real-to-complex FFT (last axis ``n // 2 + 1``).

    Returns
    -------
    D : float32 ndarray, read-only, dimensionless
        Unshifted FFT order, ``D[0, 0, 0] = 0``; field δB/B0 = IFFT(D · FFT(χ)), both in ppm.
        Cached: repeated calls with the same arguments return the same array.

    References
    ----------
    .. [1] Marques JP, Bowtell R. Concepts Magn Reson B 2005;25B:65-78.
    """
    b0 = np.asarray(b0_dir, dtype=float)
    b0 = b0 / np.linalg.norm(b0)
    return _dipole_kernel_cached(
        tuple(int(n) for n in shape),
        tuple(float(v) for v in voxel_size),
        tuple(float(v) for v in b0),
        bool(rfft),
    )


def forward_field(chi, voxel_size, *, b0_dir=(0.0, 0.0, 1.0), pad=True):
    """Field perturbation δB/B0 (ppm) of a susceptibility map χ (ppm), by dipole convolution.

    Parameters
    ----------
    chi : ndarray, shape (X, Y, Z)
        Susceptibility in ppm.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes.
    pad : bool, optional
        Zero-pad every axis to twice its length before the FFT, so the periodic convolution
        does not wrap sources around the edges (a linear convolution to within the kernel's
        far field).

    Returns
    -------
    field : float32 ndarray, same shape as ``chi``
        δB/B0 in ppm.
    """
    chi = np.asarray(chi, dtype=np.float32)
    shape = chi.shape
    fft_shape = tuple(2 * n for n in shape) if pad else shape
    kernel = dipole_kernel(fft_shape, voxel_size, b0_dir=b0_dir, rfft=True)
    spectrum = scipy.fft.rfftn(chi, s=fft_shape, workers=-1)
    field = scipy.fft.irfftn(spectrum * kernel, s=fft_shape, workers=-1)
    return field[tuple(slice(0, n) for n in shape)].astype(np.float32)
