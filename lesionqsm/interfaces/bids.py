"""The one sink through which every lesionqsm derivative file is written."""

import logging
import re
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from .. import __version__
from .. import bids_templates as templates
from ..bids.images import atomic_copy, load_image, save_image_atomic
from ..bids.labels import parse_bids_name
from ..bids.templates_io import write_dataset_description, write_json

LOGGER = logging.getLogger('nipype.interface')

#: Template spaces that need no ``SpatialReference`` (BIDS "Image-based Coordinate Systems").
STANDARD_SPACES = ('MNI152NLin2009cAsym', 'MNI152NLin6Asym', 'MNI152Lin', 'MNI305',
                   'fsaverage', 'fsLR', 'ICBM452AirSpace', 'Talairach')
_NIFTI = ('.nii', '.nii.gz')


def find_dataset_root(path):
    """The closest parent folder holding ``dataset_description.json`` (None if none)."""
    for parent in Path(path).absolute().parents:
        if (parent / 'dataset_description.json').is_file():
            return parent
    return None


class _DerivativesDataSinkInputSpec(BaseInterfaceInputSpec):
    base_directory = Directory(mandatory=True, desc='root of the derivatives dataset')
    source_file = traits.Str(mandatory=True,
                             desc='raw BIDS file whose entities (sub, ses, acq, run, ...) name '
                                  'the output')
    in_file = File(exists=True, mandatory=True, desc='file to store')
    suffix = traits.Str(mandatory=True, desc='BIDS suffix (Chimap, R2starmap, mask, xfm, ...)')
    extension = traits.Str(desc='output extension with its dot; default from in_file, with '
                                '.nii compressed to .nii.gz')
    datatype = traits.Str('anat', usedefault=True, desc='BIDS datatype folder')
    desc = traits.Str(desc='desc entity')
    space = traits.Str(desc='space entity')
    from_ = traits.Str(desc='from entity (transforms)')
    to = traits.Str(desc='to entity (transforms)')
    mode = traits.Str(desc='mode entity (transforms)')
    label = traits.Str(desc='label entity')
    acq = traits.Str(desc='acq entity (overrides the source file\'s)')
    run = traits.Str(desc='run entity (overrides the source file\'s)')
    dismiss_entities = traits.List(traits.Str, ['echo', 'part'], usedefault=True,
                                   desc='source-file entities not carried to the output')
    meta_dict = traits.Dict(desc='entries merged into the JSON sidecar (over the template)')
    spatial_reference = traits.Str(desc='SpatialReference for a custom space (e.g. '
                                        'bids_templates.spatial_reference(sub, ses))')
    version = traits.Str(__version__, usedefault=True, desc='lesionqsm version recorded in '
                                                           'dataset_description.json')


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc='the stored file')
    out_meta = File(desc='its JSON sidecar (undefined when there is nothing to record)')


class DerivativesDataSink(SimpleInterface):
    """Store one file in the BIDS derivatives, named by :mod:`lesionqsm.bids_templates`.

    The output keeps the source file's entities (minus ``dismiss_entities``) and adds
    ``desc``/``space``/``from``/``to``/``mode``/``label``; its sidecar is the suffix's template
    (``Chimap``: Units ppm, SkullStripped, algorithm, reference region) updated with
    ``meta_dict``, plus ``Sources`` pointing at the raw file. Every file is written under a
    temporary name in the target folder and renamed, so an interrupted run never leaves a
    truncated derivative. NIfTI outputs get spatial units (mm) when the input has none, and
    masks are stored as uint8. ``dataset_description.json`` (and ``.bidsignore``) are
    written if missing.

    Examples
    --------
    >>> sink = DerivativesDataSink(base_directory='out', suffix='mask', desc='brain',
    ...     source_file='sub-01_ses-01_echo-1_part-mag_MEGRE.nii.gz')
    >>> sink.inputs.dismiss_entities
    ['echo', 'part']
    """

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec
    # a sink always runs: only then can it restore a derivative deleted or altered since the
    # last run (a file that already holds the right bytes is left untouched)
    _always_run = True

    def _entities(self):
        inputs = self.inputs
        source, _, _ = parse_bids_name(inputs.source_file)
        if 'sub' not in source:
            raise ValueError(f'{inputs.source_file}: source file name has no sub-<label> entity')
        keep = {k: v for k, v in source.items()
                if k in templates.ENTITY_ORDER and k not in inputs.dismiss_entities}
        for key in ('desc', 'space', 'to', 'mode', 'label', 'acq', 'run'):
            value = getattr(inputs, key)
            if isdefined(value) and value:
                keep[key] = value
        if isdefined(inputs.from_) and inputs.from_:
            keep['from'] = inputs.from_
        return keep

    def _extension(self):
        inputs = self.inputs
        if isdefined(inputs.extension) and inputs.extension:
            return inputs.extension
        _, _, ext = parse_bids_name(inputs.in_file)
        if ext == '.nii':
            return '.nii.gz'
        return ext or ''

    def _run_interface(self, runtime):
        inputs = self.inputs
        base = Path(inputs.base_directory)
        entities = self._entities()
        extension = self._extension()
        subject, session = entities.pop('sub'), entities.pop('ses', None)
        from_ = entities.pop('from', None)
        out_file = templates.derivative_path(
            base, subject=subject, session=session, suffix=inputs.suffix, extension=extension,
            datatype=inputs.datatype, from_=from_, **entities)

        raw_root = find_dataset_root(inputs.source_file)
        if not (base / 'dataset_description.json').exists():
            write_dataset_description(base, bids_dir=raw_root, version=inputs.version,
                                      overwrite=False)

        if extension in _NIFTI:
            _store_nifti(inputs.in_file, out_file, mask=inputs.suffix in ('mask', 'dseg'),
                         root=base)
        else:
            atomic_copy(inputs.in_file, out_file, root=base)
        self._results['out_file'] = str(out_file)

        meta = templates.sidecar_template(inputs.suffix, desc=entities.get('desc'),
                                          space=entities.get('space'))
        if isdefined(inputs.meta_dict):
            meta.update(inputs.meta_dict)
        space = entities.get('space')
        if space and space not in STANDARD_SPACES and 'SpatialReference' not in meta:
            if isdefined(inputs.spatial_reference) and inputs.spatial_reference:
                meta['SpatialReference'] = inputs.spatial_reference
            else:
                LOGGER.warning('%s: space-%s is not a standard template space and no '
                               'SpatialReference was given; the BIDS validator will refuse it '
                               '(pass spatial_reference=...)', out_file, space)
        if raw_root is not None and 'Sources' not in meta:
            try:
                relative = Path(inputs.source_file).absolute().relative_to(raw_root)
                meta['Sources'] = [f'bids:raw:{relative.as_posix()}']
            except ValueError:
                pass
        if meta:
            sidecar = out_file.with_name(out_file.name[: -len(extension)] + '.json') \
                if extension else out_file.with_name(out_file.name + '.json')
            write_json(sidecar, meta, root=base)
            self._results['out_meta'] = str(sidecar)
        return runtime


def _store_nifti(src, dst, *, mask, root):
    """Store a NIfTI: byte copy when nothing changes, else rewrite (units, compression, uint8)."""
    img = load_image(src, finite=False)
    xyz_units = img.header.get_xyzt_units()[0]
    same_format = re.sub(r'.*?((\.nii)(\.gz)?)$', r'\1', str(src)) == \
        re.sub(r'.*?((\.nii)(\.gz)?)$', r'\1', str(dst))
    data = None
    if mask and not np.issubdtype(img.get_data_dtype(), np.integer):
        data = (np.asanyarray(img.dataobj) > 0).astype(np.uint8)
    if same_format and data is None and xyz_units != 'unknown':
        return atomic_copy(src, dst, root=root)
    header = img.header.copy()
    if data is not None:
        header.set_data_dtype(np.uint8)
    else:
        data = np.asanyarray(img.dataobj)
    out = img.__class__(data, img.affine, header)
    if xyz_units == 'unknown':
        out.header.set_xyzt_units('mm', img.header.get_xyzt_units()[1])
    return save_image_atomic(out, dst, root=root)
