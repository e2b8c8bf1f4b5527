"""The participant level end to end on the tiny synthetic cohort, and nipype's caching.

Caching is asserted from nipype's own records: a node that runs rewrites its
``result_<node>.pklz``; a node served from the cache leaves it untouched.
"""

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest


def _result_files(work_dir):
    return {str(p.relative_to(work_dir)): p.stat().st_mtime_ns
            for p in Path(work_dir).rglob('result_*.pklz')}


def _rerun_nodes(before, after):
    """Nodes whose result changed; the sinks (``ds_*``) always run, to restore outputs."""
    return sorted(p.split('/result_')[0] for p in after if before.get(p) != after[p]
                  and not p.split('/result_')[0].split('/')[-1].startswith('ds_'))


@pytest.fixture(scope='module')
def tiny_run(tiny_cohort, tmp_path_factory, lesionqsm_cli):
    """sub-02 of the tiny cohort (3 lesions, 3 visits), every visit."""
    root = tmp_path_factory.mktemp('tiny_run')
    out, work = root / 'derivatives', root / 'work'
    code = lesionqsm_cli(tiny_cohort, out, work, subjects=('02',), sessions=None)
    return {'code': code, 'out': out, 'work': work, 'bids': tiny_cohort}


def test_participant_outputs(tiny_run):
    assert tiny_run['code'] == 0
    out = tiny_run['out']
    description = json.loads((out / 'dataset_description.json').read_text())
    assert description['DatasetType'] == 'derivative'
    chimaps = sorted(out.glob('sub-*/ses-*/anat/*_Chimap.nii.gz'))
    sessions = sorted(tiny_run['bids'].glob('sub-02/ses-*'))
    assert len([c for c in chimaps if 'space-' not in c.name]) == len(sessions)
    sidecar = json.loads(Path(str(chimaps[0]).replace('.nii.gz', '.json')).read_text())
    assert sidecar['Units'] == 'ppm'
    assert sidecar['ReferenceRegion'] in ('ventricular_csf', 'whole_brain')
    assert sidecar['AlgorithmParameters']['lambda_'] == 1000.0
    for table in out.glob('sub-*/sub-*_lesions.tsv'):
        assert (table.with_suffix('.json')).exists()


def test_chi_matches_ground_truth_in_csf_reference(tiny_run):
    """χ is referenced to CSF: its mean over the written CSF mask is 0 to float precision."""
    out = tiny_run['out']
    for chimap in out.glob('sub-*/ses-*/anat/*_Chimap.nii.gz'):
        if 'space-' in chimap.name:
            continue
        mask_file = Path(str(chimap).replace('_Chimap.nii.gz', '_desc-csf_mask.nii.gz'))
        chi = nb.load(chimap).get_fdata()
        csf = nb.load(mask_file).get_fdata() > 0
        assert abs(chi[csf].mean()) < 1e-4


def test_lesion_table_against_ground_truth(tiny_run):
    """Per lesion-visit χ_rel and volume of sub-02 against the synth ground truth.

    The tiny preset has 3 mm isotropic voxels and 5 echoes up to 24 ms: its lesions (150-600
    mm³) are 6-22 voxels, which MEDI's total variation flattens, so χ_rel is underestimated
    by a few ppb (median |error| 6.2 ppb measured).  The bound here is 8 ppb, and the
    partial-volume corrected estimate must beat the plain ROI mean it replaces.  The issue's
    acceptance figures (3 ppb, 10 %) hold on the demo cohort (2×2×3 mm, 10 echoes: 1.67 ppb and
    0 %), measured by ``benchmarks/bench_demo_accuracy.py``.  Volumes come from each visit's
    own FLAIR label map, as in the truth, so they agree to 1 %.
    """
    out, bids = tiny_run['out'], tiny_run['bids']
    errors, roi_mean_errors, volume_errors = [], [], []
    for table_file in sorted(out.glob('sub-*/sub-*_lesions.tsv')):
        subject = table_file.name.split('_')[0]
        measured = pd.read_csv(table_file, sep='\t')
        truth = pd.read_csv(bids / 'derivatives' / 'groundtruth' / subject /
                            f'{subject}_lesions.tsv', sep='\t')
        merged = measured.merge(truth, on=['lesion_id', 'session_id'], suffixes=('', '_true'))
        assert len(merged) == len(truth)
        errors.extend(merged.chi_rel_ppb - merged.chi_rel_ppb_true)
        roi_mean_errors.extend(merged.chi_rel_roi_mean_ppb - merged.chi_rel_ppb_true)
        volume_errors.extend((merged.volume_mm3 - merged.volume_mm3_true)
                             / merged.volume_mm3_true)
    assert errors, 'no lesion rows were compared'
    assert np.median(np.abs(errors)) <= 8.0
    assert np.median(np.abs(errors)) < np.median(np.abs(roi_mean_errors))
    assert np.median(np.abs(volume_errors)) <= 0.01


def test_rerun_executes_nothing(tiny_run, lesionqsm_cli):
    before = _result_files(tiny_run['work'])
    assert before
    code = lesionqsm_cli(tiny_run['bids'], tiny_run['out'], tiny_run['work'],
                         subjects=('02',), sessions=None)
    assert code == 0
    assert _rerun_nodes(before, _result_files(tiny_run['work'])) == []


def test_changing_a_medi_parameter_reruns_only_downstream(tiny_run, tmp_path, lesionqsm_cli):
    config = tmp_path / 'params.json'
    config.write_text(json.dumps({'qsm': {'lambda_': 900.0}}))
    before = _result_files(tiny_run['work'])
    code = lesionqsm_cli(tiny_run['bids'], tiny_run['out'], tiny_run['work'], '--config',
                         str(config), subjects=('02',), sessions=None)
    assert code == 0
    rerun = _rerun_nodes(before, _result_files(tiny_run['work']))
    assert any(name.endswith('invert_dipole') for name in rerun)
    upstream = ('prepare_echoes', 'brain_mask', 'fit_echoes', 'unwrap', 'r2star', 'csf_mask',
                'remove_background', 'gre_to_baseline', 'flair_to_gre')
    assert not [n for n in rerun if n.split('/')[-1].endswith(upstream)]


def test_changing_one_subject_reruns_only_that_subject(tiny_ses01_run, tiny_cohort,
                                                       lesionqsm_cli):
    """On the shared run of sub-01 and sub-02 (ses-01): a changed sub-02 phase reruns sub-02
    only.  The original file is restored afterwards (then sub-02 reruns once more for the next
    user of the shared run, which is correct, only slower)."""
    bids, out, work = tiny_ses01_run.bids, tiny_ses01_run.out, tiny_ses01_run.work
    assert lesionqsm_cli(bids, out, work) == 0
    before = _result_files(work)
    relative = Path('sub-02/ses-01/anat/sub-02_ses-01_echo-1_part-phase_MEGRE.nii.gz')
    img = nb.load(bids / relative)
    try:
        nb.Nifti1Image(np.asanyarray(img.dataobj) * 0.999, img.affine,
                       img.header).to_filename(bids / relative)
        assert lesionqsm_cli(bids, out, work) == 0
        rerun = _rerun_nodes(before, _result_files(work))
    finally:
        shutil.copy2(tiny_cohort / relative, bids / relative)
    assert rerun and all('sub_02_wf' in name for name in rerun)
