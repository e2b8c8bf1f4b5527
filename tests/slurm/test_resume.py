"""Resume after a crash: kill the driver, or one job, then rerun the same command.

What "not recomputed" means is read from nipype's own records: a node that runs writes its
``result_<node>.pklz`` anew, so an unchanged modification time (ns) proves it was reused.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lesionqsm.cli.plugins import queued_jobs, wait_for_jobs

pytestmark = pytest.mark.slurm

TOY = Path(__file__).with_name('toy.py')
NODES = ('numbers', 'doubled', 'tripled', 'total')


def _driver(work, plugin, seconds):
    return [sys.executable, str(TOY), str(work), plugin, str(seconds)]


def _results(root):
    """node -> mtime (ns) of its result file, for the nodes that have one."""
    found = {}
    for node in NODES:
        result = root / node / f'result_{node}.pklz'
        if result.exists():
            found[node] = result.stat().st_mtime_ns
    return found


def _wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.1)


def _running_job(root, node):
    for job in queued_jobs(root / 'batch'):
        if job['state'] == 'RUNNING' and job['script'].endswith(f'toy_wf_{node}.sh'):
            return job['jobid']
    return None


@pytest.mark.parametrize('plugin', ['SLURMGraph'])  # SLURM: test_participant.py
def test_sigkill_driver_then_rerun(slurm_cluster, tmp_path, plugin):
    """Driver SIGKILLed while `doubled` runs; the rerun reuses `numbers` and the orphan jobs'
    results, runs only what is left, and the sum is the uninterrupted answer."""
    work = tmp_path / 'work'
    root = work / 'toy_wf'
    driver = subprocess.Popen(_driver(work, plugin, 3), stderr=subprocess.DEVNULL)
    _wait_until(lambda: _running_job(root, 'doubled'), 90, 'the doubled job to run')
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = _results(root)
    assert 'numbers' in before and 'total' not in before
    rerun = subprocess.run(_driver(work, plugin, 3), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _results(root)
    assert after['numbers'] == before['numbers'], 'a finished node was recomputed'
    assert [int(v) for v in (root / 'total' / 'sum.txt').read_text().split()] == [0, 5, 10, 15, 20]
    # One job per node in all: the orphaned jobs were waited for, not submitted twice.
    scripts = sorted(p.name for p in (root / 'batch').glob('batchscript_*.sh'))
    assert sorted(s.rsplit('_', 1)[-1] for s in scripts) == sorted(f'{n}.sh' for n in NODES)


def test_cancelled_job_then_rerun(slurm_cluster, tmp_path):
    """scancel of the running `tripled` job fails the run; the rerun redoes only `tripled`
    and `total`, keeping the results of `numbers` and `doubled`."""
    work = tmp_path / 'work'
    root = work / 'toy_wf'
    driver = subprocess.Popen(_driver(work, 'SLURM', 3), stderr=subprocess.PIPE, text=True)
    _wait_until(lambda: _running_job(root, 'tripled'), 90, 'the tripled job to run')
    subprocess.run(['scancel', str(_running_job(root, 'tripled'))], check=True)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode != 0, 'the run reported success without the cancelled node'
    wait_for_jobs(root / 'batch', poll_seconds=0.2, timeout=60)
    before = _results(root)
    assert set(before) == {'numbers', 'doubled'}, before
    rerun = subprocess.run(_driver(work, 'SLURM', 3), capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _results(root)
    assert {n: after[n] for n in before} == before, 'a finished node was recomputed'
    assert [int(v) for v in (root / 'total' / 'sum.txt').read_text().split()] == [0, 5, 10, 15, 20]
