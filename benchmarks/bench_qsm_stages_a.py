"""Time the QSM part-A stages (fit, unwrapping, masks, R2*, CSF) at three matrix sizes.

Run: ``.venv/bin/python benchmarks/bench_qsm_stages_a.py [--chain] [--sizes 64x64x24 ...]``

Prints one table row per stage and size, wall-clock seconds (best of ``--repeat``).  The data
are an ellipsoidal head (air at +9.4 ppm around a skull, brain, ventricles, deep grey nuclei)
filling a 240 × 240 × 144 mm field of view, 3 T, 6 echoes (ΔTE = 4 ms), SNR 100, so the
background field wraps as in real data.  The plain heap-ordered region growing is timed at
the smallest size only (it is a Python loop) and its result compared with the bucket queue's.
``--chain`` also times :func:`lesionqsm.qsm.pipeline.reconstruct_session` (PDF + MEDI+0 with
the default tolerances), per stage.

``--visit`` times one 256 × 256 × 48, 10-echo visit through the whole chain, per stage, with
the default background removal (:data:`lesionqsm.qsm.background_methods.DEFAULT_METHOD`:
cropped PDF at tolerance 0.01 and the edge-aware SMV in MEDI+0) and, in the same run, with the
previous one (PDF on the padded field of view at tolerance 1e-3, plain MEDI+0); every time is
also given as a ratio to a plain reference measured in the same run (one real FFT pair of the
visit's matrix), so that runs on machines of different speed or load can be compared.
"""

import argparse
import time

import numpy as np
import scipy.fft

from lesionqsm.qsm import csf, masking, multiecho, r2star, unwrap
from lesionqsm.qsm.constants import GAMMA_HZ
from lesionqsm.qsm.dipole import forward_field
from lesionqsm.qsm.pipeline import reconstruct_session

FOV_MM = (240.0, 240.0, 144.0)
ECHO_TIMES = 0.004 * np.arange(1, 7)


def head(shape, *, field_strength=3.0, snr=100.0, seed=0, echo_times=ECHO_TIMES):
    """Complex echoes, affine and voxel size of an ellipsoidal head filling the FOV."""
    rng = np.random.default_rng(seed)
    voxel = tuple(f / n for f, n in zip(FOV_MM, shape, strict=True))
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel,
                                                                             strict=True)],
                        indexing='ij', sparse=True)

    def inside(centre, axes):
        return sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, axes,
                                                         strict=True)) <= 1

    chi = np.full(shape, 9.4, np.float32)        # air
    r2s = np.zeros(shape, np.float32)
    rho = np.zeros(shape, np.float32)
    for axes, x, r, p in (((100, 112, 80), 0.0, 40, 0.9),      # scalp
                          ((94, 106, 74), -2.0, 300, 0.04),    # skull
                          ((87, 99, 67), -0.03, 20, 0.75)):    # brain
        region = inside((0, 0, 0), axes)
        chi[region], r2s[region], rho[region] = x, r, p
    for centre, axes, x, r in (((-18, 14, 8), (5, 10, 8), 0.06, 25),
                               ((18, 14, 8), (5, 10, 8), 0.06, 25),
                               ((-22, -10, 0), (4, 6, 6), 0.15, 45),
                               ((22, -10, 0), (4, 6, 6), 0.15, 45),
                               ((-8, 8, 12), (5, 20, 8), 0.0, 2),
                               ((8, 8, 12), (5, 20, 8), 0.0, 2)):
        region = inside(centre, axes)
        chi[region], r2s[region], rho[region] = x, r, 0.8
    field = forward_field(chi, voxel, pad=True)
    freq = GAMMA_HZ * field_strength * field * 1e-6
    signal = np.empty(shape + (len(echo_times),), np.complex64)
    sigma = 0.75 / snr
    for n, te in enumerate(echo_times):
        signal[..., n] = (rho * np.exp(-r2s * te) * np.exp(1j * (0.3 + 2 * np.pi * freq * te))
                          + sigma * (rng.standard_normal(shape)
                                     + 1j * rng.standard_normal(shape)))
    affine = np.diag(list(voxel) + [1.0])
    return signal, affine, voxel


def best_of(repeat, func, *args, **kwargs):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_size(shape, repeat, chain):
    signal, affine, voxel = head(shape)
    magnitude = np.abs(signal)
    rss = np.sqrt(np.sum(magnitude**2, axis=-1))
    rows = {}
    rows['brain mask'], mask = best_of(repeat, masking.brain_mask_from_magnitude, rss, voxel)
    rows['multi-echo complex fit'], fit = best_of(repeat, multiecho.fit_multiecho_complex,
                                                  signal, ECHO_TIMES, mask=mask)
    rows['unwrap region growing'], grown = best_of(repeat, unwrap.unwrap_region_growing,
                                                   fit.field_rad, rss, mask=mask)
    rows['unwrap Laplacian (DCT)'], _ = best_of(repeat, unwrap.unwrap_laplacian,
                                                fit.field_rad, voxel)
    rows['R2* ARLO'], r2s = best_of(repeat, r2star.r2star_arlo, magnitude, ECHO_TIMES,
                                    mask=mask)
    rows['R2* log-linear'], _ = best_of(repeat, r2star.r2star_loglinear, magnitude,
                                        ECHO_TIMES, mask=mask)
    rows['CSF mask'], csf_result = best_of(repeat, csf.ventricular_csf_mask, r2s, mask, voxel)
    notes = [f'{int(mask.sum())} brain voxels, reference {csf_result.reference}']
    if np.prod(shape) <= 64 * 64 * 24:
        rows['unwrap heap (reference)'], heap = best_of(1, unwrap.unwrap_region_growing_heap,
                                                        fit.field_rad, rss, mask=mask)
        ratio = rows['unwrap heap (reference)'] / rows['unwrap region growing']
        same = np.mean(np.abs(heap - grown)[mask] < 1e-4)
        notes.append(f'heap/bucket time ratio {ratio:.1f}, identical at {100 * same:.2f} % '
                     'of brain voxels')
    if chain:
        result = reconstruct_session(signal, ECHO_TIMES, field_strength=3.0, affine=affine)
        for key, value in result.timings.items():
            rows[f'chain: {key}'] = value
        notes.append(f"chain MEDI+0 CG iterations {_find(result.metadata, 'cg_iterations')}")
    return rows, notes


def fft_pair_seconds(shape, repeat=5):
    """The plain reference: best time of one float32 real FFT pair of ``shape``."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        scipy.fft.irfftn(scipy.fft.rfftn(x, workers=-1), s=shape, workers=-1)
        best = min(best, time.perf_counter() - start)
    return best


def bench_visit(shape=(256, 256, 48), n_echoes=10):
    """Per-stage times of the whole chain on one visit: default and previous default (PDF)."""
    echo_times = 0.004 * np.arange(1, n_echoes + 1)
    signal, affine, voxel = head(shape, echo_times=echo_times)
    reference = fft_pair_seconds(shape)
    result = reconstruct_session(signal, echo_times, field_strength=3.0, affine=affine)
    new = result.timings
    old_result = reconstruct_session(signal, echo_times, field_strength=3.0, affine=affine,
                                     options={'background': 'pdf'})
    old = old_result.timings
    print(f'visit {"x".join(map(str, shape))}, {n_echoes} echoes, voxel '
          f'{"x".join(f"{v:.2f}" for v in voxel)} mm, {int(result.brain_mask.sum())} brain '
          f'voxels; reference: one real FFT pair of the matrix, {reference * 1e3:.0f} ms')
    header = (f"{'stage':<16}{'default (s)':>12}{'(FFT)':>8}{'pdf (s)':>10}"
              f"{'(FFT)':>8}{'pdf/default':>13}")
    print(header)
    print('-' * len(header))
    for stage in new:
        t_new, t_old = new[stage], old.get(stage, float('nan'))
        print(f'{stage[:-2]:<16}{t_new:>12.2f}{t_new / reference:>8.0f}{t_old:>10.2f}'
              f'{t_old / reference:>8.0f}{t_old / t_new:>13.2f}')
    for name, r in (('default', result), ('pdf', old_result)):
        print(f"{name}: background {_find(r.metadata, 'background_info')}; MEDI CG "
              f"{_find(r.metadata, 'cg_iterations')}")


def _find(tree, key):
    """First value of ``key`` anywhere in a nested dict/list (the chain's metadata)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        values = tree.values()
    elif isinstance(tree, list):
        values = tree
    else:
        return None
    for value in values:
        found = _find(value, key)
        if found is not None:
            return found
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', default=['64x64x24', '128x128x48', '256x256x48'])
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--chain', action='store_true', help='also time reconstruct_session')
    parser.add_argument('--visit', action='store_true',
                        help='only time the whole chain on one 10-echo visit')
    parser.add_argument('--visit-size', default='256x256x48', help='matrix of --visit')
    args = parser.parse_args(argv)
    if args.visit:
        bench_visit(tuple(int(v) for v in args.visit_size.split('x')))
        return
    shapes = [tuple(int(v) for v in s.split('x')) for s in args.sizes]
    results, notes = {}, {}
    for shape in shapes:
        results[shape], notes[shape] = bench_size(shape, args.repeat, args.chain)
    stages = list(dict.fromkeys(k for r in results.values() for k in r))
    header = f"{'stage (s)':<28}" + ''.join(f"{'x'.join(map(str, s)):>14}" for s in shapes)
    print(header)
    print('-' * len(header))
    for stage in stages:
        cells = ''.join(f'{results[s][stage]:>14.2f}' if stage in results[s] else f"{'':>14}"
                        for s in shapes)
        print(f'{stage:<28}{cells}')
    for shape in shapes:
        print(f"{'x'.join(map(str, shape))}: " + '; '.join(notes[shape]))


if __name__ == '__main__':
    main()
