"""The unit dipole kernel in k-space, and the forward field of a susceptibility map."""

import itertools
from functools import lru_cache

import numpy as np
import scipy.fft


def _axis_frequencies(n, dx, *, half):
    """Both readings of one axis's FFT frequencies, cycles/mm: Nyquist as -n/2 and as +n/2.

    For an even ``n`` the Nyquist bin holds -n/2 and +n/2 at once; the two readings differ
    only there (for an odd ``n``, or a half axis, they are the same array).
    """
    freqs = np.fft.rfftfreq(n, d=dx) if half else np.fft.fftfreq(n, d=dx)
    other = freqs.copy()
    if n % 2 == 0:
        nyquist = n // 2
        other[nyquist] = -freqs[nyquist]
    return freqs, other


def _kernel_values(kx, ky, kz, b0_dir):
    k_dot_b = kx * b0_dir[0] + ky * b0_dir[1] + kz * b0_dir[2]
    with np.errstate(divide='ignore', invalid='ignore'):
        return 1.0 / 3.0 - k_dot_b**2 / (kx**2 + ky**2 + kz**2)


@lru_cache(maxsize=8)
def _dipole_kernel_cached(shape, voxel_size, b0_dir, rfft):
    readings = [_axis_frequencies(n, dx, half=rfft and axis == len(shape) - 1)
                for axis, (n, dx) in enumerate(zip(shape, voxel_size, strict=True))]
    kernel = _kernel_values(*np.meshgrid(*[r[0] for r in readings], indexing='ij',
                                         sparse=True), b0_dir)
    # A Nyquist bin stands for +k and -k alike.  With B0 oblique to the grid, (k · b0)² differs
    # between the two, and a kernel that takes one of them is not even on the discrete grid:
    # the field of a real χ comes out complex, and the half-spectrum path, which assumes a
    # real result, keeps one reading and drops the other.  So on every Nyquist plane (then
    # their lines and corner) the kernel is the mean over the readings; where they agree (B0
    # along an array axis) it is left exactly as it is.
    ambiguous = [axis for axis, (a, b) in enumerate(readings) if not np.array_equal(a, b)]
    for count in range(1, len(ambiguous) + 1):
        for axes in itertools.combinations(ambiguous, count):
            at = tuple(slice(n // 2, n // 2 + 1) if axis in axes else slice(None)
                       for axis, n in enumerate(shape))
            values = []
            for signs in itertools.product((0, 1), repeat=count):
                reading = dict(zip(axes, signs, strict=True))
                values.append(_kernel_values(*np.meshgrid(
                    *[r[reading.get(axis, 0)][at[axis]] for axis, r in enumerate(readings)],
                    indexing='ij', sparse=True), b0_dir))
            first = values[0]
            agree = np.all([v == first for v in values], axis=0)
            kernel[at] = np.where(agree, kernel[at], np.mean(values, axis=0))
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
