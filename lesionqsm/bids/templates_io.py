"""Writing the derivative dataset's fixed files (description, .bidsignore, README, sidecars)
from :mod:`lesionqsm.bids_templates`, each atomically (temporary name + rename).
"""

import json
from pathlib import Path

from lesionqsm import __version__
from lesionqsm import bids_templates as templates

from .images import atomic_write_text, check_inside

README = """# lesionqsm derivatives

Quantitative susceptibility maps (MEDI+0, ppm, zero = ventricular CSF), R2* maps, brain and CSF
masks and rigid transforms per visit, and one lesion table per participant
(`sub-<label>/sub-<label>_lesions.tsv`, described by its JSON data dictionary), written by
lesionqsm {version}. Files the BIDS validator has no rule for are listed in `.bidsignore`.
"""


def write_json(path, payload, *, root=None):
    """Write ``payload`` as indented JSON, atomically; returns the path.

    ``root``: the output folder the write must stay inside (no symbolic link followed).
    """
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False,
                                              ensure_ascii=False, default=_json_default) + '\n',
                             root=root)


def _json_default(value):
    """numpy scalars and arrays, paths: to plain JSON types."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f'{type(value).__name__} {value!r} cannot be written to a JSON sidecar')


def write_dataset_description(output_dir, *, bids_dir=None, version=__version__,
                              source_datasets=None, overwrite=True):
    """Write ``dataset_description.json``, ``.bidsignore`` and ``README`` of the derivatives.

    Parameters
    ----------
    output_dir : str or Path
        Derivatives dataset root (created if needed).
    bids_dir : str or Path, optional
        Raw dataset, linked as ``DatasetLinks.raw``.
    version : str, optional
        lesionqsm version recorded in ``GeneratedBy``.
    source_datasets : list of dict, optional
        Extra ``SourceDatasets`` entries.
    overwrite : bool, optional
        Rewrite an existing description (False: leave it, e.g. from a sink).

    Returns
    -------
    pathlib.Path
        The description's path.

    Notes
    -----
    ``.bidsignore`` keeps any line already there and adds :data:`bids_templates.BIDSIGNORE`.
    """
    output_dir = Path(output_dir)
    path = output_dir / 'dataset_description.json'
    if overwrite or not path.exists():
        write_json(path, templates.dataset_description(
            version=version, bids_dir=bids_dir, output_dir=output_dir,
            source_datasets=source_datasets), root=output_dir)
    ignore = output_dir / '.bidsignore'
    check_inside(output_dir, ignore)
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    missing = [p for p in templates.BIDSIGNORE if p not in lines]
    if missing:
        atomic_write_text(ignore, '\n'.join(lines + missing) + '\n', root=output_dir)
    readme = output_dir / 'README'
    if not readme.exists():
        atomic_write_text(readme, README.format(version=version), root=output_dir)
    return path

