"""Command-line entry point: ``lesionqsm bids_dir output_dir {participant,group}``.

``lesionqsm synth OUT --preset demo`` writes the synthetic demo cohort instead.
Exit codes: 0 success; 1 a subject (or the group model) failed; 2 bad command line or input.
"""

import logging
import subprocess
import sys

LOGGER = logging.getLogger('lesionqsm')


def main(argv=None):
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == 'synth':
        from ..synth.cli import main as synth_main

        return synth_main(argv[1:])
    if argv and argv[0] == '--help-options':
        print(options_reference())
        return 0

    from .parser import ConfigError, build_parser, load_config

    parser = build_parser()
    opts = parser.parse_args(argv)
    try:
        config = load_config(opts.config, phase_sign=opts.phase_sign)
    except ConfigError as exc:
        parser.error(str(exc))
    # the group options are checked before anything runs, at either level
    from ..options import OptionError
    from .group import group_options

    try:
        opts.group_options = group_options(
            config.get('group'), degree=opts.poly_degree, covariates=opts.covariates,
            inference=opts.inference)
    except OptionError as exc:
        parser.error(f'{opts.config or "options"}: {exc}')
    opts.output_dir = opts.output_dir.expanduser().absolute()
    if opts.work_dir is None:
        opts.work_dir = opts.output_dir.parent / f'{opts.output_dir.name}_work'
    opts.work_dir = opts.work_dir.expanduser().absolute()
    code = _check_write_locations(opts)
    if code:
        return code

    from .run import log_provenance, run_participant, setup_logging

    log_file = setup_logging(opts.output_dir, opts.analysis_level)
    log_provenance(argv)
    LOGGER.info('lesionqsm %s level; log: %s', opts.analysis_level, log_file)
    try:
        if not opts.skip_bids_validation:
            code = validate_input(opts.bids_dir)
            if code:
                return code
        if opts.analysis_level == 'participant':
            if opts.plugin.startswith('SLURM') and opts.slurm_mode == 'per-subject':
                from .coarse import run_per_subject

                return run_per_subject(opts, argv)
            return run_participant(opts, config)
        return run_group(opts, argv)
    except (ValueError, OSError) as exc:  # input problems: one clear line, no traceback
        LOGGER.error('%s', exc)
        return 2


def _check_write_locations(opts):
    """Refuse output/work folders that would write into an input dataset or through a link
    out of the output folder; then check the output folder is writable. Nothing is written
    before these checks pass. Returns 0, or 2 after printing the reason."""
    from ..bids.locations import check_no_links_out, check_write_locations

    try:
        check_write_locations(opts.bids_dir, output_dir=opts.output_dir, work_dir=opts.work_dir,
                              lesions_dir=getattr(opts, 'lesions_dir', None))
        if opts.output_dir.is_dir():
            check_no_links_out(opts.output_dir)
    except (ValueError, OSError) as exc:
        print(f'lesionqsm: error: {exc}', file=sys.stderr)
        return 2
    folders = [(opts.output_dir, '')]
    if opts.analysis_level == 'participant':
        folders.append((opts.work_dir, ' (the work directory: choose another with -w)'))
    for folder, hint in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / '.lesionqsm_write_test'
            probe.write_text('')
            probe.unlink()
        except OSError as exc:
            print(f'lesionqsm: error: cannot write to {folder}{hint}: {exc.strerror}',
                  file=sys.stderr)
            return 2
    return 0


def options_reference():
    """Every algorithm option of ``--config``, by section: name, default, allowed values."""
    from ..lesions import LesionOptions
    from ..options import options_help
    from ..qsm.pipeline import STEP_OPTIONS
    from ..stats.options import GroupModelOptions

    lines = ['Options of --config (JSON: {"qsm": {...}, "lesions": {...}, "group": {...}}).',
             'Precedence: command-line flag > --config > default.', '', '[qsm]']
    for klass in STEP_OPTIONS.values():
        lines += ['  ' + line for line in options_help(klass)]
    lines += ['', '[lesions]'] + ['  ' + line for line in options_help(LesionOptions)]
    lines += ['', '[group]'] + ['  ' + line for line in options_help(GroupModelOptions)]
    return '\n'.join(lines)


def validate_input(bids_dir):
    """Run the official BIDS validator on the input; 2 if it finds errors.

    Its findings are logged one line per kind of problem (the key, how many files, the first
    three named), never as a traceback.
    """
    from ..bids.validator import run_bids_validator, validator_version

    try:
        result = run_bids_validator(bids_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # could not run
        LOGGER.error('BIDS validator: %s; fix it or use --skip-bids-validation', exc)
        return 2
    name = f'BIDS validator (bids-validator-deno {validator_version()})'
    if result.errors:
        for line in result.findings():
            LOGGER.error('BIDS validator: %s', line)
        LOGGER.error('%s ran on %s: not valid BIDS (the %d kind(s) of error above); fix them '
                     'or use --skip-bids-validation', name, bids_dir, len(result.findings()))
        return 2
    LOGGER.info('%s ran on %s: passed', name, bids_dir)
    return 0


def run_group(opts, argv):
    """Fit the group models on every subject's lesion table; returns the exit code."""
    from .group import run_group_command

    return run_group_command(opts, argv)
