"""Satterthwaite degrees of freedom of fixed-effect contrasts, as lmerTest computes them.

For a contrast L β with variance v(φ) = L C(φ) L', C the covariance of β̂ as a function of the
variance parameters φ = (θ, σ), the approximation [1]_ is

    df = 2 v² / (∇v' A ∇v),    A = 2 H⁻¹,

H the Hessian of the (RE)ML deviance in φ at the optimum (β profiled out, σ not) and ∇v the
gradient of v.  lmerTest [2]_ takes both derivatives numerically (Richardson extrapolation) and
inverts H through its positive eigenvalues; this module does the same with central differences
at two step sizes.  A diagonal θ on its bound (0) is fine: the deviance and C are even in it, so
its derivatives are taken across the bound.

References
----------
.. [1] Satterthwaite FE. Biometrics Bull 1946;2:110-114.
.. [2] Kuznetsova A, Brockhoff PB, Christensen RHB. lmerTest package: tests in linear mixed
   effects models. J Stat Softw 2017;82(13):1-26.
"""

import numpy as np
import scipy.linalg

__all__ = ['varpar_covariance', 'contrast_df', 'EIGEN_TOL']

#: Eigenvalues of the deviance Hessian below this are treated as zero (lmerTest: 1e-6).
EIGEN_TOL = 1e-6


def _steps(x):
    return 1e-3 * np.maximum(np.abs(x), 1e-2)


def _richardson(d_h, d_h2):
    """Second-order central differences at h and h/2 combined to fourth order."""
    return (4.0 * d_h2 - d_h) / 3.0


def _hessian(fun, x):
    k = x.size
    out = []
    for scale in (1.0, 0.5):
        h = _steps(x) * scale
        f0 = fun(x)
        hess = np.zeros((k, k))
        for a in range(k):
            ea = np.zeros(k)
            ea[a] = h[a]
            hess[a, a] = (fun(x + ea) - 2 * f0 + fun(x - ea)) / h[a]**2
            for b in range(a):
                eb = np.zeros(k)
                eb[b] = h[b]
                hess[a, b] = hess[b, a] = (fun(x + ea + eb) - fun(x + ea - eb)
                                           - fun(x - ea + eb) + fun(x - ea - eb)) / (
                    4 * h[a] * h[b])
        out.append(hess)
    return _richardson(*out)


def _jacobian(fun, x):
    """d fun / d x_j for a matrix-valued fun: list of matrices."""
    jac = []
    for j in range(x.size):
        levels = []
        for scale in (1.0, 0.5):
            e = np.zeros(x.size)
            e[j] = _steps(x)[j] * scale
            levels.append((fun(x + e) - fun(x - e)) / (2 * e[j]))
        jac.append(_richardson(*levels))
    return jac


def varpar_covariance(fit):
    """Asymptotic covariance A of φ = (θ, σ) and the Jacobian of cov(β̂) in φ.

    Parameters
    ----------
    fit : lesionqsm.stats.mixed.MixedFit

    Returns
    -------
    a : ndarray, shape (k, k)
        2 H⁺ (H⁺: inverse of the deviance Hessian through its eigenvalues > :data:`EIGEN_TOL`).
    jac : list of k ndarrays, shape (p, p)
        ∂ cov(β̂) / ∂ φ_j, in the response's units (squared) per unit of φ_j.
    """
    problem = fit.problem
    design = problem.design
    sigma = np.sqrt(fit.scale) / design.scale  # σ of the scaled response
    phi = np.append(fit.theta, sigma)
    nt = fit.theta.size

    def deviance(v):
        return problem.full_deviance(v[:nt], v[nt], fit.reml)

    def cov_beta(v):
        ev = problem.evaluate(v[:nt])
        inv = scipy.linalg.cho_solve((ev.chol_x, True), np.eye(problem.p))
        return design.cov(v[nt]**2 * inv)

    hess = _hessian(deviance, phi)
    vals, vecs = np.linalg.eigh((hess + hess.T) / 2)
    pos = vals > EIGEN_TOL
    a = 2.0 * (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    return a, _jacobian(cov_beta, phi)


def contrast_df(fit, contrasts, a, jac):
    """Satterthwaite df of each row of ``contrasts`` (shape (k, p)); inf if v has no spread."""
    contrasts = np.atleast_2d(np.asarray(contrasts, dtype=float))
    var = np.einsum('ij,jk,ik->i', contrasts, fit.cov_fe, contrasts)
    grad = np.column_stack([np.einsum('ij,jk,ik->i', contrasts, j, contrasts) for j in jac])
    denom = np.einsum('ij,jk,ik->i', grad, a, grad)
    with np.errstate(divide='ignore', invalid='ignore'):
        df = np.where(denom > 0, 2.0 * var**2 / denom, np.inf)
    return df
