"""Group-model benchmarks: fit time by cohort size, and bias / CI coverage over seeds.

    .venv/bin/python benchmarks/bench_stats.py                 # both tables
    .venv/bin/python benchmarks/bench_stats.py --sizes 32 1000 --seeds 0

Table 1: REML fit time of the degree-8 susceptibility model (5 covariates, random intercepts
per patient and per lesion within patient) at 32, 1,000 and 10,000 lesions x 5 visits
(patients = lesions x 19/32, the paper's ratio), plus the time of the LRTs (4 ML refits).
Table 2: over ``--seeds`` simulated cohorts of 240 lesions in 100 patients, the mean error
(bias) of each covariate coefficient and of the fitted means at the paper's Table ages, with
its Monte-Carlo standard error, and the 95 % CI coverage.
"""

import argparse
import time
import warnings

import numpy as np

from lesionqsm.stats.growth_curve import fit_growth_curve, likelihood_ratio_tests
from lesionqsm.synth.lesion_table import simulate_lesion_table
from lesionqsm.synth.trajectory import mean_susceptibility_ppb


def timing(sizes, with_lrt):
    print('| lesions | patients | visits | simulate (s) | REML fit (s) | LRTs (s) | singular |')
    print('|--------:|---------:|-------:|-------------:|-------------:|---------:|:--------:|')
    for n in sizes:
        t0 = time.perf_counter()
        lesions, participants, _ = simulate_lesion_table(
            n_patients=max(3, round(n * 19 / 32)), n_lesions=n, visits_per_lesion=5,
            n_rim_positive=n // 2, rng=np.random.default_rng(n))
        t1 = time.perf_counter()
        fit = fit_growth_curve(lesions, participants)
        t2 = time.perf_counter()
        lrt = f'{0:.1f}'
        if with_lrt:
            likelihood_ratio_tests(fit)
            lrt = f'{time.perf_counter() - t2:.1f}'
        print(f"| {n} | {participants.shape[0]} | {len(lesions)} | {t1 - t0:.1f} | "
              f'{t2 - t1:.1f} | {lrt} | {fit.singular} |', flush=True)


def bias(n_seeds):
    errors, covered, beta_err = [], [], {}
    for seed in range(n_seeds):
        lesions, participants, truth = simulate_lesion_table(
            n_patients=100, n_lesions=240, visits_per_lesion=5,
            rng=np.random.default_rng(1000 + seed))
        fit = fit_growth_curve(lesions, participants)
        table = fit.fitted_means()
        table = table[table['rim'] != 'difference']
        true = np.array([mean_susceptibility_ppb(a, r)
                         for a, r in zip(table['age_years'], table['rim'], strict=True)])
        errors.append(table['estimate'].to_numpy() - true)
        covered.append((table['ci_low'].to_numpy() <= true) & (true <= table['ci_high']))
        coef = fit.coefficient_table().set_index('term')
        for name, value in truth['beta'].items():
            beta_err.setdefault(name, []).append(
                (coef.loc[name, 'estimate'] - value, coef.loc[name, 'ci_low'] <= value
                 <= coef.loc[name, 'ci_high']))
    errors, covered = np.array(errors), np.array(covered)
    print(f'\nBias over {n_seeds} seeds (240 lesions, 100 patients, 5 visits each)\n')
    print('| quantity | true | bias | MC s.e. | 95% CI coverage |')
    print('|---|---:|---:|---:|---:|')
    for name, rows in beta_err.items():
        e = np.array([r[0] for r in rows])
        c = np.mean([r[1] for r in rows])
        print(f"| beta {name} | {truth['beta'][name]:g} | {e.mean():.2e} | "
              f'{e.std(ddof=1) / np.sqrt(len(e)):.1e} | {c:.2f} |')
    for k, (age, rim) in enumerate(zip(table['age_years'], table['rim'], strict=True)):
        e = errors[:, k]
        print(f'| mean chi {rim} {age:g} y (ppb) | {mean_susceptibility_ppb(age, rim):.2f} | '
              f'{e.mean():+.3f} | {e.std(ddof=1) / np.sqrt(len(e)):.3f} | '
              f'{covered[:, k].mean():.2f} |')
    print(f'\nOverall fitted-mean coverage: {covered.mean():.3f} (nominal 0.95)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='*', default=[32, 1000, 10000])
    parser.add_argument('--seeds', type=int, default=30, help='0 skips the bias table')
    parser.add_argument('--no-lrt', action='store_true', help='skip timing the LRTs')
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    if args.sizes:
        timing(args.sizes, not args.no_lrt)
    if args.seeds:
        bias(args.seeds)


if __name__ == '__main__':
    main()
