"""Per-stage time of background removal and dipole inversion, and the fast/reference ratio.

Run from the repository root::

    .venv/bin/python benchmarks/bench_medi.py                 # 3 sizes, reference at 2 sizes
    .venv/bin/python benchmarks/bench_medi.py --reference-sizes 0 1 2

Volumes: the head phantom of :mod:`lesionqsm.synth.head_phantom` at 0.8× adult size in a
240 × 240 × 144 mm field of view (a clinical axial 3D GRE: the brain fills about half of each
in-plane axis) at 64×64×24, 128×128×48 and 256×256×48, field noise 0.005 rad per ΔTE.
Every stage uses its default tolerances (MEDI's: λ 1000, 10 GN steps at most, GN tolerance
0.1, CG 100 / 0.01).
The reference MEDI (:mod:`lesionqsm.qsm.medi_reference`: float64, complex FFTs, no caching)
runs the same iteration on the same input; the ratio is measured in the same process, and
the relative difference of the two χ maps is printed next to it.
"""

import argparse
import os
import time

import numpy as np

from lesionqsm.qsm import background, medi, medi_reference, tkd
from lesionqsm.synth.head_phantom import head_phantom

FOV_MM = (240.0, 240.0, 144.0)
SIZES = ((64, 64, 24), (128, 128, 48), (256, 256, 48))


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _cpu_timed(fn, *args, **kwargs):
    """Wall and CPU (all threads of this process) time: on a shared machine the CPU time
    shows the work done, the wall time also the waiting for other processes."""
    c0 = time.process_time()
    out, wall = _timed(fn, *args, **kwargs)
    return out, wall, time.process_time() - c0


def run(size, *, reference):
    voxel = tuple(f / n for f, n in zip(FOV_MM, size, strict=True))
    ph = head_phantom(voxel, shape=size, scale=0.8, delta_te=4.5e-3, field_noise_rad=0.005,
                      rng=np.random.default_rng(0))
    m = ph.brain_mask
    common = dict(field_strength=ph.field_strength, delta_te=ph.delta_te)
    row = {'size': 'x'.join(map(str, size)), 'voxel': 'x'.join(f'{v:.3g}' for v in voxel)}
    local, row['pdf'] = _timed(background.pdf, ph.total_field, m, voxel,
                               noise_std=ph.noise_std)
    _, row['lbv'] = _timed(background.lbv, ph.total_field, m, voxel)
    (chi, info), row['medi0'], row['medi0_cpu'] = _cpu_timed(
        medi.medi_plus_zero, local, m, ph.magnitude, voxel, noise_std=ph.noise_std,
        csf_mask=ph.csf_mask, **common)
    row['gn'] = info['iterations']
    row['cg'] = sum(info['cg_iterations'])
    row['box'] = 'x'.join(str(b - a) for a, b in info['solver_box'])
    _, row['tkd'] = _timed(tkd.tkd, local, m, voxel, **common)
    if reference:
        (ref, ref_info), row['ref'], row['ref_cpu'] = _cpu_timed(
            medi_reference.medi_plus_zero, local, m, ph.magnitude, voxel,
            noise_std=ph.noise_std, csf_mask=ph.csf_mask, **common)
        row['ratio'] = row['ref'] / row['medi0']
        row['ratio_cpu'] = row['ref_cpu'] / row['medi0_cpu']
        row['diff'] = float(np.linalg.norm(chi - ref) / np.linalg.norm(ref))
        row['same_iters'] = ref_info['cg_iterations'] == info['cg_iterations']
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[0, 1, 2],
                        help='indices into SIZES to run')
    parser.add_argument('--reference-sizes', type=int, nargs='*', default=[0, 1],
                        help='indices into SIZES at which the reference MEDI also runs')
    args = parser.parse_args(argv)
    print(f'# cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}')
    print('# times in s (wall); "cpu" = CPU time of all threads; ref = reference MEDI+0')
    header = (f'{"matrix":>11} {"voxel mm":>14} {"PDF":>6} {"LBV":>6} {"MEDI+0":>7} '
              f'{"cpu":>6} {"GN":>3} {"CG":>4} {"solver box":>11} {"TKD":>5} {"ref":>7} '
              f'{"cpu":>7} {"ref/fast":>8} {"(cpu)":>6} {"rel diff":>9} {"same CG":>7}')
    print(header)
    for i in args.sizes:
        r = run(SIZES[i], reference=i in args.reference_sizes)
        ref = (f'{r["ref"]:7.1f} {r["ref_cpu"]:7.1f} {r["ratio"]:8.2f} {r["ratio_cpu"]:6.2f} '
               f'{r["diff"]:9.1e} {str(r["same_iters"]):>7}'
               if 'ref' in r else f'{"-":>7} {"-":>7} {"-":>8} {"-":>6} {"-":>9} {"-":>7}')
        print(f'{r["size"]:>11} {r["voxel"]:>14} {r["pdf"]:6.2f} {r["lbv"]:6.2f} '
              f'{r["medi0"]:7.2f} {r["medi0_cpu"]:6.1f} {r["gn"]:3d} {r["cg"]:4d} '
              f'{r["box"]:>11} {r["tkd"]:5.2f} ' + ref, flush=True)


if __name__ == '__main__':
    main()
