"""nipype's SLURM plugins, as configured by lesionqsm, on a real cluster with a toy workflow."""

import math

import pytest
from nipype.utils.filemanip import loadpkl

from lesionqsm.cli.plugins import (
    PYTHON_OVERHEAD_GB,
    apply_node_resources,
    configure_execution,
    queued_jobs,
)

from .toy import init_toy_wf

pytestmark = pytest.mark.slurm


def _run_toy(tmp_path, plugin, **kwargs):
    wf = init_toy_wf(tmp_path / 'work', **kwargs)
    name, args = configure_execution(
        plugin=plugin,
        nprocs=1,
        mem_gb=1,
        work_dir=tmp_path / 'work',
        poll_sleep_duration=0.2,
        job_finished_timeout=5,
        workflow=wf,
    )
    apply_node_resources(wf, walltime='00:10:00')
    wf.run(plugin=name, plugin_args=args)
    return tmp_path / 'work' / 'toy_wf'


@pytest.mark.parametrize('plugin', ['SLURM', 'SLURMGraph'])
def test_toy_workflow_runs_as_jobs_with_node_resources(slurm_cluster, tmp_path, plugin):
    """(2i + 3i) for i < 5; every compute node ran in a SLURM job sized from mem_gb/n_procs."""
    root = _run_toy(tmp_path, plugin)
    total = (root / 'total' / 'sum.txt').read_text().split()
    assert [int(v) for v in total] == [0, 5, 10, 15, 20]
    for node, mem_gb, cpus in (('doubled', 0.25, 1), ('tripled', 0.5, 2)):
        allocation = loadpkl(root / node / f'result_{node}.pklz').outputs.allocation
        assert allocation['SLURM_JOB_ID'], f'{node} did not run inside a SLURM job'
        assert int(allocation['SLURM_CPUS_PER_TASK']) == cpus
        assert int(allocation['SLURM_MEM_PER_NODE']) == math.ceil(
            (mem_gb + PYTHON_OVERHEAD_GB) * 1024
        )
    # The SLURMGraph plugin returned only after all its jobs left the queue.
    assert queued_jobs(root) == []
