"""Accuracy of the whole chain (:func:`reconstruct_session`) on the analytic head phantom.

Run: ``.venv/bin/python benchmarks/bench_qsm_chain_accuracy_a.py [--voxel 1.5] [--scale 1.0]``

The phantom is the one of ``tests/qsm/_phantoms_a.py``: 3 T, 5 echoes (ΔTE = 5 ms), SNR 100,
air at +9.4 ppm around a skull, WM -30 ppb, caudate 60, putamen 80, pallidum 150 ppb, five
lesions -10 to +50 ppb from WM, CSF = 0.  Prints per-ROI truth and estimate (ppb; lesions
relative to WM), the ROI regression slope (nuclei and lesions), the median lesion |error| and
the whole-brain NRMSE, for each background/inversion combination asked for.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'qsm'))
from _phantoms_a import CSF, WM, head_phantom  # noqa: E402

from lesionqsm.qsm.pipeline import reconstruct_session  # noqa: E402

NAMES = {5: 'caudate', 6: 'putamen', 7: 'pallidum'}


def evaluate(phantom, result):
    chi, mask = result.chi_ppm, result.local_mask
    wm = float(np.median(chi[(phantom.labels == WM) & mask]))
    rows = [('white matter', -30.0, 1e3 * wm)]
    for label, region in phantom.nuclei.items():
        rows.append((NAMES[label], 1e3 * float(phantom.chi[region].mean()),
                     1e3 * float(chi[region & mask].mean())))
    lesions = []
    for i, (region, dchi) in enumerate(zip(phantom.lesions, phantom.lesion_chi, strict=True)):
        estimate = 1e3 * (float(chi[region & mask].mean()) - wm)
        lesions.append((f'lesion {i + 1} (vs WM, {int(region.sum())} vox)', 1e3 * dchi,
                        estimate))
    x = [t for _, t, _ in rows[1:]] + [t - 30.0 for _, t, _ in lesions]
    y = [e for _, _, e in rows[1:]] + [e + 1e3 * wm for _, _, e in lesions]
    slope = np.polyfit(x, y, 1)[0]
    median_lesion = float(np.median([abs(e - t) for _, t, e in lesions]))
    brain = mask & (phantom.labels != CSF)
    truth = phantom.chi - 0.0   # CSF = 0 already
    nrmse = float(np.linalg.norm((chi - truth)[brain]) / np.linalg.norm(truth[brain]))
    csf_mean = float(np.mean(chi[result.csf_mask], dtype=np.float64)) * 1e3
    return rows + lesions, slope, median_lesion, nrmse, csf_mean


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
    options = {} if args.background_tol is None else {'tol': args.background_tol}
    for method in args.methods:
        background, inversion = method.split(':')
        start = time.perf_counter()
        result = reconstruct_session(phantom.signal, te, field_strength=3.0,
                                     affine=phantom.affine, background=background,
                                     inversion=inversion, background_options=options)
        elapsed = time.perf_counter() - start
        rows, slope, median_lesion, nrmse, csf_mean = evaluate(phantom, result)
        print(f'\n{background} + {inversion} {options}: {elapsed:.1f} s, reference '
              f'{result.reference}, background {result.parameters["background_info"]}')
        print(f"{'ROI':<32}{'truth ppb':>10}{'chi ppb':>10}{'error':>8}")
        for name, truth, estimate in rows:
            print(f'{name:<32}{truth:>10.1f}{estimate:>10.1f}{estimate - truth:>8.1f}')
        print(f'ROI slope {slope:.3f}; median lesion |error| {median_lesion:.2f} ppb; '
              f'whole-brain NRMSE {nrmse:.3f}; CSF mean {csf_mean:.2e} ppb')
        print('timings (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in result.timings.items()))


if __name__ == '__main__':
    main()
