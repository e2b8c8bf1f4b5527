"""Scheduling overhead of the participant level on cohorts of 1, 5 and 20 tiny subjects.

For each cohort size the participant level runs three times on one work directory: a first
run, a rerun with nothing changed, and a rerun with MEDI's λ changed. This is done twice in
the same process, with lesionqsm's execution settings (the eager MultiProc, timestamp
hashing) and with nipype's defaults (its MultiProc, 2 s polls, content hashing), each on its
own work directory, one mode's run right after the other's (so that a change in the machine's
load hits both alike), and the table gives the ratio.

Columns: ``nodes`` in the workflow; wall time of the ``first`` run, of the ``no-op`` rerun
and of the ``λ`` rerun (seconds, the whole command: Python start-up, dataset discovery and
building the workflow included); ``start`` the no-op rerun's time before nipype starts
scheduling; ``per node`` the no-op rerun's scheduling time (from nipype's "Running in
parallel" to the end of the run, in its log) divided by the nodes; ``ran`` the nodes each
rerun executed, read from nipype's records (a node that runs rewrites its ``result_*.pklz``);
``idle`` the first run's scheduling time minus the sum of its nodes' own run times (nipype's
"elapsed time") divided by ``--nprocs``: roughly the time the CPUs waited for the driver,
less sensitive to the machine's load than the wall time.

Cohorts are copies of the ``tiny`` synthetic subjects (``sub-01``, ``sub-02``, ...) under new
labels. MEDI runs 3 Gauss-Newton iterations of at most 30 CG steps (the defaults are 10 and
100) to keep the first runs short; the scheduling overhead does not depend on it.

Usage::

    python benchmarks/bench_scheduling.py             # sizes 1 5 20
    python benchmarks/bench_scheduling.py 1 5 --nprocs 2 --root /tmp/bench
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from lesionqsm.cli.resources import available_cpus

#: The first run's MEDI settings (shorter than the paper's, same for every run and mode).
FAST_QSM = {'max_gn_iter': 3, 'cg_max_iter': 30}
#: The parameter the third run changes.
CHANGED_QSM = {'lambda_': 900.0}
#: Execution settings compared: this project's defaults and nipype's own.
MODES = {
    'lesionqsm': {},
    'nipype': {'eager': False, 'poll_sleep_duration': 2.0, 'hash_method': 'content'},
}
_STAMP = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ')
_ELAPSED = re.compile(r'\[Node\] Finished "[^"]+", elapsed time ([0-9.]+)s')


def make_cohort(source, target, n_subjects):
    """Write a BIDS dataset of ``n_subjects`` copies of the subjects of ``source``.

    Subject ``i`` (1-based) is a copy of the source's subject ``(i - 1) % n_source``, renamed
    ``sub-<i>`` in every file name and text file (``participants.tsv``, lesion tables,
    sidecars). Images are hard links when possible (the pipeline never writes its inputs).
    """
    source, target = Path(source), Path(target)
    originals = sorted(p.name for p in source.glob('sub-*') if p.is_dir())
    target.mkdir(parents=True)
    for top in source.iterdir():  # dataset_description.json, participants.json, README, ...
        if top.is_file():
            shutil.copy2(top, target)
    rows = (source / 'participants.tsv').read_text().splitlines()
    by_label = {row.split('\t')[0]: row for row in rows[1:]}
    out_rows = [rows[0]]
    width = max(2, len(str(n_subjects)))
    for i in range(1, n_subjects + 1):
        old = originals[(i - 1) % len(originals)]
        new = f'sub-{i:0{width}d}'
        out_rows.append(by_label[old].replace(old, new, 1))
        for tree in (source, source / 'derivatives' / 'lesions'):
            if (tree / old).is_dir():
                _copy_renamed(tree / old, target / tree.relative_to(source) / new, old, new)
    (target / 'participants.tsv').write_text('\n'.join(out_rows) + '\n')
    lesions_description = source / 'derivatives' / 'lesions' / 'dataset_description.json'
    if lesions_description.exists():
        shutil.copy2(lesions_description, target / 'derivatives' / 'lesions')
    return target


def _copy_renamed(src_dir, dst_dir, old, new):
    for src in src_dir.rglob('*'):
        dst = dst_dir / str(src.relative_to(src_dir)).replace(old, new)
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix in ('.tsv', '.json'):
            dst.write_text(src.read_text().replace(old, new))
            continue
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _result_files(work):
    return {str(p): p.stat().st_mtime_ns for p in Path(work).rglob('result_*.pklz')}


def _log_time(line):
    match = _STAMP.match(line)
    return datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S,%f').timestamp()


def run_participant(bids, out, work, config, mode_args, nprocs):
    """Run the participant level as a user would; returns a dict of measures."""
    argv = [sys.executable, '-c', 'import sys; from lesionqsm.cli import main; sys.exit(main())',
            str(bids), str(out), 'participant', '-w', str(work), '--skip-bids-validation',
            '--config', str(config)]
    if nprocs:
        argv += ['--nprocs', str(nprocs)]
    if mode_args:
        argv += ['--plugin-args', json.dumps(mode_args)]
    before = _result_files(work)
    logs_before = set(Path(out, 'logs').glob('lesionqsm_participant_*.log'))
    start = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.time() - start
    if proc.returncode:
        raise RuntimeError(f'{" ".join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}')
    after = _result_files(work)
    (log,) = set(Path(out, 'logs').glob('lesionqsm_participant_*.log')) - logs_before
    text = log.read_text()
    lines = [line for line in text.splitlines() if _STAMP.match(line)]
    begin = next(_log_time(line) for line in lines if 'Running in parallel' in line)
    return {
        'wall': wall,
        'start': begin - start,
        'schedule': _log_time(lines[-1]) - begin,
        'node_seconds': sum(map(float, _ELAPSED.findall(text))),
        'nodes': len(after),
        'ran': sum(1 for path, stamp in after.items() if before.get(path) != stamp),
    }


def bench_size(root, source, n_subjects, nprocs):
    """First run, no-op rerun and λ rerun of one cohort in every mode."""
    bids = make_cohort(source, root / f'bids_{n_subjects}', n_subjects)
    fast = root / 'fast.json'
    fast.write_text(json.dumps({'qsm': FAST_QSM}))
    changed = root / 'changed.json'
    changed.write_text(json.dumps({'qsm': FAST_QSM | CHANGED_QSM}))
    rows = {mode: {} for mode in MODES}
    for step, config in (('first', fast), ('noop', fast), ('lambda', changed)):
        for mode, mode_args in MODES.items():
            out, work = root / f'out_{n_subjects}_{mode}', root / f'work_{n_subjects}_{mode}'
            row = run_participant(bids, out, work, config, mode_args, nprocs)
            rows[mode][step] = row
            print(f'  {n_subjects:>3} subject(s), {mode:<9} {step:<6}: {row["wall"]:7.1f} s, '
                  f'{row["ran"]} of {row["nodes"]} nodes ran', flush=True)
    for mode in MODES:
        shutil.rmtree(root / f'work_{n_subjects}_{mode}')
    shutil.rmtree(bids)
    return rows


def print_table(results, nprocs):
    header = (f'{"subjects":>8} {"mode":<10} {"nodes":>6} {"first s":>8} {"idle s":>7} '
              f'{"no-op s":>8} {"start s":>8} {"per node ms":>12} {"ran":>4} {"λ s":>7} '
              f'{"ran":>4}')
    print()
    print(header)
    print('-' * len(header))
    for n_subjects, rows in results.items():
        for mode, row in rows.items():
            noop, first, lam = row['noop'], row['first'], row['lambda']
            per_node = 1000 * noop['schedule'] / max(noop['nodes'], 1)
            row['idle'] = first['schedule'] - first['node_seconds'] / nprocs
            print(f'{n_subjects:>8} {mode:<10} {noop["nodes"]:>6} {first["wall"]:>8.1f} '
                  f'{row["idle"]:>7.1f} {noop["wall"]:>8.1f} {noop["start"]:>8.1f} '
                  f'{per_node:>12.1f} {noop["ran"]:>4} {lam["wall"]:>7.1f} {lam["ran"]:>4}')
        ours, theirs = rows['lesionqsm'], rows['nipype']
        ratios = [theirs[k]['wall'] / ours[k]['wall'] for k in ('first', 'noop', 'lambda')]
        idle = theirs['idle'] / ours['idle'] if ours['idle'] > 0 else float('nan')
        sched = theirs['noop']['schedule'] / max(ours['noop']['schedule'], 1e-3)
        print(f'{n_subjects:>8} {"ratio":<10} {"":>6} {ratios[0]:>8.2f} {idle:>7.2f} '
              f'{ratios[1]:>8.2f} {"":>8} {sched:>12.1f} {"":>4} {ratios[2]:>7.2f}'
              '     (nipype / lesionqsm)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('sizes', nargs='*', type=int, default=[1, 5, 20],
                        help='cohort sizes in subjects')
    parser.add_argument('--nprocs', type=int, default=available_cpus(),
                        help='--nprocs of every run (default: the CPUs this process may use)')
    parser.add_argument('--root', type=Path, default=None,
                        help='scratch directory (default: a temporary one, removed)')
    args = parser.parse_args(argv)
    from lesionqsm.synth.cohort import generate_cohort

    root = args.root or Path(tempfile.mkdtemp(prefix='bench_scheduling_'))
    root.mkdir(parents=True, exist_ok=True)
    try:
        source = root / 'tiny'
        if not source.exists():
            generate_cohort(source, preset='tiny', seed=0)
        print(f'cohorts of the tiny preset; MEDI {FAST_QSM}; λ rerun {CHANGED_QSM}; '
              f'nipype mode: {MODES["nipype"]}', flush=True)
        results = {n: bench_size(root, source, n, args.nprocs) for n in args.sizes}
        print_table(results, args.nprocs)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
