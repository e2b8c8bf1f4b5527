"""The participant level of the tiny synthetic cohort on a real SLURM cluster.

One MultiProc run is the reference. Against it: a per-node ``--plugin SLURM`` run whose driver
is SIGKILLed midway and then rerun (resume), a ``--plugin SLURMGraph`` run, and the
per-subject mode reusing the reference's work directory. CI time is kept small by running one
subject, two of its three visits, and a MEDI+0 cut to 2 Gauss-Newton iterations (the science is
tested elsewhere; here every run gets the same options, so equality is still the test).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lesionqsm.cli.plugins import queued_jobs, wait_for_jobs

from .outputs import assert_same_outputs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SUBJECT = '01'
FAST_QSM = {'qsm': {'max_gn_iter': 2, 'cg_max_iter': 30}}
FAST = json.dumps({'poll_sleep_duration': 0.2, 'job_finished_timeout': 5})
LESIONQSM = [sys.executable, '-c', 'import sys; from lesionqsm.cli import main; sys.exit(main())']


def participant(bids, out, work, *extra):
    return [
        *LESIONQSM, str(bids), str(out), 'participant', '--participant-label', SUBJECT,
        '--session-label', '01', '02', '--config', str(bids.parent / 'fast.json'),
        '-w', str(work), '--skip-bids-validation', '--nprocs', '2', *extra,
    ]  # fmt: skip


def run(cmd, timeout=600):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f'{cmd} exited {proc.returncode}:\n{proc.stderr[-3000:]}'
    return proc


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, slurm_cluster):
    """The tiny cohort and a MultiProc reference run of one subject."""
    from lesionqsm.synth.cohort import generate_cohort

    root = tmp_path_factory.mktemp('tiny')
    generate_cohort(root / 'bids', preset='tiny', seed=0)
    (root / 'fast.json').write_text(json.dumps(FAST_QSM))
    run(participant(root / 'bids', root / 'ref', root / 'ref_work', '--plugin', 'MultiProc'))
    return root


def _results(work):
    """node directory -> mtime (ns) of its nipype result file."""
    return {p.parent: p.stat().st_mtime_ns for p in Path(work).rglob('result_*.pklz')}


def test_slurmgraph_equals_multiproc(tiny, tmp_path):
    out, work = tmp_path / 'out', tmp_path / 'work'
    run(participant(tiny / 'bids', out, work, '--plugin', 'SLURMGraph', '--plugin-args', FAST))
    assert queued_jobs(work) == []  # the command returned after its jobs, not before
    assert assert_same_outputs(tiny / 'ref', out) >= 2


def test_slurm_sigkill_driver_resume_equals_multiproc(tiny, tmp_path):
    """Kill the per-node driver once a third of the nodes are done; the rerun of the same
    command recomputes none of them and its outputs equal the uninterrupted MultiProc run's."""
    out, work = tmp_path / 'out', tmp_path / 'work'
    cmd = participant(tiny / 'bids', out, work, '--plugin', 'SLURM', '--plugin-args', FAST)
    n_nodes = len(_results(tiny / 'ref_work'))
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    while len(_results(work)) < n_nodes // 3:
        assert driver.poll() is None, 'the driver ended before it could be killed'
        assert time.monotonic() < deadline, 'too slow to reach a third of the nodes'
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # Jobs the dead driver submitted still run; let them finish so `before` is final.
    wait_for_jobs(work, poll_seconds=0.2, timeout=300)
    before = {d: t for d, t in _results(work).items() if not d.name.startswith('ds_')}
    assert 0 < len(before) < n_nodes  # (sinks always run again: they restore outputs)
    run(cmd)
    after = _results(work)
    assert {d: after.get(d) for d in before} == before, 'finished nodes were recomputed'
    assert assert_same_outputs(tiny / 'ref', out) >= 2


def test_per_subject_mode_resumes_from_shared_work_dir(tiny, tmp_path):
    """One sbatch job for the subject, MultiProc inside, on the reference's work directory:
    every computing node is reused (result files untouched; only the sinks, whose input is the
    new output directory, run again) and the outputs are the same."""
    out = tmp_path / 'out'
    before = {d: t for d, t in _results(tiny / 'ref_work').items() if not d.name.startswith('ds_')}
    assert len(before) > 20
    run(participant(
        tiny / 'bids', out, tiny / 'ref_work', '--plugin', 'SLURM', '--slurm-mode', 'per-subject',
        '--plugin-args', json.dumps({'poll_sleep_duration': 0.2}), '--mem-gb', '4',
    ))  # fmt: skip
    logs = sorted((out / 'logs' / 'slurm').glob(f'sub-{SUBJECT}_*.out'))
    assert len(logs) == 1, logs
    assert (out / 'logs' / 'slurm' / f'sub-{SUBJECT}.exitcode').read_text().strip() == '0'
    after = _results(tiny / 'ref_work')
    assert {d: after[d] for d in before} == before, 'a cached node was recomputed'
    assert assert_same_outputs(tiny / 'ref', out) >= 2
