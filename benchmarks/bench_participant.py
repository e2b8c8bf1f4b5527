"""Where the participant level's time goes on one subject at clinical resolution.

Run: ``.venv/bin/python benchmarks/bench_participant.py [--keep DIR] [--nprocs 2]``

Makes one subject of the ``paper`` preset (GRE 240 × 240 × 48 at 1 × 1 × 3 mm, 10 echoes,
FLAIR 1 mm isotropic; three visits, three lesions) unless ``DIR/bids`` already holds it, runs
the participant level on it into ``DIR/derivatives`` with ``DIR/work``, and prints the wall
time of the command and, per kind of node, how many ran and the sum and largest of their own
run times (nipype's ``runtime.duration``; with ``--nprocs 2`` two nodes share the two cores,
so a node's time includes waiting for the other).  The figures per visit are the sums
divided by the number of visits.  A plain reference, one real FFT pair of the GRE matrix, is
timed in the same run.
"""

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

from bench_qsm_stages_a import fft_pair_seconds
from nipype.utils.filemanip import loadpkl


def node_durations(work_dir):
    """Sum, count and max of the run times (s) of every node kind in a nipype work folder."""
    total = collections.defaultdict(float)
    count = collections.Counter()
    largest = collections.defaultdict(float)
    for result_file in Path(work_dir).glob('**/result_*.pklz'):
        result = loadpkl(result_file)
        duration = getattr(getattr(result, 'runtime', None), 'duration', None)
        if duration is None:
            continue
        kind = re.sub(r'^ses_[^_]+_', '', result_file.parent.name)
        total[kind] += duration
        count[kind] += 1
        largest[kind] = max(largest[kind], duration)
    return total, count, largest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--keep', type=Path, help='work in this folder and keep it')
    parser.add_argument('--nprocs', type=int, default=2)
    args = parser.parse_args(argv)

    from lesionqsm.cli import main as lesionqsm_main
    from lesionqsm.synth.cohort import PRESETS, generate_cohort

    root = args.keep or Path(tempfile.mkdtemp(prefix='lesionqsm_bench_participant_'))
    bids, out, work = root / 'bids', root / 'derivatives', root / 'work'
    if not (bids / 'dataset_description.json').exists():
        generate_cohort(bids, preset='paper', seed=0, n_subjects=1, n_lesions=3,
                        n_rim_positive=2, n_nodular=1, visits=(3, 3))
    reference = fft_pair_seconds(PRESETS['paper'].gre_shape)
    start = time.perf_counter()
    code = lesionqsm_main([str(bids), str(out), 'participant', '-w', str(work),
                           '--nprocs', str(args.nprocs), '--skip-bids-validation'])
    wall = time.perf_counter() - start
    if code != 0:
        print(f'participant level failed (exit {code}); see {out}/logs', file=sys.stderr)
        return code
    total, count, largest = node_durations(work)
    visits = max(count.values())
    print(f'participant level, 1 subject, {visits} visits, --nprocs {args.nprocs}: '
          f'{wall:.1f} s wall ({wall / visits:.1f} s per visit); reference: one real FFT pair '
          f'of the GRE matrix, {reference * 1e3:.0f} ms')
    print(f"{'node':<28}{'runs':>6}{'sum (s)':>10}{'max (s)':>10}{'per visit':>11}"
          f"{'(FFT)':>8}")
    for kind, seconds in sorted(total.items(), key=lambda item: -item[1]):
        if seconds < 0.05 * visits:
            continue
        print(f'{kind:<28}{count[kind]:>6}{seconds:>10.1f}{largest[kind]:>10.1f}'
              f'{seconds / visits:>11.1f}{seconds / visits / reference:>8.0f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
