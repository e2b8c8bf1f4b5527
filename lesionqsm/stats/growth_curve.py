"""The lesion-age growth-curve mixed model of Zhang et al. (AJNR 2019;40:987).

χ_rel (ppb) ~ poly(lesion age, d) × rim group + covariates, with a random intercept per patient
and per lesion within patient, fitted by REML (statsmodels MixedLM, design matrices built
directly).  The same machinery fits the paper's volume model (:mod:`.volume_model`).

Conventions
-----------
- Rim groups are coded against a reference group (default rim+, so the rim terms read "rim−
  relative to rim+", as in the paper's Results).
- The time basis is R's ``poly()`` (:func:`.poly.orthopoly`) built by default on the distinct
  binned lesion ages (``basis='distinct'``; the paper's standard errors match this basis) or on
  every visit (``basis='visits'``).  The two give the same fitted means and tests but different
  coefficients.
- Standard errors are lme4's: the fixed-effect block alone, (X' V⁻¹ X)⁻¹ at the REML
  estimates, not statsmodels' inverse of the full Hessian; p-values are Wald z tests.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import stats as sstats

from .mixed import ModelError, fit_mixed
from .poly import bin_ages, orthopoly

__all__ = ['ModelError', 'GrowthCurveFit', 'fit_growth_curve', 'prepare_model_data',
           'likelihood_ratio_tests', 'COVARIATE_COLUMNS', 'DEFAULT_COVARIATES', 'TABLE_AGES']

LOGGER = logging.getLogger('lesionqsm.stats')

#: Covariate names of the command line and the table columns they read.
COVARIATE_COLUMNS = {
    'baseline_volume': 'baseline_volume_mm3',
    'volume_change': 'volume_change_mm3',
    'edss': 'edss',
    'age': 'age',
    'disease_duration': 'disease_duration',
    'treatment_duration': 'treatment_duration',
}
DEFAULT_COVARIATES = ('baseline_volume', 'edss', 'age', 'disease_duration', 'treatment_duration')
#: Lesion ages (years) of the paper's Table.
TABLE_AGES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
RIM_LEVELS = ('positive', 'negative')
Z95 = sstats.norm.ppf(0.975)


@dataclass
class GrowthCurveFit:
    """A fitted growth-curve model (see :func:`fit_growth_curve`)."""

    response: str
    degree: int
    reference_rim: str
    other_rim: str
    covariates: list  # table columns
    names: list  # fixed-effect names, in design order
    fe_params: np.ndarray
    cov_fe: np.ndarray
    mixed: object  # .mixed.MixedFit
    poly_coefs: dict
    age_points: np.ndarray  # distinct binned lesion ages, years
    covariate_means: dict
    data: pd.DataFrame  # rows used, with the binned age
    design: np.ndarray
    options: dict
    exclusions: dict = field(default_factory=dict)

    @property
    def singular(self):
        return self.mixed.singular

    def coefficient_table(self):
        """Estimate, lme4 SE, z, two-sided p and 95 % CI of every fixed effect."""
        se = np.sqrt(np.diag(self.cov_fe))
        z = self.fe_params / se
        return pd.DataFrame({
            'term': self.names, 'estimate': self.fe_params, 'se': se, 'statistic': z,
            'p_value': 2 * sstats.norm.sf(np.abs(z)),
            'ci_low': self.fe_params - Z95 * se, 'ci_high': self.fe_params + Z95 * se,
        })

    def contrast_rows(self, ages, rim):
        """Design rows of the population mean at ``ages`` for a rim group, covariates at means."""
        basis, _ = orthopoly(np.asarray(ages, dtype=float), self.degree, coefs=self.poly_coefs)
        ind = 1.0 if rim == self.other_rim else 0.0
        cov = np.array([self.covariate_means[c] for c in self.covariates])
        n = basis.shape[0]
        parts = [np.ones((n, 1)), basis, np.full((n, 1), ind), basis * ind,
                 np.tile(cov, (n, 1))]
        parts += [np.tile(cov[[self.covariates.index(c)]], (n, 1)) * ind
                  for c in self.options['rim_interactions']]
        return np.hstack(parts)

    def fitted_means(self, ages=TABLE_AGES):
        """The paper's Table: fitted mean per rim group and lesion age, with 95 % CI.

        Returns a long table: ``age_years``, ``rim`` (the two groups, then ``difference`` =
        other − reference group with its Wald p), ``n_lesions`` (lesions with a visit whose
        age is nearest to that table age), ``estimate``, ``se``, ``ci_low``, ``ci_high``,
        ``p_value`` (difference rows only) and ``extrapolated`` (age outside the data).
        """
        ages = np.asarray(ages, dtype=float)
        nearest = np.abs(self.data['lesion_age_years'].to_numpy()[:, None]
                         - ages[None, :]).argmin(axis=1)
        rows = []
        lo, hi = self.data['lesion_age_years'].min(), self.data['lesion_age_years'].max()
        design = {rim: self.contrast_rows(ages, rim) for rim in RIM_LEVELS}
        design['difference'] = design[self.other_rim] - design[self.reference_rim]
        for rim, x in design.items():
            est = x @ self.fe_params
            se = np.sqrt(np.einsum('ij,jk,ik->i', x, self.cov_fe, x))
            for k, age in enumerate(ages):
                sel = nearest == k
                if rim != 'difference':
                    sel &= (self.data['rim'] == rim).to_numpy()
                n_les = self.data.loc[sel, ['participant_id', 'lesion_id']].drop_duplicates()
                p = 2 * sstats.norm.sf(abs(est[k] / se[k])) if rim == 'difference' else np.nan
                rows.append({'age_years': age, 'rim': rim, 'n_lesions': len(n_les),
                             'estimate': est[k], 'se': se[k], 'ci_low': est[k] - Z95 * se[k],
                             'ci_high': est[k] + Z95 * se[k], 'p_value': p,
                             'extrapolated': bool(age < lo - 1e-9 or age > hi + 1e-9)})
        return pd.DataFrame(rows)

    def summary(self):
        """JSON-ready description of the fit."""
        m = self.mixed
        return {
            'response': self.response, 'degree': self.degree, 'method': 'REML' if m.reml else 'ML',
            'reference_rim': self.reference_rim, 'covariates': self.covariates,
            'n_observations': m.n_obs,
            'n_lesions': int(self.data[['participant_id', 'lesion_id']]
                             .drop_duplicates().shape[0]),
            'n_patients': int(self.data['participant_id'].nunique()),
            'n_lesions_by_rim': {r: int(self.data.loc[self.data['rim'] == r, ['participant_id',
                                 'lesion_id']].drop_duplicates().shape[0]) for r in RIM_LEVELS},
            'age_points_years': [float(a) for a in self.age_points],
            'poly_coefs': {k: [float(v) for v in val] for k, val in self.poly_coefs.items()},
            'converged': m.converged, 'singular': m.singular, 'polished': m.polished,
            'loglik': m.llf, 'residual_variance': m.scale,
            'patient_variance': np.diag(m.cov_re).tolist(),
            'lesion_variance': m.vcomp.tolist(),
            'covariate_means': {k: float(v) for k, v in self.covariate_means.items()},
            'optimizer_messages': m.notes, 'exclusions': self.exclusions,
            'options': {k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in self.options.items()},
            'standard_errors': 'lme4-equivalent: (X\' V^-1 X)^-1 at the REML estimates '
                               '(fixed-effect block only)',
        }


def _covariate_column(name):
    return COVARIATE_COLUMNS.get(name, name)


def prepare_model_data(lesions, participants=None, *, response='chi_rel_ppb', covariates=()):
    """Rows usable by the model and a record of every row left out.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows in the participant-level schema (``*_lesions.tsv``).
    participants : DataFrame, optional
        ``participants.tsv`` (participant_id, age, edss, ...), merged on participant_id.
    response : str
        Response column.
    covariates : sequence of str
        Covariate names (keys of :data:`COVARIATE_COLUMNS`) or column names.

    Returns
    -------
    data : DataFrame
        Rows with status 'ok', a finite response, rim positive/negative and every covariate
        present.
    exclusions : dict
        Counts of rows dropped, by reason, and the participants dropped for a missing covariate.

    Raises
    ------
    ModelError
        If a required column (response, lesion columns, or a covariate) is absent; the message
        names it.
    """
    df = lesions.copy()
    for col in ('participant_id', 'lesion_id', 'lesion_age_years', 'rim', response):
        if col not in df.columns:
            raise ModelError(f'the lesion table has no {col!r} column')
    if participants is not None:
        extra = [c for c in participants.columns if c == 'participant_id' or c not in df.columns]
        if 'participant_id' not in participants.columns:
            raise ModelError("participants.tsv has no 'participant_id' column")
        df = df.merge(participants[extra], on='participant_id', how='left')
    columns = [_covariate_column(c) for c in covariates]
    for name, col in zip(covariates, columns, strict=True):
        if col not in df.columns:
            raise ModelError(f'covariate {name!r} needs a column {col!r}, found in neither the '
                             'lesion tables nor participants.tsv')
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
    for col in columns:
        df[col] = pd.to_numeric(df[col], errors='coerce')
    missing = keep & df[columns].isna().any(axis=1).to_numpy() if columns else keep & False
    dropped = sorted(df.loc[missing, 'participant_id'].astype(str).unique())
    exclusions['covariate_missing'] = int(missing.sum())
    exclusions['participants_missing_covariate'] = dropped
    if dropped:
        LOGGER.warning('dropped %d rows of %s: a model covariate (%s) is n/a', missing.sum(),
                       ', '.join(dropped), ', '.join(columns))
    for reason in ('status_not_ok', f'{response}_missing', 'rim_not_classified'):
        if exclusions[reason]:
            LOGGER.info('excluded %d lesion-visit rows: %s', exclusions[reason], reason)
    data = df.loc[keep & ~missing].copy()
    data['participant_id'] = data['participant_id'].astype(str)
    data['lesion_id'] = data['lesion_id'].astype(str)
    return data.reset_index(drop=True), exclusions


def _rank_problem(x, names, data, binned, other_rim):
    """Name what makes the design rank deficient: an empty rim × age cell, else the columns."""
    degree = sum(n.startswith('age_poly') and ':' not in n for n in names)
    points = np.unique(binned)
    problems = []
    for rim in RIM_LEVELS:
        present = np.unique(binned[(data['rim'] == rim).to_numpy()])
        if present.size <= degree:
            missing = np.setdiff1d(points, present)
            cells = ', '.join(f'rim {rim} at lesion age {a:.3g} y' for a in missing[:10])
            if missing.size > 10:
                cells += f' and {missing.size - 10} more'
            problems.append(f'rim {rim} has visits at only {present.size} distinct lesion ages '
                            f'(degree {degree} needs {degree + 1}); empty rim x age cell(s): '
                            f'{cells}')
    if problems:
        return '; '.join(problems) + '; lower the degree or change the age binning'
    _, r, piv = scipy.linalg.qr(x, mode='economic', pivoting=True)
    tol = np.abs(r[0, 0]) * max(x.shape) * np.finfo(float).eps
    rank = int(np.sum(np.abs(np.diag(r)) > tol))
    return ('collinear design columns: ' + ', '.join(names[i] for i in sorted(piv[rank:])))


def fit_growth_curve(lesions, participants=None, *, response='chi_rel_ppb', degree=8,
                     covariates=DEFAULT_COVARIATES, binning='octiles', bin_edges=None,
                     basis='distinct', reference_rim='positive', lesion_effect=True,
                     random_slopes=False, rim_interactions=(), reml=True, min_patients=3,
                     min_lesions=4):
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
        disease_duration, treatment_duration) or any numeric column; entered linearly.
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
    min_patients, min_lesions : int
        Smallest cohort accepted.

    Returns
    -------
    GrowthCurveFit

    Raises
    ------
    ModelError
        Missing column (named), too few patients or lesions, a rim group with no lesions, a
        degree not below the number of distinct lesion ages, a rank-deficient design (the
        empty rim × age cell or the collinear columns are named).
    """
    if reference_rim not in RIM_LEVELS:
        raise ModelError(f"reference_rim must be 'positive' or 'negative', got {reference_rim!r}")
    if basis not in ('distinct', 'visits'):
        raise ModelError(f"basis must be 'distinct' or 'visits', got {basis!r}")
    covariates = list(covariates)
    for name in rim_interactions:
        if name not in covariates:
            raise ModelError(f'rim interaction with {name!r} needs it among the covariates')
    other = RIM_LEVELS[1 - RIM_LEVELS.index(reference_rim)]
    data, exclusions = prepare_model_data(lesions, participants, response=response,
                                          covariates=covariates)
    lesion_key = data['participant_id'] + '\x00' + data['lesion_id']
    n_patients, n_lesions = data['participant_id'].nunique(), lesion_key.nunique()
    if n_patients < min_patients or n_lesions < min_lesions:
        raise ModelError(f'too few data for the model: {n_lesions} lesions in {n_patients} '
                         f'patients (need >= {min_lesions} lesions and >= {min_patients} '
                         'patients with usable rows)')
    for rim in RIM_LEVELS:
        if not (data['rim'] == rim).any():
            raise ModelError(f'rim group {rim!r} has no lesions with usable rows; the model '
                             'compares rim+ with rim- lesions')
    age = data['lesion_age_years'].to_numpy(dtype=float)
    binned, points = bin_ages(age, binning=binning, edges=bin_edges)
    if degree >= points.size:
        raise ModelError(f'polynomial degree {degree} must be below the number of distinct '
                         f'lesion ages ({points.size} after {binning!r} binning)')
    _, coefs = orthopoly(points if basis == 'distinct' else binned, degree)
    time, _ = orthopoly(binned, degree, coefs=coefs)
    ind = (data['rim'] == other).to_numpy(dtype=float)[:, None]
    cov_cols = [_covariate_column(c) for c in covariates]
    cov = data[cov_cols].to_numpy(dtype=float)
    tnames = [f'age_poly{k}' for k in range(1, degree + 1)]
    names = (['intercept'] + tnames + [f'rim_{other}'] + [f'{t}:rim_{other}' for t in tnames]
             + cov_cols + [f'{_covariate_column(c)}:rim_{other}' for c in rim_interactions])
    inter = [cov[:, [cov_cols.index(_covariate_column(c))]] * ind for c in rim_interactions]
    x = np.hstack([np.ones((len(data), 1)), time, ind, time * ind, cov, *inter])
    n_params = x.shape[1] + 2 + (3 if random_slopes else 0)
    if len(data) <= n_params:
        raise ModelError(f'too few lesion visits ({len(data)}) for {n_params} model parameters')
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ModelError('rank-deficient design: ' + _rank_problem(x, names, data, binned, other))
    mixed = fit_mixed(data[response].to_numpy(dtype=float), x, data['participant_id'].to_numpy(),
                      lesion=lesion_key.to_numpy() if lesion_effect else None,
                      slope=time[:, 0] if random_slopes else None, reml=reml)
    data['binned_age_years'] = binned
    options = dict(binning=binning if isinstance(binning, str) else list(map(float, binning)),
                   bin_edges=None if bin_edges is None else list(map(float, bin_edges)),
                   basis=basis, lesion_effect=lesion_effect, random_slopes=random_slopes,
                   rim_interactions=tuple(rim_interactions), reml=reml,
                   min_patients=min_patients, min_lesions=min_lesions)
    return GrowthCurveFit(
        response=response, degree=degree, reference_rim=reference_rim, other_rim=other,
        covariates=cov_cols, names=names, fe_params=mixed.fe_params, cov_fe=mixed.cov_fe,
        mixed=mixed, poly_coefs=coefs, age_points=points,
        covariate_means={c: float(data[c].mean()) for c in cov_cols}, data=data, design=x,
        options=options, exclusions=exclusions)


def likelihood_ratio_tests(fit, terms=None):
    """Likelihood-ratio tests of groups of fixed effects by maximum-likelihood refits.

    Parameters
    ----------
    fit : GrowthCurveFit
    terms : dict of str -> list of str, optional
        Test name -> fixed-effect names dropped in the reduced model.  Default: ``rim`` (the
        rim main effect and every rim × age term), ``rim:age`` (the rim × age terms: do the
        trajectories differ in shape?) and ``age`` (every age term: does χ change with age?).

    Returns
    -------
    DataFrame
        ``test``, ``terms``, ``df``, ``loglik_full``, ``loglik_reduced``, ``statistic``
        (2 Δ log-likelihood) and ``p_value`` (χ² with df degrees of freedom).
    """
    names = fit.names
    if terms is None:
        other = fit.other_rim
        terms = {
            'rim': [n for n in names if n.endswith(f'rim_{other}') and
                    (n.startswith('age_poly') or n == f'rim_{other}')],
            'rim:age': [n for n in names if n.startswith('age_poly') and ':rim_' in n],
            'age': [n for n in names if n.startswith('age_poly')],
        }
    y = fit.data[fit.response].to_numpy(dtype=float)
    patient = fit.data['participant_id'].to_numpy()
    lesion = (fit.data['participant_id'] + '\x00' + fit.data['lesion_id']).to_numpy()
    kwargs = dict(lesion=lesion if fit.options['lesion_effect'] else None,
                  slope=fit.design[:, 1] if fit.options['random_slopes'] else None, reml=False)
    full = fit_mixed(y, fit.design, patient, **kwargs)
    rows = []
    for test, dropped in terms.items():
        unknown = [d for d in dropped if d not in names]
        if unknown or not dropped:
            raise ModelError(f'LRT {test!r}: no such fixed effect(s) {unknown}')
        keep = [i for i, n in enumerate(names) if n not in dropped]
        reduced = fit_mixed(y, fit.design[:, keep], patient, **kwargs)
        stat = max(2.0 * (full.llf - reduced.llf), 0.0)
        rows.append({'test': test, 'terms': ','.join(dropped), 'df': len(dropped),
                     'loglik_full': full.llf, 'loglik_reduced': reduced.llf,
                     'statistic': stat, 'p_value': float(sstats.chi2.sf(stat, len(dropped)))})
    return pd.DataFrame(rows)
