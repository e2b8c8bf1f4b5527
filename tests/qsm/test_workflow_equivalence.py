"""The participant workflow and ``reconstruct_session`` are one chain: the same χ, bit for bit.

Both call the same step functions with the same options objects; the workflow only adds
NIfTI files between the steps (float32, complex64 and uint8, all lossless for what the steps
return).  Each case runs the session workflow on echo files written from the analytic head
phantom and ``reconstruct_session`` on the same files read by the same reader, and requires
the same χ to 1e-6 ppm and the same sidecar decisions.  The cases cover every background
removal × inversion pair (the SMV-in-MEDI methods with MEDI), CSF found and not found, and
2, 3 and 5 echoes; MEDI is cut to 2 Gauss-Newton steps of 20 CG iterations (equality does
not depend on convergence).
"""

import dataclasses

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.bids.visit import read_echoes
from lesionqsm.qsm import QSMOptions, reconstruct_session
from lesionqsm.qsm.pipeline import STEP_OPTIONS
from lesionqsm.synth.head_phantom import head_phantom
from lesionqsm.workflows.session import init_session_qsm_wf

FAST = {'max_gn_iter': 2, 'cg_max_iter': 20}
TE5 = 0.005 * np.arange(1, 6)

CASES = [  # background, inversion, ventricles, echo indices
    ('pdf_edge_smv', 'medi+0', 3, [0, 1, 2, 3, 4]),
    ('pdf_edge_smv', 'medi', 0, [0, 1]),
    ('medi_toolbox', 'medi+0', 3, [0, 2, 4]),
    ('pdf', 'medi+0', 3, [0, 1, 2, 3, 4]),
    ('lbv', 'medi', 3, [0, 2, 4]),
    ('pdf', 'tkd', 0, [0, 1]),
    ('lbv', 'medi+0', 0, [0, 1, 2, 3, 4]),
    ('pdf', 'medi', 0, [0, 1]),
    ('lbv', 'tkd', 3, [1, 2]),
]


@pytest.fixture(scope='module')
def phantoms():
    return {n: head_phantom((3.0, 3.0, 3.0), scale=0.8, echo_times=TE5, ventricles=n)
            for n in (0, 3)}


def _write_echoes(phantom, echoes, folder):
    folder.mkdir(parents=True, exist_ok=True)
    mags, phases = [], []
    for index in echoes:
        signal = phantom.signal[..., index]
        for kind, data, names in (('mag', np.abs(signal), mags),
                                  ('phase', np.angle(signal), phases)):
            path = folder / f'echo-{index + 1}_part-{kind}.nii.gz'
            nb.Nifti1Image(data.astype(np.float32), phantom.affine).to_filename(path)
            names.append(str(path))
    return mags, phases


@pytest.mark.parametrize(('background', 'inversion', 'ventricles', 'echoes'), CASES)
def test_workflow_equals_api(phantoms, tmp_path, background, inversion, ventricles, echoes):
    phantom = phantoms[ventricles]
    mags, phases = _write_echoes(phantom, echoes, tmp_path / 'echoes')
    echo_times = [float(TE5[i]) for i in echoes]
    options = {**FAST, 'background': background, 'inversion': inversion}

    signal, reference_img, _, scalings = read_echoes(mags, phases, 'rad')
    api = reconstruct_session(signal, echo_times, field_strength=3.0,
                              affine=reference_img.affine, options=options,
                              phase_scaling=scalings)

    wf = init_session_qsm_wf(echo_times=echo_times, field_strength=3.0, qsm_options=options)
    wf.base_dir = str(tmp_path / 'work')
    wf.inputs.inputnode.mag_files = mags
    wf.inputs.inputnode.phase_files = phases
    graph = wf.run(plugin='Linear')
    outputs = {node.name: node.result.outputs for node in graph.nodes()}
    chi = np.asanyarray(nb.load(outputs['invert_dipole'].out_chi).dataobj)

    assert np.abs(chi - api.chi_ppm).max() <= 1e-6
    metadata = outputs['invert_dipole'].metadata
    assert metadata == api.metadata
    expected_reference = 'ventricular_csf' if ventricles else 'whole_brain'
    assert api.reference == metadata['ReferenceRegion'] == expected_reference
    # the echoes chosen are evenly spaced: ARLO from 3 echoes on, log-linear with 2
    assert metadata['Decisions']['r2star_method'] == ('arlo' if len(echoes) >= 3
                                                      else 'loglinear')
    assert metadata['Decisions']['background'] == background
    # the sidecar records every option of every step, with the value used
    flat = QSMOptions.from_mapping(options).as_flat_dict()
    assert metadata['Options'] == flat
    assert set(flat) == {f.name for klass in STEP_OPTIONS.values()
                         for f in dataclasses.fields(klass)}
    reference_mask = np.asanyarray(nb.load(outputs['invert_dipole'].out_reference_mask).dataobj)
    np.testing.assert_array_equal(reference_mask > 0, api.csf_mask)
    reliable = np.asanyarray(nb.load(outputs['invert_dipole'].out_reliable_mask).dataobj)
    np.testing.assert_array_equal(reliable > 0, api.reliable_mask)
