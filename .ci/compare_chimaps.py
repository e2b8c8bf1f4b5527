"""Compare the susceptibility maps of two lesionqsm runs of the same dataset.

Usage: ``python .ci/compare_chimaps.py REFERENCE_OUTPUT_DIR OTHER_OUTPUT_DIR``

Every ``*_Chimap.nii.gz`` of the reference run must exist in the other run, on the same grid,
and agree voxel by voxel to within 1e-6 ppm; so must every lesion table's ``chi_rel_ppb``
(1e-3 ppb, the same bound). Both runs use the same code and the same package versions on the
same CPU, so they should agree to the last bit; the bound leaves room only for a different
summation order (thread count) in float32 reductions: χ is below ~1 ppm here, and float32
holds it to ~1e-7 ppm, so 1e-6 ppm is a few units in the last place and far below any
difference a wrong build (other library versions, other algorithm) makes (> 1e-4 ppm).
If both runs have a ``group/`` model, every coefficient estimate in ``group/*_coefficients.tsv``
must agree to 1e-3 ppb too: the model is fitted to those tables, by the same libraries.
Exit code 0 if they agree, 1 with one line per disagreement otherwise.
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

TOLERANCE_PPM = 1e-6


def _compare(ref_dir, other_dir, pattern, difference):
    """Compare every file matching ``pattern`` under ``ref_dir`` with its twin in ``other_dir``.

    ``difference(rel, ref_path, other_path)`` returns a problem (str) or None.
    Returns (number of files compared, list of problems).
    """
    problems = []
    files = sorted(ref_dir.glob(pattern))
    for ref_path in files:
        rel = ref_path.relative_to(ref_dir)
        other_path = other_dir / rel
        problem = (f'{rel}: missing in {other_dir}' if not other_path.is_file()
                   else difference(rel, ref_path, other_path))
        if problem:
            problems.append(problem)
    return len(files), problems


def _map_difference(rel, ref_path, other_path):
    ref_img, other_img = nib.load(ref_path), nib.load(other_path)
    if ref_img.shape != other_img.shape or not np.allclose(ref_img.affine, other_img.affine):
        return f'{rel}: grid differs ({ref_img.shape} vs {other_img.shape})'
    diff = np.abs(ref_img.get_fdata() - other_img.get_fdata()).max()
    if not diff <= TOLERANCE_PPM:
        return f'{rel}: max |difference| {diff:.3g} ppm > {TOLERANCE_PPM} ppm'
    return None


def _table_difference(rel, ref_path, other_path):
    ref, other = (pd.read_csv(p, sep='\t') for p in (ref_path, other_path))
    if len(ref) != len(other):
        return f'{rel}: {len(ref)} rows vs {len(other)}'
    diff = np.nanmax(np.abs(ref['chi_rel_ppb'] - other['chi_rel_ppb']), initial=0.0)
    if not diff <= TOLERANCE_PPM * 1e3:
        return f'{rel}: chi_rel_ppb differs by {diff:.3g} ppb'
    return None


def _coefficient_difference(rel, ref_path, other_path):
    ref, other = (pd.read_csv(p, sep='\t', index_col='term') for p in (ref_path, other_path))
    if list(ref.index) != list(other.index):
        return f'{rel}: terms differ'
    diff = np.abs(ref['estimate'] - other['estimate']).max()
    if not diff <= TOLERANCE_PPM * 1e3:
        return f'{rel}: estimates differ by {diff:.3g} ppb'
    return None


def compare_maps(ref_dir, other_dir):
    """Return (number of maps compared, list of problems)."""
    return _compare(ref_dir, other_dir, '**/*_Chimap.nii.gz', _map_difference)


def compare_tables(ref_dir, other_dir):
    """Return (number of lesion tables compared, list of problems)."""
    return _compare(ref_dir, other_dir, 'sub-*/sub-*_lesions.tsv', _table_difference)


def compare_group(ref_dir, other_dir):
    """Return (number of coefficient tables compared, list of problems)."""
    return _compare(ref_dir, other_dir, 'group/*_coefficients.tsv', _coefficient_difference)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    ref_dir, other_dir = (Path(a) for a in argv)
    n_maps, problems = compare_maps(ref_dir, other_dir)
    n_tables, table_problems = compare_tables(ref_dir, other_dir)
    n_group, group_problems = compare_group(ref_dir, other_dir)
    problems += table_problems + group_problems
    if n_maps == 0 and n_group == 0:
        problems.append(f'{ref_dir}: no *_Chimap.nii.gz nor group model to compare')
    for line in problems:
        print(f'compare: {line}', file=sys.stderr)
    if not problems:
        print(f'compare: {n_maps} Chimaps, {n_tables} lesion tables and {n_group} group '
              f'coefficient tables agree within {TOLERANCE_PPM} ppm')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
