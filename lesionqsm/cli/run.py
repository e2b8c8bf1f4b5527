"""Run the participant level: build one nipype workflow over the subjects and execute it."""

import logging
import sys
import time
from pathlib import Path

from .. import __version__
from .crashes import summarise_crashes
from .progress import ProgressReporter, closing_lines

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
        console = _StderrHandler()
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


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever ``sys.stderr`` is when a record comes.

    Holding on to the ``sys.stderr`` of the first run would break later runs in the same
    process (an embedding program or a test that swaps the stream) with "Logging error".
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass  # always the current sys.stderr


class _ConsoleFormatter(logging.Formatter):
    """One line per nipype record on the console; tracebacks stay in the log file."""

    def format(self, record):
        if not record.name.startswith('nipype'):
            return super().format(record)
        first_line = (record.getMessage().strip().splitlines() or [''])[0]
        return f'{record.levelname}: {first_line}'


def _quiet_nipype(record):
    """Console filter: nipype's records only from WARNING up; ours from INFO (provenance
    records go to the log file only)."""
    if record.name == PROVENANCE_LOGGER:
        return False
    return not record.name.startswith('nipype') or record.levelno >= logging.WARNING


#: Logger of the records that open every log file: the command line and the versions.
PROVENANCE_LOGGER = 'lesionqsm.provenance'

#: Distributions whose versions are recorded at the head of every log.
RECORDED_DISTRIBUTIONS = ('lesionqsm', 'nipype', 'nibabel', 'numpy', 'scipy', 'pybids',
                          'pandas', 'SimpleITK', 'networkx', 'matplotlib', 'jinja2')


def log_provenance(argv):
    """Write the command line and the software versions at the head of the log file."""
    import importlib.metadata
    import platform
    import shlex

    log = logging.getLogger(PROVENANCE_LOGGER)
    log.info('command: %s', shlex.join(['lesionqsm', *map(str, argv)]))
    versions = []
    for name in RECORDED_DISTRIBUTIONS:
        try:
            versions.append(f'{name} {importlib.metadata.version(name)}')
        except importlib.metadata.PackageNotFoundError:
            versions.append(f'{name} not installed')
    log.info('versions: python %s; %s', platform.python_version(), '; '.join(versions))


def default_lesions_dir(bids_dir):
    """Where the lesion annotations live unless --lesions-dir says otherwise."""
    return Path(bids_dir) / 'derivatives' / 'lesions'


def progress_callback(node, status):
    """nipype status callback: one line per finished node with its count, time and step.

    A shared :class:`~lesionqsm.cli.progress.ProgressReporter` without a total (its clock
    starts at the first node); ``ProgressReporter.for_workflow(workflow)`` also knows the total.
    """
    from .progress import default_reporter

    default_reporter()(node, status)


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
            omp_nthreads=opts.omp_nthreads, brain_masks=user_brain_masks(opts, subject_data),
            brain_mask_method=getattr(opts, 'brain_mask', 'auto'))
        workflow.add_nodes([subject_wf])
    return workflow


def log_visit_warnings(output_dir, subjects_data):
    """Log the ``Warnings`` of the Chimap sidecar of every visit of this run (the steps'
    guesses and plausibility findings: the nodes ran in other processes, the sidecars carry
    them)."""
    import json

    for data in subjects_data:
        for session in data.sessions:
            folder = Path(output_dir) / f'sub-{data.subject}'
            if session.session_id is not None:
                folder = folder / f'ses-{session.session_id}'
            for sidecar in sorted(folder.glob('anat/*_Chimap.json')):
                try:
                    warnings = json.loads(sidecar.read_text()).get('Warnings', [])
                except (OSError, ValueError, AttributeError):
                    continue
                for warning in warnings:
                    LOGGER.warning('%s: %s', sidecar.name.removesuffix('_Chimap.json'),
                                   warning)


def user_brain_masks(opts, subject_data):
    """session label -> the user's brain mask in ``--derivatives`` (logged per visit)."""
    from ..interfaces.masks import find_brain_mask

    derivatives = getattr(opts, 'derivatives', None)
    if derivatives is None:
        return {}
    masks = {}
    for session in subject_data.sessions:
        if session.megre is None or not session.megre.has_phase:
            continue
        where = f'sub-{subject_data.subject} ses-{session.session_id or "(none)"}'
        found = find_brain_mask(derivatives, subject_data.subject, session.session_id)
        if found is None:
            LOGGER.warning('%s: no *_desc-brain_mask.nii.gz in %s: the automatic brain mask '
                           'is used', where, derivatives)
        else:
            LOGGER.info('%s: brain mask from %s', where, found)
            masks[session.session_id] = str(found)
    return masks


def discover(opts):
    """Find and check every requested subject's inputs (only the work directory's cache of
    checked inputs is written: :mod:`lesionqsm.cli.input_cache`).

    Parameters
    ----------
    opts : argparse.Namespace
        The participant command line.

    Returns
    -------
    subjects : list of str
        Every requested subject label (also those that failed).
    runnable : list of SubjectData
        Subjects with at least one visit to process.
    failures : dict
        subject -> the cause, in plain words, for each subject that will not be complete.
    """
    from ..bids.layout import check_participants_table, collect_participants
    from ..bids.problems import KIND_LESION_DROPPED, KIND_LESION_TABLE, InputError
    from .input_cache import collect_subject_cached

    lesions_dir = opts.lesions_dir or default_lesions_dir(opts.bids_dir)
    subjects = collect_participants(opts.bids_dir, opts.participant_label)
    for problem in check_participants_table(opts.bids_dir):
        LOGGER.warning('%s', problem)
    failures = {}
    runnable = []
    work_dir = getattr(opts, 'work_dir', None)
    cache_dir = None if work_dir is None else Path(work_dir) / 'inputs'
    for subject in subjects:
        try:
            data = collect_subject_cached(
                cache_dir, opts.bids_dir, subject, session_label=opts.session_label,
                lesions_dir=lesions_dir if Path(lesions_dir).is_dir() else None,
                field_strength_override=opts.field_strength, strict=False)
        except InputError as exc:
            failures[subject] = '; '.join(p.message for p in exc.problems)
            for problem in exc.problems:
                LOGGER.error('sub-%s: %s', subject, problem)
            if opts.stop_on_first_crash:
                break
            continue
        for problem in data.problems:
            if problem.kind == KIND_LESION_DROPPED:
                LOGGER.error('sub-%s: %s', subject, problem)
            else:
                LOGGER.warning('sub-%s: %s', subject, problem)
        lesion_errors = [p for p in data.lesion_errors if p.kind == KIND_LESION_TABLE]
        for error in lesion_errors:
            LOGGER.error('sub-%s: lesion annotations: %s', subject, error)
        if lesion_errors:
            failures[subject] = ('no lesion table (QSM maps still written): '
                                 + '; '.join(p.message for p in lesion_errors))
        for session in data.sessions:
            for error in session.errors:
                LOGGER.error('sub-%s ses-%s: %s', subject, session.session_id, error)
                failures.setdefault(subject, f'ses-{session.session_id}: {error} '
                                             '(the other visits were processed)')
            LOGGER.info('sub-%s ses-%s: %s', subject, session.session_id,
                        _visit_status(session))
        dropped = _dropped_lesions(data)
        if dropped:
            failures.setdefault(subject, 'lesion table written without dropped lesion(s): '
                                + '; '.join(dropped))
        if not any(s.has_qsm_input for s in data.sessions):
            errors = [f'ses-{s.session_id}: {e}' for s in data.sessions for e in s.errors]
            failures[subject] = '; '.join(errors) if errors else \
                'no visit has multi-echo GRE with phase data'
            LOGGER.error('sub-%s: no visit has usable multi-echo GRE with phase data', subject)
            continue
        runnable.append(data)
    return subjects, runnable, failures


def run_participant(opts, config):
    """Discover inputs, build and run the workflow; returns the exit code (0 = all done)."""
    from ..bids.templates_io import write_dataset_description
    from ..workflows.outputs import expected_outputs
    from .plugins import apply_node_resources, configure_execution

    output_dir = Path(opts.output_dir)
    subjects, valid, failures = discover(opts)

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
        if not plugin.startswith('SLURM'):  # Linear, MultiProc, EagerMultiProc
            plugin_args.setdefault('status_callback', ProgressReporter.for_workflow(workflow))
        if plugin.startswith('SLURM'):
            apply_node_resources(workflow, sbatch_args=opts.sbatch_args)
        started = time.time()
        run_error = None
        try:
            workflow.run(plugin=plugin, plugin_args=plugin_args)
        except RuntimeError as exc:
            run_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        log_visit_warnings(output_dir, valid)
        crashed = summarise_crashes(crash_dir, since=started)
        for subject, cause in crashed.items():
            failures.setdefault(subject, cause)
        if run_error and not crashed:
            # nipype stopped before any node failed (e.g. MultiProc refusing a node larger
            # than --mem-gb): nothing can be trusted as finished
            for data in valid:
                failures.setdefault(data.subject, f'the workflow did not run: {run_error}')
        for data in valid:
            if data.subject in failures or (failures and opts.stop_on_first_crash):
                continue  # (a stopped run: the others are flagged below)
            missing = [p for p in expected_outputs(output_dir, data)
                       if not p.is_file() or p.stat().st_size == 0]
            if missing:
                failures[data.subject] = (f'{len(missing)} expected output(s) missing or empty '
                                          f'after the run, e.g. {missing[0]}')

    if failures and opts.stop_on_first_crash:
        first = next(iter(failures))
        for subject in subjects:
            failures.setdefault(subject, 'not processed or incomplete: --stop-on-first-crash '
                                         f'ended the run at the failure of sub-{first}')
    report_outcome(subjects, failures)
    write_participant_reports(opts, subjects)
    return 1 if failures else 0


def write_participant_reports(opts, subjects):
    """Per-subject HTML reports and the methods boilerplate, then where everything is.

    A report that cannot be written is a warning: it never changes the run's outcome.
    """
    from ..report import write_citation, write_subject_report

    output_dir = Path(opts.output_dir)
    lesions_dir = Path(opts.lesions_dir or default_lesions_dir(opts.bids_dir))
    reports, citation = [], None
    for subject in subjects:
        try:
            reports.append(write_subject_report(
                output_dir, subject, bids_dir=opts.bids_dir,
                lesions_dir=lesions_dir if lesions_dir.is_dir() else None,
                figure_cache=report_figure_cache(getattr(opts, 'work_dir', None), subject)))
        except (OSError, ValueError) as exc:
            LOGGER.warning('sub-%s: the report could not be written: %s', subject, exc)
    try:
        citation = write_citation(output_dir)['md']
    except (OSError, ValueError) as exc:
        LOGGER.warning('the methods boilerplate could not be written: %s', exc)
    for line in closing_lines(output_dir, level='participant', bids_dir=opts.bids_dir,
                              reports=reports, citation=citation):
        LOGGER.info('%s', line)


def report_figure_cache(work_dir, subject):
    """Where a subject report records its figures, so that a rerun reuses them.

    In the work directory, like nipype's cache: deleting it redraws every figure. None
    (figures always drawn) without a work directory.
    """
    return None if work_dir is None else Path(work_dir) / 'reports' / f'sub-{subject}_figures.json'


def _visit_status(session):
    """One phrase for the console: what this visit's GRE allows."""
    if session.megre is not None and session.megre.has_phase:
        n_echoes = session.megre.n_echoes
        return f'GRE with phase, {n_echoes} echo{"es" * (n_echoes > 1)}'
    if session.errors:
        return 'unusable GRE (error above): no QSM for this visit'
    return 'no phase data: no QSM for this visit'


def _dropped_lesions(data):
    """Messages of annotated lesions left out of the table (each names lesions.tsv).

    A lesion detected at a visit that exists but was left out by ``--session-label`` is an
    expected omission (kind ``lesion-outside-selection``), not a failure.
    """
    from ..bids.problems import KIND_LESION_DROPPED

    return [p.message for p in data.problems if p.kind == KIND_LESION_DROPPED]


def report_outcome(subjects, failures):
    """Print which subjects succeeded and, in plain words, why the others failed."""
    done = [s for s in subjects if s not in failures]
    if done:
        LOGGER.info('finished: %s', ', '.join(f'sub-{s}' for s in done))
    if failures:
        lines = [f'  sub-{s}: {cause}' for s, cause in sorted(failures.items())]
        LOGGER.error('%d of %d subject(s) failed:\n%s', len(failures), len(subjects),
                     '\n'.join(lines))
