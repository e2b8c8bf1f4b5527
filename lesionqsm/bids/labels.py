"""BIDS labels: the one place that strips ``sub-``/``ses-`` prefixes and checks label syntax.

BIDS labels are letters and digits only (``[0-9a-zA-Z]+``). Labels from a dataset end up in
file names, nipype node names and SLURM job scripts, so a label with any other character is
refused at discovery, even when the BIDS validator is skipped.
"""

import re

#: A BIDS label (BIDS specification, "Common principles": ``<label>`` is alphanumeric).
LABEL_PATTERN = re.compile(r'[0-9a-zA-Z]+')


def strip_prefix(label, prefix):
    """``'ses-01'`` -> ``'01'``; a label without the prefix is returned unchanged.

    Parameters
    ----------
    label : str or None
        A label with or without ``prefix``; None stays None.
    prefix : str
        ``'sub-'``, ``'ses-'``, ...
    """
    if label is None:
        return None
    label = str(label).strip()
    return label[len(prefix):] if label.startswith(prefix) else label


def is_label(value):
    """True if ``value`` is a valid BIDS label (letters and digits only)."""
    return LABEL_PATTERN.fullmatch(str(value)) is not None


def check_label(value, *, what='label'):
    """Return ``value`` as text if it is a BIDS label, else raise ``ValueError`` naming it.

    Parameters
    ----------
    value : str or int
        The label, without its prefix.
    what : str, optional
        What the label is (``'subject label'``, ``'BIDS desc label'``), for the message.
    """
    text = str(value)
    if not is_label(text):
        raise ValueError(f'{what} {text!r} must be letters and digits only ([0-9a-zA-Z]+)')
    return text


def natural_key(label):
    """Sort key that orders ``'2'`` before ``'10'`` and keeps text labels stable."""
    return [(0, int(part), '') if part.isdigit() else (1, 0, part)
            for part in re.split(r'(\d+)', str(label)) if part != '']


def parse_bids_name(path):
    """Entities, suffix and extension of a BIDS file name.

    Returns
    -------
    entities : dict
        ``{'sub': '01', 'ses': '02', ...}`` in file order.
    suffix : str or None
    extension : str
        From the first dot (``'.nii.gz'``).
    """
    name = str(path).replace('\\', '/').rsplit('/', 1)[-1]
    stem, dot, rest = name.partition('.')
    entities, suffix = {}, None
    for part in stem.split('_'):
        key, sep, value = part.partition('-')
        if sep:
            entities[key] = value
        else:
            suffix = part
    return entities, suffix, dot + rest
