"""The mixed-model engine: lme4 standard errors against a dense GLS, singular fits."""

import warnings

import numpy as np
import pytest
from statsmodels.regression.mixed_linear_model import MixedLM

from lesionqsm.stats.mixed import SINGULAR_TOL, fit_mixed


def _nested_data(rng, n_patients=12, lesions=3, visits=4, sd_patient=2.0, sd_lesion=1.5):
    patient = np.repeat(np.arange(n_patients), lesions * visits)
    lesion = np.repeat(np.arange(n_patients * lesions), visits)
    t = np.tile(np.linspace(0, 3, visits), n_patients * lesions)
    x = np.column_stack([np.ones(t.size), t, (lesion % 2).astype(float)])
    y = (x @ [5.0, 1.0, -2.0] + sd_patient * rng.standard_normal(n_patients)[patient]
         + sd_lesion * rng.standard_normal(n_patients * lesions)[lesion]
         + rng.standard_normal(t.size))
    return y, x, patient, lesion, t


def _dense_gls_cov(x, patient, lesion, fit, slope=None):
    """(X' V^-1 X)^-1 with the n x n marginal covariance built from dense indicator matrices."""
    zp = (patient[:, None] == np.unique(patient)[None, :]).astype(float)
    zl = (lesion[:, None] == np.unique(lesion)[None, :]).astype(float)
    v = fit.cov_re[0, 0] * zp @ zp.T + fit.vcomp[0] * zl @ zl.T + fit.scale * np.eye(x.shape[0])
    if slope is not None:
        zs = zp * slope[:, None]
        v += fit.cov_re[1, 1] * zs @ zs.T + fit.cov_re[0, 1] * (zp @ zs.T + zs @ zp.T)
        zls = zl * slope[:, None]
        v += fit.vcomp[1] * zls @ zls.T
    return np.linalg.inv(x.T @ np.linalg.solve(v, x))


def test_lme4_covariance_equals_dense_gls():
    """Per-patient blocks and one dense V give the same (X'V^-1X)^-1: rounding only, 1e-9."""
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(3))
    fit = fit_mixed(y, x, patient, lesion=lesion)
    assert fit.converged and not fit.singular
    np.testing.assert_allclose(fit.cov_fe, _dense_gls_cov(x, patient, lesion, fit), rtol=1e-9,
                               atol=1e-12)  # exact zeros by design balance: absolute floor
    assert fit.vcomp[0] > 0 and fit.cov_re[0, 0] > 0
    # statsmodels' own bse (full inverse Hessian) differs: the reason for computing ours
    assert not np.allclose(fit.cov_fe, fit.cov_fe_statsmodels, rtol=1e-6)


def test_lme4_covariance_with_random_slopes():
    y, x, patient, lesion, t = _nested_data(np.random.default_rng(4))
    fit = fit_mixed(y, x, patient, lesion=lesion, slope=t)
    np.testing.assert_allclose(fit.cov_fe, _dense_gls_cov(x, patient, lesion, fit, slope=t),
                               rtol=1e-9, atol=1e-12)


def test_singular_fit_is_detected_and_polished():
    """Patient means made identical: the REML patient variance is 0, flagged singular."""
    rng = np.random.default_rng(5)
    y, x, patient, lesion, _ = _nested_data(rng, sd_patient=0.0)
    resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    for p in np.unique(patient):
        y[patient == p] -= resid[patient == p].mean()
    fit = fit_mixed(y, x, patient, lesion=lesion)
    assert fit.singular and fit.polished
    # statsmodels alone stops short of the boundary (theta ~0.04 here): ours is at least as good
    vc = {'lesion': {p: (lesion[patient == p][:, None]
                         == np.unique(lesion[patient == p])[None, :]).astype(float)
                     for p in np.unique(patient)}}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        plain = MixedLM(y, x, groups=patient, exog_re=np.ones((y.size, 1)),
                        exog_vc=vc).fit(reml=True)
    assert fit.llf >= plain.llf - 1e-9
    assert fit.cov_re[0, 0] / fit.scale < SINGULAR_TOL**2
    assert np.isfinite(fit.llf)
    assert fit.vcomp[0] > 0.5  # the lesion variance (1.5^2 simulated) survives


def test_ml_and_reml_differ_as_expected():
    """ML shrinks the residual variance relative to REML (it ignores the p fixed-effect dofs)."""
    y, x, patient, lesion, _ = _nested_data(np.random.default_rng(6))
    reml = fit_mixed(y, x, patient, lesion=lesion)
    ml = fit_mixed(y, x, patient, lesion=lesion, reml=False)
    assert ml.scale < reml.scale
    np.testing.assert_allclose(ml.fe_params, reml.fe_params, atol=0.2)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(ml.llf, reml.llf)
