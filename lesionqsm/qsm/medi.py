"""MEDI and MEDI+0 dipole inversion (morphology-enabled dipole inversion, L1 / TV form).

Minimises, over χ in radians per ΔTE (the unit of the local field),

    λ/2 ||W (exp(i D χ) - exp(i f))||² + ||M_G ∇χ||₁ + λ_CSF ||M_CSF (χ - mean_CSF χ)||²

by Gauss-Newton steps with lagged-diffusivity TV, each solved by conjugate gradients, exactly
as the MEDI toolbox's ``MEDI_L1.m`` does (its operator and right-hand side, its constants):

    A dx = ∇ᵀ(M_G V ∇dx) + 2λ Dᵀ(W² D dx) + λ_CSF L(dx),
    b    = ∇ᵀ(M_G V ∇χ) + λ_CSF L(χ) + 2λ Dᵀ Re(conj(w) (-i) (w - W e^{if})),   dx = -A⁻¹ b,

with ``V = 1/sqrt(|M_G ∇χ|² + ε)`` per gradient component (anisotropic TV, ε = 1e-6 in
(rad/mm)², absolute as in the toolbox), ``w = W exp(i D χ)`` and ``L(x) = M_CSF (x - mean_CSF x)``.
The result is converted to ppm and referenced to the mean over the CSF mask.  With
``outside_scale`` the unknown also covers the sources outside the mask (χ = P y, as in total
field inversion), which take up the background field the earlier steps left.

This is the fast implementation (float32, real FFTs with cached kernels, preallocated work
arrays, the constant data operator W² hoisted out of the loop); :mod:`lesionqsm.qsm.medi_reference`
is a plain transcription of the same iteration for checking it.
"""

import time

import numpy as np
import scipy.fft

from . import threads, vsmv
from .cg import conjugate_gradient
from .constants import radians_to_ppm
from .dipole import dipole_kernel
from .gradient import gradient
from .medi_weights import data_weights, gradient_mask, inside_differences, merit_noise_update
from .smv import smv_filter, smv_kernel

#: Bump when the numerical behaviour changes (recorded in the output metadata).
VERSION = '4'

#: Voxels kept around the mask's bounding box when the problem is cropped for speed.
CROP_MARGIN = 12

#: Smallest solver box (voxels) whose FFTs use all cores.
FFT_THREADS_MIN_SIZE = 2**19

#: Precondition each Gauss-Newton step's CG with the k-space inverse of its operator (the
#: weights replaced by their means); the stopping rule is unchanged.
PRECONDITION = True

#: Lagged-diffusivity smoothing ε of the TV weights, (rad/mm)²; MEDI_L1.m's ``e``.
TV_EPSILON = 1e-6


def _prepare(local_field_rad, mask, magnitude, voxel_size, *, noise_std, csf_mask,
             edge_fraction, smv_radius_mm, outside_scale=None, crop_margin=CROP_MARGIN):
    """Validate inputs and build the pieces every implementation of the iteration shares."""
    field = np.asarray(local_field_rad, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    magnitude = np.asarray(magnitude, dtype=np.float32)
    if field.ndim != 3:
        raise ValueError(f'the local field must be a 3-D volume, got shape {field.shape}')
    for name, arr in (('mask', mask), ('magnitude', magnitude)):
        if arr.shape != field.shape:
            raise ValueError(f'{name} shape {arr.shape} differs from field shape {field.shape}')
    if not mask.any():
        raise ValueError('the brain mask is empty')
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise ValueError(f'voxel_size must be 3 positive lengths in mm, got {voxel_size}')
    if not np.all(np.isfinite(field[mask])):
        raise ValueError('the local field has NaN or infinite values inside the mask')
    if noise_std is None:
        # phase noise is inversely proportional to the magnitude
        with np.errstate(divide='ignore'):
            noise = np.where(magnitude > 0, 1.0 / magnitude, np.inf).astype(np.float32)
    else:
        if np.ndim(noise_std) not in (0, 3) or (np.ndim(noise_std) == 3
                                                and np.shape(noise_std) != field.shape):
            raise ValueError(f'noise_std must be a scalar or a volume of shape {field.shape}, '
                             f'got shape {np.shape(noise_std)}')
        noise = np.array(np.broadcast_to(np.asarray(noise_std, dtype=np.float32), field.shape))
    if csf_mask is not None:
        csf_mask = np.asarray(csf_mask, dtype=bool)
        if csf_mask.shape != field.shape:
            raise ValueError(f'csf_mask shape {csf_mask.shape} differs from {field.shape}')
    smv_kernel_rfft = None
    edge_smv = None
    if np.ndim(smv_radius_mm) == 3:
        # per-voxel kernel choice (lesionqsm.qsm.vsmv): the mask loses only its outer layer
        if np.shape(smv_radius_mm) != field.shape:
            raise ValueError(f'the smv_radius_mm map has shape {np.shape(smv_radius_mm)}, '
                             f'the field {field.shape}')
        edge_smv = vsmv.EdgeAwareSMV.from_radius_map(np.where(mask, smv_radius_mm, 0),
                                                     voxel_size)
        mask = edge_smv.kept
        if not mask.any():
            raise ValueError('the smv_radius_mm map is 0 everywhere in the mask')
        field = edge_smv.apply(np.where(mask, field, 0))
        finite = np.where(np.isfinite(noise), noise, 0.0)
        noise = np.sqrt(np.maximum(edge_smv.smooth_variance(finite**2), 0.0) + noise**2)
    elif smv_radius_mm:
        mask = smv_filter(mask.astype(np.float32), voxel_size, smv_radius_mm) > 0.999
        if not mask.any():
            raise ValueError(f'the mask vanishes after SMV erosion with radius {smv_radius_mm} mm')
        field = np.where(mask, field - smv_filter(field, voxel_size, smv_radius_mm), 0.0)
        field = field.astype(np.float32)
        finite = np.where(np.isfinite(noise), noise, 0.0)
        noise = np.sqrt(np.maximum(smv_filter(finite**2, voxel_size, smv_radius_mm), 0.0)
                        + noise**2)
    if csf_mask is not None:
        csf_mask = csf_mask & mask
        if not csf_mask.any():
            csf_mask = None
    m_g, edge_threshold = gradient_mask(magnitude, mask, voxel_size, edge_fraction=edge_fraction)
    box = _solver_box(mask, margin=crop_margin)
    full_shape = field.shape
    full_mask = mask
    if edge_smv is not None:
        edge_smv = edge_smv.crop(box)
    elif smv_radius_mm:  # the kernel (1 - S) D is periodic on the solver's box
        smv_kernel_rfft = smv_kernel(tuple(b.stop - b.start for b in box), voxel_size,
                                     smv_radius_mm, rfft=True)
    field, mask, noise = field[box], mask[box], noise[box]
    m_g = np.ascontiguousarray(m_g[(slice(None),) + box])
    if csf_mask is not None:
        csf_mask = csf_mask[box]
    m = data_weights(noise, mask)
    chi_scale = None
    if outside_scale:
        # χ = P y with P = 1 in the mask and P_B outside (TFI's preconditioner); the sources
        # outside explain what is left of the background, so TV only acts within the mask
        chi_scale = np.where(mask, 1.0, outside_scale).astype(np.float32)
        m_g = inside_differences(m_g, mask)
    return dict(field=np.ascontiguousarray(field), mask=mask, noise=np.ascontiguousarray(noise),
                chi_scale=chi_scale, m=m, m_g=m_g, csf_mask=csf_mask,
                edge_threshold=edge_threshold, smv_kernel_rfft=smv_kernel_rfft, edge_smv=edge_smv,
                smv_radius_mm=smv_radius_mm, box=box,
                full_shape=full_shape, full_mask=full_mask)


def _solver_box(mask, *, margin):
    """Bounding box of the mask plus ``margin`` voxels; whole axes when that saves < 10 %."""
    idx = np.nonzero(mask)
    box = []
    for i, n in zip(idx, mask.shape, strict=True):
        lo = max(int(i.min()) - margin, 0)
        hi = min(int(i.max()) + 1 + margin, n)
        length = scipy.fft.next_fast_len(hi - lo, real=True)
        if length >= 0.9 * n:
            box.append(slice(0, n))
            continue
        lo = max(min(lo, n - length), 0)
        box.append(slice(lo, lo + length))
    return tuple(box)


def _finish(x_rad, problem, *, field_strength, delta_te):
    """Convert to ppm, zero outside the mask, reference to the CSF (or whole-brain) mean."""
    mask = problem['mask']
    csf = problem['csf_mask']
    chi = radians_to_ppm(x_rad.astype(np.float64), field_strength=field_strength,
                         delta_te=delta_te)
    if csf is not None:
        reference = 'csf'
        chi = chi - chi[csf].mean()
    else:
        reference = 'whole_brain'
        chi = chi - chi[mask].mean()
    chi = np.where(mask, chi, 0.0).astype(np.float32)
    # remove the float32 rounding of the reference mean (CSF mean is 0 to float precision)
    ref = csf if csf is not None else mask
    chi[ref] -= np.float32(chi[ref].astype(np.float64).mean())
    out = np.zeros(problem['full_shape'], dtype=np.float32)
    out[problem['box']] = chi
    return out, reference


def _solve(problem, voxel_size, *, b0_dir, lambda_, lambda_csf, max_gn_iter, gn_tol,
           cg_max_iter, cg_tol, merit):
    """The Gauss-Newton / CG iteration (fast version); returns χ in rad and a history dict.

    Same arithmetic as :func:`lesionqsm.qsm.medi_reference.solve`, reorganised: the TV
    operator uses raw differences with ``1/h²`` folded into its weights, work arrays are
    preallocated, the dipole convolution is a cached real-to-complex FFT in float32, and the
    CG updates are in place.
    """
    field = problem['field']
    mask = problem['mask']
    m = problem['m']
    m_g = problem['m_g']
    csf = problem['csf_mask'] if lambda_csf else None
    noise = problem['noise']
    shape = field.shape
    kernel = dipole_kernel(shape, voxel_size, b0_dir=b0_dir, rfft=True)
    if problem['smv_kernel_rfft'] is not None:
        kernel = (kernel * (1.0 - problem['smv_kernel_rfft'])).astype(np.float32)
    lam2 = np.float32(2.0 * lambda_)
    inv_h = [np.float32(1.0 / h) for h in voxel_size]

    # threads only pay off for large transforms (measured: 3x slower at 54x64x24 with 2)
    workers = -1 if field.size >= FFT_THREADS_MIN_SIZE else 1
    parallel = workers != 1

    def dconv(x):
        spec = scipy.fft.rfftn(x, workers=workers)
        spec *= kernel
        return scipy.fft.irfftn(spec, s=shape, workers=workers, overwrite_x=True)

    forward = adjoint = dconv
    if problem.get('edge_smv') is not None:
        forward, adjoint = vsmv.dipole_operators(problem['edge_smv'], kernel, workers=workers)
    # With sources outside the mask the solver's unknown is y, χ = P y: outside the mask
    # P = P_B, so CG moves the sources there P_B² times faster than with χ as the unknown.
    # The operators below act on χ; the change of variables is made once, in the Gauss-Newton
    # system (A_y = P A P, b_y = P b).
    scale = problem.get('chi_scale')

    def to_chi(y):
        return y if scale is None else y * scale

    diff = np.zeros((3,) + shape, dtype=np.float32)  # last plane of each axis stays 0
    slices = []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        slices.append((tuple(lo), tuple(hi)))

    def raw_diff(x):
        for axis, (lo, hi) in enumerate(slices):
            np.subtract(x[hi], x[lo], out=diff[axis][lo])
        return diff

    def tv_operator(x, weights, out):
        """Σ_a Δ_aᵀ (weights_a Δ_a x) with raw differences Δ_a (the 1/h² is in weights)."""
        d = raw_diff(x)
        np.multiply(d, weights, out=d)
        lo, hi = slices[0]
        np.negative(d[0], out=out)
        out[hi] += d[0][lo]
        for axis in (1, 2):
            lo, hi = slices[axis]
            out[lo] -= d[axis][lo]
            out[hi] += d[axis][lo]
        return out

    csf_idx = np.flatnonzero(csf) if csf is not None else None
    lam_csf = np.float32(lambda_csf)

    def add_csf_term(x, out):
        # λ_CSF · L(L(x)) with L(x) = M_CSF (x - mean_CSF x); L is a projection so L∘L = L
        vals = x.ravel()[csf_idx]
        out.ravel()[csf_idx] += lam_csf * (vals - np.float32(vals.mean(dtype=np.float64)))

    x = np.zeros(shape, dtype=np.float32)
    history = {'update_ratio': [], 'cg_iterations': [], 'cg_relative_residual': [],
               'cost_data': [], 'cost_tv': []}
    b0 = m * np.exp(1j * field).astype(np.complex64)
    w2 = lam2 * m * m
    out_buf = np.empty(shape, dtype=np.float32)
    chi = to_chi(x)
    ratio = np.inf
    it = 0
    while ratio > gn_tol and it < max_gn_iter:
        it += 1
        d = raw_diff(chi)
        tv_w = np.empty_like(d)
        for axis in range(3):
            # V = 1 / sqrt(|M_G ∇x|² + ε) on the scaled gradient; weights M_G V / h²
            g = d[axis] * inv_h[axis]
            g *= m_g[axis]
            np.multiply(g, g, out=g)
            g += np.float32(TV_EPSILON)
            np.sqrt(g, out=g)
            np.divide(m_g[axis], g, out=tv_w[axis])
            tv_w[axis] *= inv_h[axis] * inv_h[axis]

        precondition = None
        if PRECONDITION:
            precondition = _kspace_preconditioner(kernel, problem.get('edge_smv'), tv_w, w2,
                                                  mask, shape, workers)

        def apply_a(p, tv_w=tv_w, w2=w2):
            p_chi = to_chi(p)
            # the TV term runs beside the data term's FFTs
            tv = threads.start(lambda: tv_operator(p_chi, tv_w, out_buf), parallel=parallel)
            fid = forward(p_chi)
            fid *= w2
            data = adjoint(fid)
            out = tv.result()
            out += data
            if csf_idx is not None:
                add_csf_term(p_chi, out)
            if scale is not None:
                out *= scale
            return out

        w = m * np.exp(1j * forward(chi)).astype(np.complex64)
        # Re(conj(w) · (-i) · (w - b0)) = -Im(conj(w) · b0)
        data_grad = np.negative((np.conj(w) * b0).imag)
        b = tv_operator(chi, tv_w, np.empty(shape, dtype=np.float32))
        data = adjoint(data_grad)
        if scale is not None:  # TV and CSF terms are 0 outside the mask, where P ≠ 1
            data *= scale
        b += lam2 * data
        if csf_idx is not None:
            add_csf_term(chi, b)
        np.negative(b, out=b)
        dx, n_cg, rel, _ = conjugate_gradient(apply_a, b, tol=cg_tol, max_iter=cg_max_iter,
                                              precondition=precondition)
        x_norm = float(np.linalg.norm(x))
        ratio = float(np.linalg.norm(dx)) / x_norm if x_norm > 0 else np.inf
        x += dx
        chi = to_chi(x)
        residual = m * np.exp(1j * forward(chi)).astype(np.complex64) - b0
        history['update_ratio'].append(ratio)
        history['cg_iterations'].append(n_cg)
        history['cg_relative_residual'].append(rel)
        history['cost_data'].append(float(np.linalg.norm(residual)))
        history['cost_tv'].append(float(np.abs(m_g * gradient(chi, voxel_size)).sum()))
        if merit:
            noise = merit_noise_update(noise, residual, mask)
            m = data_weights(noise, mask)
            b0 = m * np.exp(1j * field).astype(np.complex64)
            w2 = lam2 * m * m
    history['iterations'] = it
    return chi, history


def _kspace_preconditioner(kernel, edge_smv, tv_w, w2, mask, shape, workers):
    """Inverse of the Gauss-Newton operator with its weights replaced by their mask means.

    ``P(k) = mean(W²) K(k)² + Σ_a mean(V_a) (2 - 2 cos 2πk_a)``: the data term's kernel ``K``
    (``D``, or ``(1 - S) D`` of the largest sphere with SMV) and the TV term's 3-point
    Laplacian.  Applied by one real FFT pair; CG then stops at the same relative residual of
    the unpreconditioned system (the stopping rule does not change).
    """
    data = kernel
    if edge_smv is not None and edge_smv.bands:
        data = kernel * edge_smv.sphere_kernels()[0]
        data = kernel - data
    symbol = float(w2[mask].mean()) * np.asarray(data, dtype=np.float32) ** 2
    for axis in range(3):
        n = shape[axis]
        m = symbol.shape[axis]
        lap = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(m) / n)
        weight = float(tv_w[axis][mask].mean())
        symbol = symbol + np.float32(weight) * lap.reshape(
            [-1 if a == axis else 1 for a in range(3)]).astype(np.float32)
    symbol = np.asarray(symbol, dtype=np.float32)
    symbol[0, 0, 0] = symbol.max()
    inverse = (1.0 / symbol).astype(np.float32)

    def precondition(r):
        spec = scipy.fft.rfftn(r, workers=workers)
        spec *= inverse
        return scipy.fft.irfftn(spec, s=shape, workers=workers, overwrite_x=True)

    return precondition


def _run(local_field_rad, mask, magnitude, voxel_size, *, b0_dir, noise_std, csf_mask,
         field_strength, delta_te, lambda_, lambda_csf, max_gn_iter, gn_tol, cg_max_iter, cg_tol,
         edge_fraction, smv_radius_mm, merit, solver, outside_scale=None):
    if field_strength <= 0 or delta_te <= 0:
        raise ValueError(f'field_strength ({field_strength} T) and delta_te ({delta_te} s) '
                         'must be positive')
    if lambda_ <= 0 or lambda_csf < 0:
        raise ValueError(f'lambda_ must be positive and lambda_csf non-negative, got '
                         f'{lambda_} and {lambda_csf}')
    if max_gn_iter < 1 or cg_max_iter < 1:
        raise ValueError('max_gn_iter and cg_max_iter must be at least 1')
    t0 = time.perf_counter()
    problem = _prepare(local_field_rad, mask, magnitude, voxel_size, noise_std=noise_std,
                       csf_mask=csf_mask, edge_fraction=edge_fraction,
                       smv_radius_mm=smv_radius_mm, outside_scale=outside_scale)
    t1 = time.perf_counter()
    x, history = solver(problem, voxel_size, b0_dir=b0_dir, lambda_=lambda_,
                        lambda_csf=lambda_csf, max_gn_iter=max_gn_iter, gn_tol=gn_tol,
                        cg_max_iter=cg_max_iter, cg_tol=cg_tol, merit=merit)
    t2 = time.perf_counter()
    chi, reference = _finish(x, problem, field_strength=field_strength, delta_te=delta_te)
    info = dict(history)
    info.update({
        'reference': reference,
        'mask': problem['full_mask'],
        'solver_box': tuple((b.start, b.stop) for b in problem['box']),
        'edge_threshold': problem['edge_threshold'],
        'time_prepare_s': t1 - t0,
        'time_solve_s': t2 - t1,
        'time_total_s': time.perf_counter() - t0,
        'parameters': {
            'lambda': lambda_, 'lambda_csf': lambda_csf if csf_mask is not None else 0.0,
            'max_gn_iter': max_gn_iter, 'gn_tol': gn_tol, 'cg_max_iter': cg_max_iter,
            'cg_tol': cg_tol, 'edge_fraction': edge_fraction, 'smv_radius_mm': smv_radius_mm,
            'merit': merit, 'outside_scale': outside_scale, 'tv_epsilon': TV_EPSILON,
            'field_strength_T': field_strength, 'delta_te_s': delta_te, 'version': VERSION,
        },
    })
    return chi, info


def medi_plus_zero(local_field_rad, mask, magnitude, voxel_size, *, b0_dir=(0.0, 0.0, 1.0),
                   noise_std=None, csf_mask=None, field_strength, delta_te, lambda_=1000.0,
                   lambda_csf=100.0, max_gn_iter=10, gn_tol=0.1, cg_max_iter=100, cg_tol=0.01,
                   edge_fraction=0.9, smv_radius_mm=None, merit=False, outside_scale=None):
    """MEDI+0: MEDI with a uniform-CSF penalty and the CSF mean as the zero reference.

    Parameters
    ----------
    local_field_rad : ndarray, shape (X, Y, Z)
        Local (background-removed) field in radians per echo spacing ΔTE; λ = 1000 is tuned
        to this unit.
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    magnitude : ndarray, shape (X, Y, Z)
        Magnitude image (any scale) for the edge mask M_G, and for the data weights when
        ``noise_std`` is None (weights ∝ magnitude).
    voxel_size : tuple of 3 float
        Voxel size in mm.
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes.
    noise_std : None, float or ndarray, optional
        Field noise standard deviation (any scale); data weights W = 1/σ normalised to mean 1
        over the mask.
    csf_mask : ndarray of bool, optional
        Ventricular CSF mask.  ``None`` or empty (inside the mask): no CSF term and the
        whole-brain mean is the zero reference (``info['reference'] == 'whole_brain'``).
    field_strength : float
        B0 in tesla.
    delta_te : float
        Echo spacing ΔTE in seconds (the unit of the field).
    lambda_ : float, optional
        Data-fidelity weight λ (MEDI default 1000).
    lambda_csf : float, optional
        CSF uniformity weight λ_CSF (MEDI+0 default 100).
    max_gn_iter : int, optional
        At most this many Gauss-Newton steps (default 10).
    gn_tol : float, optional
        Stop when ``||dχ|| / ||χ|| < gn_tol`` (default 0.1; ||χ|| before the update, as MEDI,
        so at least two steps run).
    cg_max_iter : int, optional
        CG iterations per Gauss-Newton step, at most (default 100).
    cg_tol : float, optional
        CG relative residual tolerance (default 0.01).
    edge_fraction : float, optional
        Edge gradient components as a fraction of mask voxels (default 0.9, see
        :func:`lesionqsm.qsm.medi_weights.gradient_mask`).
    smv_radius_mm : float or ndarray, optional
        If a number (MEDI uses 5 mm), remove the residual background by SMV filtering, erode
        the mask by the sphere and use the kernel ``(1 - S) D``.  If a per-voxel map of the
        field's shape (:func:`lesionqsm.qsm.vsmv.radius_map`: sphere radius in mm, -1 for the
        7-point mean, 0 to drop the voxel), the edge-aware filter ``H`` of
        :mod:`lesionqsm.qsm.vsmv` is applied to the field and the model is ``H D χ``: only
        the voxels where the map is 0 (the mask's outer layer) are lost.
    merit : bool, optional
        Model-error reweighting of the data weights after each Gauss-Newton step.
    outside_scale : float, optional
        If set (``P_B``), fit the sources outside the mask as well, as total field inversion
        does [3]_: the unknown is ``y`` with ``χ = P y``, ``P`` = 1 in the mask and
        ``outside_scale`` on the rest of the solver box, and the TV penalty acts only on
        differences between two mask voxels.  The outside sources take up the background
        field that the background step left (with the edge-aware SMV: what its high-pass
        leaves of the background next to the edge); χ is still returned in the mask only.

    Returns
    -------
    chi : float32 ndarray, shape (X, Y, Z)
        Susceptibility in ppm, 0 outside ``info['mask']``, mean 0 over the reference region.
    info : dict
        ``iterations``, per-step ``update_ratio``, ``cg_iterations``, ``cg_relative_residual``,
        ``cost_data``, ``cost_tv``; ``reference`` ('csf' or 'whole_brain'); ``mask`` (the mask
        χ is defined on: eroded when SMV is on); ``edge_threshold``; timings in s
        (``time_prepare_s``, ``time_solve_s``, ``time_total_s``); ``parameters``.

    Raises
    ------
    ValueError
        On mismatched shapes, an empty mask, non-finite field values in the mask, or
        non-positive field strength, echo spacing or λ.

    Notes
    -----
    Departures from the MEDI toolbox: the edge-mask threshold is an exact order statistic
    rather than a 5 %-step search; the data weights are always normalised to mean 1; the
    output is referenced by subtracting the CSF mean in float64.  For speed the problem is
    solved on the bounding box of the mask plus :data:`CROP_MARGIN` voxels (on each axis
    where that saves at least 10 %, else the whole axis) instead of the whole field of
    view: the data term is zero outside the mask either way, so this only moves the periodic
    images of the brain (at least 24 voxels apart instead of the field of view), and the
    solver box is reported in ``info['solver_box']``.  With SMV, the mask is eroded and the
    field filtered on the full field of view; the kernel ``(1 - S) D`` is periodic on the
    solver box.

    References
    ----------
    .. [1] Liu Z, et al. Magn Reson Med 2018;79:2795-2803 (MEDI+0).
    .. [2] Liu J, et al. NeuroImage 2012;59:2560-2568 (MEDI, L1 form).
    .. [3] Liu Z, et al. Magn Reson Med 2017;78:303-315 (preconditioned total field
       inversion).
    """
    if csf_mask is not None and not np.any(csf_mask):
        csf_mask = None
    return _run(local_field_rad, mask, magnitude, voxel_size, b0_dir=b0_dir,
                noise_std=noise_std, csf_mask=csf_mask, field_strength=field_strength,
                delta_te=delta_te, lambda_=lambda_, lambda_csf=lambda_csf,
                max_gn_iter=max_gn_iter, gn_tol=gn_tol, cg_max_iter=cg_max_iter, cg_tol=cg_tol,
                edge_fraction=edge_fraction, smv_radius_mm=smv_radius_mm, merit=merit,
                solver=_solve, outside_scale=outside_scale)


def medi(local_field_rad, mask, magnitude, voxel_size, *, b0_dir=(0.0, 0.0, 1.0),
         noise_std=None, csf_mask=None, field_strength, delta_te, lambda_=1000.0,
         max_gn_iter=10, gn_tol=0.1, cg_max_iter=100, cg_tol=0.01, edge_fraction=0.9,
         smv_radius_mm=None, merit=False, outside_scale=None):
    """Plain MEDI (no CSF term); χ in ppm referenced to the CSF mean if ``csf_mask`` is given.

    Parameters and returns as :func:`medi_plus_zero` without ``lambda_csf``: the CSF mask,
    if any, only sets the zero reference (``info['reference']``), it is not penalised.
    """
    if csf_mask is not None and not np.any(csf_mask):
        csf_mask = None
    return _run(local_field_rad, mask, magnitude, voxel_size, b0_dir=b0_dir,
                noise_std=noise_std, csf_mask=csf_mask, field_strength=field_strength,
                delta_te=delta_te, lambda_=lambda_, lambda_csf=0.0,
                max_gn_iter=max_gn_iter, gn_tol=gn_tol, cg_max_iter=cg_max_iter, cg_tol=cg_tol,
                edge_fraction=edge_fraction, smv_radius_mm=smv_radius_mm, merit=merit,
                solver=_solve, outside_scale=outside_scale)
