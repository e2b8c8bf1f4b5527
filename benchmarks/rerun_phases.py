"""CPU and wall time of each phase of one ``lesionqsm ... participant`` command, in-process.

Where a rerun's time goes: start-up imports, input discovery, building the workflow, nipype's
run (scheduling, cache checks, the sinks), the reports, and the rest (imports made inside the
command, logging, option checks). CPU time is this process's plus its finished children's
(MultiProc workers), so it stays meaningful on a loaded machine, where wall time is not.

Usage (after a first run into the same output and work directories)::

    python benchmarks/rerun_phases.py BIDS_DIR OUT participant -w WORK --skip-bids-validation
"""

import os
import sys
import time


def _cpu():
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _timed(owner, name, label, marks):
    """Replace ``owner.name`` by a wrapper that records (label, CPU s, wall s) per call."""
    function = getattr(owner, name)

    def wrapper(*args, **kwargs):
        cpu, wall = _cpu(), time.time()
        try:
            return function(*args, **kwargs)
        finally:
            marks.append((label, _cpu() - cpu, time.time() - wall))

    setattr(owner, name, wrapper)


def main(argv):
    cpu0, wall0 = _cpu(), time.time()
    from nipype.pipeline.engine import workflows

    import lesionqsm.cli as cli
    from lesionqsm.cli import run

    imports = _cpu() - cpu0
    marks = []
    _timed(run, 'discover', 'discovery', marks)
    _timed(run, 'build_participant_workflow', 'building the workflow', marks)
    _timed(workflows.Workflow, 'run', "nipype's run", marks)
    _timed(run, 'write_participant_reports', 'reports', marks)
    code = cli.main(argv)
    total = _cpu() - cpu0
    lines = [f'total: {total:.2f} s CPU, {time.time() - wall0:.2f} s wall (exit code {code})',
             f'  start-up imports: {imports:.2f} s CPU']
    lines += [f'  {label}: {cpu:.2f} s CPU, {wall:.2f} s wall' for label, cpu, wall in marks]
    rest = total - imports - sum(cpu for _, cpu, _ in marks)
    lines.append(f'  the rest (imports inside the command, logging, checks): {rest:.2f} s CPU')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
