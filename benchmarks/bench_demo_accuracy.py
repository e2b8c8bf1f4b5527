"""Accuracy and run time of the participant level on a synthetic cohort, against its truth.

Usage::

    python benchmarks/bench_demo_accuracy.py [--preset demo] [--seed 0] [--nprocs 2] [--keep DIR]
        [--config FILE]

Prints the per-lesion-visit errors of χ_rel (lesion − NAWM, ppb) and of the FLAIR volume
against the ground truth written by :mod:`lesionqsm.synth`, with their medians, and the wall
time of each stage.  It then measures the true χ maps the same way (each visit's ground-truth
Chimap through the chain's own transform to baseline and its own lesion stage): what is left
is the error of resampling, partial volume and the NAWM shell, the floor below which no QSM
method can bring the figure, and the rest is the reconstruction's share.  Issue #4's
acceptance on the demo cohort: median |χ_rel error| <= 3 ppb and median relative volume error
<= 10 %.  Then runs the group level and says at how many observed lesion ages the cohort's true
trajectory (the paper's Table) lies inside the fitted 95% CI.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def compare_to_truth(bids_dir, output_dir):
    """Join every measured lesion table with its ground truth; returns one DataFrame."""
    frames = []
    for table_file in sorted(Path(output_dir).glob('sub-*/sub-*_lesions.tsv')):
        subject = table_file.name.split('_')[0]
        truth_file = (Path(bids_dir) / 'derivatives' / 'groundtruth' / subject
                      / f'{subject}_lesions.tsv')
        measured = pd.read_csv(table_file, sep='\t')
        truth = pd.read_csv(truth_file, sep='\t')
        merged = measured.merge(truth, on=['lesion_id', 'session_id'], suffixes=('', '_true'))
        merged['participant_id'] = subject
        frames.append(merged)
    table = pd.concat(frames, ignore_index=True)
    table['chi_rel_error_ppb'] = table.chi_rel_ppb - table.chi_rel_ppb_true
    table['volume_rel_error'] = (table.volume_mm3 - table.volume_mm3_true) / table.volume_mm3_true
    return table


def measurement_floor(root, out_dir):
    """Measure the true χ maps exactly as the chain measured its own; returns their table.

    Every visit's ground-truth Chimap (the mean of the fine grid over each GRE voxel, CSF = 0)
    is resampled to baseline with the chain's own transform, and the subject's lesion stage
    runs again with these maps in place of the chain's, from the inputs nipype cached in
    ``root/work``.  The lesion tables go to ``out_dir`` (``sub-XX/sub-XX_lesions.tsv``).
    """
    from nipype.utils.filemanip import loadpkl

    from lesionqsm.interfaces.lesions import LesionStatistics
    from lesionqsm.interfaces.registration import ApplyTransform

    root, out_dir = Path(root), Path(out_dir)
    truth = root / 'bids' / 'derivatives' / 'groundtruth'
    for subject_wf in sorted((root / 'work' / 'lesionqsm_wf').glob('sub_*_wf')):
        cached = subject_wf / 'lesion_statistics' / '_inputs.pklz'
        if not cached.exists():
            raise FileNotFoundError(f'{cached}: the lesion stage has not run in this work '
                                    'directory')
        inputs = loadpkl(cached)
        subject = inputs['participant_id']
        chi_files = []
        for session in inputs['session_ids']:
            node = subject_wf / f"{session.replace('-', '_')}_chi_to_baseline"
            resample = loadpkl(node / '_inputs.pklz')
            cwd = out_dir / subject / session
            cwd.mkdir(parents=True, exist_ok=True)
            true_chi = truth / subject / session / 'anat' / f'{subject}_{session}_Chimap.nii.gz'
            result = ApplyTransform(in_file=str(true_chi), reference=resample['reference'],
                                    in_matrix_file=resample['in_matrix_file'],
                                    interp=resample['interp'], engine=resample['engine'],
                                    ).run(cwd=str(cwd))
            chi_files.append(result.outputs.out_file)
        inputs = {k: v for k, v in inputs.items() if k != 'chi_files'}
        LesionStatistics(chi_files=chi_files, **inputs).run(cwd=str(out_dir / subject))
    return compare_to_truth(root / 'bids', out_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='demo')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--nprocs', type=int, default=2)
    parser.add_argument('--keep', type=Path, help='work in this folder and keep it')
    parser.add_argument('--config', type=Path,
                        help="the participant level's --config (JSON of algorithm options)")
    parser.add_argument('--degree', type=int, default=3, help='group model polynomial degree')
    parser.add_argument('--covariates', nargs='*', default=['baseline_volume'],
                        help='group model covariates')
    args = parser.parse_args(argv)

    from lesionqsm.cli import main as lesionqsm_main
    from lesionqsm.synth.cohort import generate_cohort

    root = args.keep or Path(tempfile.mkdtemp(prefix='lesionqsm_bench_'))
    bids, out, work = root / 'bids', root / 'derivatives', root / 'work'
    timings = {}
    start = time.perf_counter()
    if not (bids / 'dataset_description.json').exists():
        generate_cohort(bids, preset=args.preset, seed=args.seed)
    timings['synth'] = time.perf_counter() - start
    start = time.perf_counter()
    config = ['--config', str(args.config)] if args.config else []
    code = lesionqsm_main([str(bids), str(out), 'participant', '-w', str(work),
                           '--nprocs', str(args.nprocs), '--skip-bids-validation', *config])
    timings['participant'] = time.perf_counter() - start
    if code != 0:
        print(f'participant level failed (exit {code}); see {out}/logs', file=sys.stderr)
        return code
    table = compare_to_truth(bids, out)
    columns = ['participant_id', 'lesion_id', 'session_id', 'rim', 'lesion_age_years',
               'chi_rel_ppb_true', 'chi_rel_ppb', 'chi_rel_error_ppb', 'volume_mm3_true',
               'volume_mm3', 'volume_rel_error']
    with pd.option_context('display.width', 160, 'display.max_rows', 500):
        print(table[columns].round(2).to_string(index=False))
    print()
    print(f'preset {args.preset}, seed {args.seed}: {len(table)} lesion-visits')
    print(f'median |chi_rel error|      {np.median(np.abs(table.chi_rel_error_ppb)):.2f} ppb')
    print(f'median |volume rel. error|  {100 * np.median(np.abs(table.volume_rel_error)):.1f} %')
    floor = measurement_floor(root, root / 'floor')
    keys = ['participant_id', 'lesion_id', 'session_id']
    paired = table.merge(floor[keys + ['chi_rel_error_ppb']], on=keys, suffixes=('', '_floor'))
    excess = paired.chi_rel_error_ppb - paired.chi_rel_error_ppb_floor
    print(f'median |chi_rel error| of the true maps, measured the same way (the floor) '
          f'{np.median(np.abs(floor.chi_rel_error_ppb)):.2f} ppb')
    print(f'median |chi_rel error - floor| (the reconstruction\'s share) '
          f'{np.median(np.abs(excess)):.2f} ppb, mean {excess.mean():+.2f} ppb')
    start = time.perf_counter()
    code = lesionqsm_main([str(bids), str(out), 'group', '--skip-bids-validation',
                           '--poly-degree', str(args.degree), '--covariates',
                           *args.covariates])
    timings['group'] = time.perf_counter() - start
    for stage, seconds in timings.items():
        print(f'time {stage:12s} {seconds:8.1f} s')
    if code != 0:
        print(f'group level failed (exit {code}); see {out}/logs', file=sys.stderr)
        return code
    print()
    print(trajectory_coverage(out / 'group' / 'group_desc-chi_fittedmeans.tsv').to_string(
        index=False))
    return 0


def trajectory_coverage(fitted_means_tsv):
    """The paper's trajectory (the synth cohort's population mean) against the fitted means.

    Only ages inside the observed range of each rim group are compared (``extrapolated`` rows
    are left out).
    """
    from lesionqsm.synth.trajectory import mean_susceptibility_ppb

    fitted = pd.read_csv(fitted_means_tsv, sep='\t')
    fitted = fitted[fitted.rim.isin(['positive', 'negative'])
                    & ~fitted.extrapolated.astype(str).str.lower().eq('true')].copy()
    fitted['truth_ppb'] = [float(mean_susceptibility_ppb(a, r))
                           for a, r in zip(fitted.age_years, fitted.rim, strict=True)]
    fitted['covered'] = (fitted.ci_low <= fitted.truth_ppb) & (fitted.truth_ppb <= fitted.ci_high)
    print(f'true trajectory inside the 95% CI at {fitted.covered.sum()} of {len(fitted)} '
          'observed ages')
    return fitted[['age_years', 'rim', 'truth_ppb', 'estimate', 'ci_low', 'ci_high', 'covered']]


if __name__ == '__main__':
    sys.exit(main())
