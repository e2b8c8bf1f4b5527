"""Cost of the group level's input checks against plain reading of the same files, same run.

    .venv/bin/python benchmarks/bench_group_inputs.py                 # 100 and 1000 patients

A cohort (``--patients`` patients, three lesions each, five visits per lesion) is written as
the participant level writes it (``sub-*/sub-*_lesions.tsv``) with its participants.tsv.
Timed (best of three): :func:`lesionqsm.cli.group.read_inputs`, which reads and checks every
lesion table and participants.tsv as the group level does, against the baseline of reading
the same lesion tables with ``pandas.read_csv`` one by one and concatenating them (no check).
Printed: rows, both times in seconds and their ratio.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lesionqsm.cli.group import read_inputs
from lesionqsm.stats.options import GroupModelOptions
from lesionqsm.synth.lesion_table import simulate_lesion_table, write_group_inputs


def write_cohort(root, n_patients):
    lesions, participants, _ = simulate_lesion_table(
        n_patients=n_patients, n_lesions=3 * n_patients, visits_per_lesion=5,
        rng=np.random.default_rng(0))
    write_group_inputs(root, lesions, participants)
    return len(lesions)


def best_of(function, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--patients', type=int, nargs='+', default=[100, 1000])
    args = parser.parse_args()
    print(f'{"patients":>8} {"rows":>7} {"checked (s)":>12} {"pandas (s)":>11} {"ratio":>6}')
    for n_patients in args.patients:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            n_rows = write_cohort(root, n_patients)
            tables = sorted((root / 'out').glob('sub-*/sub-*_lesions.tsv'))
            checked = best_of(lambda root=root: read_inputs(root / 'out', root / 'bids',
                                                            GroupModelOptions()))
            plain = best_of(lambda tables=tables: pd.concat(
                [pd.read_csv(p, sep='\t') for p in tables], ignore_index=True))
        print(f'{n_patients:>8} {n_rows:>7} {checked:>12.3f} {plain:>11.3f} '
              f'{checked / plain:>6.2f}')


if __name__ == '__main__':
    main()
