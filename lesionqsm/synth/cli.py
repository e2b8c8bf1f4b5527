"""``lesionqsm synth OUT --preset {tiny,demo,paper} --seed 0``: write the synthetic cohort."""

import argparse
import sys
import time
from pathlib import Path

from lesionqsm.synth.cohort import PRESETS


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'{text!r} must be positive')
    return value


def _output_dir(text):
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f'{path}: exists and is not a directory')
    return path


def build_parser(prog='lesionqsm synth'):
    """The argument parser of the ``synth`` subcommand."""
    parser = argparse.ArgumentParser(
        prog=prog, description='Generate a synthetic longitudinal MS cohort (BIDS) from MR '
                               'physics, with lesion annotations and ground truth.')
    parser.add_argument('output_dir', type=_output_dir, help='root of the BIDS dataset to write')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='demo',
                        help='cohort size: tiny (tests, seconds), demo (a few patients), '
                             'paper (19 patients, 32 lesions, 16 rim+)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed; the same seed gives byte-identical files')
    parser.add_argument('--phase-units', choices=('rad', 'arbitrary'), default=None,
                        help="phase written in radians in [-pi, pi) (default) or scanner "
                             "integers in [-4096, 4095]")
    parser.add_argument('--snr', type=_positive_float, default=None,
                        help='GRE SNR: echo-1 white-matter magnitude / noise sigma per channel '
                             '(preset default 60)')
    parser.add_argument('--quiet', action='store_true', help='no progress messages')
    return parser


def main(argv=None):
    """Run the subcommand; returns the exit code (0 success, 1 failure, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from lesionqsm.synth.cohort import generate_cohort

    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    start = time.perf_counter()
    try:
        generate_cohort(args.output_dir, preset=args.preset, seed=args.seed,
                        phase_units=args.phase_units, snr=args.snr, log=log)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f'lesionqsm synth: error: {exc}', file=sys.stderr)
        return 1
    if not args.quiet:
        print(f'wrote {args.output_dir} (preset {args.preset}, seed {args.seed}) in '
              f'{time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
