"""The session QSM workflow on one visit of the tiny synthetic cohort, against its true χ."""

import nibabel as nb
import pytest
from nuclei_contrast import nuclei_contrasts, slope_and_order

from lesionqsm.workflows.session import SESSION_OUTPUTS, init_session_qsm_wf


def test_workflow_graph_has_every_step():
    wf = init_session_qsm_wf(echo_times=[0.005, 0.010, 0.015], field_strength=3.0)
    names = {node.name for node in wf._create_flat_graph().nodes()}
    assert {'prepare_echoes', 'brain_mask', 'fit_echoes', 'unwrap', 'r2star', 'csf_mask',
            'remove_background', 'invert_dipole'} <= names
    assert set(SESSION_OUTPUTS) <= set(wf.get_node('outputnode').inputs.copyable_trait_names())


def test_unknown_option_is_refused():
    with pytest.raises(ValueError, match='qsm.lamda: unknown option'):
        init_session_qsm_wf(echo_times=[0.005, 0.010], field_strength=3.0,
                            qsm_options={'lamda': 10})


def test_session_chi_against_truth(tiny_ses01_run):
    """Deep grey nuclei relative to white matter, reconstructed vs true (sub-01, ses-01).

    The χ map is the one the session workflow wrote in the shared participant run.  The tiny
    preset has 3 mm isotropic voxels, 5 echoes and nuclei a few voxels across, so partial
    volume and MEDI's edge-preserving smoothing leave errors of up to ~15 ppb on ~50-170 ppb
    contrasts: the regression slope must lie in [0.8, 1.2] and the nuclei keep their order
    (pallidum > putamen > caudate > thalamus > white matter).
    """
    assert tiny_ses01_run.code == 0
    anat = tiny_ses01_run.out / 'sub-01' / 'ses-01' / 'anat'
    truth_dir = (tiny_ses01_run.bids / 'derivatives' / 'groundtruth' / 'sub-01' / 'ses-01'
                 / 'anat')
    measured, expected = nuclei_contrasts(anat, truth_dir, 'sub-01_ses-01')
    slope, order_kept = slope_and_order(measured, expected)
    assert 0.8 <= slope <= 1.2
    assert order_kept
    chi = nb.load(anat / 'sub-01_ses-01_Chimap.nii.gz').get_fdata()
    csf = nb.load(anat / 'sub-01_ses-01_desc-csf_mask.nii.gz').get_fdata() > 0
    assert abs(chi[csf].mean()) < 1e-6
