"""Background field removal: projection onto dipole fields (PDF), Laplacian boundary value (LBV).

Both take a total field (radians per echo spacing ΔTE in the pipeline, but any linear unit
works: the result has the unit of the input) and return the local field, the part produced by
sources inside the brain mask.
"""

import numpy as np
import scipy.fft
import scipy.ndimage as ndi

from .cg import conjugate_gradient
from .dipole import dipole_kernel


def _check_field_mask(field, mask):
    field = np.asarray(field, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    if field.ndim != 3:
        raise ValueError(f'the field must be a 3-D volume, got shape {field.shape}')
    if mask.shape != field.shape:
        raise ValueError(f'mask shape {mask.shape} differs from field shape {field.shape}')
    if not mask.any():
        raise ValueError('the brain mask is empty')
    return field, mask


def data_weights(noise_std, mask):
    """Data weights 1/σ inside the mask, normalised to mean 1 over the mask.

    Parameters
    ----------
    noise_std : None, float or ndarray, shape of ``mask``
        Noise standard deviation of the field, any unit (only its relative variation counts).
        ``None`` gives uniform weights.  Zero, negative, infinite or NaN entries get weight 0.
    mask : ndarray of bool
        Brain mask.

    Returns
    -------
    w : float32 ndarray, shape of ``mask``
        0 outside the mask, mean 1 over the mask; unchanged when ``noise_std`` is multiplied
        by any positive constant (the scale of magnitude images is arbitrary).

    Raises
    ------
    ValueError
        If no voxel of the mask has a finite positive noise value.
    """
    mask = np.asarray(mask, dtype=bool)
    if noise_std is None:
        return mask.astype(np.float32)
    sigma = np.broadcast_to(np.asarray(noise_std, dtype=np.float64), mask.shape)
    with np.errstate(divide='ignore', invalid='ignore'):
        w = np.where(mask & np.isfinite(sigma) & (sigma > 0), 1.0 / sigma, 0.0)
    w[~np.isfinite(w)] = 0.0
    mean = w[mask].mean()
    if not mean > 0:
        raise ValueError('noise_std has no finite positive value inside the mask')
    return (w / mean).astype(np.float32)


def pdf(field_rad, mask, voxel_size, *, b0_dir=(0.0, 0.0, 1.0), noise_std=None, tol=1e-3,
        max_iter=200, stall_patience=None, pad_voxels=(8, 8, 8), crop=False,
        return_info=False):
    """Projection onto dipole fields: remove the field of every source outside the mask.

    Finds the susceptibility ``χ_out`` outside the mask whose field best matches the total
    field inside it, minimising ``|| W (f - M_in D M_out χ_out) ||²`` by CG on the normal
    equations, and returns ``f - D M_out χ_out`` inside the mask.

    Parameters
    ----------
    field_rad : ndarray, shape (X, Y, Z)
        Total (unwrapped) field, radians per ΔTE or any other linear unit.
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask (region of interest).
    voxel_size : tuple of 3 float
        Voxel size in mm.
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes.
    noise_std : None, float or ndarray, optional
        Noise standard deviation of the field (same unit as the field, or any multiple of it):
        weights are ``1/σ`` normalised to mean 1 over the mask (:func:`data_weights`), so the
        result does not depend on the scale of the magnitude or noise map.
    tol : float, optional
        CG stops when the residual of the normal equations falls below ``tol`` times its
        initial value.  1e-3 (about 15 iterations on a head) leaves a background residual of
        a quarter of the local field's spread when the background is 10x the local field;
        0.01 stops after ~3 iterations and leaves ~40 %.  Tighter values also remove more of
        the local field (PDF's ambiguity grows with the iterations).
    max_iter : int, optional
        At most this many CG iterations.
    stall_patience : int, optional
        Also stop when the CG residual has stayed above its smallest value for this many
        iterations (:func:`lesionqsm.qsm.cg.conjugate_gradient`).  Without sources outside the
        brain the residual cannot fall much below a few percent (what is left is the brain's
        own field and the far, harmonic field the padded box cannot hold); it stalls, and
        every further step fits part of the local field with outside sources.
    pad_voxels : tuple of 3 int, optional
        Zero-padding on each side of each axis (rounded up to a fast FFT length), so that
        background sources just outside the field of view can be represented and the circular
        convolution does not wrap one edge onto the other.
    crop : bool, optional
        Work on the mask's bounding box (plus ``pad_voxels``) instead of the whole field of
        view: only sources within ``pad_voxels`` of the box are represented, which leaves
        the smooth (harmonic) field of far sources, and costs less when the head does not
        fill the field of view.  Meant to be followed by a harmonic-field removal
        (:mod:`lesionqsm.qsm.vsmv`).
    return_info : bool, optional
        Also return a dict with ``iterations``, ``relative_residual`` and ``stopped_by``
        (``'tolerance'``, ``'stall'`` or ``'max_iter'``).

    Returns
    -------
    local_field : float32 ndarray, shape (X, Y, Z)
        Local field, same unit as ``field_rad``, 0 outside the mask.
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        If shapes differ, the mask is empty or the tolerance is not in (0, 1).

    Notes
    -----
    Departures from the MEDI toolbox's ``PDF.m``: weights are normalised to mean 1 and the
    CG tolerance is relative to the initial residual (the toolbox's absolute tolerance scales
    with the noise estimate, and on raw magnitudes of ~0.1 it stops after one CG step); the
    padding is symmetric on all axes rather than 40 slices along one axis.

    References
    ----------
    .. [1] Liu T, et al. NMR Biomed 2011;24:1129-1136.
    """
    field, mask = _check_field_mask(field_rad, mask)
    if not 0 < tol < 1:
        raise ValueError(f'PDF tolerance must be in (0, 1), got {tol}')
    w = data_weights(noise_std, mask)
    full_shape = field.shape
    box = tuple(slice(0, n) for n in full_shape)
    if crop:
        idx = np.nonzero(mask)
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
        field, mask, w = field[box], mask[box], w[box]
    shape = field.shape
    padded = tuple(scipy.fft.next_fast_len(n + 2 * int(p), real=True)
                   for n, p in zip(shape, pad_voxels, strict=True))
    start = tuple((pn - n) // 2 for pn, n in zip(padded, shape, strict=True))
    inner = tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))
    kernel = dipole_kernel(padded, voxel_size, b0_dir=b0_dir, rfft=True)

    def conv(x):
        spec = scipy.fft.rfftn(x, workers=-1)
        spec *= kernel
        return scipy.fft.irfftn(spec, s=padded, workers=-1)

    outside = np.ones(padded, dtype=bool)
    outside[inner] = ~mask
    w2 = np.zeros(padded, dtype=np.float32)
    w2[inner] = w * w
    f_pad = np.zeros(padded, dtype=np.float32)
    f_pad[inner] = np.where(mask, field, 0.0)

    def apply_a(x):
        return np.where(outside, conv(w2 * conv(np.where(outside, x, 0.0))), 0.0)

    b = np.where(outside, conv(w2 * f_pad), 0.0).astype(np.float32)
    chi_out, iterations, rel, stopped_by = conjugate_gradient(
        apply_a, b, tol=tol, max_iter=max_iter, stall_patience=stall_patience)
    background = conv(np.where(outside, chi_out, 0.0))[inner]
    local = np.zeros(full_shape, dtype=np.float32)
    local[box] = np.where(mask, field - background, 0.0)
    if return_info:
        return local, {'iterations': iterations, 'relative_residual': rel,
                       'stopped_by': stopped_by, 'fft_shape': padded}
    return local


def _laplacian(u, h2inv, out):
    """Negative 7-point Laplacian ``-∇²u`` with zero values outside the array."""
    out[...] = u * np.float32(2.0 * sum(h2inv))
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        c = np.float32(h2inv[axis])
        out[tuple(lo)] -= c * u[tuple(hi)]
        out[tuple(hi)] -= c * u[tuple(lo)]
    return out


def lbv(field_rad, mask, voxel_size, *, tol=1e-3, max_iter=500, peel=0, return_mask=False,
        return_info=False):
    """Laplacian boundary value background removal: harmonic fit of the boundary values.

    The background field is harmonic inside the brain (its sources are outside), so it is the
    solution of ``∇² f_bg = 0`` in the interior of the mask with ``f_bg = f`` on the mask's
    boundary layer; the local field is ``f - f_bg``.

    Parameters
    ----------
    field_rad : ndarray, shape (X, Y, Z)
        Total (unwrapped) field, radians per ΔTE or any other linear unit.
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size in mm (the Laplacian is anisotropic-aware).
    tol : float, optional
        Preconditioned CG stops when the residual of the interior Poisson system is below
        ``tol`` times its initial value.
    max_iter : int, optional
        At most this many CG iterations.
    peel : int, optional
        Further erode the returned mask by this many voxels (boundary layers are where LBV's
        local field is least reliable).
    return_mask : bool, optional
        Also return the mask on which the local field is defined.
    return_info : bool, optional
        Also return a dict with ``iterations`` and ``relative_residual``.

    Returns
    -------
    local_field : float32 ndarray, shape (X, Y, Z)
        Local field in the unit of ``field_rad`` on the eroded mask, 0 elsewhere (the
        boundary layer itself carries the boundary values, so its local field is 0).
    local_mask : ndarray of bool
        Only with ``return_mask=True``: the mask eroded by ``1 + peel`` voxels (6-connected).
    info : dict
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        If shapes differ or the mask has no interior voxel.

    Notes
    -----
    Departures from Zhou et al. 2014 and the MEDI toolbox's ``LBV``: the Poisson system is
    solved by conjugate gradients preconditioned with the exact inverse of the Dirichlet
    Laplacian on the mask's bounding box (a discrete sine transform), instead of full
    multigrid; the boundary is the 6-connected outer layer of the mask; the tolerance is on
    the relative residual.

    References
    ----------
    .. [1] Zhou D, Liu T, Spincemaille P, Wang Y. NMR Biomed 2014;27:312-319.
    """
    field, mask = _check_field_mask(field_rad, mask)
    if not 0 < tol < 1:
        raise ValueError(f'LBV tolerance must be in (0, 1), got {tol}')
    structure = ndi.generate_binary_structure(3, 1)
    interior = ndi.binary_erosion(mask, structure, border_value=0)
    if not interior.any():
        raise ValueError('the brain mask has no interior voxel: LBV needs a thicker mask')
    # work on the bounding box of the mask plus one voxel of zeros on each side
    idx = np.nonzero(mask)
    box = tuple(slice(max(int(i.min()) - 1, 0), min(int(i.max()) + 2, n))
                for i, n in zip(idx, mask.shape, strict=True))
    m_in = interior[box]
    m_bd = mask[box] & ~m_in
    h2inv = tuple(1.0 / float(v) ** 2 for v in voxel_size)
    tmp = np.empty(m_in.shape, dtype=np.float32)

    g = np.where(m_bd, field[box], 0.0).astype(np.float32)
    b = np.where(m_in, -_laplacian(g, h2inv, tmp), 0.0).astype(np.float32)

    def apply_a(v):
        return np.where(m_in, _laplacian(v, h2inv, tmp), 0.0).astype(np.float32)

    # eigenvalues of the negative Dirichlet Laplacian on the box (DST-I diagonalises it)
    eig = np.zeros(m_in.shape, dtype=np.float64)
    for axis, n in enumerate(m_in.shape):
        k = np.arange(1, n + 1)
        lam = (2.0 - 2.0 * np.cos(np.pi * k / (n + 1))) * h2inv[axis]
        eig = eig + lam.reshape([-1 if a == axis else 1 for a in range(3)])
    inv_eig = (1.0 / eig).astype(np.float32)

    def precondition(r):
        z = scipy.fft.dstn(r, type=1, workers=-1)
        z *= inv_eig
        z = scipy.fft.idstn(z, type=1, workers=-1)
        return np.where(m_in, z, 0.0).astype(np.float32)

    v, iterations, rel, _ = conjugate_gradient(apply_a, b, tol=tol, max_iter=max_iter,
                                               precondition=precondition)
    local_mask = interior
    if peel > 0:
        local_mask = ndi.binary_erosion(interior, structure, iterations=int(peel), border_value=0)
    background = np.zeros_like(field)
    background[box] = v
    local = np.where(local_mask, field - background, 0.0).astype(np.float32)
    out = [local]
    if return_mask:
        out.append(local_mask)
    if return_info:
        out.append({'iterations': iterations, 'relative_residual': rel})
    return out[0] if len(out) == 1 else tuple(out)
