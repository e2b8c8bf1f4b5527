"""Compare two lesionqsm output trees: NIfTI data, TSV tables and JSON sidecars."""

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

# Same code on the same inputs: the trees should be equal to the last bit. The tolerance only
# admits reordered floating-point sums (threaded FFT/BLAS), about 10 float32 ulps of the values.
RTOL = 1e-6
ATOL = 1e-9
# Files that record when or how a run happened, not what it computed.
SKIP_PARTS = ('logs',)
SKIP_SUFFIXES = ('.html', '.svg', '.png', '.log')
# DatasetLinks holds the relative path from the output to the raw dataset.
VOLATILE_JSON_KEYS = {
    'GeneratedBy', 'DateCreated', 'Date', 'ProcessingTime', 'Host', 'DatasetLinks',
}  # fmt: skip


def output_files(root):
    """Relative paths of the files that hold results, sorted."""
    root = Path(root)
    found = []
    for path in root.rglob('*'):
        rel = path.relative_to(root)
        if path.is_dir() or any(part in SKIP_PARTS for part in rel.parts):
            continue
        if path.name.startswith('.') or path.name.endswith(SKIP_SUFFIXES):
            continue
        found.append(rel)
    return sorted(found)


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_JSON_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def assert_same_outputs(expected_root, actual_root):
    """Every result file of ``expected_root`` exists in ``actual_root`` with the same content.

    Returns the number of NIfTI and TSV files compared.
    """
    expected_root, actual_root = Path(expected_root), Path(actual_root)
    expected = output_files(expected_root)
    actual = output_files(actual_root)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert expected == actual, f'missing: {missing}; extra: {extra}'
    compared = 0
    for rel in expected:
        a, b = expected_root / rel, actual_root / rel
        name = str(rel)
        if name.endswith(('.nii', '.nii.gz')):
            ia, ib = nb.load(a), nb.load(b)
            assert ia.shape == ib.shape, name
            np.testing.assert_array_equal(ia.affine, ib.affine, err_msg=name)
            np.testing.assert_allclose(
                np.asanyarray(ib.dataobj), np.asanyarray(ia.dataobj), rtol=RTOL, atol=ATOL,
                err_msg=name,
            )  # fmt: skip
            compared += 1
        elif name.endswith('.tsv'):
            ta = pd.read_csv(a, sep='\t', na_values='n/a', keep_default_na=False)
            tb = pd.read_csv(b, sep='\t', na_values='n/a', keep_default_na=False)
            pd.testing.assert_frame_equal(
                tb, ta, check_exact=False, rtol=RTOL, atol=ATOL, obj=name
            )
            compared += 1
        elif name.endswith('.json'):
            assert _strip(json.loads(b.read_text())) == _strip(json.loads(a.read_text())), name
    return compared
