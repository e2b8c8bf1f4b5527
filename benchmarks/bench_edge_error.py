"""Where the χ error of the default chain sits: per voxel layer from the brain mask's edge.

Run: ``.venv/bin/python benchmarks/bench_edge_error.py [--phantom 1.5mm-3T-skull-snr100]``
(needs the test extra: qsm-forward)

On one independent phantom (``tests/qsm/independent_phantom.py``) it runs the default chain
from the echoes and prints, per layer of the chain's brain mask (layer 1 is the outermost, lost
to the edge-aware SMV), the mean and rms χ error against the simulator's truth (ppb) and the
layer's share of the squared error.  Then it separates background removal from inversion:
MEDI+0 with the same edge-aware SMV, and plain MEDI+0, given the *true* local field of the
chain's mask (the field of the true χ inside it); and, per layer, the rms of what PDF leaves
(its local field minus the true one) before and after the edge-aware high-pass ``H``, beside
``H`` of the true local field and ``H`` of the true background field (rad per ΔTE).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'qsm'))
import independent_phantom as ip  # noqa: E402

from lesionqsm.qsm import background_methods, medi, vsmv  # noqa: E402
from lesionqsm.qsm.geometry import b0_direction  # noqa: E402
from lesionqsm.qsm.pipeline import reconstruct_session  # noqa: E402

LAYERS = (2, 3, 4, 5, 6)


def layer_errors(chi, chi_mask, truth, tissue, layer):
    """NRMSE and per-layer (mean, rms, share of squared error) of ``chi - truth``, ppb."""
    kept = tissue & chi_mask
    err = (chi - truth) * 1e3
    total = float(np.sum(err[kept] ** 2))
    rows = {}
    for name, sel in [(str(n), kept & (layer == n)) for n in LAYERS] + [
            (f'>{LAYERS[-1]}', kept & (layer > LAYERS[-1]))]:
        e = err[sel]
        rows[name] = (float(e.mean()), float(np.sqrt(np.mean(e ** 2))),
                      float(np.sum(e ** 2)) / total)
    nrmse = float(np.linalg.norm(err[kept]) / np.linalg.norm(1e3 * truth[kept]))
    return nrmse, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phantom', default='1.5mm-3T-skull-snr100',
                        choices=sorted(ip.TEST_PHANTOMS))
    parser.add_argument('--tilt-deg', type=float, default=0.0,
                        help='oblique acquisition: slices tilted by this angle (degrees)')
    args = parser.parse_args(argv)
    ph = ip.simulate(tempfile.mkdtemp(prefix='bench_edge_'), **ip.TEST_PHANTOMS[args.phantom],
                     tilt_deg=args.tilt_deg)
    r = reconstruct_session(ph.signal, ph.echo_times, field_strength=ph.field_strength,
                            affine=ph.affine)
    voxel, truth, labels = ph.voxel_size, ph.chi, ph.labels
    mask = r.brain_mask
    tissue = ip.scored_tissue(mask, labels)
    layer = ndi.distance_transform_cdt(mask, metric='taxicab')
    true_local = ip.true_field_rad(ph, mask, r.delta_te)
    radius = vsmv.radius_map(mask, voxel,
                             max_radius_mm=background_methods.EDGE_SMV_MAX_RADIUS_MM,
                             n_spheres=background_methods.EDGE_SMV_SPHERES)
    common = dict(noise_std=r.noise_std, csf_mask=r.csf_mask, field_strength=ph.field_strength,
                  delta_te=r.delta_te, b0_dir=b0_direction(ph.affine))
    runs = [('default chain', r.chi_ppm, r.local_mask)]
    chi, info = medi.medi_plus_zero(true_local, mask, r.magnitude, voxel, smv_radius_mm=radius,
                                    **common)
    runs.append(('true local field, edge-aware SMV', chi, info['mask']))
    chi, info = medi.medi_plus_zero(true_local, mask, r.magnitude, voxel, **common)
    runs.append(('true local field, plain MEDI+0', chi, info['mask']))

    print(f'{args.phantom}: {ph.description}')
    for name, chi, chi_mask in runs:
        nrmse, rows = layer_errors(chi, chi_mask, truth, tissue, layer)
        print(f'\n{name}: NRMSE {nrmse:.3f}')
        print(f"{'layer':>7}{'mean':>8}{'rms':>8}{'share':>8}")
        for key, (mean, rms, share) in rows.items():
            print(f'{key:>7}{mean:>8.1f}{rms:>8.1f}{share:>8.2f}')

    smv = vsmv.EdgeAwareSMV.from_radius_map(radius, voxel)
    left = np.where(mask, r.local_field_rad - true_local, 0).astype(np.float32)
    true_background = ip.true_field_rad(ph, mask, r.delta_te, sources='outside')
    high_left, high_true = smv.apply(left), smv.apply(true_local)
    high_background = smv.apply(true_background)
    print('\nwhat PDF leaves, rms (rad per echo spacing); H of the true background (the field '
          'of the true χ outside the mask) shows what H alone would leave')
    print(f"{'layer':>7}{'before H':>10}{'after H':>10}{'H true':>10}{'H bg':>10}")
    for n in LAYERS:
        sel = smv.kept & (layer == n)

        def rms(x, sel=sel):
            return float(np.sqrt(np.mean(x[sel] ** 2)))

        print(f'{n:>7}{rms(left):>10.4f}{rms(high_left):>10.4f}{rms(high_true):>10.4f}'
              f'{rms(high_background):>10.4f}')


if __name__ == '__main__':
    main()
