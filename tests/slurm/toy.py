"""A four-node nipype workflow whose nodes write files and report their SLURM allocation."""

import nipype.pipeline.engine as pe
from nipype.interfaces.utility import Function, IdentityInterface


def make_numbers(count, out_name):
    """Write 0..count-1, one per line; return the file."""
    import os

    path = os.path.abspath(out_name)
    with open(path, 'w') as f:
        f.write('\n'.join(str(i) for i in range(count)))
    return path


def scale(in_file, factor, seconds):
    """Multiply every number by ``factor``; also return this job's SLURM allocation."""
    import os
    import time

    time.sleep(seconds)
    with open(in_file) as f:
        numbers = [int(line) * factor for line in f.read().split()]
    path = os.path.abspath(f'scaled_{factor}.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(map(str, numbers)))
    allocation = {
        key: os.environ.get(key)
        for key in ('SLURM_JOB_ID', 'SLURM_CPUS_PER_TASK', 'SLURM_MEM_PER_NODE')
    }
    return path, allocation


def add(file_a, file_b):
    """Add two number files element by element."""
    import os

    with open(file_a) as fa, open(file_b) as fb:
        pairs = zip(fa.read().split(), fb.read().split(), strict=True)
        total = [int(a) + int(b) for a, b in pairs]
    path = os.path.abspath('sum.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(map(str, total)))
    return path


def init_toy_wf(base_dir, *, count=5, seconds=0.0, name='toy_wf'):
    """numbers -> (x2, x3) -> sum; the sum file holds 5*i. ``tripled`` asks for 2 CPUs."""
    wf = pe.Workflow(name=name, base_dir=str(base_dir))
    numbers = pe.Node(
        Function(['count', 'out_name'], ['out_file'], make_numbers), name='numbers', mem_gb=0.1
    )
    numbers.inputs.count = count
    numbers.inputs.out_name = 'numbers.txt'
    doubled = pe.Node(
        Function(['in_file', 'factor', 'seconds'], ['out_file', 'allocation'], scale),
        name='doubled',
        mem_gb=0.25,
    )
    doubled.inputs.factor = 2
    doubled.inputs.seconds = seconds
    tripled = pe.Node(
        Function(['in_file', 'factor', 'seconds'], ['out_file', 'allocation'], scale),
        name='tripled',
        mem_gb=0.5,
        n_procs=2,
    )
    tripled.inputs.factor = 3
    tripled.inputs.seconds = seconds
    total = pe.Node(Function(['file_a', 'file_b'], ['out_file'], add), name='total')
    # Keeps the allocations in the result files (nipype drops outputs nobody uses).
    outputnode = pe.Node(IdentityInterface(fields=['doubled', 'tripled']), name='outputnode')
    wf.connect([
        (numbers, doubled, [('out_file', 'in_file')]),
        (numbers, tripled, [('out_file', 'in_file')]),
        (doubled, total, [('out_file', 'file_a')]),
        (tripled, total, [('out_file', 'file_b')]),
        (doubled, outputnode, [('allocation', 'doubled')]),
        (tripled, outputnode, [('allocation', 'tripled')]),
    ])  # fmt: skip
    return wf


def main(argv=None):
    """``python toy.py WORK_DIR PLUGIN SECONDS``: run the toy workflow (resume tests' driver)."""
    import sys

    from lesionqsm.cli.plugins import apply_node_resources, configure_execution

    work_dir, plugin, seconds = argv or sys.argv[1:]
    wf = init_toy_wf(work_dir, seconds=float(seconds))
    name, args = configure_execution(
        plugin=plugin, nprocs=1, mem_gb=1, work_dir=work_dir, poll_sleep_duration=0.2,
        job_finished_timeout=2, workflow=wf,
    )  # fmt: skip
    apply_node_resources(wf, walltime='00:10:00')
    wf.run(plugin=name, plugin_args=args)


if __name__ == '__main__':
    main()
