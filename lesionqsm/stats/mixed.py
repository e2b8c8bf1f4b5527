"""Linear mixed models with random effects nested as patient / lesion, fitted as lme4 fits them.

The model is

    y = X β + Z_p b_p + Z_l b_l + ε,    b = Λ u,  u ~ N(0, σ² I),  ε ~ N(0, σ² I),

with per patient an intercept (and optionally a slope on a time covariate, correlated with it:
Λ_p lower triangular) and per lesion within patient an intercept (and optionally an
independent slope: Λ_l diagonal).  As in lme4 [1]_ the criterion optimised is the profiled
deviance, a function of the relative covariance parameters θ alone (β and σ are profiled out),
with the bounds θ ≥ 0 on the diagonal of Λ.

The marginal covariance σ² A is block diagonal by patient, and within a patient the lesion
blocks are diagonal too, so A⁻¹ is applied by two Woodbury updates whose small matrices (1×1
or 2×2 per lesion, then per patient) are processed for all lesions and patients at once:
an evaluation costs one pass over the per-lesion sums, independent of the number of visits.
"""

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse
from threadpoolctl import threadpool_limits

from .errors import ModelError

__all__ = ['ModelError', 'MixedFit', 'MixedProblem', 'column_rank', 'SINGULAR_TOL']

#: A fit is singular when a random-effect SD relative to the residual SD (a diagonal θ) is
#: below this (lme4's ``isSingular`` default tolerance).
SINGULAR_TOL = 1e-4


class _Design:
    """Centring and scaling of X and y, undone on the results (X = X̃ T⁻¹, y = s ỹ)."""

    def __init__(self, x, y):
        n, p = x.shape
        scale = float(np.std(y)) or 1.0
        const = [j for j in range(p) if np.ptp(x[:, j]) == 0 and x[0, j] != 0]
        t = np.eye(p)
        xt = x.astype(float).copy()
        if const:
            c = const[0]
            v = x[0, c]
            for j in range(p):
                if j == c:
                    continue
                mean = xt[:, j].mean()
                xt[:, j] -= mean * x[:, c] / v
                t[c, j] = -mean / v
        sd = np.sqrt(np.mean(xt**2, axis=0))
        sd[sd == 0] = 1.0
        xt /= sd
        t /= sd[None, :]
        self.x, self.y, self.t, self.scale = xt, y / scale, t, scale
        self.log_det_t = -float(np.sum(np.log(sd)))  # log |det T|

    def beta(self, beta_scaled):
        return self.t @ beta_scaled * self.scale

    def cov(self, cov_scaled):
        return self.t @ cov_scaled @ self.t.T * self.scale**2


@dataclass
class _Evaluation:
    log_det_a: float  # log |A|, A = V / σ²
    xtax: np.ndarray  # X̃' A⁻¹ X̃
    chol_x: np.ndarray  # lower Cholesky factor of xtax
    beta: np.ndarray  # GLS estimate (scaled units)
    rss: float  # penalised residual sum of squares ỹ'A⁻¹ỹ - β'X̃'A⁻¹ỹ

    @property
    def log_det_x(self):
        return 2.0 * float(np.sum(np.log(np.diag(self.chol_x))))


def _profile_fixed_effects(q, p, log_det_a):
    """GLS fixed effects and residual sum of squares from Q = [X y]' A⁻¹ [X y].

    Raises
    ------
    ModelError
        A rank-deficient design, or data fitted exactly (residual sum of squares 0).
    """
    xtax = (q[:p, :p] + q[:p, :p].T) / 2
    try:
        chol = np.linalg.cholesky(xtax)
    except np.linalg.LinAlgError as exc:
        raise ModelError('the fixed-effect design is rank deficient') from exc
    beta = scipy.linalg.cho_solve((chol, True), q[:p, p])
    rss = float(q[p, p] - q[:p, p] @ beta)
    if not rss > 0:
        raise ModelError('the model fits the data exactly (residual sum of squares 0)')
    return _Evaluation(log_det_a, xtax, chol, beta, rss)


def column_rank(x):
    """Numerical rank of a design (pivoted QR of the column-scaled matrix, one BLAS thread)."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return 0
    norms = np.sqrt(np.sum(x**2, axis=0))
    with threadpool_limits(limits=1, user_api='blas'):
        r = scipy.linalg.qr(x / np.where(norms > 0, norms, 1.0), mode='r', pivoting=True)[0]
    diag = np.abs(np.diag(r))
    return int(np.sum(diag > diag.max() * max(x.shape) * np.finfo(float).eps)) \
        if diag.size and diag.max() > 0 else 0


def _indicator(codes, n_levels):
    """Sparse (levels × rows) 0/1 matrix summing rows by level."""
    rows = np.asarray(codes)
    return scipy.sparse.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                                   shape=(n_levels, rows.size))


def _factor_solve(k, g):
    """Batched Cholesky of ``k`` (b×r×r) and L⁻¹ g (b×r×m); also Σ log |k_b|."""
    chol = np.linalg.cholesky(k)
    f = np.linalg.solve(chol, g)
    logdet = 2.0 * float(np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))))
    return f, logdet


class MixedProblem:
    """The data of one model, reduced to per-lesion and per-patient sums.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Response.
    x : ndarray, shape (n, p)
        Fixed-effect design, full column rank.
    patient : array_like, shape (n,)
        Patient label per row.
    lesion : array_like, shape (n,), optional
        Lesion label per row (unique within a patient, or globally); None: no lesion effects.
    slope : ndarray, shape (n,), optional
        Time covariate of random slopes (patient slope correlated with the patient intercept;
        with ``lesion``, an independent slope per lesion).

    Notes
    -----
    θ holds the patient parameters first (r_p = 1: λ; r_p = 2: λ11, λ21, λ22, lme4's
    column-wise lower triangle), then the lesion ones (λ_intercept[, λ_slope]).
    """

    def __init__(self, y, x, patient, *, lesion=None, slope=None):
        y = np.asarray(y, dtype=float)
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[0] != y.size:
            raise ModelError(f'design has shape {x.shape} for {y.size} observations')
        self.n, self.p = x.shape
        self.design = _Design(x, y)
        self.r = 1 if slope is None else 2
        self.r_lesion = 0 if lesion is None else self.r
        _, pcode = np.unique(np.asarray(patient), return_inverse=True)
        self.n_patients = int(pcode.max()) + 1
        h = np.ones((self.n, 1)) if slope is None else np.column_stack(
            [np.ones(self.n), np.asarray(slope, dtype=float)])
        w = np.column_stack([h, self.design.x, self.design.y])  # rows of [H X y]
        self.m = w.shape[1]
        outer = (h[:, :, None] * w[:, None, :]).reshape(self.n, -1)  # h ⊗ w per row
        self.ww = w.T @ w
        if lesion is None:
            self.s_patient = (_indicator(pcode, self.n_patients) @ outer).reshape(
                self.n_patients, self.r, self.m)
            self.n_lesions = 0
        else:
            _, lraw = np.unique(np.asarray(lesion), return_inverse=True)
            _, lcode = np.unique(pcode.astype(np.int64) * (int(lraw.max()) + 1) + lraw,
                                 return_inverse=True)
            self.n_lesions = int(lcode.max()) + 1
            self.s_lesion = (_indicator(lcode, self.n_lesions) @ outer).reshape(
                self.n_lesions, self.r, self.m)
            owner = np.zeros(self.n_lesions, dtype=int)
            owner[lcode] = pcode
            self.lesion_to_patient = _indicator(owner, self.n_patients)
            self.s_patient = (self.lesion_to_patient @ self.s_lesion.reshape(
                self.n_lesions, -1)).reshape(self.n_patients, self.r, self.m)
        self.n_theta_patient = 1 if self.r == 1 else 3
        self.n_theta = self.n_theta_patient + self.r_lesion
        if self.r == 1:  # intercepts only: sums of [X y] and row counts per lesion (or patient)
            if lesion is None:
                self.group_sums = self.s_patient[:, 0, 1:]
                self.group_rows = self.s_patient[:, 0, 0]
                self.to_patient = scipy.sparse.identity(self.n_patients, format='csr')
                self.owner = np.arange(self.n_patients)
            else:
                self.group_sums = self.s_lesion[:, 0, 1:]
                self.group_rows = self.s_lesion[:, 0, 0]
                self.to_patient = self.lesion_to_patient
                self.owner = owner

    # --- θ layout ------------------------------------------------------------------------
    def lower_bounds(self):
        """lme4's bounds: 0 on diagonal elements of Λ, none on the patient correlation term."""
        low = [0.0] if self.r == 1 else [0.0, -np.inf, 0.0]
        return np.array(low + [0.0] * self.r_lesion)

    def default_start(self):
        """lme4's start: 1 on the diagonal of Λ, 0 off it."""
        return np.where(np.isfinite(self.lower_bounds()), 1.0, 0.0)

    def lambdas(self, theta):
        """Λ_p (r×r lower triangular) and the diagonal of Λ_l from θ."""
        theta = np.asarray(theta, dtype=float)
        if self.r == 1:
            lam_p = theta[:1].reshape(1, 1)
        else:
            lam_p = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        return lam_p, theta[self.n_theta_patient:]

    # --- criterion -----------------------------------------------------------------------
    def evaluate(self, theta):
        """A⁻¹ products, log |A|, the GLS β and the residual sum of squares at θ."""
        if self.r == 1:
            theta = np.asarray(theta, dtype=float)
            return self._intercepts(theta[0]**2, theta[1]**2 if self.r_lesion else 0.0)[0]
        lam_p, lam_l = self.lambdas(theta)
        r, rl, rp = self.r, self.r_lesion, lam_p.shape[0]
        q = self.ww[r:, r:].copy()
        log_det = 0.0
        m_hh = self.s_patient[:, :rp, :rp]
        m_hxy = self.s_patient[:, :rp, r:]
        if rl:
            s = self.s_lesion
            k = np.eye(rl) + lam_l[None, :, None] * s[:, :rl, :rl] * lam_l[None, None, :]
            f, log_det = _factor_solve(k, lam_l[None, :, None] * s[:, :rl, :])
            flat = f[:, :, r:].reshape(-1, self.m - r)
            q -= flat.T @ flat
            corr = np.einsum('lka,lkb->lab', f[:, :, :rp], f)  # F_H' F per lesion
            corr = (self.lesion_to_patient @ corr.reshape(self.n_lesions, -1)).reshape(
                self.n_patients, rp, self.m)
            m_hh = m_hh - corr[:, :, :rp]
            m_hxy = m_hxy - corr[:, :, r:]
        k2 = np.eye(rp) + np.einsum('ba,pbc,cd->pad', lam_p, m_hh, lam_p)
        f2, log_det2 = _factor_solve(k2, np.einsum('ba,pbm->pam', lam_p, m_hxy))
        flat = f2.reshape(-1, self.m - r)
        q -= flat.T @ flat
        return _profile_fixed_effects(q, self.p, log_det + log_det2)

    def _intercepts(self, v_p, v_l, reml=None):
        """Random intercepts only, in variance ratios v = θ²: closed forms per lesion and patient.

        With k_j = 1 + v_l n_j per lesion (n_j visits, s_j the sums of [X y]) and, per patient,
        a_i = Σ_j s_j / k_j, c_i = Σ_j n_j / k_j and κ_i = 1 + v_p c_i:
        [X y]' A⁻¹ [X y] = [X y]'[X y] − v_l Σ_j s_j s_j' / k_j − v_p Σ_i a_i a_i' / κ_i and
        log |A| = Σ log k_j + Σ log κ_i.  With ``reml`` given, also the gradient of the
        profiled deviance in (v_p[, v_l]): ∂/∂v_k = tr(A⁻¹ Z_k Z_k') − ν |Z_k' A⁻¹ r|² / rss
        [− tr((X'A⁻¹X)⁻¹ X'A⁻¹ Z_k Z_k' A⁻¹ X) for REML].
        """
        s, nj = self.group_sums, self.group_rows
        k = 1.0 + v_l * nj
        sk = s / k[:, None]
        a = self.to_patient @ sk
        c = self.to_patient @ (nj / k)
        kappa = 1.0 + v_p * c
        mp = a / kappa[:, None]  # Z_p' A⁻¹ [X y]
        q = self.ww[1:, 1:] - v_p * (mp.T @ a)
        if v_l != 0.0:
            q -= v_l * (s.T @ sk)
        log_det_a = float(np.sum(np.log(k)) + np.sum(np.log(kappa)))
        ev = _profile_fixed_effects(q, self.p, log_det_a)
        if reml is None:
            return ev, None
        nu = self.dof(reml)
        terms = [(mp, float(np.sum(c / kappa)))]
        if self.r_lesion:
            ratio = nj / k
            ml = sk - v_p * ratio[:, None] * mp[self.owner]  # Z_l' A⁻¹ [X y]
            terms.append((ml, float(np.sum(ratio - v_p * ratio**2 / kappa[self.owner]))))
        p, beta, rss = self.p, ev.beta, ev.rss
        grad = []
        cov = scipy.linalg.cho_solve((ev.chol_x, True), np.eye(p)) if reml else None
        for m, trace in terms:
            gram = m.T @ m  # [X y]' A⁻¹ Z_k Z_k' A⁻¹ [X y]
            resid2 = gram[p, p] - 2 * beta @ gram[:p, p] + beta @ gram[:p, :p] @ beta
            g = trace - nu * float(resid2) / rss
            if reml:
                g -= float(np.sum(cov * gram[:p, :p]))
            grad.append(g)
        return ev, np.array(grad)

    def deviance_gradient(self, phi, reml):
        """Profiled deviance and its gradient in φ = θ² (intercept-only models), else None."""
        if self.r != 1:
            return None
        phi = np.asarray(phi, dtype=float)
        ev, grad = self._intercepts(phi[0], phi[1] if self.r_lesion else 0.0, reml)
        return self._deviance(ev, reml), grad

    def _deviance(self, ev, reml):
        nu = self.dof(reml)
        dev = ev.log_det_a + nu * (1.0 + np.log(2.0 * np.pi * ev.rss / nu))
        return dev + ev.log_det_x if reml else dev

    def dof(self, reml):
        return self.n - (self.p if reml else 0)

    def deviance(self, theta, reml):
        """Profiled deviance (−2 log-likelihood of ỹ, β and σ at their optima given θ)."""
        return self._deviance(self.evaluate(theta), reml)

    def full_deviance(self, theta, sigma, reml, ev=None):
        """lmerTest's deviance at (θ, σ) with β profiled: ML, plus log |X'A⁻¹X| for REML."""
        ev = self.evaluate(theta) if ev is None else ev
        s2 = sigma**2
        dev = ev.log_det_a + ev.rss / s2 + self.n * np.log(2 * np.pi * s2)
        if reml:
            dev += ev.log_det_x - self.p * np.log(2 * np.pi * s2)
        return dev

    def loglik_offset(self, reml):
        """log L(y) − log L(ỹ): the scaling of y and (REML) of the columns of X."""
        off = -self.dof(reml) * np.log(self.design.scale)
        return off + (self.design.log_det_t if reml else 0.0)


@dataclass
class MixedFit:
    """Result of :func:`.optimise.fit_mixed`; variances in squared response units.

    ``optimum_checked`` is True when the optimum was verified (:mod:`.optimise`): a zero
    gradient for every parameter off its bound and no descent into the interior from a
    variance held at 0; ``optimum_message`` says what failed otherwise.
    """

    fe_params: np.ndarray
    cov_fe: np.ndarray  # σ² (X' A⁻¹ X)⁻¹, lme4's vcov()
    cov_re: np.ndarray  # patient random effects (intercept[, slope]) covariance
    vcomp: np.ndarray  # lesion-within-patient variances (intercept[, slope])
    scale: float  # residual variance σ²
    llf: float
    reml: bool
    theta: np.ndarray
    optimum_checked: bool
    optimum_message: str
    max_gradient: float
    singular: bool
    n_obs: int
    n_evaluations: int
    problem: MixedProblem = field(repr=False)
    notes: list = field(default_factory=list)

    @cached_property
    def _satterthwaite(self):
        from .satterthwaite import varpar_covariance

        return varpar_covariance(self)

    def satterthwaite_df(self, contrasts):
        """Satterthwaite degrees of freedom of each row of ``contrasts`` (lmerTest's method).

        Parameters
        ----------
        contrasts : ndarray, shape (k, p)
            Linear combinations L of the fixed effects.

        Returns
        -------
        ndarray, shape (k,)
        """
        from .satterthwaite import contrast_df

        with threadpool_limits(limits=1, user_api='blas'):  # thin matrices: threads only cost
            return contrast_df(self, np.atleast_2d(contrasts), *self._satterthwaite)
