"""Where lesionqsm may write: never into the datasets it reads.

An output or work folder that is the raw dataset, contains it, or lies inside it anywhere but
under ``derivatives/<name>`` would overwrite its ``dataset_description.json`` or put foreign
files into it (fMRIPrep refuses the same); the lesion-annotation dataset is an input too. Paths
are compared after resolving ``..`` and symbolic links, so ``bids/sub-01/..`` or a link to the
dataset is recognised.
"""

import os
from pathlib import Path

from .images import is_within, link_error, links_out_of


class LocationError(ValueError):
    """An output or work folder would write into an input dataset; the message names both."""


def _real(path):
    return Path(os.path.realpath(Path(path).expanduser().absolute()))


def check_write_locations(bids_dir, *, output_dir, work_dir=None, lesions_dir=None):
    """Refuse output and work folders that would write into an input dataset.

    Parameters
    ----------
    bids_dir : str or Path
        The raw BIDS dataset.
    output_dir : str or Path
        The derivatives folder.
    work_dir : str or Path, optional
        nipype's work folder.
    lesions_dir : str or Path, optional
        The lesion-annotation dataset (default ``bids_dir/derivatives/lesions``).

    Raises
    ------
    LocationError
        Naming the option, the folder as given and the dataset it collides with.
    """
    raw = _real(bids_dir)
    lesions = _real(lesions_dir) if lesions_dir is not None else raw / 'derivatives' / 'lesions'
    for option, given in (('output_dir', output_dir), ('--work-dir', work_dir)):
        if given is None:
            continue
        folder = _real(given)
        where = f'{option} {given}' + (f' (= {folder})' if str(folder) != str(given) else '')
        if folder == raw:
            raise LocationError(f'{where} is the input dataset {bids_dir}; choose a folder '
                                f'outside it or under {raw / "derivatives"}/<name>')
        if is_within(raw, folder):
            raise LocationError(f'{where} contains the input dataset {bids_dir}; choose a '
                                f'folder outside it or under {raw / "derivatives"}/<name>')
        if is_within(lesions, folder) or is_within(folder, lesions):
            raise LocationError(f'{where} is, holds or lies inside the lesion-annotation '
                                f'dataset {lesions}; choose another folder')
        if is_within(folder, raw):
            inside = folder.relative_to(raw).parts
            if len(inside) < 2 or inside[0] != 'derivatives':
                raise LocationError(f'{where} lies inside the input dataset {bids_dir}; only '
                                    f'{raw / "derivatives"}/<name> is allowed there')


def check_no_links_out(output_dir):
    """Refuse an output folder holding a symbolic link that leads out of it.

    Raises
    ------
    OSError
        (:class:`lesionqsm.bids.images.OutputPathError`) naming the first such link.
    """
    links = links_out_of(output_dir)
    if links:
        raise link_error(links[0], output_dir)
