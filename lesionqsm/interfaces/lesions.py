"""Per-lesion, per-visit statistics: lesion age, χ relative to NAWM, and FLAIR volume."""

import json
from datetime import datetime
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

from ..bids.images import atomic_write_text, check_same_grid, load_image
from ..bids_templates import lesion_table_dictionary, lesion_table_path
from ..qsm import roi

ALGORITHM_VERSION = '3'
DAYS_PER_YEAR = 365.25

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
             "from LesionFractions, ids in the JSON beside it); '' if none")
    flair_dseg_files = traits.List(traits.Str, mandatory=True,
                                   desc="lesion label map per visit on its FLAIR; '' if none")
    lesions = traits.List(traits.Dict, mandatory=True,
                          desc='checked annotation rows: lesion_id, detected_session, rim, '
                               'enhancement (SubjectData.lesions)')
    lesions_tsv = traits.Str('lesions.tsv', usedefault=True,
                             desc='where the annotations came from (for messages)')
    brain_mask = File(exists=True, mandatory=True, desc='baseline brain mask')
    csf_mask = File(exists=True, desc='baseline CSF mask, excluded from NAWM')
    vein_mask = File(exists=True, desc='central-vein voxels to drop from lesion ROIs')
    nawm_inner_mm = traits.Float(1.0, usedefault=True, desc='NAWM shell inner distance, mm')
    nawm_outer_mm = traits.Float(5.0, usedefault=True, desc='NAWM shell outer distance, mm')
    estimator = traits.Enum('partial_volume', 'roi_mean', usedefault=True,
                            desc='chi_rel_ppb: partial-volume corrected excess (default) or the '
                                 'plain ROI mean (the paper\'s hand-drawn ROI analysis)')
    dilation_mm = traits.Float(2.0, usedefault=True,
                               desc='neighbourhood of the partial-volume estimate, mm')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True, desc='reruns caches')


class _LesionStatisticsOutputSpec(TraitedSpec):
    out_table = File(exists=True, desc='lesion x visit table (TSV)')
    out_dictionary = File(exists=True, desc='JSON data dictionary of out_table')


def _parse_time(text, where):
    try:
        return datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError as exc:
        raise ValueError(f'{where}: unparsable acq_time {text!r}') from exc


def _strip(label, prefix):
    label = str(label)
    return label[len(prefix):] if label.startswith(prefix) else label


class LesionStatistics(SimpleInterface):
    """Measure every annotated lesion at every visit at or after its detection."""

    input_spec = _LesionStatisticsInputSpec
    output_spec = _LesionStatisticsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        sessions = [_strip(s, 'ses-') for s in inputs.session_ids]
        times = {s: _parse_time(t, f'{inputs.participant_id} ses-{s}')
                 for s, t in zip(sessions, inputs.acq_times, strict=True)}
        lesions = pd.DataFrame(list(inputs.lesions)).astype(str)
        for column in ('lesion_id', 'detected_session'):
            if column not in lesions.columns:
                raise ValueError(f'{inputs.lesions_tsv}: column {column!r} is missing')

        brain_img = load_image(inputs.brain_mask, ndim=3)
        brain = np.asanyarray(brain_img.dataobj) > 0
        voxel_size = tuple(float(v) for v in brain_img.header.get_zooms()[:3])
        exclude = np.zeros_like(brain)
        if isdefined(inputs.csf_mask):
            exclude |= self._mask_on(inputs.csf_mask, brain_img, inputs.brain_mask)
        veins = None
        if isdefined(inputs.vein_mask):
            veins = self._mask_on(inputs.vein_mask, brain_img, inputs.brain_mask)
            exclude |= veins

        fractions = {}
        for session, path in zip(sessions, inputs.fraction_files, strict=True):
            if path:
                fractions[session] = read_fractions(path, brain_img, inputs.brain_mask)
        for by_id in fractions.values():
            for fraction in by_id.values():
                exclude |= fraction > 0.01

        volumes = {}
        for session, path in zip(sessions, inputs.flair_dseg_files, strict=True):
            if path:
                img = load_image(path, ndim=3)
                volumes[session] = roi.label_volumes_mm3(
                    np.rint(np.asanyarray(img.dataobj)), img.header.get_zooms()[:3])

        chi_maps = {}
        for session, path in zip(sessions, inputs.chi_files, strict=True):
            if path:
                img = load_image(path, ndim=3)
                check_same_grid(img, path, brain_img, inputs.brain_mask)
                chi_maps[session] = img.get_fdata(dtype=np.float32)

        rows = []
        for _, lesion in lesions.iterrows():
            rows.extend(self._measure_lesion(lesion, sessions, times, fractions, chi_maps,
                                             volumes, brain, exclude, veins, voxel_size))
        table = pd.DataFrame(rows, columns=LESION_TABLE_COLUMNS)
        out_table = Path(runtime.cwd) / f'{inputs.participant_id}_lesions.tsv'
        atomic_write_text(out_table, table.to_csv(sep='\t', index=False, na_rep='n/a',
                                                  float_format='%.10g'))
        out_json = out_table.with_suffix('.json')
        atomic_write_text(out_json, json.dumps(lesion_table_dictionary(), indent=2))
        self._results['out_table'] = str(out_table)
        self._results['out_dictionary'] = str(out_json)
        return runtime

    @staticmethod
    def _mask_on(path, reference_img, reference_path):
        img = load_image(path, ndim=3)
        check_same_grid(img, path, reference_img, reference_path)
        return np.asanyarray(img.dataobj) > 0

    def _measure_lesion(self, lesion, sessions, times, fractions, chi_maps, volumes, brain,
                        exclude, veins, voxel_size):
        inputs = self.inputs
        lesion_id = str(lesion['lesion_id'])
        detected = _strip(lesion['detected_session'], 'ses-')
        if detected not in times:
            raise ValueError(f'{inputs.lesions_tsv}: lesion {lesion_id} was detected at '
                             f'ses-{detected}, which is not a visit of {inputs.participant_id}')
        try:
            label = int(float(lesion_id))
        except ValueError as exc:
            raise ValueError(f'{inputs.lesions_tsv}: lesion_id {lesion_id!r} is not the '
                             'integer used in the label maps') from exc
        fraction, others = None, None
        status_roi = 'ok'
        if detected not in fractions:
            status_roi = f'no lesion label map at the detection visit ses-{detected}'
        elif label not in fractions[detected] or not fractions[detected][label].any():
            status_roi = f'lesion {label} absent from the label map of ses-{detected}'
        else:
            # the ROI drawn at detection is overlaid on every later visit (as in the paper)
            fraction = fractions[detected][label]
            others = np.zeros_like(brain)
            for by_id in fractions.values():
                for other_id, other in by_id.items():
                    if other_id != label:
                        others |= other > 0.01
            others &= fraction < 0.5
        baseline_volume = volumes.get(detected, {}).get(label, np.nan) \
            if detected in volumes else np.nan
        rows = []
        for session in sessions:
            age_days = (times[session] - times[detected]).total_seconds() / 86400.0
            if age_days < 0:
                continue  # the lesion did not exist yet
            status = status_roi
            stats = {'chi_lesion_ppb': np.nan, 'chi_nawm_ppb': np.nan, 'chi_rel_ppb': np.nan,
                     'chi_rel_roi_mean_ppb': np.nan, 'n_voxels': 0}
            if session not in chi_maps:
                status = 'no QSM at this visit' if status == 'ok' else status
            elif fraction is not None:
                stats = roi.lesion_excess_statistics(
                    chi_maps[session], fraction, exclude=exclude, brain_mask=brain,
                    voxel_size=voxel_size, others=others, dilation_mm=inputs.dilation_mm,
                    inner_mm=inputs.nawm_inner_mm, outer_mm=inputs.nawm_outer_mm,
                    vein_mask=veins)
                if inputs.estimator == 'roi_mean':
                    stats['chi_rel_ppb'] = stats['chi_rel_roi_mean_ppb']
                    stats['chi_lesion_ppb'] = stats['chi_nawm_ppb'] + stats['chi_rel_ppb']
            if session in volumes:
                volume = volumes[session].get(label, 0.0)
            else:
                volume = np.nan
                if status == 'ok':
                    status = 'no FLAIR lesion map at this visit'
            rows.append({
                'participant_id': inputs.participant_id,
                'lesion_id': lesion_id,
                'session_id': f'ses-{session}',
                'acq_time': times[session].isoformat(),
                'detected_session': f'ses-{detected}',
                'lesion_age_years': age_days / DAYS_PER_YEAR,
                'rim': lesion.get('rim', 'n/a') or 'n/a',
                'enhancement': lesion.get('enhancement', 'n/a') or 'n/a',
                'chi_lesion_ppb': stats['chi_lesion_ppb'],
                'chi_nawm_ppb': stats['chi_nawm_ppb'],
                'chi_rel_ppb': stats['chi_rel_ppb'],
                'chi_rel_roi_mean_ppb': stats['chi_rel_roi_mean_ppb'],
                'volume_mm3': volume,
                'baseline_volume_mm3': baseline_volume,
                'volume_change_mm3': volume - baseline_volume,
                'n_voxels': stats['n_voxels'],
                'status': status,
            })
        return rows


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
        from .fsl_matrix import fsl_to_world, read_fsl_matrix

        dseg_img = load_image(self.inputs.in_dseg, ndim=3)
        ref_img = load_image(self.inputs.reference, ndim=3)
        labels = np.rint(np.asanyarray(dseg_img.dataobj)).astype(np.int64)
        world = fsl_to_world(read_fsl_matrix(self.inputs.in_matrix_file),
                             in_shape=labels.shape, in_affine=dseg_img.affine,
                             ref_shape=ref_img.shape[:3], ref_affine=ref_img.affine)
        ids = [int(i) for i in np.unique(labels) if i > 0]
        volumes = [roi.partial_volume_fraction(labels == lesion_id, dseg_img.affine,
                                               ref_img.shape[:3], ref_img.affine, world=world)
                   for lesion_id in ids]
        shape = ref_img.shape[:3] + (max(1, len(ids)),)
        data = np.stack(volumes, axis=-1) if volumes else np.zeros(shape, np.float32)
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
        atomic_write_text(table, Path(self.inputs.in_table).read_text())
        dictionary = table.with_suffix('.json')
        atomic_write_text(dictionary, Path(self.inputs.in_dictionary).read_text())
        self._results['out_table'] = str(table)
        self._results['out_dictionary'] = str(dictionary)
        return runtime
