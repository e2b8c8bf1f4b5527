"""The BIDS-App command line: ``lesionqsm bids_dir output_dir {participant,group}``."""

import argparse
import json
from pathlib import Path

from .. import __version__
from .resources import available_cpus, available_memory_gb, default_omp_nthreads


class ConfigError(ValueError):
    """The --config file is unreadable or names an unknown parameter."""


def _existing_dir(value):
    path = Path(value).expanduser().absolute()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f'{value}: no such directory')
    return path


def _existing_file(value):
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f'{value}: no such file')
    return path


def _label(prefix):
    from ..bids.labels import strip_prefix

    return lambda value: strip_prefix(value, prefix)


def _json_dict(value):
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f'not valid JSON: {value!r} ({exc.msg})') from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object, got {value!r}')
    return parsed


def _positive_int(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return number


def _positive_float(value):
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return number


class _Parser(argparse.ArgumentParser):
    """Fills the defaults that depend on other options once the command line is parsed."""

    def parse_known_args(self, args=None, namespace=None):
        opts, extra = super().parse_known_args(args, namespace)
        if getattr(opts, 'brain_mask', None) == 'bet':
            from ..interfaces.masks import bet_available

            if not bet_available():
                self.error("--brain-mask bet: FSL's 'bet' is not on PATH (install FSL and "
                           'source its setup, or use --brain-mask auto)')
        if hasattr(opts, 'nprocs'):
            if not hasattr(opts, 'omp_nthreads'):
                opts.omp_nthreads = default_omp_nthreads(opts.nprocs)
            if not hasattr(opts, 'mem_gb'):
                opts.mem_gb = None  # MultiProc measures what is available when it starts
        return opts, extra


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except None ("not given": the value comes from elsewhere)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    """Return the argument parser of the BIDS App."""
    parser = _Parser(
        prog='lesionqsm',
        description='QSM (MEDI+0) of multiple-sclerosis lesions followed over visits, and the '
                    'lesion-age growth-curve model. Also: `lesionqsm synth OUT` makes a '
                    'synthetic cohort.',
        formatter_class=_HelpFormatter)
    parser.add_argument('bids_dir', type=_existing_dir, help='the raw BIDS dataset')
    parser.add_argument('output_dir', type=Path,
                        help='where the BIDS derivatives are written (created if missing)')
    parser.add_argument('analysis_level', choices=['participant', 'group'],
                        help='participant: QSM and lesion tables; group: the growth-curve model')
    parser.add_argument('--version', action='version', version=f'lesionqsm {__version__}')

    selection = parser.add_argument_group('Selecting data')
    selection.add_argument('--participant-label', '--participant_label', nargs='+',
                           type=_label('sub-'), help='subjects to process (default: all)')
    selection.add_argument('--session-label', nargs='+', type=_label('ses-'),
                           help='visits to process (default: all)')
    selection.add_argument('--lesions-dir', type=_existing_dir,
                           help='lesion annotations (default: BIDS_DIR/derivatives/lesions)')
    selection.add_argument('--skip-bids-validation', action='store_true',
                           help='do not run the BIDS validator on the input')

    algorithm = parser.add_argument_group('Algorithm')
    algorithm.add_argument('--config', type=_existing_file,
                           help='JSON file of algorithm parameters, sections qsm, lesions and '
                                'group (defaults: the paper\'s; a command-line flag overrides '
                                'the file; `lesionqsm --help-options` lists every option)')
    algorithm.add_argument('--registration', choices=['auto', 'flirt', 'builtin'],
                           default='auto', help='FLIRT if on PATH (auto), or the built-in engine')
    algorithm.add_argument('--field-strength', type=_positive_float,
                           help='B0 in T when the sidecars lack MagneticFieldStrength')
    algorithm.add_argument('--derivatives', type=_existing_dir,
                           help='derivatives with a brain mask per visit '
                                '(sub-X/[ses-Y/]anat/*_desc-brain_mask.nii.gz, any grid): used '
                                'instead of the automatic mask')
    algorithm.add_argument('--brain-mask', choices=['auto', 'bet'], default='auto',
                           help='brain mask of the visits without one in --derivatives: '
                                'built-in (auto) or FSL BET (bet must be on PATH)')
    algorithm.add_argument('--phase-sign', type=int, choices=[1, -1],
                           help='-1 for scanners that store the conjugate phase')

    group = parser.add_argument_group(
        'Group model',
        'Each value comes from the command-line flag if given, else from the "group" section '
        'of --config, else from the default (the paper\'s model). Other --config group keys: '
        'categorical, binning, bin_edges, age_points, basis, reference_rim, random_slopes, '
        'table_ages, volume_degree, volume_lesion_effect, figures, min_patients, min_lesions '
        '(`lesionqsm --help-options` lists them with their defaults).')
    group.add_argument('--poly-degree', type=_positive_int, default=None,
                       help='degree of the orthogonal polynomial in lesion age (default: 8)')
    group.add_argument('--covariates', nargs='*', default=None,
                       help='covariates of the susceptibility model; labels such as sex F/M '
                            'become factors (default: baseline_volume edss age '
                            'disease_duration treatment_duration)')
    group.add_argument('--inference', choices=['satterthwaite', 'wald'], default=None,
                       help='tests and CIs: Satterthwaite t as lmerTest, or Wald z '
                            '(default: satterthwaite)')

    execution = parser.add_argument_group('Execution')
    execution.add_argument('-w', '--work-dir', type=Path,
                           help='nipype working directory (cache; reuse it to resume)')
    execution.add_argument('--nprocs', '--n-cpus', type=_positive_int, default=available_cpus(),
                           help='CPUs for MultiProc (default: every CPU this process may '
                                'use, %(default)s)')
    execution.add_argument('--omp-nthreads', type=_positive_int, default=argparse.SUPPRESS,
                           help='threads of the FFT-heavy nodes, background removal and MEDI '
                                '(default: --nprocs, at most 8)')
    memory = available_memory_gb()
    execution.add_argument('--mem-gb', type=_positive_float, default=argparse.SUPPRESS,
                           help='memory budget of MultiProc in GB (default: the memory '
                                'available when the run starts'
                                + (f', now {memory:.1f} GB)' if memory else ')'))
    execution.add_argument('--plugin', default='MultiProc',
                           choices=['Linear', 'MultiProc', 'SLURM', 'SLURMGraph'],
                           help='nipype execution plugin')
    execution.add_argument('--plugin-args', type=_json_dict, default=None,
                           help='JSON object of extra nipype plugin arguments')
    execution.add_argument('--sbatch-args', default=None,
                           help='extra sbatch options for every SLURM job, e.g. "-p short"')
    execution.add_argument('--slurm-mode', choices=['per-node', 'per-subject'],
                           default='per-node',
                           help='SLURM: one job per nipype node, or one job per subject')
    execution.add_argument('--stop-on-first-crash', action='store_true',
                           help='stop everything at the first failure')
    return parser


def load_config(path, *, phase_sign=None):
    """Read a --config JSON file and build the participant level's options objects.

    Precedence, for every option: command-line flag > ``--config`` > default.

    Parameters
    ----------
    path : Path or None
        The JSON file: an object with the sections ``qsm``, ``lesions``, ``group``.
    phase_sign : {1, -1}, optional
        ``--phase-sign``, which overrides ``qsm.phase_sign``.

    Returns
    -------
    dict
        ``'qsm'``: :class:`lesionqsm.qsm.QSMOptions`; ``'lesions'``:
        :class:`lesionqsm.lesions.LesionOptions`; ``'group'``: the raw ``group`` section
        (checked by the group level).

    Raises
    ------
    ConfigError
        Unreadable JSON, or a section or option that does not exist, has the wrong type or
        lies outside its range (the message names the key and the allowed values).
    """
    from ..lesions import LesionOptions
    from ..options import OptionError, options_from_mapping
    from ..qsm import QSMOptions

    config = {}
    if path is not None:
        try:
            config = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f'{path}: not a readable JSON file ({exc})') from exc
        if not isinstance(config, dict):
            raise ConfigError(f'{path}: expected a JSON object with sections qsm, lesions, '
                              'group')
    sections = ('qsm', 'lesions', 'group')
    for section, value in config.items():
        if section not in sections:
            raise ConfigError(f'{path}: unknown section {section!r} (expected '
                              f'{", ".join(sections)})')
        if not isinstance(value, dict):
            raise ConfigError(f'{path}: section {section!r} must be a JSON object')
    try:
        return {
            'qsm': QSMOptions.from_mapping(config.get('qsm'), phase_sign=phase_sign),
            'lesions': options_from_mapping(LesionOptions, config.get('lesions'),
                                            section='lesions'),
            'group': dict(config.get('group', {})),
        }
    except OptionError as exc:
        raise ConfigError(f'{path or "options"}: {exc}') from exc
