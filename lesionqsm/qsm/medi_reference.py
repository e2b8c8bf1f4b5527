"""Plain reference implementation of the MEDI / MEDI+0 iteration, for checking the fast one.

A line-by-line transcription of the MEDI toolbox's ``MEDI_L1.m`` loop: float64, complex
full-size FFTs, the dipole kernel rebuilt on every call, no preallocation.  It shares input
preparation and output conversion with :mod:`lesionqsm.qsm.medi`, so the two differ only in how
the iteration is computed.  Slow on purpose; use :func:`lesionqsm.qsm.medi.medi_plus_zero`.
"""

import numpy as np

from . import medi as _medi
from .gradient import gradient, gradient_adjoint
from .medi_weights import data_weights, merit_noise_update
from .smv import smv_kernel


def _dipole_kernel_full(shape, voxel_size, b0_dir):
    freqs = [np.fft.fftfreq(n, d=h) for n, h in zip(shape, voxel_size, strict=True)]
    kx, ky, kz = np.meshgrid(*freqs, indexing='ij')
    b = np.asarray(b0_dir, dtype=float) / np.linalg.norm(b0_dir)
    k2 = kx**2 + ky**2 + kz**2
    with np.errstate(divide='ignore', invalid='ignore'):
        d = 1.0 / 3.0 - (kx * b[0] + ky * b[1] + kz * b[2]) ** 2 / k2
    d[0, 0, 0] = 0.0
    return d


def _cgsolve(apply_a, b, tol, max_iter):
    """MEDI's ``cgsolve``: plain CG from 0, stops when r'r < tol² b'b."""
    x = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    delta = np.vdot(r, r).real
    delta0 = delta
    it = 0
    while it < max_iter and delta > tol**2 * delta0:
        q = apply_a(d)
        alpha = delta / np.vdot(d, q).real
        x = x + alpha * d
        r = r - alpha * q
        delta_old = delta
        delta = np.vdot(r, r).real
        d = r + (delta / delta_old) * d
        it += 1
    return x, it, float(np.sqrt(delta / delta0)) if delta0 > 0 else 0.0


def solve(problem, voxel_size, *, b0_dir, lambda_, lambda_csf, max_gn_iter, gn_tol,
          cg_max_iter, cg_tol, merit):
    """Gauss-Newton / CG iteration of ``MEDI_L1.m``; same signature as ``medi._solve``."""
    rdf = problem['field'].astype(np.float64)
    mask = problem['mask']
    m = problem['m'].astype(np.float64)
    wg = problem['m_g'].astype(np.float64)
    csf = problem['csf_mask'] if lambda_csf else None
    n_std = problem['noise']
    shape = rdf.shape
    D = _dipole_kernel_full(shape, voxel_size, b0_dir)
    if problem['smv_radius_mm']:
        D = (1.0 - smv_kernel(shape, voxel_size, problem['smv_radius_mm']).astype(float)) * D

    def dconv(dx):
        return np.real(np.fft.ifftn(D * np.fft.fftn(dx)))

    def lt_reg(x):
        return csf * (x - x[csf].mean())

    e = _medi.TV_EPSILON
    b0 = m * np.exp(1j * rdf)
    x = np.zeros(shape)
    history = {'update_ratio': [], 'cg_iterations': [], 'cg_relative_residual': [],
               'cost_data': [], 'cost_tv': []}
    res_norm_ratio = np.inf
    it = 0
    while res_norm_ratio > gn_tol and it < max_gn_iter:
        it += 1
        vr = 1.0 / np.sqrt(np.abs(wg * gradient(x, voxel_size)) ** 2 + e)
        w = m * np.exp(1j * dconv(x))

        def reg(dx, vr=vr):
            return gradient_adjoint(wg * (vr * (wg * gradient(dx, voxel_size))), voxel_size)

        def fidelity(dx, w=w):
            return dconv(np.conj(w) * w * dconv(dx)).real

        if csf is not None:
            reg0 = reg

            def reg(dx, reg0=reg0):
                return reg0(dx) + lambda_csf * lt_reg(lt_reg(dx))

        def apply_a(dx, reg=reg, fidelity=fidelity):
            return reg(dx) + 2 * lambda_ * fidelity(dx)

        b = reg(x) + 2 * lambda_ * dconv(np.real(np.conj(w) * np.conj(1j) * (w - b0)))
        dx, n_cg, rel = _cgsolve(apply_a, -b, cg_tol, cg_max_iter)
        res_norm_ratio = np.linalg.norm(dx) / np.linalg.norm(x) if np.any(x) else np.inf
        x = x + dx
        wres = m * np.exp(1j * dconv(x)) - b0
        history['update_ratio'].append(float(res_norm_ratio))
        history['cg_iterations'].append(n_cg)
        history['cg_relative_residual'].append(rel)
        history['cost_data'].append(float(np.linalg.norm(wres)))
        history['cost_tv'].append(float(np.abs(wg * gradient(x, voxel_size)).sum()))
        if merit:
            n_std = merit_noise_update(n_std, wres, mask)
            m = data_weights(n_std, mask).astype(np.float64)
            b0 = m * np.exp(1j * rdf)
    history['iterations'] = it
    return x, history


def medi_plus_zero(local_field_rad, mask, magnitude, voxel_size, *, b0_dir=(0.0, 0.0, 1.0),
                   noise_std=None, csf_mask=None, field_strength, delta_te, lambda_=1000.0,
                   lambda_csf=100.0, max_gn_iter=10, gn_tol=0.1, cg_max_iter=100, cg_tol=0.01,
                   edge_fraction=0.9, smv_radius_mm=None, merit=False):
    """Reference MEDI+0; arguments and returns as :func:`lesionqsm.qsm.medi.medi_plus_zero`."""
    if csf_mask is not None and not np.any(csf_mask):
        csf_mask = None
    return _medi._run(local_field_rad, mask, magnitude, voxel_size, b0_dir=b0_dir,
                      noise_std=noise_std, csf_mask=csf_mask, field_strength=field_strength,
                      delta_te=delta_te, lambda_=lambda_, lambda_csf=lambda_csf,
                      max_gn_iter=max_gn_iter, gn_tol=gn_tol, cg_max_iter=cg_max_iter,
                      cg_tol=cg_tol, edge_fraction=edge_fraction, smv_radius_mm=smv_radius_mm,
                      merit=merit, solver=solve)
