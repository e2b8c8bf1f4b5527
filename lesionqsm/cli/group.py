"""The group level: every subject's lesion table → the growth-curve models → OUTPUT_DIR/group/.

The inputs are checked first (:mod:`lesionqsm.bids.group_tables`): a subject whose lesion
table or participants.tsv row has a problem is left out, with its problems logged, in the
summary and in group.html, and the command line exits 1.  Then :mod:`lesionqsm.stats` is called
directly (no workflow) and every table is written with its JSON data dictionary through the
BIDS writers, each file atomically.
"""

import logging
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from .. import __version__
from ..bids.group_tables import GroupInputs, check_lesion_tables, read_group_inputs
from ..bids.images import atomic_write_text
from ..bids.templates_io import write_json
from ..lesions.measures import unreliable_rows
from ..options import OptionError, options_as_dict, options_from_mapping
from ..stats.covariates import covariate_column
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

__all__ = ['group_options', 'find_lesion_tables', 'read_lesion_tables', 'read_inputs',
           'GroupRun', 'group_level', 'run_group_level', 'run_group_command']

LOGGER = logging.getLogger('lesionqsm')
ALGORITHM_VERSION = '3'
#: Covariates read from participants.tsv (the others come with the lesion tables).
PATIENT_COVARIATES = {'edss', 'age', 'sex', 'disease_duration', 'treatment_duration'}


def group_options(config_section=None, *, degree=None, covariates=None, inference=None):
    """The group options: command-line values (None = not given) > ``--config`` > defaults.

    Raises
    ------
    lesionqsm.options.OptionError
        An unknown key or a bad value, named (``group.degree: must be ...``).
    """
    if config_section is not None and not isinstance(config_section, dict):
        raise OptionError('group', f'must be a JSON object, got {config_section!r}')
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


def read_lesion_tables(paths):
    """All lesion tables as one DataFrame, checked in one pass (:func:`.bids.group_tables
    .check_lesion_tables`); a ModelError names every table with a problem and the problem."""
    table, _, _, problems = check_lesion_tables(paths)
    if problems:
        raise ModelError('; '.join(p.message for p in problems))
    return table.drop(columns='_subject')


def read_inputs(output_dir, bids_dir, options):
    """The lesion tables and participants.tsv the models read, checked.

    Returns
    -------
    GroupInputs
        A subject whose table (or participants.tsv row) has a problem is left out.

    Raises
    ------
    ModelError
        No lesion table at all (the participant level has not run).
    lesionqsm.bids.problems.InputError
        participants.tsv unusable or needed and absent, a covariate in no table, or every
        subject left out.
    """
    find_lesion_tables(output_dir)
    covariates = [covariate_column(c) for c in options.covariates]
    if 'volume_change' not in options.covariates:  # the volume-change variant reads it
        covariates.append(covariate_column('volume_change'))
    return read_group_inputs(output_dir, Path(bids_dir) / 'participants.tsv',
                             covariates=covariates,
                             categorical=[covariate_column(c) for c in options.categorical])


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


@dataclass
class GroupRun:
    """What a group-level run wrote and what it left out.

    Attributes
    ----------
    written : dict of str -> str
        Output kind -> written path.
    inputs : GroupInputs
        The rows fitted and every input problem.
    errors : dict of str -> str
        Model -> why it was not fitted (the volume model and the volume-change variant).
    """

    written: dict
    inputs: GroupInputs
    errors: dict = field(default_factory=dict)

    @property
    def left_out(self):
        """Subject label -> messages of the problems that left it out."""
        return self.inputs.left_out


def run_group_level(output_dir, bids_dir, options=None, *, command=None):
    """Fit the group models on an output folder and write ``output_dir/group``.

    The same as :func:`group_level`, returning only the written files.

    Returns
    -------
    dict of str -> str
        Output kind -> written path.
    """
    return group_level(output_dir, bids_dir, options, command=command).written


def group_level(output_dir, bids_dir, options=None, *, command=None):
    """Fit the group models on an output folder and write ``output_dir/group``.

    Parameters
    ----------
    output_dir : str or Path
        Participant-level derivatives (``sub-*/sub-*_lesions.tsv``).
    bids_dir : str or Path
        Raw BIDS dataset; its ``participants.tsv`` gives the patient covariates.
    options : GroupModelOptions, optional
        Default: the paper's model.
    command : sequence of str, optional
        The command line (arguments after ``lesionqsm``), recorded in the summary.

    Returns
    -------
    GroupRun
        The files written and the subjects left out (a subject whose lesion table or
        participants.tsv row has a problem is left out, the others are fitted).

    Raises
    ------
    ModelError
        No lesion tables, or a susceptibility model the data cannot support (the message
        says why and what the data support).  The volume model and the volume-change variant
        only log and record their errors in the summary.
    lesionqsm.bids.problems.InputError
        participants.tsv unusable or needed but absent, a covariate in no table, or no
        usable lesion table.
    """
    opts = options or GroupModelOptions()
    output_dir = Path(output_dir)
    out_dir = output_dir / 'group'
    participants_tsv = Path(bids_dir) / 'participants.tsv'
    needs = PATIENT_COVARIATES & set(opts.covariates)
    if needs and not participants_tsv.is_file():
        find_lesion_tables(output_dir)
        raise ModelError(f'{participants_tsv} not found; it is needed for the covariate(s) '
                         f'{", ".join(sorted(needs))}')
    inputs = read_inputs(output_dir, bids_dir, opts)
    for problem in inputs.problems:
        if problem.fatal:
            LOGGER.error('sub-%s left out of the group models: %s', problem.subject,
                         problem.message)
        else:
            LOGGER.warning('%s', problem.message)
    lesions, participants, tables = inputs.lesions, inputs.participants, inputs.tables
    LOGGER.info('group inputs checked: %d lesion table(s) used (%d rows)%s', len(tables),
                len(lesions), f', {len(inputs.left_out)} subject(s) left out'
                if inputs.left_out else '')
    unreliable = unreliable_observations(lesions)
    if unreliable:
        LOGGER.warning('%d lesion-visit(s) in the model were measured where χ is not reliable '
                       '(chi_reliable = false: the lesion reaches the brain mask\'s outer layer): '
                       '%s', len(unreliable), ', '.join(unreliable[:10])
                       + (' ...' if len(unreliable) > 10 else ''))
    kwargs = opts.model_kwargs()
    try:
        chi = fit_growth_curve(lesions, participants, degree=opts.degree,
                               covariates=opts.covariates, categorical=opts.categorical,
                               random_slopes=opts.random_slopes, **kwargs)
    except ModelError as exc:
        if not inputs.left_out:
            raise
        raise ModelError(f'{exc} ({len(inputs.left_out)} subject(s) left out for problems in '
                         f'their input files: '
                         f'{", ".join("sub-" + s for s in inputs.left_out)})') from exc
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
        'lesionqsm_version': __version__,
        'command': None if command is None else shlex.join(['lesionqsm', *map(str, command)]),
        'lesion_tables': [str(t) for t in tables],
        'subjects_left_out': inputs.left_out,
        'input_problems': [asdict(p) for p in inputs.problems],
        'unreliable_observations': unreliable,
        'participants_tsv': str(participants_tsv) if participants is not None else None,
        'options': options_as_dict(opts),
        **{name: None if fit is None else fit.summary() for name, fit in fits.items()},
        'optimum_not_verified': unverified,
        'errors': errors,
        'results': results_text(chi, lrt, volume, variant),
        'algorithm_version': ALGORITHM_VERSION,
    }
    written['summary'] = str(write_json(out_dir / 'group_summary.json', summary))
    return GroupRun(written=written, inputs=inputs, errors=errors)


def unreliable_observations(lesions):
    """The lesion-visits whose χ was measured outside the reliable voxels.

    Parameters
    ----------
    lesions : pandas.DataFrame
        The lesion tables read by the group level (``chi_reliable`` may be absent: tables of
        earlier versions).

    Returns
    -------
    list of str
        ``'sub-01 lesion 3 ses-02'`` for every row with ``chi_reliable`` false.
    """
    return [f'{row.participant_id} lesion {row.lesion_id} {row.session_id}'
            for row in unreliable_rows(lesions).itertuples()]


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


def run_group_command(opts, argv=None):
    """The group level of the command line; returns the exit code.

    0: every subject fitted; 1: results written for the usable subjects but one or more left
    out (their problems are logged and in the summary and the report), or the susceptibility
    model could not be fitted; 2: the inputs were refused as a whole (raised to the caller as
    :class:`~lesionqsm.bids.problems.InputError`, a ``ValueError``).
    """
    options = getattr(opts, 'group_options', None) or group_options()
    try:
        run = group_level(opts.output_dir, opts.bids_dir, options, command=argv)
    except ModelError as exc:
        LOGGER.error('group model: %s', exc)
        return 1
    for kind, path in run.written.items():
        LOGGER.info('group %s: %s', kind, path)
    write_group_reports(opts.output_dir)
    if run.left_out:
        LOGGER.error('%d subject(s) left out of the group models (%s): fix the files named '
                     'above and run the group level again', len(run.left_out),
                     ', '.join(f'sub-{s}' for s in run.left_out))
        return 1
    return 0


def write_group_reports(output_dir):
    """The group HTML report and the methods boilerplate; a failure here is a warning."""
    from ..report import write_citation, write_group_report
    from .progress import closing_lines

    reports, citation = [], None
    try:
        reports.append(write_group_report(output_dir))
        citation = write_citation(output_dir)['md']
    except (OSError, ValueError) as exc:
        LOGGER.warning('the group report could not be written: %s', exc)
    for line in closing_lines(output_dir, level='group', reports=reports, citation=citation):
        LOGGER.info('%s', line)
