"""MEDI's CG tolerance: steps, time and distance to the MEDI toolbox's own iteration.

Run: ``.venv/bin/python benchmarks/bench_cg_tolerance.py [--visit-size 256x256x48]
[--tolerances 0.01 0.03 0.05 0.1]``

The MEDI toolbox solves each Gauss-Newton step by conjugate gradients without a
preconditioner, asking for a relative residual of 0.01 but stopping after 100 steps.  On a
real-sized visit the cap comes first, so its χ is that of a looser, uneven tolerance.  This
benchmark captures the dipole-inversion problem of one 10-echo visit (the head of
``bench_qsm_stages_a.py``, the default chain up to MEDI+0), solves it the toolbox's way (no
preconditioner, 100 steps at most, 0.01) and with lesionqsm's k-space preconditioner at each
tolerance, and prints per run the CG steps of each Gauss-Newton step, the relative residual
reached, the wall time (also as a ratio to one real FFT pair of the matrix, measured in the
same run) and the rms and 99th percentile of the χ difference to the toolbox-style χ and to
the tightest tolerance's χ (ppb, over the voxels with χ).
"""

import argparse
import time

import numpy as np
from bench_qsm_stages_a import fft_pair_seconds, head

from lesionqsm.qsm import medi
from lesionqsm.qsm.pipeline import reconstruct_session


def capture_problem(shape, n_echoes=10):
    """The arguments the default chain passes to MEDI+0 on one visit."""
    echo_times = 0.004 * np.arange(1, n_echoes + 1)
    signal, affine, _ = head(shape, echo_times=echo_times)
    captured = {}
    original = medi._run

    def capture(*args, **kwargs):
        captured['args'], captured['kwargs'] = args, dict(kwargs)
        return original(*args, **kwargs)

    medi._run = capture
    try:
        reconstruct_session(signal, echo_times, field_strength=3.0, affine=affine,
                            options={'max_gn_iter': 1, 'cg_max_iter': 1})
    finally:
        medi._run = original
    return captured['args'], captured['kwargs']


def solve(args, kwargs, *, cg_tol, precondition):
    kwargs = dict(kwargs, cg_tol=cg_tol, max_gn_iter=10, cg_max_iter=100)
    previous = medi.PRECONDITION
    medi.PRECONDITION = precondition
    try:
        start = time.perf_counter()
        chi, info = medi._run(*args, **kwargs)
        return chi, info, time.perf_counter() - start
    finally:
        medi.PRECONDITION = previous


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--visit-size', default='256x256x48')
    parser.add_argument('--tolerances', type=float, nargs='+', default=[0.01, 0.03, 0.05, 0.1])
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.visit_size.split('x'))
    problem_args, problem_kwargs = capture_problem(shape)
    reference = fft_pair_seconds(shape)
    runs = [('toolbox (no preconditioner, cap 100)', 0.01, False)] + [
        (f'preconditioned, tol {tol:g}', tol, True) for tol in sorted(args.tolerances)]
    results = []
    for name, tol, precondition in runs:
        chi, info, seconds = solve(problem_args, problem_kwargs, cg_tol=tol,
                                   precondition=precondition)
        results.append((name, chi, info, seconds))
    toolbox, tightest = results[0][1], results[1][1]
    where = (toolbox != 0) & (tightest != 0)

    def distance(a, b):
        d = 1e3 * (a - b)[where]
        return float(np.sqrt(np.mean(d ** 2))), float(np.percentile(np.abs(d), 99))

    print(f'visit {args.visit_size}; reference: one real FFT pair, {reference * 1e3:.0f} ms')
    print(f"{'run':<38}{'CG steps':>9}{'time (s)':>10}{'(FFT)':>7}{'to toolbox rms/p99':>21}"
          f"{'to tightest rms/p99':>21}")
    for name, chi, info, seconds in results:
        rms_t, p99_t = distance(chi, toolbox)
        rms_p, p99_p = distance(chi, tightest)
        print(f"{name:<38}{sum(info['cg_iterations']):>9}{seconds:>10.1f}"
              f"{seconds / reference:>7.0f}{rms_t:>12.2f} /{p99_t:>6.2f}"
              f"{rms_p:>14.2f} /{p99_p:>6.2f}")
        print(f"{'':<4}CG per GN step {info['cg_iterations']}, relative residual reached "
              f"{[round(r, 3) for r in info['cg_relative_residual']]}")


if __name__ == '__main__':
    main()
