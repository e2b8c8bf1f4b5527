"""Fitting a :class:`.mixed.MixedProblem`: the bounded minimisation and its optimality check.

lme4 minimises the profiled deviance over θ with θ ≥ 0 on the diagonal of Λ (BOBYQA).  Here
the variables are φ = θ² for the diagonal (the variance ratios) and θ off it: in θ the
deviance is even and flat at 0, which is where a gradient method stops short of a boundary
optimum; in φ the bound is an ordinary one with a non-zero derivative.
"""

import numpy as np
import scipy.linalg
from scipy import optimize
from threadpoolctl import threadpool_limits

from .errors import ModelError
from .mixed import SINGULAR_TOL, MixedFit, MixedProblem

__all__ = ['fit_mixed', 'fit_problem', 'GRADIENT_TOL']

#: Largest |∂ deviance / ∂φ| accepted off the bounds, and largest negative derivative
#: accepted for a variance ratio held at 0 (deviance units per unit of φ, see _Criterion).
GRADIENT_TOL = 1e-3
#: θ values tried on the starting grid (lme4 starts at θ = 1 on the diagonal).
_GRID = np.array([0.0, 0.05, 0.2, 0.6, 1.5, 4.0])


class _Criterion:
    """The deviance as a function of φ: variance ratios v = θ² for diagonal θ, θ itself off it.

    In φ the bound v ≥ 0 is an ordinary bound with a non-zero one-sided derivative, where in
    θ the deviance is even and flat at 0 (the reason an optimiser in θ stops short of 0).
    """

    def __init__(self, problem, reml):
        self.problem, self.reml, self.calls = problem, reml, 0
        self.diagonal = np.isfinite(problem.lower_bounds())
        self.lower = np.where(self.diagonal, 0.0, -np.inf)

    def theta(self, phi):
        return np.where(self.diagonal, np.sqrt(np.maximum(phi, 0.0)), phi)

    def phi(self, theta):
        return np.where(self.diagonal, np.asarray(theta, dtype=float)**2, theta)

    def __call__(self, phi):
        self.calls += 1
        try:
            return self.problem.deviance(self.theta(phi), self.reml)
        except (ModelError, np.linalg.LinAlgError):
            return np.inf

    def value_and_gradient(self, phi):
        """Deviance and gradient (analytic for intercept-only models)."""
        if self.problem.r == 1:
            self.calls += 1
            try:
                return self.problem.deviance_gradient(np.maximum(phi, 0.0), self.reml)
            except (ModelError, np.linalg.LinAlgError):
                return np.inf, np.zeros(phi.size)
        return self(phi), self.gradient(phi)

    def gradient(self, phi, step=1e-6):
        """Analytic, or central differences (one-sided, second order, next to v = 0)."""
        if self.problem.r == 1:
            return self.value_and_gradient(phi)[1]
        g = np.empty(phi.size)
        for i in range(phi.size):
            h = step * max(1.0, abs(phi[i]))
            e = np.zeros(phi.size)
            e[i] = h
            if self.diagonal[i] and phi[i] - h < 0:
                g[i] = (-3 * self(phi) + 4 * self(phi + e) - self(phi + 2 * e)) / (2 * h)
            else:
                g[i] = (self(phi + e) - self(phi - e)) / (2 * h)
        return g

    def hessian(self, phi, free, step=1e-4):
        idx = np.flatnonzero(free)
        if self.problem.r == 1:  # differences of the analytic gradient
            hess = np.zeros((idx.size, idx.size))
            for a, i in enumerate(idx):
                h = min(step * max(1.0, abs(phi[i])), phi[i] / 2)
                e = np.zeros(phi.size)
                e[i] = h
                hess[:, a] = ((self.gradient(phi + e) - self.gradient(phi - e)) / (2 * h))[idx]
            return (hess + hess.T) / 2
        hs = np.array([min(step * max(1.0, abs(phi[i])),
                           phi[i] / 2 if self.diagonal[i] else np.inf) for i in idx])
        hess = np.zeros((idx.size, idx.size))
        f0 = self(phi)
        for a in range(idx.size):
            ea = np.zeros(phi.size)
            ea[idx[a]] = hs[a]
            hess[a, a] = (self(phi + ea) - 2 * f0 + self(phi - ea)) / hs[a]**2
            for b in range(a):
                eb = np.zeros(phi.size)
                eb[idx[b]] = hs[b]
                hess[a, b] = hess[b, a] = (self(phi + ea + eb) - self(phi + ea - eb)
                                           - self(phi - ea + eb) + self(phi - ea - eb)) / (
                    4 * hs[a] * hs[b])
        return hess


def _grid_starts(crit, extra):
    """Starting points in φ, best first: a coarse grid (up to three θ) or lme4's start."""
    problem = crit.problem
    starts = [crit.phi(s) for s in extra if s is not None]
    if problem.n_theta <= 3 and crit.diagonal.all():
        grids = np.meshgrid(*[_GRID] * problem.n_theta, indexing='ij')
        points = np.column_stack([g.ravel() for g in grids])
        values = np.array([crit(crit.phi(pt)) for pt in points])
        return starts + [crit.phi(points[j]) for j in np.argsort(values)[:3]]
    default = problem.default_start()
    return starts + [crit.phi(default), crit.phi(0.2 * default)]


def _local(crit, start):
    bounds = [(0.0, None) if d else (None, None) for d in crit.diagonal]
    res = optimize.minimize(crit.value_and_gradient, start, jac=True, method='L-BFGS-B',
                            bounds=bounds,
                            options={'ftol': 1e-15, 'gtol': 1e-8, 'maxiter': 500})
    return np.maximum(res.x, crit.lower), float(res.fun)


def _polish(crit, phi, f, iterations=10):
    """Projected Newton steps on the φ off their bounds, to the optimum's rounding level."""
    for _ in range(iterations):
        free = ~crit.diagonal | (phi > 1e-12)
        g = crit.gradient(phi)
        # a φ on its bound whose derivative points inwards is released
        free |= crit.diagonal & (phi <= 1e-12) & (g < -GRADIENT_TOL)
        if not free.any() or np.max(np.abs(g[free])) < 1e-7:
            break
        hess = crit.hessian(phi, free & (phi > 1e-12) | ~crit.diagonal)
        sub = free & (phi > 1e-12) | ~crit.diagonal
        step = np.zeros(phi.size)
        try:
            newton = -np.linalg.solve(hess, g[sub])
            if g[sub] @ newton >= 0:
                raise np.linalg.LinAlgError
            step[sub] = newton
        except np.linalg.LinAlgError:
            step[free] = -g[free] * 1e-3
        step[free & ~sub] = -g[free & ~sub] * 1e-3
        improved = False
        for shrink in (1.0, 0.5, 0.25, 0.1, 0.01):
            cand = np.maximum(phi + shrink * step, crit.lower)
            fc = crit(cand)
            if fc < f:
                phi, f, improved = cand, fc, True
                break
        if not improved:
            break
    return phi, f


def _snap_to_bound(crit, phi, f):
    """Put variance ratios within 1e-6 of 0 on 0 when that does not raise the deviance."""
    for i in np.flatnonzero(crit.diagonal & (phi > 0) & (phi < 1e-6)):
        cand = phi.copy()
        cand[i] = 0.0
        fc = crit(cand)
        if fc <= f + 1e-12 * max(1.0, abs(f)):
            phi, f = cand, min(f, fc)
    return phi, f


def _check(crit, phi):
    """First-order conditions at φ: (ok, message, max |gradient| over φ off the bound)."""
    g = crit.gradient(phi)
    at_bound = crit.diagonal & (phi <= 1e-12)
    gmax = float(np.max(np.abs(g[~at_bound]))) if (~at_bound).any() else 0.0
    problems = []
    if gmax > GRADIENT_TOL:
        problems.append(f'|gradient| {gmax:.2g} > {GRADIENT_TOL:g} off the bounds')
    inward = at_bound & (g < -GRADIENT_TOL)
    for i in np.flatnonzero(inward):
        problems.append(f'variance ratio {i} is held at 0 but the deviance decreases away '
                        f'from 0 (derivative {g[i]:.3g})')
    return not problems, '; '.join(problems) or 'optimum verified', gmax


def fit_mixed(y, x, patient, *, lesion=None, slope=None, reml=True, start=None):
    """Fit y = X β + patient effects [+ lesion-within-patient effects] + ε by (RE)ML.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Response (e.g. χ in ppb, volume in mm³).
    x : ndarray, shape (n, p)
        Fixed-effect design, full column rank.
    patient : array_like, shape (n,)
        Patient label per row (random intercept per patient).
    lesion : array_like, shape (n,), optional
        Lesion label per row; adds a random intercept per lesion within patient.
    slope : ndarray, shape (n,), optional
        Time covariate of random slopes: a patient slope correlated with the patient
        intercept, and (with ``lesion``) an independent slope per lesion.
    reml : bool
        REML (default) or maximum likelihood (likelihood-ratio tests of fixed effects).
    start : ndarray, optional
        An extra starting θ (e.g. the REML estimate for an ML refit).

    Returns
    -------
    MixedFit

    Raises
    ------
    ModelError
        If the design is rank deficient or the deviance is not finite anywhere tried.

    Notes
    -----
    The profiled deviance is minimised by L-BFGS-B over φ (variance ratios θ² for the
    diagonal of Λ, bounded below by 0; θ off the diagonal) with central-difference gradients
    (one-sided at the bound), from at least two starts: ``start`` and the best points of a
    grid of θ over [0, 4] (up to three θ), or lme4's start θ = 1 and 0.2.  Each local optimum
    is polished by projected Newton steps and checked: the gradient must vanish for φ off
    the bound, and be ≥ 0 for a variance ratio held at 0.  More starts are tried while the
    check fails; a fit that never passes is returned with ``optimum_checked=False`` and the
    reason in ``optimum_message``, never silently.
    """
    problem = MixedProblem(y, x, patient, lesion=lesion, slope=slope)
    return fit_problem(problem, reml=reml, start=start)


def fit_problem(problem, *, reml=True, start=None):
    """:func:`fit_mixed` on a prepared :class:`MixedProblem` (shared by REML and ML fits)."""
    with threadpool_limits(limits=1, user_api='blas'):  # thin matrices: threads only cost
        crit = _Criterion(problem, reml)
        starts = _grid_starts(crit, [start])
        best = None
        tried = 0
        for s in starts:
            phi, f = _local(crit, np.maximum(s, crit.lower))
            phi, f = _snap_to_bound(crit, *_polish(crit, phi, f))
            tried += 1
            if best is None or f < best[1]:
                best = (phi, f)
            if not np.isfinite(best[1]):
                continue
            ok, message, gmax = _check(crit, best[0])
            if ok and tried >= 2:
                break
        if not np.isfinite(best[1]):
            raise ModelError('the mixed model deviance is not finite at any θ tried')
        return _result(problem, crit.theta(best[0]), reml, ok, message, gmax, crit.calls)


def _result(problem, theta, reml, ok, message, gmax, calls):
    ev = problem.evaluate(theta)
    d = problem.design
    nu = problem.dof(reml)
    sigma2_scaled = ev.rss / nu
    dev = problem.deviance(theta, reml)
    llf = -0.5 * dev + problem.loglik_offset(reml)
    cov_scaled = sigma2_scaled * scipy.linalg.cho_solve((ev.chol_x, True), np.eye(problem.p))
    lam_p, lam_l = problem.lambdas(theta)
    scale = sigma2_scaled * d.scale**2
    diag = np.concatenate([np.diag(lam_p), lam_l])
    return MixedFit(
        fe_params=d.beta(ev.beta), cov_fe=d.cov(cov_scaled), cov_re=scale * lam_p @ lam_p.T,
        vcomp=scale * lam_l**2, scale=scale, llf=float(llf), reml=reml, theta=theta,
        optimum_checked=ok, optimum_message=message, max_gradient=gmax,
        singular=bool(np.min(np.abs(diag)) < SINGULAR_TOL), n_obs=problem.n,
        n_evaluations=calls, problem=problem,
        notes=[] if ok else [f'optimum not verified: {message}'])


