"""A running SLURM cluster for the tests here: skipped without one, unless CI requires it.

CI (``.ci/run``) starts a one-node cluster with ``bash .ci/slurm.sh up``, exports its
``SLURM_CONF`` and sets ``LESIONQSM_REQUIRE_SLURM=1``: then a missing cluster fails these tests
instead of skipping them.
"""

import os
import shutil
import subprocess

import pytest

from lesionqsm.cli.plugins import ensure_logname


def _cluster_problem():
    if shutil.which('sinfo') is None:
        return 'sinfo is not installed'
    try:
        proc = subprocess.run(
            ['sinfo', '-h', '-o', '%t'], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return 'sinfo did not answer within 20 s (is SLURM_CONF right? is slurmctld running?)'
    if proc.returncode:
        return f'sinfo failed: {proc.stderr.strip()}'
    states = proc.stdout.split()
    if not any(state.rstrip('*') in ('idle', 'mix', 'alloc') for state in states):
        return f'no usable SLURM node (node states: {states})'
    return None


@pytest.fixture(scope='session')
def slurm_cluster():
    """Skip (or, with LESIONQSM_REQUIRE_SLURM=1, fail) when no SLURM cluster answers."""
    problem = _cluster_problem()
    if problem:
        message = (
            f'no SLURM cluster: {problem}. Start one with `bash .ci/slurm.sh up` and '
            '`eval "$(bash .ci/slurm.sh env)"`.'
        )
        if os.environ.get('LESIONQSM_REQUIRE_SLURM') == '1':
            pytest.fail(f'LESIONQSM_REQUIRE_SLURM=1 but {message}', pytrace=False)
        pytest.skip(message)
    ensure_logname()
    return True
