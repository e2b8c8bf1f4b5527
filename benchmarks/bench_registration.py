"""Accuracy and speed of the built-in rigid engine on the analytic head phantom.

Prints one row per case: grids, true motion, max displacement error over the brain (mm),
rotation error (degrees), wall and CPU time of the registration alone, and the peak resident
memory of the process so far (compare with ``registration.estimate_mem_gb``).

    .venv/bin/python benchmarks/bench_registration.py [--threads N] [--synth BIDS_DIR]

With ``--synth`` it also registers a synth cohort (``lesionqsm synth``) as the participant
workflow does: each follow-up echo-1 GRE magnitude onto the baseline's, each FLAIR onto its
visit's GRE, judged against the ground-truth motion over the baseline brain.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tests' / 'interfaces'))

import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
from test_registration import (  # noqa: E402
    head_image,
    registration_error,
    rigid,
    synth_registration_cases,
)

from lesionqsm.interfaces import registration  # noqa: E402
from lesionqsm.registration import fsl_matrix  # noqa: E402
from lesionqsm.registration import rigid as rigid_engine  # noqa: E402

GRE = ((128, 128, 40), (1.5, 1.5, 3.0))
FLAIR = ((150, 184, 120), (1.0, 1.0, 1.0))
CASES = [
    ('GRE->GRE', GRE, 'gre', (5, 0, 0), (0, 0, 0)),
    ('GRE->GRE', GRE, 'gre', (3, -4, 2), (4, -5, 3)),
    ('GRE->GRE', GRE, 'gre', (-4, 3, -3), (5, 2, -4)),
    ('GRE->GRE', GRE, 'gre', (0, 0, -5), (-5, 5, 5)),
    ('FLAIR->GRE', FLAIR, 'flair', (3, -4, 2), (4, -5, 3)),
    ('FLAIR->GRE', FLAIR, 'flair', (-4, 3, -3), (5, 2, -4)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1, help='ITK threads (default 1)')
    parser.add_argument('--synth', metavar='BIDS_DIR', help='also register this synth cohort')
    args = parser.parse_args(argv)
    reference, reference_affine = head_image(*GRE, rng=1)
    print(f'{"case":<11} {"moving grid":<24} {"rot (deg)":<14} {"shift (mm)":<14} '
          f'{"err mm":>7} {"err deg":>8} {"wall s":>7} {"cpu s":>6} {"peak GB":>8} '
          f'{"est GB":>7}')
    for i, (name, (shape, zooms), contrast, angles, shift) in enumerate(CASES):
        motion = rigid(angles, shift)
        moving, moving_affine = head_image(shape, zooms, motion=motion, contrast=contrast,
                                           rng=10 + i, neurological=True)
        wall, cpu = time.perf_counter(), time.process_time()
        result = rigid_engine.register_rigid(reference, reference_affine, moving, moving_affine,
                                             n_threads=args.threads)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        error_mm, error_deg = registration_error(result.world, motion)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        grid = f'{shape} @ {zooms[0]:g}x{zooms[1]:g}x{zooms[2]:g}'
        print(f'{name:<11} {grid:<24} {str(angles):<14} {str(shift):<14} {error_mm:7.3f} '
              f'{error_deg:8.3f} {wall:7.1f} {cpu:6.1f} {peak:8.2f} '
              f'{registration.estimate_mem_gb(shape, GRE[0]):7.2f}')

    if args.synth:
        bench_synth(args.synth, args.threads)


def bench_synth(bids_dir, threads):
    """One row per registration of a synth cohort, errors against its ground-truth motion."""
    print(f'\n{"synth case":<30} {"true rot deg":>12} {"err mm":>7} {"err deg":>8} '
          f'{"cpu s":>6}')
    for name, moving_file, reference_file, true, brain in synth_registration_cases(bids_dir):
        moving, reference = nb.load(moving_file), nb.load(reference_file)
        cpu = time.process_time()
        result = rigid_engine.register_rigid(
            reference.get_fdata(dtype=np.float32), reference.affine,
            moving.get_fdata(dtype=np.float32), moving.affine, n_threads=threads)
        cpu = time.process_time() - cpu
        error_mm = fsl_matrix.max_displacement_mm(result.world, true, brain)
        error_deg = fsl_matrix.rotation_angle_deg(result.world @ np.linalg.inv(true))
        print(f'{name:<30} {fsl_matrix.rotation_angle_deg(true):12.2f} {error_mm:7.3f} '
              f'{error_deg:8.3f} {cpu:6.1f}')


if __name__ == '__main__':
    main()
