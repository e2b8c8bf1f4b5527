"""Truncated k-space division (TKD): the closed-form baseline dipole inversion."""

import numpy as np
import scipy.fft

from .constants import radians_to_ppm
from .dipole import dipole_kernel


def tkd(local_field_rad, mask, voxel_size, *, b0_dir=(0.0, 0.0, 1.0), field_strength,
        delta_te, threshold=0.19):
    """Susceptibility by truncated k-space division, χ = IFFT(FFT(f) / D_t).

    Parameters
    ----------
    local_field_rad : ndarray, shape (X, Y, Z)
        Local (background-removed) field in radians per echo spacing ΔTE.
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask; the field is zeroed outside it and so is the result.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes.
    field_strength : float
        B0 in tesla.
    delta_te : float
        Echo spacing ΔTE in seconds (the unit of the field).
    threshold : float, optional
        Where ``|D(k)| < threshold`` the kernel is replaced by ``threshold · sign(D)``
        (``+threshold`` where D is exactly 0 off the origin).  0.19 is Wharton 2010's value.

    Returns
    -------
    chi : float32 ndarray, shape (X, Y, Z)
        χ in ppm inside the mask, 0 outside.  The k = 0 term is set to 0, so the mean over
        the FFT box is 0; reference it to a region (e.g. CSF) afterwards.  No correction for
        the known underestimation of truncation is applied.

    Raises
    ------
    ValueError
        If the threshold is not in (0, 2/3] or the shapes differ.

    References
    ----------
    .. [1] Shmueli K, et al. Magn Reson Med 2009;62:1510-1522.
    .. [2] Wharton S, et al. Magn Reson Med 2010;63:1292-1304.
    """
    field = np.asarray(local_field_rad, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if field.ndim != 3 or field.shape != mask.shape:
        raise ValueError(f'field {field.shape} and mask {mask.shape} must be 3-D and equal')
    if not 0 < threshold <= 2 / 3:
        raise ValueError(f'TKD threshold must be in (0, 2/3], got {threshold}')
    kernel = dipole_kernel(field.shape, voxel_size, b0_dir=b0_dir, rfft=True)
    truncated = np.where(np.abs(kernel) < threshold,
                         np.where(kernel < 0, -threshold, threshold), kernel)
    inverse = (1.0 / truncated).astype(np.float32)
    inverse[0, 0, 0] = 0.0
    spectrum = scipy.fft.rfftn(np.where(mask, field, 0.0).astype(np.float32), workers=-1)
    chi_rad = scipy.fft.irfftn(spectrum * inverse, s=field.shape, workers=-1)
    chi = radians_to_ppm(chi_rad, field_strength=field_strength, delta_te=delta_te)
    return np.where(mask, chi, 0.0).astype(np.float32)
