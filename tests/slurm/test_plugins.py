"""Plugin configuration and sbatch requests: no cluster needed."""

import os

import nipype.pipeline.engine as pe
import pytest
from nipype.interfaces.utility import IdentityInterface

from lesionqsm.cli.plugins import (
    EXECUTION_KEY,
    GRAPH_SBATCH_ARGS,
    apply_node_resources,
    configure_execution,
    node_sbatch_args,
)

pytestmark = pytest.mark.usefixtures('restore_nipype_config')


def test_node_sbatch_args_exact():
    """0.25 GB node + 0.5 GB interpreter = 768 MB; user options come last so they win."""
    args = node_sbatch_args(mem_gb=0.25, n_procs=3, walltime='01:00:00', sbatch_args='-p short ')
    assert args == ' --mem=768M --cpus-per-task=3 --time=01:00:00 -p short'


def test_apply_node_resources_nested_and_keeps_existing():
    inner = pe.Workflow(name='inner')
    big = pe.Node(IdentityInterface(fields=['a']), name='big', mem_gb=3.0, n_procs=4)
    big.plugin_args = {'sbatch_args': '--qos=long'}
    inner.add_nodes([big])
    outer = pe.Workflow(name='outer')
    small = pe.Node(IdentityInterface(fields=['a']), name='small')
    outer.add_nodes([inner, small])
    assert apply_node_resources(outer, walltime='2-00:00:00', sbatch_args='-A ms') == 2
    assert big.plugin_args['sbatch_args'] == (
        '--qos=long --mem=3584M --cpus-per-task=4 --time=2-00:00:00 -A ms'
    )
    # nipype's default mem_gb is 0.2 GB: (0.2 + 0.5) * 1024 = 716.8, rounded up.
    assert small.plugin_args['sbatch_args'].startswith(' --mem=717M --cpus-per-task=1 ')


@pytest.mark.parametrize('walltime', ['4h', '04:00:00:00', '1-', ''])
def test_bad_walltime_is_named(walltime):
    with pytest.raises(ValueError, match='is not a SLURM time limit'):
        apply_node_resources(pe.Workflow(name='w'), walltime=walltime)


def test_slurmgraph_args_never_empty_and_logname_set(tmp_path, monkeypatch):
    monkeypatch.delenv('LOGNAME', raising=False)
    name, args = configure_execution(plugin='SLURMGraph', nprocs=1, mem_gb=None, work_dir=tmp_path)
    assert name == 'SLURMGraphWaiting'
    assert args['dont_resubmit_completed_jobs'] is True
    assert args['sbatch_args'] == GRAPH_SBATCH_ARGS
    assert os.environ['LOGNAME']
    assert args[EXECUTION_KEY]['poll_sleep_duration'] == '1.0'


def test_settings_reach_an_already_built_workflow(tmp_path):
    """nipype snapshots its config into nodes at construction; passing workflow= updates them."""
    wf = pe.Workflow(name='wf')
    node = pe.Node(IdentityInterface(fields=['a']), name='n')
    wf.add_nodes([node])
    name, args = configure_execution(
        plugin='MultiProc', nprocs=2, mem_gb=3, work_dir=tmp_path, poll_sleep_duration=0.25,
        crashdump_dir=tmp_path / 'crash', workflow=wf,
    )  # fmt: skip
    assert (name, args) == ('EagerMultiProc', {'n_procs': 2, 'memory_gb': 3.0})
    for cfg in (wf.config, node.config):
        assert cfg['execution']['poll_sleep_duration'] == '0.25'
        assert cfg['execution']['crashdump_dir'] == str(tmp_path / 'crash')


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'plugin': 'PBS'}, "unknown plugin 'PBS'"),
        ({'nprocs': 0}, 'nprocs must be a positive'),
        ({'mem_gb': -1}, 'mem_gb must be a positive'),
        ({'poll_sleep_duration': 0}, 'poll_sleep_duration must be a positive'),
    ],
)
def test_configure_execution_errors(tmp_path, kwargs, message):
    options = {'plugin': 'SLURM', 'nprocs': 1, 'mem_gb': 1, 'work_dir': tmp_path} | kwargs
    with pytest.raises(ValueError, match=message):
        configure_execution(**options)
