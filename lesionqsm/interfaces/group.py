"""Group level: read every lesion table, fit the growth-curve models, write tables and figures.

The statistics are :mod:`lesionqsm.stats`; this module does the file I/O (TSV + JSON data
dictionaries, atomic writes into ``OUTPUT_DIR/group/``) and wraps it in a nipype interface.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..bids.images import atomic_write_text
from ..stats.growth_curve import (
    DEFAULT_COVARIATES,
    TABLE_AGES,
    ModelError,
    fit_growth_curve,
    likelihood_ratio_tests,
)
from ..stats.volume_model import fit_volume_model

LOGGER = logging.getLogger('nipype.interface')
ALGORITHM_VERSION = '1'
_TERM_UNITS = {'baseline_volume_mm3': 'mm^3', 'volume_change_mm3': 'mm^3', 'edss': 'EDSS point',
               'age': 'year', 'disease_duration': 'year', 'treatment_duration': 'year'}
_SE_NOTE = ('lme4-equivalent standard error: square root of the diagonal of (X\' V^-1 X)^-1 at '
            'the REML variance estimates (fixed-effect block only; statsmodels\' default bse '
            'inverts the full Hessian and differs by up to ~5% in small cohorts)')


def find_lesion_tables(output_dir):
    """Every ``sub-*/sub-*_lesions.tsv`` under ``output_dir``, sorted; ModelError if none."""
    tables = sorted(Path(output_dir).glob('sub-*/sub-*_lesions.tsv'))
    if not tables:
        raise ModelError(f'{output_dir}: no sub-*/sub-*_lesions.tsv lesion tables; run the '
                         'participant level first')
    return [str(t) for t in tables]


def read_tsv(path, **kwargs):
    """A BIDS TSV ('n/a' = missing) with identifiers kept as strings."""
    try:
        return pd.read_csv(path, sep='\t', na_values=['n/a'], keep_default_na=False,
                           dtype={'participant_id': str, 'lesion_id': str}, **kwargs)
    except (OSError, pd.errors.ParserError) as exc:
        raise ModelError(f'{path}: cannot read the table ({exc})') from exc


def _coefficient_dictionary(fit, unit):
    levels = {}
    for name in fit.names:
        base = name.split(':')[0]
        per = f' per {_TERM_UNITS[base]}' if base in _TERM_UNITS else ''
        levels[name] = f'{unit}{per}'
    return {
        'term': {'Description': 'Fixed effect. age_polyK: degree-K orthogonal polynomial of '
                 'lesion age (R poly(), coefficients in the summary JSON); rim_<group>: '
                 f'{fit.other_rim} relative to {fit.reference_rim} lesions; X:rim_<group>: its '
                 'difference between groups; other terms: covariates (linear).',
                 'Levels': levels},
        'estimate': {'Description': 'REML estimate (units per term in term.Levels)'},
        'se': {'Description': _SE_NOTE},
        'statistic': {'Description': 'Wald z = estimate / se'},
        'p_value': {'Description': 'Two-sided p of the Wald z (normal reference)'},
        'ci_low': {'Description': 'Lower 95% Wald confidence limit, estimate - 1.96 se'},
        'ci_high': {'Description': 'Upper 95% Wald confidence limit, estimate + 1.96 se'},
    }


def _means_dictionary(unit, what):
    return {
        'age_years': {'Description': 'Lesion age (time since first enhancement)',
                      'Units': 'year'},
        'rim': {'Description': 'Rim group, or the difference between groups',
                'Levels': {'positive': 'rim+ lesions', 'negative': 'rim- lesions',
                           'difference': 'non-reference minus reference group (see summary '
                                         'JSON reference_rim)'}},
        'n_lesions': {'Description': 'Lesions with a visit whose lesion age is nearest to '
                                     'age_years among the table ages'},
        'estimate': {'Description': f'Model-fitted population mean {what} at covariate means',
                     'Units': unit},
        'se': {'Description': 'Standard error of the fitted mean (lme4-equivalent fixed-effect '
                              'covariance)', 'Units': unit},
        'ci_low': {'Description': 'Lower 95% confidence limit', 'Units': unit},
        'ci_high': {'Description': 'Upper 95% confidence limit', 'Units': unit},
        'p_value': {'Description': 'Wald p of the group difference (difference rows only)'},
        'extrapolated': {'Description': 'True if age_years is outside the observed lesion ages'},
    }


_LRT_DICTIONARY = {
    'test': {'Description': 'Group of fixed effects tested (dropped in the reduced model)'},
    'terms': {'Description': 'Comma-separated fixed effects dropped'},
    'df': {'Description': 'Degrees of freedom (number of terms dropped)'},
    'loglik_full': {'Description': 'Maximum-likelihood (ML refit) log-likelihood, full model'},
    'loglik_reduced': {'Description': 'ML log-likelihood of the reduced model'},
    'statistic': {'Description': 'Likelihood-ratio statistic 2 (loglik_full - loglik_reduced)'},
    'p_value': {'Description': 'Chi-squared p with df degrees of freedom'},
}


def _write_table(df, dictionary, path):
    text = df.to_csv(sep='\t', index=False, na_rep='n/a', float_format='%.10g')
    atomic_write_text(path, text)
    atomic_write_text(path.with_suffix('.json'), json.dumps(dictionary, indent=2) + '\n')
    return str(path)


def _json_default(obj):
    if isinstance(obj, np.integer | np.floating | np.bool_):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _results_text(chi, lrt, volume, variant):
    """A few sentences in the style of the paper's Results."""
    s = chi.summary()
    coef = chi.coefficient_table().set_index('term')
    rim = coef.loc[f'rim_{chi.other_rim}']
    sign = {'positive': 'rim+', 'negative': 'rim-'}
    lines = [
        f"{s['n_patients']} patients with {s['n_lesions']} lesions "
        f"({s['n_lesions_by_rim']['positive']} rim+, {s['n_lesions_by_rim']['negative']} rim-), "
        f"{s['n_observations']} lesion visits; degree-{chi.degree} orthogonal polynomial in "
        f"lesion age on {len(chi.age_points)} time points"
        + (' (singular fit: a variance component is 0).' if chi.singular else '.'),
        f'Effect of lesion group on the intercept ({sign[chi.other_rim]} relative to '
        f"{sign[chi.reference_rim]}): estimate = {rim['estimate']:.2f} ppb, "
        f"SE = {rim['se']:.2f}, P = {rim['p_value']:.3g}.",
    ]
    for _, row in lrt.iterrows():
        lines.append(f"LRT {row['test']} ({row['df']} df): chi2 = {row['statistic']:.2f}, "
                     f"P = {row['p_value']:.3g}.")
    if volume is not None:
        t = volume.fitted_means([0.0]).set_index('rim')
        lines.append(f"Fitted volume at enhancement: rim+ {t.loc['positive', 'estimate']:.1f} "
                     f"mm3, rim- {t.loc['negative', 'estimate']:.1f} mm3 "
                     f"(difference P = {t.loc['difference', 'p_value']:.3g}).")
    if variant is not None:
        c = variant.coefficient_table().set_index('term').loc['volume_change_mm3']
        lines.append(f"Volume change as covariate: {c['estimate']:.4f} ppb per mm3 "
                     f"(SE {c['se']:.4f}, P = {c['p_value']:.3g}).")
    return lines


def run_group_model(lesion_tables, participants_tsv, out_dir, *, degree=8,
                    covariates=DEFAULT_COVARIATES, binning='octiles', bin_edges=None,
                    basis='distinct', random_slopes=False, reference_rim='positive',
                    table_ages=TABLE_AGES, volume_degree=3, figures=True):
    """Fit the group models and write every output into ``out_dir``; return the paths.

    Parameters
    ----------
    lesion_tables : list of str
        Per-subject ``*_lesions.tsv`` files.
    participants_tsv : str or None
        ``participants.tsv`` (patient covariates).
    out_dir : str or Path
        Folder written (``OUTPUT_DIR/group``).
    degree, covariates, binning, bin_edges, basis, random_slopes, reference_rim
        Susceptibility model, see :func:`lesionqsm.stats.growth_curve.fit_growth_curve`.
    table_ages : sequence of float
        Lesion ages (years) of the fitted-means tables.
    volume_degree : int
        Degree of the volume model (paper: 3).
    figures : bool
        Write the PNG and SVG figures.

    Returns
    -------
    dict of str -> str
        Output kind -> path.

    Raises
    ------
    ModelError
        If the susceptibility model cannot be fitted (the volume model and the volume-change
        variant only log and record their errors in the summary).
    """
    out_dir = Path(out_dir)
    lesions = pd.concat([read_tsv(t) for t in lesion_tables], ignore_index=True)
    participants = read_tsv(participants_tsv) if participants_tsv else None
    covariates = list(covariates)
    options = dict(degree=degree, binning=binning, bin_edges=bin_edges, basis=basis,
                   reference_rim=reference_rim)
    chi = fit_growth_curve(lesions, participants, covariates=covariates,
                           random_slopes=random_slopes, **options)
    lrt = likelihood_ratio_tests(chi)
    written, errors = {}, {}
    stem = 'group_desc-chi'
    written['chi_coefficients'] = _write_table(
        chi.coefficient_table(), _coefficient_dictionary(chi, 'ppb'),
        out_dir / f'{stem}_coefficients.tsv')
    written['chi_lrt'] = _write_table(lrt, _LRT_DICTIONARY, out_dir / f'{stem}_lrt.tsv')
    written['chi_fitted_means'] = _write_table(
        chi.fitted_means(table_ages), _means_dictionary('ppb', 'chi lesion - NAWM'),
        out_dir / f'{stem}_fittedmeans.tsv')

    variant = variant_lrt = volume = None
    var_covs = [('volume_change' if c == 'baseline_volume' else c) for c in covariates]
    if 'volume_change' not in var_covs:
        var_covs.append('volume_change')
    try:
        variant = fit_growth_curve(lesions, participants, covariates=var_covs, **options)
        inter = fit_growth_curve(lesions, participants, covariates=var_covs,
                                 rim_interactions=('volume_change',), **options)
        variant_lrt = pd.concat([
            likelihood_ratio_tests(variant, {'volume_change': ['volume_change_mm3']}),
            likelihood_ratio_tests(inter, {'volume_change:rim': [
                f'volume_change_mm3:rim_{inter.other_rim}']}),
        ], ignore_index=True)
        stem = 'group_desc-chivolchange'
        written['chivolchange_coefficients'] = _write_table(
            variant.coefficient_table(), _coefficient_dictionary(variant, 'ppb'),
            out_dir / f'{stem}_coefficients.tsv')
        written['chivolchange_lrt'] = _write_table(variant_lrt, _LRT_DICTIONARY,
                                                   out_dir / f'{stem}_lrt.tsv')
    except ModelError as exc:
        LOGGER.warning('volume-change variant not fitted: %s', exc)
        errors['volume_change_variant'] = str(exc)
        variant = None
    try:
        volume = fit_volume_model(lesions, degree=volume_degree, binning=binning,
                                  bin_edges=bin_edges, basis=basis, reference_rim=reference_rim)
        stem = 'group_desc-volume'
        written['volume_coefficients'] = _write_table(
            volume.coefficient_table(), _coefficient_dictionary(volume, 'mm^3'),
            out_dir / f'{stem}_coefficients.tsv')
        written['volume_fitted_means'] = _write_table(
            volume.fitted_means(table_ages), _means_dictionary('mm^3', 'lesion volume'),
            out_dir / f'{stem}_fittedmeans.tsv')
    except ModelError as exc:
        LOGGER.warning('volume model not fitted: %s', exc)
        errors['volume_model'] = str(exc)
    if figures:
        from ..report.figures import save_figure, trajectory_figure

        png, svg = save_figure(
            trajectory_figure(chi, table_ages=list(table_ages),
                              title='Lesion susceptibility by lesion age (fitted, 95% CI)'),
            out_dir / 'group_desc-chi_trajectory')
        written['chi_figure_png'], written['chi_figure_svg'] = str(png), str(svg)
        if volume is not None:
            png, svg = save_figure(
                trajectory_figure(volume, ylabel='Lesion volume (mm³)',
                                  table_ages=list(table_ages),
                                  title='Lesion volume by lesion age (fitted, 95% CI)'),
                out_dir / 'group_desc-volume_trajectory')
            written['volume_figure_png'], written['volume_figure_svg'] = str(png), str(svg)
    summary = {
        'lesion_tables': [str(t) for t in lesion_tables],
        'participants_tsv': participants_tsv,
        'susceptibility_model': chi.summary(),
        'volume_change_variant': None if variant is None else variant.summary(),
        'volume_model': None if volume is None else volume.summary(),
        'errors': errors,
        'results': _results_text(chi, lrt, volume, variant),
        'algorithm_version': ALGORITHM_VERSION,
    }
    path = out_dir / 'group_summary.json'
    atomic_write_text(path, json.dumps(summary, indent=2, default=_json_default) + '\n')
    written['summary'] = str(path)
    return written


class _GroupModelInputSpec(BaseInterfaceInputSpec):
    lesion_tables = InputMultiObject(File(exists=True), mandatory=True,
                                     desc='per-subject *_lesions.tsv')
    participants_tsv = File(exists=True, desc='participants.tsv with patient covariates')
    out_dir = traits.Str(mandatory=True, desc='folder to write (OUTPUT_DIR/group)')
    degree = traits.Int(8, usedefault=True, desc='orthogonal-polynomial degree in lesion age')
    covariates = traits.List(traits.Str, list(DEFAULT_COVARIATES), usedefault=True,
                             desc='covariates of the susceptibility model')
    binning = traits.Either(traits.Enum('octiles', 'none', 'edges'), traits.List(traits.Float),
                            default='octiles', usedefault=True, desc='lesion-age binning')
    bin_edges = traits.List(traits.Float, desc="bin edges (years) for binning='edges'")
    basis = traits.Enum('distinct', 'visits', usedefault=True, desc='poly() built on')
    random_slopes = traits.Bool(False, usedefault=True, desc='random slopes on linear age')
    reference_rim = traits.Enum('positive', 'negative', usedefault=True, desc='reference group')
    table_ages = traits.List(traits.Float, list(TABLE_AGES), usedefault=True,
                             desc='lesion ages (years) of the fitted-means tables')
    volume_degree = traits.Int(3, usedefault=True, desc='degree of the volume model')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True, desc='reruns caches')


class _GroupModelOutputSpec(TraitedSpec):
    out_files = traits.Dict(traits.Str, traits.Str, desc='output kind -> path')
    summary = File(exists=True, desc='group_summary.json')


class GroupModel(SimpleInterface):
    """Fit the group models; the work is :func:`run_group_model`."""

    input_spec = _GroupModelInputSpec
    output_spec = _GroupModelOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        participants = inputs.participants_tsv if isdefined(inputs.participants_tsv) else None
        written = run_group_model(
            list(inputs.lesion_tables), participants, inputs.out_dir, degree=inputs.degree,
            covariates=inputs.covariates, binning=inputs.binning,
            bin_edges=inputs.bin_edges if isdefined(inputs.bin_edges) else None,
            basis=inputs.basis, random_slopes=inputs.random_slopes,
            reference_rim=inputs.reference_rim, table_ages=inputs.table_ages,
            volume_degree=inputs.volume_degree)
        self._results['out_files'] = written
        self._results['summary'] = written['summary']
        return runtime
