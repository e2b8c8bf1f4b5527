"""The lesion-age growth-curve mixed model of Zhang et al. (AJNR 2019;40:987).

χ_rel (ppb) ~ poly(lesion age, d) × rim group + covariates, with a random intercept per patient
and per lesion within patient, fitted by REML as lme4 fits it (:mod:`.mixed`).  The same
machinery fits the paper's volume model (:mod:`.volume_model`).

Conventions
-----------
- Rim groups are coded against a reference group (default rim+, so the rim terms read "rim−
  relative to rim+", as in the paper's Results).
- The time basis is R's ``poly()`` (:func:`.poly.orthopoly`) built by default on the distinct
  binned lesion ages (``basis='distinct'``; the paper's standard errors match this basis) or on
  every visit (``basis='visits'``).  The two give the same fitted means and tests but different
  coefficients.
- Covariates: numeric columns linearly, label columns as R factors (:mod:`.covariates`).
- Standard errors are lme4's, σ² (X' A⁻¹ X)⁻¹ at the REML estimates.  Tests and 95 % CIs of
  coefficients and fitted means use Satterthwaite degrees of freedom (lmerTest's default;
  :mod:`.satterthwaite`); ``inference='wald'`` gives Wald z tests instead.
"""

import logging
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats as sstats

from .covariates import (
    COVARIATE_COLUMNS,
    covariate_column,
    covariate_design,
    parse_covariates,
)
from .errors import ModelError
from .mixed import MixedProblem, column_rank
from .optimise import fit_problem
from .poly import bin_ages, orthopoly
from .support import RIM_LEVELS, exclusion_text, rank_problem, support_text, time_design

__all__ = ['ModelError', 'GrowthCurveFit', 'fit_growth_curve', 'prepare_model_data',
           'likelihood_ratio_tests', 'lrt_row', 'COVARIATE_COLUMNS', 'DEFAULT_COVARIATES',
           'TABLE_AGES', 'INFERENCE']

LOGGER = logging.getLogger('lesionqsm.stats')

DEFAULT_COVARIATES = ('baseline_volume', 'edss', 'age', 'disease_duration', 'treatment_duration')
#: Lesion ages (years) of the paper's Table.
TABLE_AGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
#: Inference for coefficients and fitted means: Satterthwaite t (lmerTest) or Wald z.
INFERENCE = ('satterthwaite', 'wald')


def _reference_quantiles(df):
    """Two-sided 95 % quantile of t with ``df`` degrees of freedom (normal for df = inf)."""
    df = np.asarray(df, dtype=float)
    return np.where(np.isfinite(df), sstats.t.ppf(0.975, np.where(np.isfinite(df), df, 1.0)),
                    sstats.norm.ppf(0.975))


def _two_sided_p(stat, df):
    df = np.asarray(df, dtype=float)
    finite = np.isfinite(df)
    return np.where(finite, 2 * sstats.t.sf(np.abs(stat), np.where(finite, df, 1.0)),
                    2 * sstats.norm.sf(np.abs(stat)))


@dataclass
class GrowthCurveFit:
    """A fitted growth-curve model (see :func:`fit_growth_curve`)."""

    response: str
    degree: int
    reference_rim: str
    other_rim: str
    covariates: list  # covariate table columns
    covariate_names: list  # their model columns (one per numeric, one per non-reference level)
    names: list  # fixed-effect names, in design order
    fe_params: np.ndarray
    cov_fe: np.ndarray
    mixed: object  # .mixed.MixedFit
    poly_coefs: dict
    age_points: np.ndarray  # distinct binned lesion ages, years
    covariate_means: dict  # model column -> mean over the rows used
    data: pd.DataFrame  # rows used, with the binned age
    design: np.ndarray
    options: dict
    exclusions: dict = field(default_factory=dict)
    factor_levels: dict = field(default_factory=dict)

    @property
    def singular(self):
        return self.mixed.singular

    @property
    def inference(self):
        return self.options.get('inference', 'satterthwaite')

    @cached_property
    def ml(self):
        """The same model refitted by maximum likelihood (for likelihood-ratio tests)."""
        return fit_problem(self.mixed.problem, reml=False, start=self.mixed.theta)

    def _df(self, contrasts, inference):
        inference = inference or self.inference
        if inference not in INFERENCE:
            raise ModelError(f'inference must be one of {", ".join(INFERENCE)}, got '
                             f'{inference!r}')
        if inference == 'wald':
            return np.full(len(contrasts), np.inf)
        return self.mixed.satterthwaite_df(contrasts)

    def coefficient_table(self, inference=None):
        """Estimate, lme4 SE, df, t (or z), two-sided p and 95 % CI of every fixed effect.

        Parameters
        ----------
        inference : {'satterthwaite', 'wald'}, optional
            Default: the fit's option.  Wald rows have ``df = inf`` and a z statistic.
        """
        se = np.sqrt(np.diag(self.cov_fe))
        df = self._df(np.eye(len(self.names)), inference)
        stat = self.fe_params / se
        q = _reference_quantiles(df)
        return pd.DataFrame({
            'term': self.names, 'estimate': self.fe_params, 'se': se, 'df': df,
            'statistic': stat, 'p_value': _two_sided_p(stat, df),
            'ci_low': self.fe_params - q * se, 'ci_high': self.fe_params + q * se,
        })

    def contrast_rows(self, ages, rim):
        """Design rows of the population mean at ``ages`` for a rim group, covariates at means."""
        basis, _ = orthopoly(np.asarray(ages, dtype=float), self.degree, coefs=self.poly_coefs)
        ind = 1.0 if rim == self.other_rim else 0.0
        cov = np.array([self.covariate_means[c] for c in self.covariate_names])
        n = basis.shape[0]
        parts = [np.ones((n, 1)), basis, np.full((n, 1), ind), basis * ind,
                 np.tile(cov, (n, 1))]
        for name in self.options['rim_interactions']:
            col = covariate_column(name)
            cols = [j for j, c in enumerate(self.options['covariate_sources']) if c == col]
            parts.append(np.tile(cov[cols], (n, 1)) * ind)
        return np.hstack(parts)

    def fitted_means(self, ages=TABLE_AGES, inference=None):
        """The paper's Table: fitted mean per rim group and lesion age, with 95 % CI.

        Returns a long table: ``age_years``, ``rim`` (the two groups, then ``difference`` =
        other − reference group with its p), ``n_lesions`` (lesions with a visit whose age is
        nearest to that table age), ``estimate``, ``se``, ``df`` (Satterthwaite, or inf for
        Wald), ``ci_low``, ``ci_high``, ``p_value`` (difference rows only) and
        ``extrapolated`` (age outside the data).  Factor covariates are held at the
        proportion of each level among the rows used (the mean of their 0/1 columns).
        """
        ages = np.asarray(ages, dtype=float)
        data_age = self.data['lesion_age_years'].to_numpy()
        nearest = np.abs(data_age[:, None] - ages[None, :]).argmin(axis=1)
        lo, hi = data_age.min(), data_age.max()
        design = {rim: self.contrast_rows(ages, rim) for rim in RIM_LEVELS}
        design['difference'] = design[self.other_rim] - design[self.reference_rim]
        keys = self.data['participant_id'] + '\x00' + self.data['lesion_id']
        rim_col = self.data['rim'].to_numpy()
        rows = []
        for rim, x in design.items():
            est = x @ self.fe_params
            se = np.sqrt(np.einsum('ij,jk,ik->i', x, self.cov_fe, x))
            df = self._df(x, inference)
            q = _reference_quantiles(df)
            p = _two_sided_p(est / se, df)
            for k, age in enumerate(ages):
                sel = nearest == k
                if rim != 'difference':
                    sel &= rim_col == rim
                rows.append({'age_years': age, 'rim': rim, 'n_lesions': int(keys[sel].nunique()),
                             'estimate': est[k], 'se': se[k], 'df': df[k],
                             'ci_low': est[k] - q[k] * se[k], 'ci_high': est[k] + q[k] * se[k],
                             'p_value': p[k] if rim == 'difference' else np.nan,
                             'extrapolated': bool(age < lo - 1e-9 or age > hi + 1e-9)})
        return pd.DataFrame(rows)

    def summary(self):
        """JSON-ready description of the fit."""
        m = self.mixed
        keys = self.data[['participant_id', 'lesion_id', 'rim']].drop_duplicates(
            ['participant_id', 'lesion_id'])
        return {
            'response': self.response, 'degree': self.degree, 'method': 'REML' if m.reml else 'ML',
            'reference_rim': self.reference_rim, 'covariates': self.covariates,
            'factor_levels': self.factor_levels,
            'n_observations': m.n_obs, 'n_lesions': int(len(keys)),
            'n_patients': int(self.data['participant_id'].nunique()),
            'n_lesions_by_rim': {r: int((keys['rim'] == r).sum()) for r in RIM_LEVELS},
            'age_points_years': [float(a) for a in self.age_points],
            'poly_coefs': {k: [float(v) for v in val] for k, val in self.poly_coefs.items()},
            'optimum_checked': m.optimum_checked, 'optimum_message': m.optimum_message,
            'max_abs_gradient': m.max_gradient, 'singular': m.singular,
            'loglik': m.llf, 'residual_variance': m.scale,
            'patient_variance': np.diag(m.cov_re).tolist(),
            'lesion_variance': m.vcomp.tolist(), 'theta': m.theta.tolist(),
            'covariate_means': {k: float(v) for k, v in self.covariate_means.items()},
            'exclusions': self.exclusions,
            'options': {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in self.options.items()},
            'inference': self.inference,
            'standard_errors': "lme4's: sigma^2 (X' A^-1 X)^-1 at the REML estimates",
        }


def prepare_model_data(lesions, participants=None, *, response='chi_rel_ppb', covariates=(),
                       categorical=()):
    """Rows usable by the model, the kind of each covariate, and a record of every row left out.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows in the participant-level schema (``*_lesions.tsv``).
    participants : DataFrame, optional
        ``participants.tsv`` (participant_id, age, sex, edss, ...), merged on participant_id.
    response : str
        Response column.
    covariates : sequence of str
        Covariate names (keys of :data:`COVARIATE_COLUMNS`) or column names.
    categorical : sequence of str
        Covariate columns to treat as factors even when their values are numbers.

    Returns
    -------
    data : DataFrame
        Rows with status 'ok', a finite response, rim positive/negative and every covariate
        present.
    exclusions : dict
        Counts of rows dropped, by reason; rows missing each covariate; the participants
        dropped for a missing covariate.
    kinds : dict
        Covariate column -> 'numeric' or 'factor'.

    Raises
    ------
    ModelError
        If a required column (response, lesion columns, or a covariate) is absent, or a
        covariate column mixes numbers with text; the message names it.
    """
    df = lesions.copy()
    for col in ('participant_id', 'lesion_id', 'lesion_age_years', 'rim', response):
        if col not in df.columns:
            raise ModelError(f'the lesion table has no {col!r} column')
    if participants is not None:
        if 'participant_id' not in participants.columns:
            raise ModelError("participants.tsv has no 'participant_id' column")
        extra = [c for c in participants.columns if c == 'participant_id' or c not in df.columns]
        df = df.merge(participants[extra], on='participant_id', how='left')
    columns = [covariate_column(c) for c in covariates]
    for name, col in zip(covariates, columns, strict=True):
        if col not in df.columns:
            raise ModelError(f'covariate {name!r} needs a column {col!r}, found in neither the '
                             'lesion tables nor participants.tsv')
    kinds = parse_covariates(df, columns, categorical=[covariate_column(c) for c in categorical])
    exclusions = {}
    status = df['status'].astype(str) if 'status' in df.columns else pd.Series('ok', df.index)
    bad = (status != 'ok').to_numpy()
    exclusions['status_not_ok'] = int(bad.sum())
    for col in [response, 'lesion_age_years']:
        df[col] = pd.to_numeric(df[col], errors='coerce')
    nan = ~bad & ~np.isfinite(df[response].to_numpy(dtype=float))
    exclusions[f'{response}_missing'] = int(nan.sum())
    norim = ~bad & ~nan & ~df['rim'].isin(RIM_LEVELS).to_numpy()
    exclusions['rim_not_classified'] = int(norim.sum())
    keep = ~(bad | nan | norim)
    absent = df[columns].isna().to_numpy() if columns else np.zeros((len(df), 0), bool)
    missing = keep & absent.any(axis=1)
    exclusions['covariate_missing'] = int(missing.sum())
    exclusions['covariate_missing_by_column'] = {
        c: int((keep & absent[:, j]).sum()) for j, c in enumerate(columns)
        if (keep & absent[:, j]).any()}
    dropped = sorted(df.loc[missing, 'participant_id'].astype(str).unique())
    exclusions['participants_missing_covariate'] = dropped
    if dropped:
        LOGGER.warning('dropped %d rows of %s: a model covariate (%s) is n/a', missing.sum(),
                       ', '.join(dropped), ', '.join(exclusions['covariate_missing_by_column']))
    for reason in ('status_not_ok', f'{response}_missing', 'rim_not_classified'):
        if exclusions[reason]:
            LOGGER.info('excluded %d lesion-visit rows: %s', exclusions[reason], reason)
    data = df.loc[keep & ~missing].copy()
    data['participant_id'] = data['participant_id'].astype(str)
    data['lesion_id'] = data['lesion_id'].astype(str)
    return data.reset_index(drop=True), exclusions, kinds


def fit_growth_curve(lesions, participants=None, *, response='chi_rel_ppb', degree=8,
                     covariates=DEFAULT_COVARIATES, categorical=(), binning='octiles',
                     bin_edges=None, basis='distinct', reference_rim='positive',
                     lesion_effect=True, random_slopes=False, rim_interactions=(), reml=True,
                     inference='satterthwaite', min_patients=3, min_lesions=4):
    """Fit χ_rel ~ poly(lesion age, degree) × rim + covariates with nested random intercepts.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows (participant-level ``*_lesions.tsv`` schema).  The lesion grouping
        is (participant_id, lesion_id).
    participants : DataFrame, optional
        ``participants.tsv``; patient covariates are merged from it.
    response : str
        Response column: ``chi_rel_ppb`` (ppb) or ``volume_mm3`` (mm³).
    degree : int
        Degree of the orthogonal polynomial in lesion age (paper: 8); must be below the number
        of distinct (binned) lesion ages.
    covariates : sequence of str
        Names in :data:`COVARIATE_COLUMNS` (baseline_volume, volume_change, edss, age,
        disease_duration, treatment_duration) or any column: numbers enter linearly, labels
        (sex F/M, a treatment name) as factors with treatment contrasts.
    categorical : sequence of str
        Covariates to treat as factors although their values are numbers.
    binning, bin_edges
        Lesion-age binning, see :func:`.poly.bin_ages` (default: the paper's octiles).
    basis : {'distinct', 'visits'}
        Build ``poly()`` on the distinct binned ages (default, the paper) or on every visit.
    reference_rim : {'positive', 'negative'}
        Reference group of the rim contrast.
    lesion_effect : bool
        Random intercept per lesion within patient (False: patient only, the volume model).
    random_slopes : bool
        Add random slopes on the linear age term (patient, correlated with its intercept;
        lesion, independent).
    rim_interactions : sequence of str
        Covariates whose slope differs by rim group (e.g. ``('volume_change',)``).
    reml : bool
        REML (default) or ML.
    inference : {'satterthwaite', 'wald'}
        Degrees of freedom of the tests and CIs: Satterthwaite t (lmerTest) or Wald z.
    min_patients, min_lesions : int
        Smallest cohort accepted.

    Returns
    -------
    GrowthCurveFit

    Raises
    ------
    ModelError
        Missing column (named), a covariate column that is not numbers nor labels (named with
        its bad values), too few patients or lesions (with the rows left out and why), a rim
        group with no lesions, a degree not below the number of distinct lesion ages, a
        rank-deficient design (the empty rim × age cell or the collinear columns are named);
        the message ends with the largest degree and the covariates the data support.
    """
    if reference_rim not in RIM_LEVELS:
        raise ModelError(f"reference_rim must be 'positive' or 'negative', got {reference_rim!r}")
    if basis not in ('distinct', 'visits'):
        raise ModelError(f"basis must be 'distinct' or 'visits', got {basis!r}")
    if inference not in INFERENCE:
        raise ModelError(f'inference must be one of {", ".join(INFERENCE)}, got {inference!r}')
    covariates = list(covariates)
    for name in rim_interactions:
        if name not in covariates:
            raise ModelError(f'rim interaction with {name!r} needs it among the covariates')
    other = RIM_LEVELS[1 - RIM_LEVELS.index(reference_rim)]
    data, exclusions, kinds = prepare_model_data(lesions, participants, response=response,
                                                 covariates=covariates,
                                                 categorical=categorical)
    n_random = (2 if lesion_effect else 1) + (3 if random_slopes else 0) + 1
    lesion_key = data['participant_id'] + '\x00' + data['lesion_id']
    n_patients, n_lesions = data['participant_id'].nunique(), lesion_key.nunique()
    if n_patients < min_patients or n_lesions < min_lesions:
        raise ModelError(f'too few data for the model: {n_lesions} lesions in {n_patients} '
                         f'patients with usable rows (need >= {min_lesions} lesions and >= '
                         f'{min_patients} patients); {exclusion_text(exclusions, len(lesions))}')
    for rim in RIM_LEVELS:
        if not (data['rim'] == rim).any():
            raise ModelError(f'rim group {rim!r} has no lesions with usable rows; the model '
                             'compares rim+ with rim- lesions')
    age = data['lesion_age_years'].to_numpy(dtype=float)
    binned, points = bin_ages(age, binning=binning, edges=bin_edges)

    def support():
        return support_text(data, binned, other, covariates, kinds, basis, n_random)

    if degree >= points.size:
        raise ModelError(f'polynomial degree {degree} must be below the number of distinct '
                         f'lesion ages ({points.size} after {binning!r} binning){support()}')
    ind = (data['rim'] == other).to_numpy(dtype=float)[:, None]
    base, time, coefs = time_design(binned, points, degree, basis, ind)
    cov_cols = [covariate_column(c) for c in covariates]
    cov, cov_names, sources, levels = covariate_design(data, cov_cols, kinds)
    tnames = [f'age_poly{k}' for k in range(1, degree + 1)]
    inter, inter_names = [], []
    for name in rim_interactions:
        cols = [j for j, s in enumerate(sources) if s == covariate_column(name)]
        inter.append(cov[:, cols] * ind)
        inter_names += [f'{cov_names[j]}:rim_{other}' for j in cols]
    names = (['intercept'] + tnames + [f'rim_{other}'] + [f'{t}:rim_{other}' for t in tnames]
             + cov_names + inter_names)
    x = np.hstack([base, cov, *inter])
    if len(data) <= x.shape[1] + n_random:
        raise ModelError(f'too few lesion visits ({len(data)}) for {x.shape[1] + n_random} '
                         f'model parameters{support()}')
    if column_rank(x) < x.shape[1]:
        raise ModelError('rank-deficient design: ' + rank_problem(x, names, data, binned, other)
                         + support())
    problem = MixedProblem(data[response].to_numpy(dtype=float), x,
                           data['participant_id'].to_numpy(),
                           lesion=lesion_key.to_numpy() if lesion_effect else None,
                           slope=time[:, 0] if random_slopes else None)
    mixed = fit_problem(problem, reml=reml)
    if not mixed.optimum_checked:
        LOGGER.warning('%s model: the optimum could not be verified (%s)', response,
                       mixed.optimum_message)
    data['binned_age_years'] = binned
    options = dict(binning=binning if isinstance(binning, str) else list(map(float, binning)),
                   bin_edges=None if bin_edges is None else list(map(float, bin_edges)),
                   basis=basis, lesion_effect=lesion_effect, random_slopes=random_slopes,
                   rim_interactions=tuple(rim_interactions), reml=reml, inference=inference,
                   categorical=tuple(categorical), covariate_sources=tuple(sources),
                   min_patients=min_patients, min_lesions=min_lesions)
    return GrowthCurveFit(
        response=response, degree=degree, reference_rim=reference_rim, other_rim=other,
        covariates=cov_cols, covariate_names=cov_names, names=names,
        fe_params=mixed.fe_params, cov_fe=mixed.cov_fe, mixed=mixed, poly_coefs=coefs,
        age_points=points, covariate_means=dict(zip(cov_names, cov.mean(axis=0), strict=True)),
        data=data, design=x, options=options, exclusions=exclusions, factor_levels=levels)


def lrt_row(test, dropped, full, reduced):
    """One likelihood-ratio test between two ML fits (:class:`.mixed.MixedFit`)."""
    stat = max(2.0 * (full.llf - reduced.llf), 0.0)
    return {'test': test, 'terms': ','.join(dropped), 'df': len(dropped),
            'loglik_full': full.llf, 'loglik_reduced': reduced.llf, 'statistic': stat,
            'p_value': float(sstats.chi2.sf(stat, len(dropped))),
            'optimum_checked': bool(full.optimum_checked and reduced.optimum_checked)}


def default_tests(fit):
    """The paper's tests: rim (main effect and every rim × age term), rim:age, age."""
    names, other = fit.names, fit.other_rim
    return {
        'rim': [n for n in names if n.endswith(f'rim_{other}') and
                (n.startswith('age_poly') or n == f'rim_{other}')],
        'rim:age': [n for n in names if n.startswith('age_poly') and ':rim_' in n],
        'age': [n for n in names if n.startswith('age_poly')],
    }


def reduced_ml_fit(fit, dropped):
    """ML fit of ``fit``'s model without the fixed effects ``dropped`` (names)."""
    unknown = [d for d in dropped if d not in fit.names]
    if unknown or not dropped:
        raise ModelError(f'likelihood-ratio test: no such fixed effect(s) {unknown}')
    keep = [i for i, n in enumerate(fit.names) if n not in dropped]
    full = fit.mixed.problem
    data = fit.data
    lesion = (data['participant_id'] + '\x00' + data['lesion_id']).to_numpy()
    problem = MixedProblem(data[fit.response].to_numpy(dtype=float), fit.design[:, keep],
                           data['participant_id'].to_numpy(),
                           lesion=lesion if full.r_lesion else None,
                           slope=fit.design[:, 1] if full.r == 2 else None)
    return fit_problem(problem, reml=False, start=fit.ml.theta)


def likelihood_ratio_tests(fit, terms=None):
    """Likelihood-ratio tests of groups of fixed effects by maximum-likelihood refits.

    Parameters
    ----------
    fit : GrowthCurveFit
    terms : dict of str -> list of str, optional
        Test name -> fixed-effect names dropped in the reduced model.  Default
        (:func:`default_tests`): ``rim`` (the rim main effect and every rim × age term),
        ``rim:age`` (do the trajectories differ in shape?) and ``age`` (does χ change?).

    Returns
    -------
    DataFrame
        ``test``, ``terms``, ``df``, ``loglik_full``, ``loglik_reduced``, ``statistic``
        (2 Δ log-likelihood), ``p_value`` (χ² with df degrees of freedom) and
        ``optimum_checked`` (both ML optima verified).
    """
    terms = default_tests(fit) if terms is None else terms
    rows = [lrt_row(test, dropped, fit.ml, reduced_ml_fit(fit, dropped))
            for test, dropped in terms.items()]
    return pd.DataFrame(rows)
