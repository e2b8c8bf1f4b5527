"""Conjugate gradients for the symmetric positive definite systems of PDF, LBV and MEDI."""

import numpy as np


def _dot(a, b, tmp):
    """<a, b> without BLAS (whose threads spin on a busy machine), summed in float64."""
    np.multiply(a, b, out=tmp)
    return float(tmp.sum(dtype=np.float64))


def conjugate_gradient(apply_a, b, *, tol, max_iter, precondition=None, stall_patience=None):
    """(Preconditioned) conjugate gradients from x0 = 0; stops at ||r|| <= tol ||b||.

    The stopping rule is MEDI's ``cgsolve`` (``r'r <= tol² · b'b``).  Dot products are summed
    in float64 without BLAS (see :func:`_dot`); the vectors stay float32.

    With ``stall_patience`` = n it also stops when the residual has stayed above its smallest
    value so far for n iterations in a row: the residual of CG on an ill-posed system stalls
    and rises once the steps start fitting the directions the operator barely represents,
    which is where an early-stopped solve (PDF before a high-pass) should end.

    Returns x, the number of iterations, the final relative residual and which rule stopped
    it: ``'tolerance'``, ``'stall'`` or ``'max_iter'`` (a zero right-hand side: ``'tolerance'``).
    """
    x = np.zeros_like(b)
    r = b.copy()
    tmp = np.empty_like(b)
    b_norm = np.sqrt(_dot(b, b, tmp))
    if b_norm == 0:
        return x, 0, 0.0, 'tolerance'
    z = precondition(r) if precondition is not None else r
    p = z.copy()
    rz = _dot(r, z, tmp)
    rel = smallest = 1.0
    above = 0
    it = 0
    stopped_by = 'max_iter'
    for it in range(1, max_iter + 1):  # noqa: B007
        ap = apply_a(p)
        alpha = np.float32(rz / _dot(p, ap, tmp))
        np.multiply(p, alpha, out=tmp)
        x += tmp
        np.multiply(ap, alpha, out=tmp)
        r -= tmp
        rel = np.sqrt(_dot(r, r, tmp)) / b_norm
        if rel <= tol:
            stopped_by = 'tolerance'
            break
        above = above + 1 if rel >= smallest else 0
        smallest = min(smallest, rel)
        if stall_patience is not None and above >= stall_patience:
            stopped_by = 'stall'
            break
        z = precondition(r) if precondition is not None else r
        rz_new = _dot(r, z, tmp)
        p *= np.float32(rz_new / rz)
        p += z
        rz = rz_new
    return x, it, float(rel), stopped_by
