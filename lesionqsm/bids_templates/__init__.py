"""Path patterns and JSON templates of every derivative file lesionqsm writes.

One place for names: workflows and sinks ask :func:`derivative_path` (or :func:`output_path`
with a name from :data:`OUTPUTS`) and never format a derivative file name themselves. Nothing
here writes files; :mod:`lesionqsm.bids.templates_io` does, atomically.

Validator notes: the official BIDS validator (``bids-validator-deno``) accepts ``Chimap``,
``R2starmap`` and ``desc-<label>_mask`` derivatives, but has no rule yet for transforms
(``*_xfm.mat``) or a per-subject lesion table, and refuses them as ``NOT_INCLUDED``; the
derivative dataset therefore carries a ``.bidsignore`` (:data:`BIDSIGNORE`) listing them. Maps in
the custom ``space-baseline`` need ``SpatialReference`` (see :func:`spatial_reference`); maps
need ``SkullStripped`` (in the templates).
"""

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lesionqsm.bids.labels import check_label, is_label, strip_prefix

#: BIDS entity order in file names (BIDS specification, Appendix "Entity table"; ``from``,
#: ``to`` and ``mode`` as in fMRIPrep's transforms).
ENTITY_ORDER = ('sub', 'ses', 'task', 'acq', 'ce', 'rec', 'dir', 'run', 'echo', 'part',
                'space', 'res', 'den', 'from', 'to', 'mode', 'label', 'desc')
#: Space label of images resampled onto the subject's baseline-visit GRE grid.
BASELINE_SPACE = 'baseline'
#: Patterns the validator must skip in our derivatives (files it has no rule for).
BIDSIGNORE = ('*_xfm.mat', '*_xfm.json', 'sub-*/sub-*_lesions.tsv', 'sub-*/sub-*_lesions.json',
              'logs/', 'group/', 'figures/', '*.html', '*.log')


@dataclass(frozen=True)
class Output:
    """A kind of derivative file: its name entities and its JSON sidecar template."""

    suffix: str
    extension: str = '.nii.gz'
    desc: str | None = None
    space: str | None = None
    from_: str | None = None
    to: str | None = None
    mode: str | None = None
    sidecar: str | None = None
    level: str = 'session'
    description: str = ''

    def entities(self):
        """Name entities of this output as keyword arguments of :func:`derivative_path`."""
        return {k: v for k, v in (('desc', self.desc), ('space', self.space),
                                  ('from_', self.from_), ('to', self.to), ('mode', self.mode))
                if v is not None}


#: Registry of what lesionqsm writes (one entry per kind of file).
OUTPUTS = {
    'chimap': Output('Chimap', sidecar='chimap.json',
                     description='chi (ppm, CSF = 0) on the visit\'s own GRE grid'),
    'chimap_baseline': Output('Chimap', space=BASELINE_SPACE, sidecar='chimap.json',
                              description='chi (ppm) resampled onto the baseline GRE grid'),
    'r2starmap': Output('R2starmap', sidecar='r2starmap.json', description='R2* (1/s)'),
    'brain_mask': Output('mask', desc='brain', sidecar='mask_brain.json',
                         description='brain mask, GRE grid'),
    'csf_mask': Output('mask', desc='csf', sidecar='mask_csf.json',
                       description='ventricular CSF mask (chi reference), GRE grid'),
    'reliable_mask': Output('mask', desc='reliable', sidecar='mask_reliable.json',
                            description='voxels whose chi was neither eroded nor extrapolated'),
    'xfm_gre_to_baseline': Output('xfm', '.mat', from_='GRE', to=BASELINE_SPACE, mode='image',
                                  description='this visit\'s GRE magnitude -> baseline GRE'),
    'lesion_table': Output('lesions', '.tsv', sidecar='lesions.json', level='subject',
                           description='per-lesion, per-visit statistics (the group input)'),
}


def derivative_name(*, subject, session=None, suffix, extension, desc=None, space=None,
                    from_=None, to=None, mode=None, **entities):
    """File name of a derivative, entities in BIDS order.

    Parameters
    ----------
    subject, session : str
        Labels with or without ``sub-``/``ses-``; ``session=None`` for subject-level files.
    suffix : str
        BIDS suffix (``'Chimap'``, ``'mask'``, ``'xfm'``, ...).
    extension : str
        With its leading dot (``'.nii.gz'``, ``'.json'``, ``'.mat'``, ``'.tsv'``).
    desc, space, from_, to, mode : str, optional
        Entities (``from_`` is ``from-``).
    **entities
        Other entities of :data:`ENTITY_ORDER` (``acq``, ``run``, ``label``, ...); None skips.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        An unknown entity, a label with characters other than letters and digits, or an
        extension without its dot.
    """
    values = dict(entities, sub=strip_prefix(subject, 'sub-'), ses=strip_prefix(session, 'ses-'),
                  desc=desc,
                  space=space, to=to, mode=mode)
    values['from'] = from_
    unknown = sorted(set(values) - set(ENTITY_ORDER))
    if unknown:
        raise ValueError(f'unknown BIDS entity {", ".join(unknown)} (known: '
                         f'{", ".join(ENTITY_ORDER)})')
    if not is_label(suffix):
        raise ValueError(f'BIDS suffix {suffix!r} must be letters and digits only')
    if not str(extension).startswith('.'):
        raise ValueError(f'extension {extension!r} must start with a dot')
    parts = [f'{key}-{check_label(values[key], what=f"BIDS {key} label")}' for key in ENTITY_ORDER
             if values.get(key) is not None]
    return '_'.join(parts + [suffix]) + extension


def derivative_path(output_dir, *, subject, session=None, suffix, extension, datatype='anat',
                    desc=None, space=None, from_=None, to=None, mode=None, **entities):
    """Full path of a derivative: ``output_dir/sub-X[/ses-Y][/datatype]/<name>``.

    Parameters as :func:`derivative_name`, plus ``output_dir`` (the derivatives dataset root)
    and ``datatype`` (folder; None for subject-level files next to ``sub-X``).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> str(derivative_path('out', subject='01', session='02', suffix='mask', desc='brain',
    ...                     extension='.nii.gz'))
    'out/sub-01/ses-02/anat/sub-01_ses-02_desc-brain_mask.nii.gz'
    """
    name = derivative_name(subject=subject, session=session, suffix=suffix, extension=extension,
                           desc=desc, space=space, from_=from_, to=to, mode=mode, **entities)
    folder = Path(output_dir) / f'sub-{strip_prefix(subject, "sub-")}'
    if session is not None:
        folder = folder / f'ses-{strip_prefix(session, "ses-")}'
    if datatype is not None:
        folder = folder / datatype
    return folder / name


def output_path(output_dir, name, *, subject, session=None, extension=None, **overrides):
    """Path of a registered output (:data:`OUTPUTS`), e.g. ``output_path(d, 'chimap', ...)``.

    ``extension='.json'`` gives the sidecar's path; ``overrides`` change or add entities.
    """
    try:
        spec = OUTPUTS[name]
    except KeyError:
        raise ValueError(f'unknown derivative {name!r} (known: {", ".join(OUTPUTS)})') from None
    entities = {**spec.entities(), **overrides}
    datatype = None if spec.level == 'subject' else entities.pop('datatype', 'anat')
    return derivative_path(output_dir, subject=subject,
                           session=None if spec.level == 'subject' else session,
                           suffix=spec.suffix, extension=extension or spec.extension,
                           datatype=datatype, **entities)


def lesion_table_path(output_dir, subject):
    """``output_dir/sub-<label>/sub-<label>_lesions.tsv`` (the group level reads it there)."""
    return output_path(output_dir, 'lesion_table', subject=subject)


def load_template(filename):
    """A JSON template of this package (a fresh copy)."""
    try:
        text = resources.files(__name__).joinpath(filename).read_text(encoding='utf-8')
    except FileNotFoundError:
        raise ValueError(f'no JSON template {filename!r} in lesionqsm.bids_templates') from None
    return json.loads(text)


def sidecar_template(suffix, *, desc=None, space=None):
    """Sidecar template of the registered output with this suffix/desc ({} if none)."""
    for spec in OUTPUTS.values():
        if spec.suffix == suffix and spec.desc == desc and spec.sidecar:
            if spec.space is None or spec.space == space:
                return load_template(spec.sidecar)
    return {}


#: Column order of the per-subject lesion table.
LESION_TABLE_COLUMNS = tuple(load_template('lesions.json'))


def lesion_table_dictionary():
    """BIDS JSON data dictionary of the lesion table (Description, Units, Levels)."""
    return load_template('lesions.json')


def spatial_reference(subject, session):
    """``SpatialReference`` of ``space-baseline`` images: the baseline visit's own χ map.

    A BIDS URI into this derivative dataset (``bids::`` + path), as BIDS requires for
    images in a custom space.
    """
    path = output_path('', 'chimap', subject=subject, session=session)
    return f'bids::{path.as_posix()}'


def dataset_description(*, version, bids_dir=None, output_dir=None, source_datasets=None):
    """``dataset_description.json`` of our derivatives (a dict).

    Parameters
    ----------
    version : str
        lesionqsm version (``GeneratedBy[0].Version``).
    bids_dir : str or Path, optional
        The raw dataset: recorded as ``DatasetLinks.raw`` (relative to ``output_dir`` when
        given) and as a ``SourceDatasets`` entry ``bids:raw:``, so that ``Sources`` entries
        ``bids:raw:sub-01/...`` resolve.
    source_datasets : list of dict, optional
        Extra ``SourceDatasets`` entries (``URL``/``DOI``/``Version``).
    """
    desc = load_template('dataset_description.json')
    desc['GeneratedBy'][0]['Version'] = str(version)
    sources = []
    if bids_dir is not None:
        link = Path(bids_dir).absolute()
        if output_dir is not None:
            link = Path(os.path.relpath(link, Path(output_dir).absolute()))
        desc['DatasetLinks'] = {'raw': link.as_posix()}
        sources.append({'URL': 'bids:raw:'})
    sources += list(source_datasets or [])
    if sources:
        desc['SourceDatasets'] = sources
    return desc

