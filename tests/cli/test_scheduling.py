"""Scheduling on this machine: the eager MultiProc, file hashing, and the resource defaults.

Whether a node ran is read from nipype's own records: a node that runs rewrites its
``result_<node>.pklz``; a node served from the cache leaves it untouched. Speed itself is
measured by ``benchmarks/bench_scheduling.py``, not asserted here; what is asserted is the
number of scheduling passes, which is what the time of a rerun is made of (nipype sleeps
between two passes).
"""

import os
from pathlib import Path

import nipype.pipeline.engine as pe
import pytest
from nipype import config as nipype_config
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)
from nipype.pipeline.plugins.multiproc import MultiProcPlugin

from lesionqsm.cli.eager import EagerMultiProcPlugin
from lesionqsm.cli.parser import build_parser
from lesionqsm.cli.plugins import EXECUTION_KEY, configure_execution
from lesionqsm.cli.resources import available_memory_gb

DEPTH, WIDTH = 4, 3  # a chain of 4 nodes in each of 3 branches


pytestmark = pytest.mark.usefixtures('restore_nipype_config')


class _StepInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc='text file holding one integer')
    step = traits.Int(mandatory=True, desc='added to the integer; 99 fails, 98 kills the worker')


class _StepOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc='text file holding the integer plus step')


class Step(SimpleInterface):
    """Read an integer from a file, add ``step``, write it to a new file."""

    input_spec = _StepInputSpec
    output_spec = _StepOutputSpec

    def _run_interface(self, runtime):
        if self.inputs.step == 99:
            raise ValueError('step 99 fails on purpose')
        if self.inputs.step == 98:
            os._exit(1)  # the worker process dies, as when the kernel kills it for memory
        value = int(Path(self.inputs.in_file).read_text()) + self.inputs.step
        out = Path(runtime.cwd, 'value.txt')
        out.write_text(str(value))
        self._results['out_file'] = str(out)
        return runtime


def _toy_wf(base_dir, inputs, steps):
    """``WIDTH`` branches; branch ``b`` adds ``steps[b]`` ``DEPTH`` times to ``inputs[b]``."""
    wf = pe.Workflow(name='toy', base_dir=str(base_dir))
    for branch, (in_file, step) in enumerate(zip(inputs, steps, strict=True)):
        previous = None
        for level in range(DEPTH):
            node = pe.Node(Step(step=step), name=f'b{branch}_n{level}')
            if previous is None:
                node.inputs.in_file = str(in_file)
                wf.add_nodes([node])
            else:
                wf.connect(previous, 'out_file', node, 'in_file')
            previous = node
    return wf


def _inputs(tmp_path, values=(0, 100, 200)):
    files = []
    for branch, value in enumerate(values):
        path = tmp_path / f'input_{branch}.txt'
        path.write_text(str(value))
        files.append(path)
    return files


class _Counting:
    """Counts the scheduling passes of a plugin (calls of ``_send_procs_to_workers``)."""

    passes = 0

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        self.passes += 1
        return super()._send_procs_to_workers(updatehash=updatehash, graph=graph)


class _CountingEager(_Counting, EagerMultiProcPlugin):
    pass


class _CountingMultiProc(_Counting, MultiProcPlugin):
    pass


def _run(wf, work, *, eager=True, hash_method='timestamp', poll=None):
    """Run ``wf`` as the participant level does; returns the plugin (with its pass count)."""
    name, args = configure_execution(
        plugin='MultiProc', nprocs=2, mem_gb=1, work_dir=work, workflow=wf,
        hash_method=hash_method, eager=eager, poll_sleep_duration=poll,
    )  # fmt: skip
    plugin = (_CountingEager if name == 'EagerMultiProc' else _CountingMultiProc)(args)
    wf.run(plugin=plugin)
    return plugin


def _result_files(work):
    return {p.parent.name: p.stat().st_mtime_ns for p in Path(work).rglob('result_*.pklz')}


def _rerun(before, after):
    return sorted(name for name in after if before.get(name) != after[name])


def _final(work, branch):
    return int(Path(work, 'toy', f'b{branch}_n{DEPTH - 1}', 'value.txt').read_text())


def test_noop_rerun_executes_nothing_in_one_pass(tmp_path):
    """nipype's MultiProc skips at most 2 cached nodes per pass on 2 CPUs (each skip takes a
    CPU from the pass's budget, and the nodes it frees wait for the next pass): 6 passes or
    more for 12 nodes. The eager plugin skips all of them in its first pass."""
    files = _inputs(tmp_path)
    work = tmp_path / 'work'
    _run(_toy_wf(work, files, (1, 2, 3)), work)
    assert [_final(work, b) for b in range(WIDTH)] == [4, 108, 212]  # value + DEPTH * step
    before = _result_files(work)
    assert len(before) == DEPTH * WIDTH

    plugin = _run(_toy_wf(work, files, (1, 2, 3)), work)
    assert _rerun(before, _result_files(work)) == []
    assert plugin.passes == 1

    nipype_plugin = _run(_toy_wf(work, files, (1, 2, 3)), work, eager=False, poll=0.01)
    assert _rerun(before, _result_files(work)) == []
    assert nipype_plugin.passes >= DEPTH * WIDTH // 2


def test_changed_input_reruns_its_branch_only(tmp_path):
    files = _inputs(tmp_path)
    work = tmp_path / 'work'
    _run(_toy_wf(work, files, (1, 2, 3)), work)
    before = _result_files(work)
    files[1].write_text('1000')
    _run(_toy_wf(work, files, (1, 2, 3)), work)
    assert _rerun(before, _result_files(work)) == [f'b1_n{level}' for level in range(DEPTH)]
    assert [_final(work, b) for b in range(WIDTH)] == [4, 1008, 212]


@pytest.mark.parametrize(('hash_method', 'reruns'), [('timestamp', DEPTH), ('content', 0)])
def test_touched_input_reruns_under_timestamp_hashing_only(tmp_path, hash_method, reruns):
    """The trade-off of the default: a file whose time changed but whose bytes did not reruns
    its branch under ``timestamp`` hashing (a ``stat`` per file) and not under ``content``
    hashing (every byte read again on every rerun)."""
    files = _inputs(tmp_path)
    work = tmp_path / 'work'
    _run(_toy_wf(work, files, (1, 2, 3)), work, hash_method=hash_method)
    before = _result_files(work)
    stat = files[2].stat()
    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _run(_toy_wf(work, files, (1, 2, 3)), work, hash_method=hash_method)
    assert len(_rerun(before, _result_files(work))) == reruns


def test_failed_node_stops_its_branch_only(tmp_path):
    files = _inputs(tmp_path)
    work = tmp_path / 'work'
    with pytest.raises(RuntimeError):
        _run(_toy_wf(work, files, (1, 99, 3)), work)
    assert [_final(work, b) for b in (0, 2)] == [4, 212]
    assert not (work / 'toy' / 'b1_n1' / 'value.txt').exists()


@pytest.mark.timeout(120)
def test_dead_worker_fails_the_run_instead_of_hanging(tmp_path):
    """A worker killed mid-node: nipype's MultiProc waits forever for its result (the
    future's callback raises in a thread); the eager plugin reports the node as failed."""
    files = _inputs(tmp_path)
    work = tmp_path / 'work'
    with pytest.raises(RuntimeError):
        _run(_toy_wf(work, files, (1, 98, 3)), work)
    assert not (work / 'toy' / 'b1_n0' / 'value.txt').exists()


def test_hash_method_per_plugin(tmp_path):
    """stat on this machine; file contents under SLURM (hosts' attribute caches differ)."""
    configure_execution(plugin='Linear', nprocs=1, mem_gb=1, work_dir=tmp_path)
    assert nipype_config.get('execution', 'hash_method') == 'timestamp'
    _, args = configure_execution(plugin='SLURM', nprocs=1, mem_gb=1, work_dir=tmp_path)
    assert args[EXECUTION_KEY]['hash_method'] == 'content'
    _, args = configure_execution(plugin='SLURM', nprocs=1, mem_gb=1, work_dir=tmp_path,
                                  plugin_args={'hash_method': 'timestamp'})
    assert args[EXECUTION_KEY]['hash_method'] == 'timestamp'
    with pytest.raises(ValueError, match="hash_method must be one of timestamp, content"):
        configure_execution(plugin='Linear', nprocs=1, mem_gb=1, work_dir=tmp_path,
                            hash_method='mtime')


def test_execution_defaults_follow_the_machine(tmp_path):
    opts = build_parser().parse_args([str(tmp_path), str(tmp_path / 'out'), 'participant'])
    assert opts.nprocs == len(os.sched_getaffinity(0))
    assert opts.omp_nthreads == min(opts.nprocs, 8)
    assert opts.mem_gb is None  # measured when the run starts
    opts = build_parser().parse_args([str(tmp_path), str(tmp_path / 'out'), 'participant',
                                      '--nprocs', '3', '--omp-nthreads', '2', '--mem-gb', '5'])
    assert (opts.nprocs, opts.omp_nthreads, opts.mem_gb) == (3, 2, 5.0)
    opts = build_parser().parse_args([str(tmp_path), str(tmp_path / 'out'), 'participant',
                                      '--nprocs', '20'])
    assert opts.omp_nthreads == 8


def test_available_memory_from_meminfo_and_cgroup(tmp_path):
    """MemAvailable is in kB; a cgroup limit leaves limit - current bytes."""
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:       25165824 kB\nMemAvailable:    8388608 kB\n')
    cgroup = tmp_path / 'cgroup'
    cgroup.mkdir()
    assert available_memory_gb(meminfo, cgroup) == 8.0  # no cgroup files: MemAvailable
    (cgroup / 'memory.max').write_text('max\n')
    (cgroup / 'memory.current').write_text(str(2**30))
    assert available_memory_gb(meminfo, cgroup) == 8.0  # no limit
    (cgroup / 'memory.max').write_text(str(4 * 2**30))
    assert available_memory_gb(meminfo, cgroup) == 3.0  # 4 GB limit, 1 GB used
    assert available_memory_gb(tmp_path / 'none', tmp_path / 'none') is None


def test_default_memory_budget_fits_the_largest_node(tmp_path, monkeypatch, caplog):
    from lesionqsm.cli import plugins

    wf = _toy_wf(tmp_path, _inputs(tmp_path), (1, 2, 3))
    wf.get_node('b0_n2')._mem_gb = 6.5  # nipype has no setter
    monkeypatch.setattr(plugins, 'available_memory_gb', lambda: 2.0)
    _, args = configure_execution(plugin='MultiProc', nprocs=2, mem_gb=None,
                                  work_dir=tmp_path, workflow=wf)
    assert args['memory_gb'] == 6.5
    assert 'largest node asks for 6.5 GB' in caplog.text
    monkeypatch.setattr(plugins, 'available_memory_gb', lambda: 12.0)
    _, args = configure_execution(plugin='MultiProc', nprocs=2, mem_gb=None,
                                  work_dir=tmp_path, workflow=wf)
    assert args['memory_gb'] == 12.0
    _, args = configure_execution(plugin='MultiProc', nprocs=2, mem_gb=3,
                                  work_dir=tmp_path, workflow=wf)
    assert args['memory_gb'] == 3.0  # given: nipype refuses the 6.5 GB node, as asked
