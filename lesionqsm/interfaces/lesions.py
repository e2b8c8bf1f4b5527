"""Per-lesion, per-visit statistics: lesion age, χ relative to NAWM, and FLAIR volume.

The measures are :mod:`lesionqsm.lesions`; these interfaces load and save files around them.
"""

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..bids.images import atomic_write_text, check_same_grid, load_image, load_mask_on_grid
from ..bids_templates import lesion_table_dictionary, lesion_table_path
from ..lesions import (
    LesionOptions,
    SubjectMaps,
    label_volumes_mm3,
    lesion_fractions,
    measure_subject,
    parse_acq_time,
)
from ..options import options_from_mapping
from ..registration.fsl_matrix import fsl_to_world, read_fsl_matrix

ALGORITHM_VERSION = '5'

#: Column order of the per-subject lesion table (its data dictionary is a template).
LESION_TABLE_COLUMNS = list(lesion_table_dictionary())


class _LesionStatisticsInputSpec(BaseInterfaceInputSpec):
    participant_id = traits.Str(mandatory=True, desc='sub-<label>')
    session_ids = traits.List(traits.Str, mandatory=True, desc='visits, ordered by acq_time')
    acq_times = traits.List(traits.Str, mandatory=True, desc='ISO 8601 acq_time per visit')
    chi_files = traits.List(traits.Str, mandatory=True,
                            desc="χ (ppm) per visit in baseline GRE space; '' if none")
    fraction_files = traits.List(
        traits.Str, mandatory=True,
        desc="per visit, its lesions' partial-volume fractions in baseline GRE space (4-D, "
             "from LesionFractions, ids in a header extension); '' if none")
    flair_dseg_files = traits.List(traits.Str, mandatory=True,
                                   desc="lesion label map per visit on its FLAIR; '' if none")
    lesions = traits.List(traits.Dict, mandatory=True,
                          desc='checked annotation rows: lesion_id, detected_session, rim, '
                               'enhancement (SubjectData.lesions)')
    lesions_tsv = traits.Str('lesions.tsv', usedefault=True,
                             desc='where the annotations came from (for messages)')
    brain_mask = File(exists=True, mandatory=True, desc='baseline brain mask')
    csf_mask = File(exists=True, desc='baseline CSF mask, excluded from NAWM')
    reliable_mask = File(exists=True, desc='baseline voxels whose χ is reliable (flags lesions '
                                           'that reach outside)')
    vein_mask = File(exists=True, desc='central-vein voxels to drop from lesion ROIs')
    options = traits.Dict(desc='lesion measure options (LesionOptions, as a dict)')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True, desc='reruns caches')


class _LesionStatisticsOutputSpec(TraitedSpec):
    out_table = File(exists=True, desc='lesion x visit table (TSV)')
    out_dictionary = File(exists=True, desc='JSON data dictionary of out_table')


class LesionStatistics(SimpleInterface):
    """Measure every annotated lesion at every visit; :func:`lesionqsm.lesions.measure_subject`."""

    input_spec = _LesionStatisticsInputSpec
    output_spec = _LesionStatisticsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        sessions = [s.removeprefix('ses-') for s in inputs.session_ids]
        visit_times = {s: parse_acq_time(t, f'{inputs.participant_id} ses-{s}')
                       for s, t in zip(sessions, inputs.acq_times, strict=True)}
        brain_img = load_image(inputs.brain_mask, ndim=3)

        def mask_on_brain_grid(path):
            return load_mask_on_grid(path, brain_img, inputs.brain_mask)

        def chi_on_brain_grid(path):
            img = load_image(path, ndim=3)
            check_same_grid(img, path, brain_img, inputs.brain_mask)
            return img.get_fdata(dtype=np.float32)

        def flair_volumes(path):
            img = load_image(path, ndim=3)
            return label_volumes_mm3(np.rint(np.asanyarray(img.dataobj)),
                                     img.header.get_zooms()[:3])

        def fractions(path):
            return read_fractions(path, brain_img, inputs.brain_mask)

        def per_session(paths, load):
            return {s: load(p) for s, p in zip(sessions, paths, strict=True) if p}

        maps = SubjectMaps(
            chi=per_session(inputs.chi_files, chi_on_brain_grid),
            fractions=per_session(inputs.fraction_files, fractions),
            volumes=per_session(inputs.flair_dseg_files, flair_volumes),
            brain=np.asanyarray(brain_img.dataobj) > 0,
            csf=mask_on_brain_grid(inputs.csf_mask) if isdefined(inputs.csf_mask) else None,
            veins=mask_on_brain_grid(inputs.vein_mask) if isdefined(inputs.vein_mask) else None,
            voxel_size=tuple(float(v) for v in brain_img.header.get_zooms()[:3]),
            reliable=mask_on_brain_grid(inputs.reliable_mask)
            if isdefined(inputs.reliable_mask) else None)
        options = options_from_mapping(
            LesionOptions, inputs.options if isdefined(inputs.options) else {},
            section='lesions')
        rows = measure_subject(inputs.participant_id, list(inputs.lesions), visit_times, maps,
                               options, source=inputs.lesions_tsv)
        table = pd.DataFrame(rows, columns=LESION_TABLE_COLUMNS)
        out_table = Path(runtime.cwd) / f'{inputs.participant_id}_lesions.tsv'
        atomic_write_text(out_table, table.to_csv(sep='\t', index=False, na_rep='n/a',
                                                  float_format='%.10g'))
        out_json = out_table.with_suffix('.json')
        atomic_write_text(out_json, json.dumps(lesion_table_dictionary(), indent=2))
        self._results['out_table'] = str(out_table)
        self._results['out_dictionary'] = str(out_json)
        return runtime


def read_fractions(path, reference_img, reference_path):
    """Lesion fractions written by :class:`LesionFractions`: {lesion_id: 3-D float array}."""
    img = load_image(path, ndim=(3, 4))
    check_same_grid(img, path, reference_img, reference_path)
    ids = None
    for extension in img.header.extensions:
        try:
            ids = [int(i) for i in json.loads(extension.get_content())['lesion_ids']]
        except (ValueError, KeyError, TypeError):
            continue
    if ids is None:
        raise ValueError(f'{path}: no lesion_ids in its NIfTI header extension')
    if not ids:
        return {}
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    if data.ndim == 3:
        data = data[..., None]
    if data.shape[3] != len(ids):
        raise ValueError(f'{path}: {data.shape[3]} volumes for {len(ids)} lesion ids')
    return {lesion_id: data[..., k] for k, lesion_id in enumerate(ids)}


class _LesionFractionsInputSpec(BaseInterfaceInputSpec):
    in_dseg = File(exists=True, mandatory=True,
                   desc='integer lesion label map on its FLAIR grid')
    reference = File(exists=True, mandatory=True, desc='baseline GRE image (output grid)')
    in_matrix_file = File(exists=True, mandatory=True,
                          desc='FLIRT matrix from the FLAIR to the reference')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True, desc='reruns caches')


class _LesionFractionsOutputSpec(TraitedSpec):
    out_fractions = File(exists=True, desc='4-D partial-volume fraction, one volume per lesion '
                                           '(lesion ids in a JSON header extension)')


class LesionFractions(SimpleInterface):
    """Each lesion's partial-volume fraction per voxel of the baseline GRE grid.

    Each lesion's FLAIR voxels are split into 2³ sub-voxels, carried through the FLIRT
    matrix (the same convention whichever engine made it) and counted in the GRE voxel they
    land in, so each GRE voxel gets the fraction of its volume that the lesion occupies and
    the fractions add up to the lesion's FLAIR volume.
    """

    input_spec = _LesionFractionsInputSpec
    output_spec = _LesionFractionsOutputSpec

    def _run_interface(self, runtime):
        dseg_img = load_image(self.inputs.in_dseg, ndim=3)
        ref_img = load_image(self.inputs.reference, ndim=3)
        labels = np.asanyarray(dseg_img.dataobj)
        world = fsl_to_world(read_fsl_matrix(self.inputs.in_matrix_file),
                             in_shape=labels.shape, in_affine=dseg_img.affine,
                             ref_shape=ref_img.shape[:3], ref_affine=ref_img.affine)
        ids, data = lesion_fractions(labels, dseg_img.affine, ref_img.shape[:3],
                                     ref_img.affine, world=world)
        out = Path(runtime.cwd) / 'lesion_fractions.nii'
        header = ref_img.header.copy()
        header.set_data_dtype(np.float32)
        img = nb.Nifti1Image(data.astype(np.float32), ref_img.affine, header)
        # the lesion id of each volume travels inside the file (a JSON comment extension)
        img.header.extensions.append(nb.nifti1.Nifti1Extension(
            'comment', json.dumps({'lesion_ids': ids}).encode()))
        img.to_filename(out)
        self._results['out_fractions'] = str(out)
        return runtime


class _LesionTableSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc='BIDS derivatives folder')
    subject = traits.Str(mandatory=True, desc='participant label without sub-')
    in_table = File(exists=True, mandatory=True, desc='lesion table TSV')
    in_dictionary = File(exists=True, mandatory=True, desc='its JSON data dictionary')


class _LesionTableSinkOutputSpec(TraitedSpec):
    out_table = File(exists=True, desc='sub-<label>/sub-<label>_lesions.tsv in output_dir')
    out_dictionary = File(exists=True, desc='its JSON data dictionary')


class LesionTableSink(SimpleInterface):
    """Copy the lesion table and its dictionary into the derivatives, atomically."""

    input_spec = _LesionTableSinkInputSpec
    output_spec = _LesionTableSinkOutputSpec

    def _run_interface(self, runtime):
        table = lesion_table_path(self.inputs.output_dir, self.inputs.subject)
        root = self.inputs.output_dir  # never written through a link out of it
        atomic_write_text(table, Path(self.inputs.in_table).read_text(), root=root)
        dictionary = table.with_suffix('.json')
        atomic_write_text(dictionary, Path(self.inputs.in_dictionary).read_text(), root=root)
        self._results['out_table'] = str(table)
        self._results['out_dictionary'] = str(dictionary)
        return runtime
