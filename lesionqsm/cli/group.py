"""The group level: every subject's lesion table → the growth-curve models → OUTPUT_DIR/group/.

Calls :mod:`lesionqsm.stats` directly (no workflow) and writes every table with its JSON data
dictionary through the BIDS writers, each file atomically.
"""

import io
import logging
from pathlib import Path

import pandas as pd

from ..bids.images import atomic_write_text
from ..bids.templates_io import write_json
from ..options import options_as_dict, options_from_mapping
from ..stats.errors import ModelError
from ..stats.growth_curve import (
    fit_growth_curve,
    likelihood_ratio_tests,
    lrt_row,
    reduced_ml_fit,
)
from ..stats.options import GroupModelOptions
from ..stats.volume_model import fit_volume_model
from .group_text import (
    LRT_DICTIONARY,
    coefficient_dictionary,
    means_dictionary,
    results_text,
)

__all__ = ['group_options', 'find_lesion_tables', 'read_lesion_tables', 'run_group_level']

LOGGER = logging.getLogger('lesionqsm')
ALGORITHM_VERSION = '2'
#: Covariates read from participants.tsv (the others come with the lesion tables).
PATIENT_COVARIATES = {'edss', 'age', 'sex', 'disease_duration', 'treatment_duration'}


def group_options(config_section=None, *, degree=None, covariates=None, inference=None):
    """The group options: command-line values (None = not given) > ``--config`` > defaults.

    Raises
    ------
    lesionqsm.options.OptionError
        An unknown key or a bad value, named (``group.degree: must be ...``).
    """
    return options_from_mapping(
        GroupModelOptions, config_section, section='group', degree=degree,
        covariates=None if covariates is None else tuple(covariates), inference=inference)


def find_lesion_tables(output_dir):
    """Every ``sub-*/sub-*_lesions.tsv`` under ``output_dir``, sorted; ModelError if none."""
    tables = sorted(Path(output_dir).glob('sub-*/sub-*_lesions.tsv'))
    if not tables:
        raise ModelError(f'{output_dir}: no sub-*/sub-*_lesions.tsv lesion tables; run the '
                         'participant level first')
    return tables


def _read_tsv(source, name):
    try:
        return pd.read_csv(source, sep='\t', na_values=['n/a'], keep_default_na=False,
                           dtype={'participant_id': str, 'lesion_id': str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ModelError(f'{name}: cannot read the table ({exc})') from exc


def read_lesion_tables(paths):
    """All lesion tables as one DataFrame, parsed in one pass when their headers agree.

    Files with another header are read on their own and concatenated (columns aligned); a
    table that cannot be parsed is named in the ModelError.
    """
    header, bodies, odd = None, [], []
    for path in paths:
        try:
            text = Path(path).read_text(encoding='utf-8')
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f'{path}: cannot read the lesion table ({exc})') from exc
        first, _, body = text.partition('\n')
        if header is None:
            header = first
        if first != header:
            odd.append(path)
            continue
        if body and not body.endswith('\n'):
            body += '\n'
        bodies.append(body)
    try:
        frames = [pd.read_csv(io.StringIO(header + '\n' + ''.join(bodies)), sep='\t',
                              na_values=['n/a'], keep_default_na=False,
                              dtype={'participant_id': str, 'lesion_id': str})]
    except (ValueError, pd.errors.ParserError):
        frames = [_read_tsv(p, p) for p in paths if p not in odd]  # names the bad file
    frames += [_read_tsv(p, p) for p in odd]
    return pd.concat(frames, ignore_index=True)


def _write_table(df, dictionary, path):
    text = df.to_csv(sep='\t', index=False, na_rep='n/a', float_format='%.10g',
                     lineterminator='\n')
    atomic_write_text(path, text)
    write_json(path.with_suffix('.json'), dictionary)
    return str(path)


def _fit_volume_change(lesions, participants, opts, kwargs):
    """The paper's variant (volume change replaces baseline volume) and its two LRTs."""
    covs = [('volume_change' if c == 'baseline_volume' else c) for c in opts.covariates]
    if 'volume_change' not in covs:
        covs.append('volume_change')
    variant = fit_growth_curve(lesions, participants, covariates=covs, **kwargs)
    inter = fit_growth_curve(lesions, participants, covariates=covs,
                             rim_interactions=('volume_change',), **kwargs)
    term = f'volume_change_mm3:rim_{inter.other_rim}'
    lrt = pd.DataFrame([
        lrt_row('volume_change', ['volume_change_mm3'], variant.ml,
                reduced_ml_fit(variant, ['volume_change_mm3'])),
        # the interaction model without its interaction is the variant itself
        lrt_row('volume_change:rim', [term], inter.ml, variant.ml),
    ])
    return variant, lrt


def run_group_level(output_dir, bids_dir, options=None):
    """Fit the group models on an output folder and write ``output_dir/group``.

    Parameters
    ----------
    output_dir : str or Path
        Participant-level derivatives (``sub-*/sub-*_lesions.tsv``).
    bids_dir : str or Path
        Raw BIDS dataset; its ``participants.tsv`` gives the patient covariates.
    options : GroupModelOptions, optional
        Default: the paper's model.

    Returns
    -------
    dict of str -> str
        Output kind -> written path.

    Raises
    ------
    ModelError
        No lesion tables, an unreadable table, a covariate needing a missing
        participants.tsv, or a susceptibility model the data cannot support (the message
        says why and what the data support).  The volume model and the volume-change variant
        only log and record their errors in the summary.
    """
    opts = options or GroupModelOptions()
    output_dir = Path(output_dir)
    out_dir = output_dir / 'group'
    tables = find_lesion_tables(output_dir)
    participants_tsv = Path(bids_dir) / 'participants.tsv'
    needs = PATIENT_COVARIATES & set(opts.covariates)
    if needs and not participants_tsv.is_file():
        raise ModelError(f'{participants_tsv} not found; it is needed for the covariate(s) '
                         f'{", ".join(sorted(needs))}')
    lesions = read_lesion_tables(tables)
    participants = _read_tsv(participants_tsv, participants_tsv) \
        if participants_tsv.is_file() else None
    kwargs = opts.model_kwargs()
    chi = fit_growth_curve(lesions, participants, degree=opts.degree,
                           covariates=opts.covariates, categorical=opts.categorical,
                           random_slopes=opts.random_slopes, **kwargs)
    lrt = likelihood_ratio_tests(chi)
    written, errors = {}, {}
    stem = out_dir / 'group_desc-chi'
    written['chi_coefficients'] = _write_table(
        chi.coefficient_table(), coefficient_dictionary(chi, 'ppb'),
        Path(f'{stem}_coefficients.tsv'))
    written['chi_lrt'] = _write_table(lrt, LRT_DICTIONARY, Path(f'{stem}_lrt.tsv'))
    written['chi_fitted_means'] = _write_table(
        chi.fitted_means(opts.table_ages), means_dictionary(chi, 'ppb', 'chi lesion - NAWM'),
        Path(f'{stem}_fittedmeans.tsv'))

    variant = volume = None
    try:
        variant, variant_lrt = _fit_volume_change(
            lesions, participants, opts,
            dict(kwargs, degree=opts.degree, categorical=opts.categorical))
        stem = out_dir / 'group_desc-chivolchange'
        written['chivolchange_coefficients'] = _write_table(
            variant.coefficient_table(), coefficient_dictionary(variant, 'ppb'),
            Path(f'{stem}_coefficients.tsv'))
        written['chivolchange_lrt'] = _write_table(variant_lrt, LRT_DICTIONARY,
                                                   Path(f'{stem}_lrt.tsv'))
    except ModelError as exc:
        LOGGER.warning('volume-change variant not fitted: %s', exc)
        errors['volume_change_variant'] = str(exc)
        variant = None
    try:
        volume = fit_volume_model(lesions, degree=opts.volume_degree,
                                  lesion_effect=opts.volume_lesion_effect, **kwargs)
        stem = out_dir / 'group_desc-volume'
        written['volume_coefficients'] = _write_table(
            volume.coefficient_table(), coefficient_dictionary(volume, 'mm^3'),
            Path(f'{stem}_coefficients.tsv'))
        written['volume_fitted_means'] = _write_table(
            volume.fitted_means(opts.table_ages), means_dictionary(volume, 'mm^3',
                                                                   'lesion volume'),
            Path(f'{stem}_fittedmeans.tsv'))
    except ModelError as exc:
        LOGGER.warning('volume model not fitted: %s', exc)
        errors['volume_model'] = str(exc)
    if opts.figures:
        written.update(_figures(chi, volume, list(opts.table_ages), out_dir))
    fits = {'susceptibility_model': chi, 'volume_change_variant': variant,
            'volume_model': volume}
    unverified = [name for name, fit in fits.items()
                  if fit is not None and not fit.mixed.optimum_checked]
    unverified += [f'LRT {row.test}' for table in (lrt,) for row in table.itertuples()
                   if not row.optimum_checked]
    for name in unverified:
        LOGGER.warning('%s: the optimum of the fit could not be verified (see the summary)',
                       name)
    summary = {
        'lesion_tables': [str(t) for t in tables],
        'participants_tsv': str(participants_tsv) if participants is not None else None,
        'options': options_as_dict(opts),
        **{name: None if fit is None else fit.summary() for name, fit in fits.items()},
        'optimum_not_verified': unverified,
        'errors': errors,
        'results': results_text(chi, lrt, volume, variant),
        'algorithm_version': ALGORITHM_VERSION,
    }
    written['summary'] = str(write_json(out_dir / 'group_summary.json', summary))
    return written


def _figures(chi, volume, table_ages, out_dir):
    from ..report.figures import save_figure, trajectory_figure

    written = {}
    png, svg = save_figure(
        trajectory_figure(chi, table_ages=table_ages,
                          title='Lesion susceptibility by lesion age (fitted, 95% CI)'),
        out_dir / 'group_desc-chi_trajectory')
    written['chi_figure_png'], written['chi_figure_svg'] = str(png), str(svg)
    if volume is not None:
        png, svg = save_figure(
            trajectory_figure(volume, ylabel='Lesion volume (mm³)', table_ages=table_ages,
                              title='Lesion volume by lesion age (fitted, 95% CI)'),
            out_dir / 'group_desc-volume_trajectory')
        written['volume_figure_png'], written['volume_figure_svg'] = str(png), str(svg)
    return written
