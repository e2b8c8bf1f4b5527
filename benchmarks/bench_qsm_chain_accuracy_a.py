"""Accuracy of the whole chain (:func:`reconstruct_session`) on the analytic head phantom.

Run: ``.venv/bin/python benchmarks/bench_qsm_chain_accuracy_a.py [--voxel 1.5] [--scale 1.0]``

The phantom is :func:`lesionqsm.synth.head_phantom.head_phantom`: 3 T, 5 echoes
(ΔTE = 5 ms), SNR 100, air at +9.4 ppm around a skull, WM -30 ppb, caudate 60, putamen 80,
pallidum 150 ppb, five lesions -10 to +50 ppb from WM, CSF = 0.  Prints per-ROI truth and
estimate (ppb; lesions relative to WM), the ROI regression slope (nuclei and lesions), the
median lesion |error| and the whole-brain NRMSE, for each background/inversion combination
asked for.
"""

import argparse
import time

import numpy as np

from lesionqsm.qsm import reconstruct_session
from lesionqsm.synth.head_phantom import NUCLEI, head_phantom, roi_errors


def evaluate(phantom, result):
    e = roi_errors(result.chi_ppm, phantom, mask=result.local_mask)
    rows = [('white matter', float(e['wm_true']), float(e['wm_est']))]
    rows += list(zip(NUCLEI, e['nuclei_true'], e['nuclei_est'], strict=True))
    lesions = [(f'lesion {i + 1} (vs WM, {int(region.sum())} vox)', t, est)
               for i, (region, t, est) in enumerate(zip(phantom.lesions, e['lesion_true'],
                                                        e['lesion_est'], strict=True))]
    x = np.r_[e['nuclei_true'], e['lesion_true'] + e['wm_true']]
    y = np.r_[e['nuclei_est'], e['lesion_est'] + e['wm_est']]
    slope = np.polyfit(x, y, 1)[0]
    median_lesion = float(np.median(np.abs(e['lesion_est'] - e['lesion_true'])))
    csf_mean = float(np.mean(result.chi_ppm[result.csf_mask], dtype=np.float64)) * 1e3
    return rows + lesions, slope, median_lesion, e['nrmse'], csf_mean


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--voxel', type=float, default=1.5, help='isotropic voxel size, mm')
    parser.add_argument('--scale', type=float, default=1.0, help='anatomy scale')
    parser.add_argument('--methods', nargs='+', default=['pdf:medi+0'],
                        help='background:inversion pairs, e.g. pdf:medi+0 lbv:tkd')
    parser.add_argument('--background-tol', type=float, default=None,
                        help="tolerance of PDF/LBV's CG (default: theirs)")
    args = parser.parse_args(argv)
    te = 0.005 * np.arange(1, 6)
    phantom = head_phantom((args.voxel,) * 3, scale=args.scale, echo_times=te, snr=100.0)
    print(f'phantom {phantom.chi.shape} at {args.voxel} mm, scale {args.scale}')
    extra = {} if args.background_tol is None else {'background_tol': args.background_tol}
    for method in args.methods:
        background, inversion = method.split(':')
        options = {'background': background, 'inversion': inversion, **extra}
        start = time.perf_counter()
        result = reconstruct_session(phantom.signal, te, field_strength=3.0,
                                     affine=phantom.affine, options=options)
        elapsed = time.perf_counter() - start
        rows, slope, median_lesion, nrmse, csf_mean = evaluate(phantom, result)
        decisions = result.metadata['Decisions']
        print(f'\n{options}: {elapsed:.1f} s, reference {result.reference}, '
              f'background {decisions["background_info"]}')
        print(f"{'ROI':<32}{'truth ppb':>10}{'chi ppb':>10}{'error':>8}")
        for name, truth, estimate in rows:
            print(f'{name:<32}{truth:>10.1f}{estimate:>10.1f}{estimate - truth:>8.1f}')
        print(f'ROI slope {slope:.3f}; median lesion |error| {median_lesion:.2f} ppb; '
              f'whole-brain NRMSE {nrmse:.3f}; CSF mean {csf_mean:.2e} ppb')
        print('timings (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in result.timings.items()))


if __name__ == '__main__':
    main()
