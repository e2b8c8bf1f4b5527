"""Coarse SLURM mode: one ``sbatch`` job per subject, each running MultiProc inside.

``lesionqsm BIDS OUT participant --plugin SLURM --slurm-mode per-subject`` lands here. Thousands
of per-node jobs of a few seconds each overload a scheduler (every job costs it a submission, a
scheduling pass and an accounting record, and every node waits in the queue); a subject's whole
workflow in one job costs that once. All jobs share one nipype work directory (each subject's
nodes live in their own ``sub_<label>_wf`` folder), so a rerun of the same command resumes from
the cached nodes of every subject.

This module only submits, waits and gathers exit codes; the work is done by the same
participant-level command line, run by the job with ``--plugin MultiProc``.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .plugins import ensure_logname, queued_jobs, wait_for_jobs

LOGGER = logging.getLogger('lesionqsm.slurm')

#: Memory per subject job when ``--mem-gb`` is not given, in GB per CPU.
DEFAULT_MEM_GB_PER_CPU = 4.0
#: Wall time per subject job unless ``--sbatch-args`` sets ``--time``.
DEFAULT_WALLTIME = '24:00:00'
#: Seconds to wait for a finished job's exit-code file to appear (late on shared file systems).
EXIT_FILE_TIMEOUT = 20.0
#: Exit code reported for a job that ended without writing its own (killed, timed out, ...).
KILLED_EXIT_CODE = 137

# Options of the participant command line that the driver handles, not the per-subject job.
_DROP_ONE = {
    '--plugin', '--slurm-mode', '--sbatch-args', '--plugin-args', '-w', '--work-dir',
    '--nprocs', '--n-cpus', '--mem-gb',
}  # fmt: skip
_DROP_MANY = {'--participant-label', '--participant_label'}


def submit_per_subject(
    subjects, *, command_factory, sbatch_args=None, log_dir, poll_seconds=5.0, cwd=None
):
    """Submit one SLURM job per subject, wait for all of them, and return their exit codes.

    Parameters
    ----------
    subjects : list of str
        Subject labels (without ``sub-``).
    command_factory : callable
        ``command_factory(subject) -> list of str``, the command a job runs.
    sbatch_args : str or list of str, optional
        ``sbatch`` options for every job, e.g. ``'--cpus-per-task=4 --mem=16G --time=12:00:00'``.
    log_dir : str or Path
        Where the job scripts, their output (``sub-<label>_<jobid>.out``) and exit codes go.
        Jobs of an earlier, killed driver still queued from here are waited for first.
    poll_seconds : float, optional
        Seconds between ``squeue`` calls.
    cwd : str or Path, optional
        Working directory of the jobs; default the current one.

    Returns
    -------
    dict
        subject -> exit code of its command; :data:`KILLED_EXIT_CODE` (137) when the job ended
        without one (cancelled, out of time or memory, node failure), or 1 if ``sbatch``
        refused the job.

    Raises
    ------
    ValueError
        If ``subjects`` is empty or holds a label twice.
    """
    subjects = list(subjects)
    if not subjects:
        raise ValueError('no subjects to submit')
    if len(set(subjects)) != len(subjects):
        raise ValueError(f'subject labels repeat: {subjects}')
    ensure_logname()
    log_dir = Path(log_dir).absolute()
    log_dir.mkdir(parents=True, exist_ok=True)
    cwd = Path(cwd or os.getcwd()).absolute()
    if isinstance(sbatch_args, str):
        sbatch_args = shlex.split(sbatch_args)
    sbatch_args = list(sbatch_args or [])

    if queued_jobs(log_dir):
        LOGGER.warning(
            'per-subject jobs of an earlier run are still queued from %s; waiting for them '
            '(scancel them to stop waiting)',
            log_dir,
        )
        wait_for_jobs(log_dir, poll_seconds=poll_seconds)

    codes = {}
    jobs = {}
    for subject in subjects:
        script = log_dir / f'sub-{subject}.sh'
        exit_file = log_dir / f'sub-{subject}.exitcode'
        exit_file.unlink(missing_ok=True)
        _write_job_script(script, command_factory(subject), exit_file=exit_file, cwd=cwd)
        cmd = [
            'sbatch', '--parsable', f'--job-name=lesionqsm-sub-{subject}',
            f'--output={log_dir}/sub-{subject}_%j.out', *sbatch_args, str(script),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            LOGGER.error('sub-%s: sbatch refused the job: %s', subject, proc.stderr.strip())
            codes[subject] = 1
            continue
        jobid = int(proc.stdout.strip().split(';')[0])
        jobs[subject] = jobid
        LOGGER.info('sub-%s: submitted SLURM job %d', subject, jobid)

    while jobs:
        queued = {job['jobid'] for job in queued_jobs(log_dir)}
        for subject, jobid in list(jobs.items()):
            if jobid not in queued:
                codes[subject] = _exit_code(jobid, log_dir / f'sub-{subject}.exitcode')
                level = logging.INFO if codes[subject] == 0 else logging.ERROR
                LOGGER.log(level, 'sub-%s: job %d exited %d', subject, jobid, codes[subject])
                del jobs[subject]
        if jobs:
            time.sleep(poll_seconds)
    return {subject: codes[subject] for subject in subjects}


def _write_job_script(script, command, *, exit_file, cwd):
    """A bash job script that runs ``command`` and records its exit code atomically.

    Every value that comes from the command line or the dataset (paths, labels, options) is
    quoted with :func:`shlex.quote`: the shell sees it as one literal word, never as code.
    Only ``$SLURM_JOB_ID`` and ``$code``, set by SLURM and the script, are expanded.
    """
    tmp = shlex.quote(f'{exit_file}.tmp.') + '"$SLURM_JOB_ID"'
    text = '\n'.join([
        '#!/bin/bash',
        '# Written by lesionqsm (per-subject SLURM mode).',
        f'cd {shlex.quote(str(cwd))} || exit 1',
        shlex.join(str(token) for token in command),
        'code=$?',
        f'echo "$code" > {tmp} && mv -f {tmp} {shlex.quote(str(exit_file))}',
        'exit "$code"',
        '',
    ])  # fmt: skip
    script.write_text(text)
    script.chmod(0o755)


def _exit_code(jobid, exit_file):
    """The job's own exit code; else SLURM's record of how it ended; else 137."""
    deadline = time.monotonic() + EXIT_FILE_TIMEOUT
    while True:
        if exit_file.exists():
            text = exit_file.read_text().strip()
            if text.lstrip('-').isdigit():
                return int(text)
        state = _slurm_state(jobid)
        if state and state != 'COMPLETED':  # killed before the script could record a code
            LOGGER.warning('SLURM job %d ended %s without an exit code', jobid, state)
            return KILLED_EXIT_CODE
        if time.monotonic() > deadline:
            return KILLED_EXIT_CODE
        time.sleep(0.5)


def _slurm_state(jobid):
    """``JobState`` from ``scontrol`` (None once SLURM has forgotten the job)."""
    proc = subprocess.run(
        ['scontrol', '-o', 'show', 'job', str(jobid)], capture_output=True, text=True, check=False
    )
    match = re.search(r'\bJobState=(\w+)', proc.stdout)
    return match.group(1) if match else None


def lesionqsm_executable():
    """The command that starts lesionqsm with this interpreter."""
    script = Path(sys.executable).parent / 'lesionqsm'
    if script.exists():
        return [str(script)]
    found = shutil.which('lesionqsm')
    if found:
        return [found]
    return [sys.executable, '-c', 'import sys; from lesionqsm.cli import main; sys.exit(main())']


def subject_command(argv, subject, *, work_dir, nprocs, mem_gb):
    """The participant command line for one subject's job, built from the driver's ``argv``.

    SLURM options, the participant selection, work directory and resources are replaced; all
    other options (QSM settings, config file, ...) are passed on unchanged. The BIDS validator
    is skipped in the job: the driver has already run it.
    """
    kept = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token.split('=', 1)[0]
        if name in _DROP_ONE:
            i += 1 if '=' in token else 2
            continue
        if name in _DROP_MANY:
            i += 1
            if '=' not in token:
                while i < len(tokens) and not tokens[i].startswith('-'):
                    i += 1
            continue
        kept.append(token)
        i += 1
    extra = [
        '--participant-label', subject, '--plugin', 'MultiProc', '--nprocs', str(nprocs),
        '--mem-gb', f'{mem_gb:g}', '-w', str(work_dir),
    ]  # fmt: skip
    if '--skip-bids-validation' not in kept:
        extra.append('--skip-bids-validation')
    return [*lesionqsm_executable(), *kept, *extra]


def run_per_subject(opts, argv):
    """The per-subject SLURM mode of the participant level; returns the exit code.

    Parameters
    ----------
    opts : argparse.Namespace
        The parsed participant command line (``bids_dir``, ``output_dir``, ``work_dir``,
        ``participant_label``, ``nprocs``, ``mem_gb``, ``sbatch_args``, ``plugin_args``: its
        ``poll_sleep_duration`` sets the seconds between ``squeue`` calls, default 5).
    argv : list of str
        The command line as given, passed on to the jobs minus the SLURM options.

    Returns
    -------
    int
        0 when every subject's job exited 0, else 1.
    """
    from ..bids.labels import is_label
    from ..bids.layout import collect_participants

    subjects = collect_participants(opts.bids_dir, opts.participant_label)
    invalid = [s for s in subjects if not is_label(s)]
    for subject in invalid:  # never submitted: the label would name files and jobs
        LOGGER.error('%s: subject label %r is not a BIDS label (letters and digits only); '
                     'rename the folder', Path(opts.bids_dir) / f'sub-{subject}', subject)
    subjects = [s for s in subjects if is_label(s)]
    if not subjects:
        return 1
    nprocs = int(opts.nprocs)
    mem_gb = float(opts.mem_gb or DEFAULT_MEM_GB_PER_CPU * nprocs)
    sbatch_args = [
        f'--cpus-per-task={nprocs}',
        f'--mem={int(mem_gb * 1024)}M',
        f'--time={DEFAULT_WALLTIME}',
        *shlex.split(opts.sbatch_args or ''),
    ]  # fmt: skip  (the user's options last: they win)
    log_dir = Path(opts.output_dir) / 'logs' / 'slurm'
    LOGGER.info(
        'per-subject SLURM mode: %d job(s), each %s; shared work dir %s; job logs in %s',
        len(subjects), ' '.join(sbatch_args), opts.work_dir, log_dir,
    )  # fmt: skip
    codes = submit_per_subject(
        subjects,
        command_factory=lambda subject: subject_command(
            argv, subject, work_dir=opts.work_dir, nprocs=nprocs, mem_gb=mem_gb
        ),
        sbatch_args=sbatch_args,
        log_dir=log_dir,
        poll_seconds=float((opts.plugin_args or {}).get('poll_sleep_duration', 5.0)),
    )
    failed = {s: c for s, c in codes.items() if c != 0}
    if failed:
        LOGGER.error(
            '%d of %d subject job(s) failed: %s; see %s',
            len(failed), len(codes),
            ', '.join(f'sub-{s} (exit {c})' for s, c in failed.items()), log_dir,
        )  # fmt: skip
    if failed or invalid:
        return 1
    LOGGER.info('all %d subject job(s) finished', len(codes))
    return 0
