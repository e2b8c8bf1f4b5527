"""REML/ML fits of two-level linear mixed models with design matrices built directly.

The growth-curve and volume models share this: patients are the statsmodels groups (random
intercept, optionally a random slope), lesions within a patient a variance component.  Building
``exog``, ``exog_re`` and ``exog_vc`` as arrays avoids the formula interface, which costs about
10 s per model at 10,000 lesions.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams, VCSpec
from statsmodels.tools.sm_exceptions import ConvergenceWarning

__all__ = ['ModelError', 'MixedFit', 'fit_mixed', 'fixed_effect_covariance', 'SINGULAR_TOL']

#: Random-effect SD / residual SD below which the boundary (zero variance) is also tried.
NEAR_BOUNDARY = 0.1
#: Variance relative to the residual variance standing for zero (statsmodels' likelihood is
#: not finite at exactly zero); its theta, 1e-5, is below SINGULAR_TOL.
BOUNDARY_VALUE = 1e-10


class ModelError(ValueError):
    """The data cannot support the requested model; the message says why."""


#: A fit is singular when a random-effect standard deviation relative to the residual one
#: (lme4's theta) is below this (lme4's ``isSingular`` default tolerance).
SINGULAR_TOL = 1e-4


@dataclass
class MixedFit:
    """Result of :func:`fit_mixed`; variances in squared response units."""

    fe_params: np.ndarray
    cov_fe: np.ndarray  # lme4-equivalent (X' V^-1 X)^-1
    cov_fe_statsmodels: np.ndarray  # fixed-effect block of statsmodels' full inverse Hessian
    cov_re: np.ndarray  # patient random effects (intercept[, slope])
    vcomp: np.ndarray  # lesion-within-patient variance components
    scale: float  # residual variance
    llf: float
    reml: bool
    converged: bool
    singular: bool
    polished: bool
    n_obs: int
    notes: list = field(default_factory=list)


def _group_blocks(patient):
    """Row indices of every patient, in statsmodels' group order (sorted labels)."""
    labels, inverse = np.unique(patient, return_inverse=True)
    order = np.argsort(inverse, kind='stable')
    bounds = np.cumsum(np.bincount(inverse, minlength=labels.size))[:-1]
    return np.split(order, bounds), labels


def _build_model(y, x, patient, lesion, slope, reml):
    blocks, labels = _group_blocks(patient)
    exog_re = np.ones((y.size, 1)) if slope is None else np.column_stack([np.ones(y.size), slope])
    exog_vc = None
    if lesion is not None:
        names = ['lesion'] if slope is None else ['lesion', 'lesion_slope']
        mats = [[] for _ in names]
        colnames = [[] for _ in names]
        for rows in blocks:
            levels, codes = np.unique(lesion[rows], return_inverse=True)
            indicator = np.zeros((rows.size, levels.size))
            indicator[np.arange(rows.size), codes] = 1.0
            mats[0].append(indicator)
            colnames[0].append([str(v) for v in levels])
            if slope is not None:
                mats[1].append(indicator * slope[rows, None])
                colnames[1].append([str(v) for v in levels])
        exog_vc = VCSpec(names, colnames, mats)
    model = MixedLM(y, x, groups=patient, exog_re=exog_re, exog_vc=exog_vc)
    return model


def _thetas(result):
    """Random-effect SDs relative to the residual SD (lme4's theta, for singularity)."""
    scale = result.scale
    eig = np.linalg.eigvalsh(np.atleast_2d(result.cov_re) / scale)
    vc = np.asarray(result.vcomp, dtype=float) / scale
    return np.sqrt(np.clip(np.concatenate([eig, vc]), 0.0, None))


class _Failed:
    llf = -np.inf


def _boundary_fits(model, result, reml, maxiter):
    """Refits with each near-zero random-effect variance held at the boundary."""
    start = result.params_object
    k_re = model.k_re
    thetas_re = np.sqrt(np.clip(np.diag(start.cov_re), 0, None))
    thetas_vc = np.sqrt(np.clip(start.vcomp, 0, None))
    out = []
    for kind, j in [('re', j) for j in range(k_re) if thetas_re[j] < NEAR_BOUNDARY] + \
                   [('vc', j) for j in range(model.k_vc) if thetas_vc[j] < NEAR_BOUNDARY]:
        cov_re = start.cov_re.copy()
        vcomp = start.vcomp.copy()
        free_re = np.ones((k_re, k_re))
        free_vc = np.ones(model.k_vc)
        if kind == 're':
            cov_re[j, :] = cov_re[:, j] = 0.0
            cov_re[j, j] = BOUNDARY_VALUE
            free_re[j, :] = free_re[:, j] = 0.0
        else:
            vcomp[j] = BOUNDARY_VALUE
            free_vc[j] = 0.0
        begin = MixedLMParams.from_components(fe_params=start.fe_params, cov_re=cov_re,
                                              vcomp=vcomp)
        free = MixedLMParams.from_components(fe_params=np.ones(model.k_fe), cov_re=free_re,
                                             vcomp=free_vc)
        out.append(_quiet_fit(model, reml=reml, method=['lbfgs'], maxiter=maxiter,
                              start_params=begin, free=free))
    return out


def _quiet_fit(model, **kwargs):
    """model.fit, warnings collected; a failed optimiser gives a result with llf = -inf."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            result = model.fit(**kwargs)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            return _Failed(), [f'{kwargs.get("method")}: {exc}']
    messages = sorted({str(w.message) for w in caught
                       if issubclass(w.category, (ConvergenceWarning, RuntimeWarning))})
    return result, messages


def fit_mixed(y, x, patient, *, lesion=None, slope=None, reml=True, maxiter=200):
    """Fit y = X b + patient effects [+ lesion-within-patient effects] + e.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Response (e.g. χ in ppb).
    x : ndarray, shape (n, p)
        Fixed-effect design, full column rank.
    patient : array_like, shape (n,)
        Patient label per row (random intercept per patient).
    lesion : array_like, shape (n,), optional
        Lesion label per row, unique within a patient; adds a random intercept per lesion
        within patient (a statsmodels variance component).
    slope : ndarray, shape (n,), optional
        Time covariate of random slopes: a patient slope correlated with the patient
        intercept, and (with ``lesion``) an independent slope per lesion.
    reml : bool
        REML (default) or maximum likelihood (for likelihood-ratio tests of fixed effects).
    maxiter : int
        Iterations of each optimiser.

    Returns
    -------
    MixedFit

    Raises
    ------
    ModelError
        If no optimiser reaches a finite likelihood.

    Notes
    -----
    The first fit uses L-BFGS (then BFGS if it fails).  If a random-effect SD relative to
    the residual SD is below :data:`SINGULAR_TOL` (a singular fit, where MixedLM may stop
    short of the optimum while reporting convergence, or step onto a zero variance where its
    likelihood evaluates to +inf), the fit is restarted by L-BFGS from small positive
    variances and polished by Nelder-Mead from the best finite solution.  If a relative SD
    is then below :data:`NEAR_BOUNDARY`, the model is also refitted with that component held
    at the boundary (:data:`BOUNDARY_VALUE`), since MixedLM often stops short of zero.  The
    best finite likelihood is kept; ``singular`` reports a relative SD below SINGULAR_TOL.
    The response is scaled to unit SD for the optimisers and the results scaled back.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    patient = np.asarray(patient)
    lesion = None if lesion is None else np.asarray(lesion)
    slope = None if slope is None else np.asarray(slope, dtype=float)
    # fit on a unit-SD response (volumes are ~1e3 mm^3: MixedLM's optimisers start at unit
    # variances), then scale back; estimates are scale-equivariant
    unit = float(np.std(y)) or 1.0
    model = _build_model(y / unit, x, patient, lesion, slope, reml)
    result, notes = _quiet_fit(model, reml=reml, method=['lbfgs', 'bfgs'], maxiter=maxiter)
    candidates = [(result, notes)]
    polished = False
    if not np.isfinite(result.llf) or np.min(_thetas(result)) < SINGULAR_TOL:
        # MixedLM can step onto a zero variance where its likelihood evaluates to +inf, or stop
        # short near the boundary: restart from small positive variances, then Nelder-Mead
        # from the best solution found.
        polished = True
        for theta2 in (0.1, 0.01):
            start = MixedLMParams.from_components(
                fe_params=np.zeros(x.shape[1]), cov_re=theta2 * np.eye(model.k_re),
                vcomp=np.full(model.k_vc, theta2))
            candidates.append(_quiet_fit(model, reml=reml, method=['lbfgs'], maxiter=maxiter,
                                         start_params=start))
        best = max((c for c in candidates if np.isfinite(c[0].llf)), key=lambda c: c[0].llf,
                   default=None)
        if best is not None:
            candidates.append(_quiet_fit(model, reml=reml, method=['nm'], maxiter=5 * maxiter,
                                         start_params=best[0].params_object))
    best = max((c for c in candidates if np.isfinite(c[0].llf)), key=lambda c: c[0].llf,
               default=None)
    if best is not None and np.min(_thetas(best[0])) < NEAR_BOUNDARY:
        # MixedLM often stops short of a zero variance: compare with the fit that holds each
        # near-zero component at the boundary (1e-10 x residual variance; statsmodels'
        # likelihood is not finite at exactly 0).
        polished = True
        candidates += _boundary_fits(model, best[0], reml, maxiter)
    finite = [c for c in candidates if np.isfinite(c[0].llf)]
    if not finite:
        raise ModelError('the mixed model fit failed: the likelihood is not finite at any '
                         'solution tried')
    result, notes = max(finite, key=lambda c: c[0].llf)
    singular = bool(np.min(_thetas(result)) < SINGULAR_TOL)
    vcomp = np.asarray(result.vcomp, dtype=float) * unit**2
    cov_re = np.atleast_2d(np.asarray(result.cov_re, dtype=float)) * unit**2
    scale = float(result.scale) * unit**2
    cov_fe = fixed_effect_covariance(x, patient, cov_re, vcomp, scale, lesion=lesion,
                                     slope=slope)
    k = x.shape[1]
    # log-likelihood of y, not y / unit: Jacobian of the n (ML) or n - p (REML) dimensions
    llf = float(result.llf) - (y.size - (k if reml else 0)) * np.log(unit)
    return MixedFit(
        fe_params=np.asarray(result.fe_params, dtype=float) * unit, cov_fe=cov_fe,
        cov_fe_statsmodels=np.asarray(result.cov_params())[:k, :k] * unit**2,
        cov_re=cov_re, vcomp=vcomp, scale=scale, llf=llf,
        reml=reml, converged=bool(result.converged), singular=singular, polished=polished,
        n_obs=int(y.size), notes=notes,
    )


def fixed_effect_covariance(x, patient, cov_re, vcomp, scale, *, lesion=None, slope=None):
    """lme4-equivalent covariance of the fixed effects, (X' V⁻¹ X)⁻¹.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Fixed-effect design.
    patient, lesion, slope
        As in :func:`fit_mixed`.
    cov_re : ndarray, shape (q, q)
        Patient random-effect covariance (intercept[, slope]), response units squared.
    vcomp : ndarray
        Lesion variance components (intercept[, slope]), response units squared.
    scale : float
        Residual variance.

    Returns
    -------
    ndarray, shape (p, p)
        Covariance of the GLS estimate at the given variance parameters; the marginal
        covariance is block diagonal by patient, V_i = Z_i G Z_i' + σ² I.
    """
    x = np.asarray(x, dtype=float)
    blocks, _ = _group_blocks(np.asarray(patient))
    info = np.zeros((x.shape[1], x.shape[1]))
    for rows in blocks:
        n = rows.size
        z = np.ones((n, 1)) if slope is None else np.column_stack([np.ones(n), slope[rows]])
        v = z @ cov_re @ z.T + scale * np.eye(n)
        if lesion is not None and len(vcomp):
            lab = lesion[rows]
            same = (lab[:, None] == lab[None, :]).astype(float)
            v += vcomp[0] * same
            if slope is not None and len(vcomp) > 1:
                s = slope[rows]
                v += vcomp[1] * same * np.outer(s, s)
        xi = x[rows]
        info += xi.T @ np.linalg.solve(v, xi)
    return np.linalg.inv(info)
