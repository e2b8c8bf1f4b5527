"""The growth-curve model on simulated cohorts with known true curves, and its error cases."""

import logging

import numpy as np
import pandas as pd
import pytest

from lesionqsm.stats.growth_curve import (
    ModelError,
    fit_growth_curve,
    likelihood_ratio_tests,
)
from lesionqsm.stats.volume_model import fit_volume_model, volume_table
from lesionqsm.synth.lesion_table import simulate_lesion_table
from lesionqsm.synth.trajectory import TABLE_AGES, mean_susceptibility_ppb


@pytest.fixture(scope='module')
def cohort():
    """240 lesions in 100 patients, 5 visits each at the paper's Table ages."""
    return simulate_lesion_table(n_patients=100, n_lesions=240, visits_per_lesion=5,
                                 rng=np.random.default_rng(1))


@pytest.fixture(scope='module')
def fit(cohort):
    lesions, participants, _ = cohort
    return fit_growth_curve(lesions, participants)


def test_fitted_means_cover_true_curves(fit, cohort):
    """95 % CIs hold the true mean at >= 90 % of the 18 age x group cells (expected 95 %)."""
    table = fit.fitted_means()
    groups = table[table['rim'] != 'difference']
    truth = [mean_susceptibility_ppb(a, r) for a, r in zip(groups['age_years'], groups['rim'],
                                                              strict=True)]
    covered = (groups['ci_low'] <= truth) & (truth <= groups['ci_high'])
    assert covered.mean() >= 0.9
    assert not fit.singular and fit.mixed.optimum_checked
    # difference rows: other group minus reference (rim- minus rim+), at 0 y the truth is -5.74
    diff0 = table[(table['rim'] == 'difference') & (table['age_years'] == 0)].iloc[0]
    assert diff0['ci_low'] <= 7.77 - 13.51 <= diff0['ci_high']
    assert diff0['n_lesions'] == 240  # every lesion has its detection visit


def test_covariate_effects_recovered(fit, cohort):
    """Each simulated covariate effect lies within 3 SE of its estimate."""
    _, _, truth = cohort
    coef = fit.coefficient_table().set_index('term')
    for name, beta in truth['beta'].items():
        assert abs(coef.loc[name, 'estimate'] - beta) < 3 * coef.loc[name, 'se'], name
    assert list(coef.columns) == ['estimate', 'se', 'df', 'statistic', 'p_value', 'ci_low',
                                  'ci_high']
    assert coef.loc['rim_negative', 'p_value'] < 1e-3  # true rim- minus rim+ at 0 y: -5.7 ppb
    # patient covariates are tested against the patients (100), not the 1,200 visits
    assert 80 < coef.loc['edss', 'df'] < 110
    wald = fit.coefficient_table('wald').set_index('term')
    assert np.isinf(wald['df']).all()
    np.testing.assert_allclose(wald['ci_high'] - wald['estimate'], 1.959964 * wald['se'],
                               rtol=1e-6)


def test_table_counts_and_summary(fit):
    table = fit.fitted_means()
    assert set(table['rim']) == {'positive', 'negative', 'difference'}
    np.testing.assert_allclose(sorted(set(table['age_years'])), TABLE_AGES)
    pos = table[table['rim'] == 'positive']
    neg = table[table['rim'] == 'negative']
    diff = table[table['rim'] == 'difference']
    np.testing.assert_array_equal(pos['n_lesions'].to_numpy() + neg['n_lesions'].to_numpy(),
                                  diff['n_lesions'].to_numpy())
    summary = fit.summary()
    assert summary['n_lesions'] == 240 and summary['n_patients'] == 100
    assert summary['degree'] == 8 and summary['singular'] is False


def test_paper_sized_cohort_converges():
    """19 patients, 32 lesions (16 rim+), 5 visits: the degree-8 model fits and converges."""
    lesions, participants, _ = simulate_lesion_table(
        n_patients=19, n_lesions=32, visits_per_lesion=5, n_rim_positive=16,
        rng=np.random.default_rng(2019))
    fit = fit_growth_curve(lesions, participants)
    coef = fit.coefficient_table()
    assert fit.mixed.optimum_checked
    assert len(coef) == 1 + 8 + 1 + 8 + 5
    assert np.all(np.isfinite(coef['se'])) and np.all(coef['se'] > 0)
    assert fit.summary()['n_lesions_by_rim'] == {'positive': 16, 'negative': 16}


def test_basis_on_visits_gives_same_means_and_tests(cohort):
    """poly() on visits vs distinct ages: same column space, so same means; other coefficients."""
    lesions, participants, _ = cohort
    small = lesions[lesions['participant_id'] <= 'sub-040']
    kwargs = dict(covariates=('edss',), degree=4, binning='none')
    a = fit_growth_curve(small, participants, basis='distinct', **kwargs)
    b = fit_growth_curve(small, participants, basis='visits', **kwargs)
    np.testing.assert_allclose(a.fitted_means()['estimate'], b.fitted_means()['estimate'],
                               atol=1e-6)  # same model: optimiser tolerance only
    assert not np.allclose(a.fe_params[1:5], b.fe_params[1:5], atol=1e-2)
    la, lb = likelihood_ratio_tests(a), likelihood_ratio_tests(b)
    np.testing.assert_allclose(la['statistic'], lb['statistic'], atol=1e-6)
    assert list(la['test']) == ['rim', 'rim:age', 'age']
    assert list(la['df']) == [5, 4, 8]  # age: main and rim x age terms


def test_volume_change_variant_and_interaction(cohort):
    lesions, participants, _ = cohort
    fit = fit_growth_curve(lesions, participants, degree=4,
                           covariates=('volume_change', 'edss'),
                           rim_interactions=('volume_change',))
    assert 'volume_change_mm3:rim_negative' in fit.names
    lrt = likelihood_ratio_tests(fit, {'volume_change:rim': ['volume_change_mm3:rim_negative']})
    assert lrt['df'].iloc[0] == 1 and 0 <= lrt['p_value'].iloc[0] <= 1


def test_volume_model_recovers_initial_volumes(cohort):
    """Fitted volume at 0 y within 15 % of the simulated mean (log-normal: V0 exp(σ²/2))."""
    lesions, _, _ = cohort
    table = volume_table(fit_volume_model(lesions))
    for rim, v0 in (('positive', 1042.45), ('negative', 322.34)):
        est = table[(table['rim'] == rim) & (table['age_years'] == 0)]['estimate'].iloc[0]
        assert est == pytest.approx(v0 * np.exp(0.4**2 / 2 + 0.1**2 / 2), rel=0.15)


def test_exclusions_and_dropped_participants(cohort, caplog):
    lesions, participants, _ = cohort
    lesions = lesions.copy()
    participants = participants.copy()
    lesions.loc[0, 'status'] = 'no chi map'
    lesions.loc[1, 'chi_rel_ppb'] = np.nan
    lesions.loc[lesions['participant_id'] == 'sub-002', 'rim'] = 'n/a'
    participants.loc[participants['participant_id'] == 'sub-003', 'edss'] = np.nan
    with caplog.at_level(logging.WARNING, logger='lesionqsm.stats'):
        fit = fit_growth_curve(lesions, participants, degree=3, binning='octiles')
    assert 'sub-003' in caplog.text
    ex = fit.exclusions
    assert ex['status_not_ok'] == 1 and ex['chi_rel_ppb_missing'] == 1
    assert ex['rim_not_classified'] == (lesions['participant_id'] == 'sub-002').sum()
    assert ex['participants_missing_covariate'] == ['sub-003']
    assert 'sub-003' not in set(fit.data['participant_id'])


def test_errors(cohort):
    lesions, participants, _ = cohort
    with pytest.raises(ModelError, match='must be below the number of distinct lesion ages'):
        fit_growth_curve(lesions, participants, degree=9)
    with pytest.raises(ModelError, match="covariate 'edss' needs a column 'edss'"):
        fit_growth_curve(lesions, participants.drop(columns='edss'))
    with pytest.raises(ModelError, match="rim group 'negative' has no lesions"):
        fit_growth_curve(lesions[lesions['rim'] == 'positive'], participants, degree=3)
    few = lesions[lesions['participant_id'].isin(['sub-001', 'sub-002'])]
    with pytest.raises(ModelError, match='too few data for the model'):
        fit_growth_curve(few, participants, degree=2)
    with pytest.raises(ModelError, match="no 'chi_rel_ppb' column"):
        fit_growth_curve(lesions.drop(columns='chi_rel_ppb'), participants)
    assert issubclass(ModelError, ValueError)


def test_empty_rim_age_cell_is_named(cohort):
    lesions, participants, _ = cohort
    hole = ~((lesions['rim'] == 'negative') & (lesions['lesion_age_years'] == 2.0))
    with pytest.raises(ModelError, match='rim negative at lesion age 2 y'):
        fit_growth_curve(lesions[hole], participants, binning=list(TABLE_AGES))


def test_collinear_covariate_is_named(cohort):
    lesions, participants, _ = cohort
    participants = participants.assign(edss2=lambda d: 2 * d['edss'])
    with pytest.raises(ModelError, match='collinear design columns: .*edss'):
        fit_growth_curve(lesions, participants, degree=3, covariates=('edss', 'edss2'))


def test_lesion_ids_are_grouped_within_patients():
    """Lesion '1' of two patients are two lesions: 2 lesions, not 1, in the summary."""
    lesions, participants, _ = simulate_lesion_table(
        n_patients=6, n_lesions=12, visits_per_lesion=5, rng=np.random.default_rng(7))
    fit = fit_growth_curve(lesions, participants, degree=3, covariates=())
    n = pd.MultiIndex.from_frame(lesions[['participant_id', 'lesion_id']]).nunique()
    assert fit.summary()['n_lesions'] == n == 12


def test_random_slopes_option(cohort):
    """Random slopes on linear age: a 2x2 patient covariance, two lesion components, and
    fitted means that stay within a tenth of their SE of the intercept-only fit's means."""
    lesions, participants, _ = cohort
    small = lesions[lesions['participant_id'] <= 'sub-050']
    kwargs = dict(degree=4, covariates=('edss',))
    plain = fit_growth_curve(small, participants, **kwargs)
    slopes = fit_growth_curve(small, participants, random_slopes=True, **kwargs)
    assert slopes.mixed.cov_re.shape == (2, 2) and slopes.mixed.vcomp.shape == (2,)
    a, b = plain.fitted_means(), slopes.fitted_means()
    assert np.all(np.abs(a['estimate'] - b['estimate']) < 0.1 * a['se'] + 0.5)


def test_sex_written_f_m_is_a_factor(cohort):
    """The synth cohort writes sex as F/M: a factor with reference F, never missing rows."""
    lesions, participants, _ = cohort
    fit = fit_growth_curve(lesions, participants, degree=4, covariates=('edss', 'sex'))
    assert 'sexM' in fit.names and fit.factor_levels == {'sex': ['F', 'M']}
    assert fit.exclusions['covariate_missing'] == 0 and fit.summary()['n_lesions'] == 240
    column = fit.design[:, fit.names.index('sexM')]
    np.testing.assert_array_equal(column, (fit.data['sex'] == 'M').to_numpy(float))


def test_unparsable_covariate_names_column_and_values(cohort):
    lesions, participants, _ = cohort
    bad = participants.astype({'edss': object})
    bad.loc[[0, 1], 'edss'] = ['4,5', 'unknown']
    with pytest.raises(ModelError, match=r"column 'edss' holds numbers and 2 value\(s\) that "
                                         r"are not numbers: '4,5', 'unknown'"):
        fit_growth_curve(lesions, bad, degree=3, covariates=('edss',))


def test_too_few_data_says_which_rows_went_and_what_fits(cohort):
    lesions, participants, _ = cohort
    gone = participants.assign(edss=np.nan)
    with pytest.raises(ModelError, match='0 lesions in 0 patients.*edss n/a in 1200 rows'):
        fit_growth_curve(lesions, gone, degree=3, covariates=('edss',))
    few = lesions[lesions['participant_id'].isin(['sub-001', 'sub-002', 'sub-003', 'sub-004'])]
    with pytest.raises(ModelError, match='support at most degree [1-7] with covariates'):
        fit_growth_curve(few, participants, degree=8)
