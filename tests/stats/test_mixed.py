"""The mixed-model engine: closed forms against dense linear algebra, optimum and boundary."""

import numpy as np
import pytest

from lesionqsm.stats.mixed import SINGULAR_TOL, MixedProblem
from lesionqsm.stats.optimise import fit_mixed


def _nested_data(rng, n_patients=12, lesions=3, visits=4, sd_patient=2.0, sd_lesion=1.5):
    patient = np.repeat(np.arange(n_patients), lesions * visits)
    lesion = np.repeat(np.arange(n_patients * lesions), visits)
    t = np.tile(np.linspace(0, 3, visits), n_patients * lesions)
    x = np.column_stack([np.ones(t.size), t, (lesion % 2).astype(float)])
    y = (x @ [5.0, 1.0, -2.0] + sd_patient * rng.standard_normal(n_patients)[patient]
         + sd_lesion * rng.standard_normal(n_patients * lesions)[lesion]
         + rng.standard_normal(t.size))
    return y, x, patient, lesion, t


def _dense_fixed_effect_covariance(x, patient, cov_re, vcomp, scale, *, lesion=None, slope=None):
    """(X' V⁻¹ X)⁻¹ at given variance parameters, V built densely per patient.

    Parameters
    ----------
    x : ndarray, shape (n, p)
        Fixed-effect design.
    patient, lesion, slope
        As in :func:`fit_mixed`.
    cov_re : ndarray, shape (r, r)
        Patient random-effect covariance, response units squared.
    vcomp : ndarray
        Lesion variances (intercept[, slope]), response units squared.
    scale : float
        Residual variance.

    Returns
    -------
    ndarray, shape (p, p)
    """
    x = np.asarray(x, dtype=float)
    patient = np.asarray(patient)
    info = np.zeros((x.shape[1], x.shape[1]))
    for label in np.unique(patient):
        rows = np.flatnonzero(patient == label)
        n = rows.size
        z = np.ones((n, 1)) if slope is None else np.column_stack([np.ones(n), slope[rows]])
        v = z @ np.atleast_2d(cov_re) @ z.T + scale * np.eye(n)
        if lesion is not None and len(vcomp):
            lab = np.asarray(lesion)[rows]
            same = (lab[:, None] == lab[None, :]).astype(float)
            v += vcomp[0] * same
            if slope is not None and len(vcomp) > 1:
                s = slope[rows]
                v += vcomp[1] * same * np.outer(s, s)
        info += x[rows].T @ np.linalg.solve(v, x[rows])
    return np.linalg.inv(info)


def _dense_deviance(y, x, patient, lesion, theta, reml, slope=None):
    """-2 log-likelihood with the n x n covariance built from dense indicator matrices."""
    zp = (patient[:, None] == np.unique(patient)[None, :]).astype(float)
    zl = (lesion[:, None] == np.unique(lesion)[None, :]).astype(float)
    if slope is None:
        a = np.eye(y.size) + theta[0]**2 * zp @ zp.T + theta[1]**2 * zl @ zl.T
    else:
        lam = np.array([[theta[0], 0], [theta[1], theta[2]]])
        g = lam @ lam.T
        zs = zp * slope[:, None]
        a = (np.eye(y.size) + g[0, 0] * zp @ zp.T + g[1, 1] * zs @ zs.T
             + g[0, 1] * (zp @ zs.T + zs @ zp.T) + theta[3]**2 * zl @ zl.T
             + theta[4]**2 * (zl * slope[:, None]) @ (zl * slope[:, None]).T)
    ai = np.linalg.inv(a)
    info = x.T @ ai @ x
    beta = np.linalg.solve(info, x.T @ ai @ y)
    r = y - x @ beta
    rss = r @ ai @ r
    nu = y.size - (x.shape[1] if reml else 0)
    dev = np.linalg.slogdet(a)[1] + nu * (1 + np.log(2 * np.pi * rss / nu))
    return dev + (np.linalg.slogdet(info)[1] if reml else 0.0)


@pytest.mark.parametrize('reml', [True, False])
def test_closed_form_deviance_equals_dense(reml):
    """Per-lesion/per-patient closed forms vs one dense n x n covariance: rounding, 1e-10."""
    y, x, patient, lesion, t = _nested_data(np.random.default_rng(3))
    problem = MixedProblem(y, x, patient, lesion=lesion)
    for theta in ([0.7, 1.3], [0.0, 2.0], [3.0, 0.0]):
        dense = _dense_deviance(y, x, patient, lesion, theta, reml)
        ours = -2 * (-0.5 * problem.deviance(theta, reml) + problem.loglik_offset(reml))
        assert ours == pytest.approx(dense, rel=1e-10)
    slopes = MixedProblem(y, x, patient, lesion=lesion, slope=t)
    theta = [0.8, 0.3, 0.5, 1.1, 0.4]
    ours = -2 * (-0.5 * slopes.deviance(theta, reml) + slopes.loglik_offset(reml))
    assert ours == pytest.approx(_dense_deviance(y, x, patient, lesion, theta, reml, t),
                                 rel=1e-10)


def test_gradient_is_the_derivative_of_the_deviance():
    """Analytic gradient in variance ratios vs central differences (step 1e-6: ~1e-7 error)."""
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(4))
    problem = MixedProblem(y, x, patient, lesion=lesion)
    phi = np.array([0.6, 1.7])
    for reml in (True, False):
        _, grad = problem.deviance_gradient(phi, reml)
        for i in range(2):
            e = np.eye(2)[i] * 1e-6
            numeric = (problem.deviance(np.sqrt(phi + e), reml)
                       - problem.deviance(np.sqrt(phi - e), reml)) / 2e-6
            assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def test_fit_is_at_the_optimum_and_covariance_is_gls():
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(5))
    fit = fit_mixed(y, x, patient, lesion=lesion)
    assert fit.optimum_checked and fit.max_gradient < 1e-4 and not fit.singular
    np.testing.assert_allclose(
        fit.cov_fe, _dense_fixed_effect_covariance(x, patient, fit.cov_re, fit.vcomp, fit.scale,
                                            lesion=lesion), rtol=1e-9, atol=1e-12)
    # the deviance is minimal: every small move of θ increases it
    dev = fit.problem.deviance(fit.theta, True)
    for step in np.vstack([np.eye(2), -np.eye(2)]) * 1e-3:
        assert fit.problem.deviance(fit.theta + step, True) > dev


def test_boundary_fit_lands_on_zero():
    """Patient means made identical: the REML patient variance is exactly 0, flagged singular."""
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(6), sd_patient=0.0)
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    for p in np.unique(patient):
        y[patient == p] -= resid[patient == p].mean()
    fit = fit_mixed(y, x, patient, lesion=lesion)
    assert fit.singular and fit.optimum_checked
    assert fit.cov_re[0, 0] == 0.0 and fit.theta[0] < SINGULAR_TOL
    assert fit.vcomp[0] > 0.5  # the lesion variance (1.5^2 simulated) survives
    # the deviance rises when the patient variance leaves 0 (the boundary condition)
    dev = fit.problem.deviance(fit.theta, True)
    assert fit.problem.deviance(fit.theta + [0.05, 0.0], True) > dev


def test_ml_and_reml_differ_as_expected():
    """ML shrinks the residual variance relative to REML (it ignores the p fixed-effect dofs)."""
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(7))
    reml = fit_mixed(y, x, patient, lesion=lesion)
    ml = fit_mixed(y, x, patient, lesion=lesion, reml=False)
    assert ml.scale < reml.scale
    np.testing.assert_allclose(ml.fe_params, reml.fe_params, atol=0.2)
    assert ml.llf != pytest.approx(reml.llf)
