"""Where the default chain's χ error comes from: noise, background removal or the inversion.

Run: ``.venv/bin/python benchmarks/bench_error_budget.py [--phantoms 0.6x0.6x2mm-3T-snr50 ...]
[--noise-seeds 3]``  (needs the test extra: qsm-forward)

On each independent phantom (``tests/qsm/independent_phantom.py``) the default chain runs from
the echoes; then its inversion step (:func:`lesionqsm.qsm.inversion.invert_dipole`, with the
chain's own mask, magnitude, noise map, CSF region and the edge-aware SMV and outside sources
its background step prescribes) runs again on fields where one source of error at a time is
replaced by the truth:

``true local field``
    The field of the true χ inside the chain's brain mask, noise-free: the error the
    inversion's model and regularisation make by themselves.
``true local, plain MEDI+0``
    The same field, inverted by MEDI+0 without the edge-aware SMV and the outside sources
    (nothing is left to remove): what the default's model of the residual background costs.
``true local + noise``
    The same plus white Gaussian noise with the chain's own per-voxel noise estimate
    (``noise_std`` of the multi-echo fit), one row per seed: the error at this SNR with a
    perfect background removal.  A target this row misses cannot be met by a better
    background step.
``true total field``
    The noise-free field qsm-forward put in the echoes (brain, skull, air, its shim), through
    the default background step and then the inversion: what background removal adds
    without noise.

It also prints how well the fit's noise estimate matches the noise it actually left: the rms
of the chain's unwrapped field minus the noise-free one, deeper than 5 voxels from the mask's
edge, over the median noise estimate there.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'qsm'))
import independent_phantom as ip  # noqa: E402

from lesionqsm.qsm.constants import ppm_to_radians  # noqa: E402
from lesionqsm.qsm.geometry import b0_direction, voxel_sizes  # noqa: E402
from lesionqsm.qsm.inversion import InversionOptions, invert_dipole  # noqa: E402
from lesionqsm.qsm.local_field import BackgroundOptions, remove_background  # noqa: E402
from lesionqsm.qsm.pipeline import reconstruct_session  # noqa: E402


def error_budget(ph, noise_seeds=(0, 1, 2)):
    """Rows (name, score dict, seconds) of the chain and of its inversion on true fields."""
    voxel = voxel_sizes(ph.affine)
    b0_dir = b0_direction(ph.affine)
    r = reconstruct_session(ph.signal, ph.echo_times, field_strength=ph.field_strength,
                            affine=ph.affine)
    mask = r.brain_mask
    rows = [('default chain', ip.score(r.chi_ppm, r.local_mask, mask, ph, r.reliable_mask),
             r.timings['background_s'] + r.timings['inversion_s'])]
    # the field the echoes carry (qsm-forward's, shimmed), and the field of the true χ inside
    # the chain's mask
    true_total = ppm_to_radians(ph.field_ppm, field_strength=ph.field_strength,
                                delta_te=r.delta_te).astype(np.float32)
    true_local = ip.true_field_rad(ph, mask, r.delta_te)

    # the background step on the true total field also gives the inversion's SMV and mask,
    # which depend on the brain mask only
    local = remove_background(true_total, mask, voxel, b0_dir=b0_dir, noise_std=r.noise_std,
                              options=BackgroundOptions())

    def inverted(name, field, field_mask, background_smv=local.inversion_smv):
        """One row: the inversion of ``field``, scored, and its seconds."""
        start = time.perf_counter()
        chi = invert_dipole(field, field_mask, r.magnitude, voxel, b0_dir=b0_dir,
                            noise_std=r.noise_std, csf_mask=r.csf_mask,
                            reference=r.reference, field_strength=ph.field_strength,
                            delta_te=r.delta_te, background_smv=background_smv,
                            options=InversionOptions())
        return (name, ip.score(chi.chi_ppm, chi.mask, mask, ph, r.reliable_mask),
                time.perf_counter() - start)

    rows.append(inverted('true local field', true_local, local.mask))
    rows.append(inverted('true local, plain MEDI+0', true_local, mask, background_smv=None))
    for seed in noise_seeds:
        noise = np.random.default_rng(seed).standard_normal(mask.shape) * r.noise_std
        noisy = np.where(mask, true_local + noise, 0).astype(np.float32)
        rows.append(inverted(f'true local + noise ({seed})', noisy, local.mask))
    rows.append(inverted('true total field', local.field, local.mask))

    deep = mask & (ndi.distance_transform_edt(mask) > 5)
    left = (r.unwrapped_field_rad - true_total)[deep]
    calibration = float(np.sqrt(np.mean((left - np.mean(left)) ** 2))
                        / np.median(r.noise_std[deep]))
    return rows, calibration


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phantoms', nargs='+', default=sorted(ip.TEST_PHANTOMS),
                        choices=sorted(ip.TEST_PHANTOMS))
    parser.add_argument('--noise-seeds', type=int, default=3,
                        help='noise realisations of the "true local + noise" row')
    args = parser.parse_args(argv)
    header = (f"{'input of the inversion':<28}{'slope':>7}{'med':>7}{'max':>7}{'juxta':>7}"
              f"{'NRMSE':>7}{'NRMSEr':>8}{'s':>6}")
    for name in args.phantoms:
        ph = ip.simulate(tempfile.mkdtemp(prefix='bench_budget_'), **ip.TEST_PHANTOMS[name])
        rows, calibration = error_budget(ph, noise_seeds=range(args.noise_seeds))
        print(f'\n{name}: {ph.description}')
        print(f'noise left by the fit / its noise estimate (deeper than 5 voxels): '
              f'{calibration:.2f}')
        print(header)
        print('-' * len(header))
        for row, s, seconds in rows:
            print(f"{row:<28}{s['slope']:>7.3f}{s['median_lesion']:>7.2f}"
                  f"{s['max_lesion']:>7.2f}{s['median_juxtacortical']:>7.2f}"
                  f"{s['nrmse']:>7.3f}{s['nrmse_reliable']:>8.3f}{seconds:>6.0f}")
        print('lesion errors (ppb), ' + ' '.join(rows[0][1]['lesion_kinds']) + ':')
        for row, s, _ in rows:
            print(f'  {row:<26}' + ' '.join(f'{e:+.2f}' for e in s['lesion_errors']))
    print('\nslope: nuclei and lesions against the truth, relative to WM; med/max: median/max '
          'lesion |error|, juxta: median over juxtacortical lesions (ppb); NRMSE over the voxels '
          'with χ, NRMSEr over the reliable mask; s: background removal and inversion, s.')


if __name__ == '__main__':
    main()
