"""Background-field removal methods compared on phantoms made by an independent simulator.

Run: ``.venv/bin/python benchmarks/bench_background_methods.py [--phantoms 3t ...]
[--methods pdf_edge_smv medi_toolbox ...] [--options JSON]``  (needs the test extra: qsm-forward)

Each phantom is simulated by qsm-forward (``tests/qsm/independent_phantom.py``); for every
method of :func:`lesionqsm.qsm.background_methods.remove_background` the chain runs from the
echoes with its own brain mask (``independent_phantom.run_chain``:
:func:`lesionqsm.qsm.reconstruct_session` with ``background`` set to the method, everything
else default).  One row per method: ROI slope (nuclei and
lesions relative to WM), median / max lesion |error| and juxtacortical median (ppb), NRMSE
over the voxels with χ and over the whole brain mask (χ = 0 where a method gave none), voxels
and layers of the brain mask lost, seconds of background removal and of inversion.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'qsm'))
import independent_phantom as ip  # noqa: E402

from lesionqsm.qsm import background_methods  # noqa: E402

PHANTOMS = dict(ip.TEST_PHANTOMS)
PHANTOMS.update({
    '1.5mm-3T-skull-snr50': dict(voxel_size=(1.5, 1.5, 1.5), field_strength=3.0,
                                 air_skull=True, peak_snr=50.0, n_echoes=10, scale=0.75,
                                 seed=4),
    '1mm-7T-skull-snr200': dict(voxel_size=(1.0, 1.0, 1.0), field_strength=7.0,
                                air_skull=True, peak_snr=200.0, n_echoes=6, scale=0.75,
                                seed=5),
})


def run_phantom(name, methods, options=None):
    ph = ip.simulate(tempfile.mkdtemp(prefix='bench_bg_'), **PHANTOMS[name])
    rows = []
    for method in methods:
        chi, chi_mask, brain_mask, timings, r = ip.run_chain(ph, method, options=options)
        s = ip.score(chi, chi_mask, brain_mask, ph)
        rows.append((method, s, timings['background_s'], timings['inversion_s'],
                     int(r.reliable_mask.sum())))
    return ph, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phantoms', nargs='+', default=['1.5mm-3T-skull-snr100'],
                        choices=sorted(PHANTOMS))
    parser.add_argument('--methods', nargs='+', default=list(background_methods.METHODS),
                        choices=background_methods.METHODS)
    parser.add_argument('--options', type=json.loads, default={},
                        help='other qsm options for every row, as JSON, e.g. '
                             '\'{"merit": true, "edge_smv_max_radius_mm": 15}\'')
    args = parser.parse_args(argv)
    header = (f"{'method':<14}{'slope':>7}{'med':>7}{'max':>7}{'juxta':>7}{'NRMSE':>7}"
              f"{'NRMSE*':>8}{'lost':>7}{'layers':>7}{'bg s':>7}{'inv s':>7}")
    for name in args.phantoms:
        ph, rows = run_phantom(name, args.methods, args.options)
        print(f'\n{name}: {ph.description} {args.options or ""}')
        print(header)
        print('-' * len(header))
        for method, s, t_bg, t_inv, _ in rows:
            print(f"{method:<14}{s['slope']:>7.3f}{s['median_lesion']:>7.2f}"
                  f"{s['max_lesion']:>7.2f}{s['median_juxtacortical']:>7.2f}"
                  f"{s['nrmse']:>7.3f}{s['nrmse_brain']:>8.3f}{s['voxels_lost']:>7d}"
                  f"{s['layers_lost']:>7d}{t_bg:>7.1f}{t_inv:>7.1f}")
        print('lesion errors (ppb): ' + '; '.join(
            f'{m}: ' + ' '.join(f'{e:+.2f}' for e in s['lesion_errors']) for m, s, *_ in rows))
        print('lesion kinds: ' + ' '.join(rows[0][1]['lesion_kinds']))
    print('\nmed/max: median/max lesion |error|; juxta: median over juxtacortical lesions (ppb);'
          ' NRMSE over the voxels with χ, NRMSE* over the whole brain mask (0 where no χ).')


if __name__ == '__main__':
    main()
