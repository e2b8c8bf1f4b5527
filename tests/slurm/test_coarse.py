"""Per-subject SLURM mode: job submission, exit codes, and the per-subject command line."""

import subprocess
import time

import pytest

from lesionqsm.cli.coarse import KILLED_EXIT_CODE, subject_command, submit_per_subject
from lesionqsm.cli.plugins import queued_jobs


def test_subject_command_replaces_slurm_options(tmp_path):
    argv = [
        'bids', 'out', 'participant', '--participant-label', '01', '02', '--plugin', 'SLURM',
        '--slurm-mode=per-subject', '--sbatch-args=-p short', '-w', 'old', '--nprocs', '8',
        '--omp-nthreads', '2',
    ]  # fmt: skip
    cmd = subject_command(argv, '02', work_dir=tmp_path, nprocs=4, mem_gb=16)
    assert cmd[-16:] == [
        'bids', 'out', 'participant', '--omp-nthreads', '2', '--participant-label', '02',
        '--plugin', 'MultiProc', '--nprocs', '4', '--mem-gb', '16', '-w', str(tmp_path),
        '--skip-bids-validation',
    ]  # fmt: skip


def test_submit_rejects_repeated_subjects(tmp_path):
    with pytest.raises(ValueError, match='subject labels repeat'):
        submit_per_subject(['01', '01'], command_factory=list, log_dir=tmp_path)


@pytest.mark.slurm
def test_exit_codes_gathered_and_killed_job_reported(slurm_cluster, tmp_path):
    """Each job's own exit code comes back; a job cancelled mid-run reports 137."""
    commands = {
        'ok': ['bash', '-c', 'echo fine > ok.txt'],
        'bad': ['bash', '-c', 'exit 3'],
        'slow': ['sleep', '300'],
    }
    # Cancel the slow job once it runs, from a background shell (the driver call blocks).
    killer = subprocess.Popen([
        'bash', '-c',
        'for i in $(seq 300); do j=$(squeue -h -n lesionqsm-sub-slow -t R -o %i); '
        '[ -n "$j" ] && { sleep 1; scancel "$j"; exit 0; }; sleep 0.2; done; exit 1',
    ])  # fmt: skip
    start = time.monotonic()
    codes = submit_per_subject(
        list(commands), command_factory=commands.get, sbatch_args='--mem=100M --time=5',
        log_dir=tmp_path / 'logs', poll_seconds=0.2, cwd=tmp_path,
    )  # fmt: skip
    assert killer.wait(timeout=30) == 0
    assert codes == {'ok': 0, 'bad': 3, 'slow': KILLED_EXIT_CODE}
    assert (tmp_path / 'ok.txt').read_text() == 'fine\n'
    assert time.monotonic() - start < 60, 'the cancelled job was waited for to its end'
    assert queued_jobs(tmp_path / 'logs') == []
