"""Run the participant level: build one nipype workflow over the subjects and execute it."""

import logging
import re
import sys
import time
from pathlib import Path

from .. import __version__
from .crashes import summarise_crashes

LOGGER = logging.getLogger('lesionqsm')


def setup_logging(output_dir, level):
    """Log to the console and to ``output_dir/logs/lesionqsm_<level>_<time>.log``."""
    log_dir = Path(output_dir) / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    log_file = log_dir / f'lesionqsm_{level}_{stamp}.log'
    formatter = logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s')
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    if not any(getattr(h, 'lesionqsm_console', False) for h in root.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(_ConsoleFormatter('%(levelname)s: %(message)s'))
        console.setLevel(logging.INFO)
        console.addFilter(_quiet_nipype)
        console.lesionqsm_console = True
        root.addHandler(console)
    # nipype's own console handlers would print every record twice: route them through ours
    # (the log file keeps nipype's INFO records, the console only its warnings)
    import nipype  # noqa: F401  (sets up nipype's loggers)

    for name in ('nipype', 'nipype.workflow', 'nipype.interface', 'nipype.utils'):
        nipype_logger = logging.getLogger(name)
        nipype_logger.handlers.clear()
        nipype_logger.propagate = True
    return log_file


class _ConsoleFormatter(logging.Formatter):
    """One line per nipype record on the console; tracebacks stay in the log file."""

    def format(self, record):
        if not record.name.startswith('nipype'):
            return super().format(record)
        first_line = (record.getMessage().strip().splitlines() or [''])[0]
        return f'{record.levelname}: {first_line}'


def _quiet_nipype(record):
    """Console filter: nipype's records only from WARNING up; ours from INFO."""
    return not record.name.startswith('nipype') or record.levelno >= logging.WARNING


def default_lesions_dir(bids_dir):
    """Where the lesion annotations live unless --lesions-dir says otherwise."""
    return Path(bids_dir) / 'derivatives' / 'lesions'


def progress_callback(node, status):
    """nipype status callback: one line per finished node, prefixed by subject and visit."""
    if status not in ('end', 'exception'):
        return
    parts = node.fullname.split('.')
    where = ' '.join(p.replace('_wf', '').replace('_', '-', 1) for p in parts[1:-1]
                     if p.startswith(('sub_', 'ses_')))
    verb = 'done' if status == 'end' else 'FAILED'
    LOGGER.info('[%s] %s %s', where or 'group', node.name, verb)


def build_participant_workflow(opts, subjects_data, config):
    """One top-level workflow holding a ``sub_<label>_wf`` per subject."""
    from nipype.pipeline import engine as pe

    from ..registration import resolve_engine
    from ..workflows.subject import init_subject_wf

    engine = resolve_engine(opts.registration)
    LOGGER.info('registration engine: %s', 'FSL FLIRT' if engine == 'flirt'
                else 'built-in (SimpleITK)')
    workflow = pe.Workflow(name='lesionqsm_wf', base_dir=str(opts.work_dir))
    for subject_data in subjects_data:
        subject_wf = init_subject_wf(
            subject_data, output_dir=str(opts.output_dir),
            lesions_file=None if subject_data.lesion_errors else subject_data.lesions_tsv,
            registration=engine, qsm_options=config['qsm'],
            lesion_options=config['lesions'],
            omp_nthreads=opts.omp_nthreads)
        workflow.add_nodes([subject_wf])
    return workflow


def run_participant(opts, config):
    """Discover inputs, build and run the workflow; returns the exit code (0 = all done)."""
    from ..bids.layout import collect_participants, collect_subject
    from ..bids.metadata import InputError
    from ..bids.templates_io import write_dataset_description
    from .plugins import apply_node_resources, configure_execution

    output_dir = Path(opts.output_dir)
    lesions_dir = opts.lesions_dir or default_lesions_dir(opts.bids_dir)
    subjects = collect_participants(opts.bids_dir, opts.participant_label)
    failures = {}
    subjects_data = []
    for subject in subjects:
        try:
            data = collect_subject(opts.bids_dir, subject, session_label=opts.session_label,
                                   lesions_dir=lesions_dir if Path(lesions_dir).is_dir() else None,
                                   field_strength_override=opts.field_strength, strict=False)
        except (InputError, ValueError) as exc:
            failures[subject] = str(exc)
            LOGGER.error('sub-%s: %s', subject, exc)
            if opts.stop_on_first_crash:
                break
            continue
        for problem in data.problems:
            LOGGER.warning('sub-%s: %s', subject, problem)
        for error in data.lesion_errors:
            LOGGER.error('sub-%s: lesion annotations: %s', subject, error)
        if data.lesion_errors:
            failures[subject] = ('no lesion table (QSM maps still written): '
                                 + '; '.join(data.lesion_errors))
        for session in data.sessions:
            for error in session.errors:
                LOGGER.error('sub-%s ses-%s: %s', subject, session.session_id, error)
                failures.setdefault(subject, f'ses-{session.session_id}: {error} '
                                             '(the other visits were processed)')
            LOGGER.info('sub-%s ses-%s: %s', subject, session.session_id,
                        _visit_status(session))
        dropped = _dropped_lesions(data, opts.bids_dir, opts.session_label)
        if dropped:
            failures.setdefault(subject, 'lesion table written without dropped lesion(s): '
                                + '; '.join(dropped))
        subjects_data.append(data)

    valid = []
    for data in subjects_data:
        if not any(s.megre is not None and s.megre.has_phase for s in data.sessions):
            errors = [f'ses-{s.session_id}: {e}' for s in data.sessions for e in s.errors]
            failures[data.subject] = '; '.join(errors) if errors else \
                'no visit has multi-echo GRE with phase data'
            LOGGER.error('sub-%s: no visit has usable multi-echo GRE with phase data',
                         data.subject)
        else:
            valid.append(data)

    if valid and not (failures and opts.stop_on_first_crash):
        write_dataset_description(output_dir, bids_dir=opts.bids_dir, version=__version__,
                                  overwrite=True)
        workflow = build_participant_workflow(opts, valid, config)
        crash_dir = output_dir / 'logs' / 'crash'
        plugin, plugin_args = configure_execution(
            plugin=opts.plugin, nprocs=opts.nprocs, mem_gb=opts.mem_gb,
            plugin_args=opts.plugin_args, sbatch_args=opts.sbatch_args,
            work_dir=opts.work_dir, crashdump_dir=crash_dir,
            stop_on_first_crash=opts.stop_on_first_crash, workflow=workflow)
        if plugin in ('Linear', 'MultiProc'):
            plugin_args.setdefault('status_callback', progress_callback)
        if plugin.startswith('SLURM'):
            apply_node_resources(workflow, sbatch_args=opts.sbatch_args)
        started = time.time()
        run_error = None
        try:
            workflow.run(plugin=plugin, plugin_args=plugin_args)
        except RuntimeError as exc:
            run_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        crashed = summarise_crashes(crash_dir, since=started)
        for subject, cause in crashed.items():
            failures.setdefault(subject, cause)
        if run_error and not crashed:
            # nipype stopped before any node failed (e.g. MultiProc refusing a node larger
            # than --mem-gb): nothing can be trusted as finished
            for data in valid:
                failures.setdefault(data.subject, f'the workflow did not run: {run_error}')

    if failures and opts.stop_on_first_crash:
        first = next(iter(failures))
        for subject in subjects:
            failures.setdefault(subject, 'not processed or incomplete: --stop-on-first-crash '
                                         f'ended the run at the failure of sub-{first}')
    report_outcome(subjects, failures)
    return 1 if failures else 0


def _visit_status(session):
    """One phrase for the console: what this visit's GRE allows."""
    if session.megre is not None and session.megre.has_phase:
        return 'multi-echo GRE with phase'
    if session.errors:
        return 'unusable GRE (error above): no QSM for this visit'
    return 'no phase data: no QSM for this visit'


#: A lesion dropped because its detection visit is not among the processed visits.
_NOT_A_VISIT = re.compile(r'detected at ses-([A-Za-z0-9]+), which does not exist')


def _dropped_lesions(data, bids_dir, session_label):
    """Messages of annotated lesions left out of the table (each names lesions.tsv).

    A lesion detected at a visit that exists but was left out by ``--session-label`` is an
    expected omission, not a failure.
    """
    dropped = []
    for problem in data.problems:
        if not problem.endswith('lesion dropped'):
            continue
        match = _NOT_A_VISIT.search(problem)
        if match and session_label and (
                Path(bids_dir) / f'sub-{data.subject}' / f'ses-{match.group(1)}').is_dir():
            continue
        dropped.append(problem)
    return dropped


def report_outcome(subjects, failures):
    """Print which subjects succeeded and, in plain words, why the others failed."""
    done = [s for s in subjects if s not in failures]
    if done:
        LOGGER.info('finished: %s', ', '.join(f'sub-{s}' for s in done))
    if failures:
        lines = [f'  sub-{s}: {cause}' for s, cause in sorted(failures.items())]
        LOGGER.error('%d of %d subject(s) failed:\n%s', len(failures), len(subjects),
                     '\n'.join(lines))
