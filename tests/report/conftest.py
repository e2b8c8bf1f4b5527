"""One real participant run of the tiny cohort (MEDI cut short) and one group-level run.

``report_run``: the tiny cohort's sub-01 and sub-02 at every visit, with NaN voxels written into
one echo of sub-02 ses-03 so that this visit fails in the workflow (a node crash), and the
reports written from the outputs.  MEDI runs 2 Gauss-Newton steps of 20 CG iterations: the
reports show the maps, whatever their quality.

``group_run``: the tiny cohort has 2 patients and the group model needs 3, so the group level
runs (through the CLI) on lesion tables from :func:`lesionqsm.synth.lesion_table
.simulate_lesion_table` (6 patients, 12 lesions, 4 visits each), with ``--poly-degree 1
--covariates`` (none).
"""

import json
import logging
import shutil
from types import SimpleNamespace

import nibabel as nb
import numpy as np
import pytest

FAILED = ('02', '03')  # (subject, session) made to fail
NAN_ECHO = 'sub-02/ses-03/anat/sub-02_ses-03_echo-2_part-mag_MEGRE.nii.gz'


def _put_nans(path):
    img = nb.load(str(path))
    data = np.asarray(img.dataobj).astype(np.float32)
    data[30:33, 30:33, 10] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)  # an integer file would turn NaN into 0
    header.set_slope_inter(1.0, 0.0)
    nb.save(nb.Nifti1Image(data, img.affine, header), str(path))


@pytest.fixture(scope='session')
def report_run(tiny_cohort, tmp_path_factory, lesionqsm_cli):
    """Participant level of sub-01 and sub-02 (all visits), then both subject reports."""
    from lesionqsm.report import write_citation, write_subject_report

    root = tmp_path_factory.mktemp('report_run')
    bids, out, work = root / 'bids', root / 'out', root / 'work'
    shutil.copytree(tiny_cohort, bids)
    _put_nans(bids / NAN_ECHO)
    config = root / 'config.json'
    config.write_text(json.dumps({'qsm': {'max_gn_iter': 2, 'cg_max_iter': 20}}))
    code = lesionqsm_cli(bids, out, work, '--config', config, sessions=None)
    reports = {s: write_subject_report(out, s) for s in ('01', '02')}
    citation = write_citation(out)
    return SimpleNamespace(bids=bids, out=out, work=work, code=code, reports=reports,
                           citation=citation)


@pytest.fixture(scope='session')
def group_run(tmp_path_factory):
    """``lesionqsm BIDS OUT group --poly-degree 1 --covariates`` on simulated lesion tables."""
    from lesionqsm.cli import main
    from lesionqsm.report import write_citation, write_group_report
    from lesionqsm.synth.lesion_table import simulate_lesion_table

    root = tmp_path_factory.mktemp('group_run')
    bids, out = root / 'bids', root / 'out'
    lesions, participants, _ = simulate_lesion_table(
        n_patients=6, n_lesions=12, visits_per_lesion=4, rng=np.random.default_rng(3))
    bids.mkdir()
    participants.to_csv(bids / 'participants.tsv', sep='\t', index=False, na_rep='n/a')
    for pid, rows in lesions.groupby('participant_id'):
        (out / pid).mkdir(parents=True)
        rows.to_csv(out / pid / f'{pid}_lesions.tsv', sep='\t', index=False, na_rep='n/a')
    handlers = list(logging.getLogger().handlers)
    try:
        code = main([str(bids), str(out), 'group', '--skip-bids-validation',
                     '--poly-degree', '1', '--covariates'])
    finally:
        for handler in logging.getLogger().handlers[:]:
            if handler not in handlers and isinstance(handler, logging.FileHandler):
                logging.getLogger().removeHandler(handler)
                handler.close()
    report = write_group_report(out)
    citation = write_citation(out)
    return SimpleNamespace(bids=bids, out=out, code=code, report=report, citation=citation,
                           lesions=lesions)
