"""Phase scaling: one rule per echo (lesionqsm.qsm.echoes.phase_scaling), for every vendor
convention the synth writes (lesionqsm.synth.vendor), at discovery and in the chain."""

import nibabel as nb
import numpy as np
import pytest
from bids_tree import write_json

from lesionqsm.bids.layout import collect_subject
from lesionqsm.bids.metadata import check_phase_range
from lesionqsm.bids.problems import InputError
from lesionqsm.bids.visit import read_echoes
from lesionqsm.qsm.echoes import phase_scaling, phase_to_radians
from lesionqsm.synth.vendor import PHASE_STORAGE, _write_scaled, stored_phase


def _wrapped_ramp(n=4096, seed=0):
    """A wrapped phase that fills [-π, π) as a real image's noisy background does."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-np.pi, np.pi, n).astype(np.float32)


def _angle_error(a, b):
    return np.abs(np.angle(np.exp(1j * (np.asarray(a, float) - np.asarray(b, float)))))


@pytest.mark.parametrize(('storage', 'convention', 'step'), [
    ('siemens-dcm2niix', 'siemens_signed', 2 * np.pi / 4096),
    ('siemens-unsigned', 'siemens_unsigned', 2 * np.pi / 4096),
    ('philips', 'milliradians', 2 * np.pi / 4096),
    ('ge', 'milliradians', 1e-3),
    ('rad', 'rad', 0.0),
])
def test_scanner_conventions_round_trip(tmp_path, storage, convention, step):
    """Stored as the scanner stores it, read back through nibabel (scl_slope/scl_inter applied)
    and rescaled: the radians of the source to half a storage step (rounding), plus float32
    resolution (1e-6 rad)."""
    phi = _wrapped_ramp()
    _, slope, inter, units = PHASE_STORAGE[storage]
    path = tmp_path / 'phase.nii.gz'
    _write_scaled(path, stored_phase(phi, storage).reshape(16, 16, 16), np.eye(4), slope, inter)
    values = np.asanyarray(nb.load(path).dataobj)
    radians, warnings, scaling = phase_to_radians(values, units, str(path))
    assert scaling.convention == convention and warnings == []
    assert _angle_error(radians.ravel(), phi).max() <= step / 2 + 1e-6


def test_float_phase_in_another_range_is_rescaled_with_a_warning():
    """φ/π in [-1, 1): the observed span maps to 2π; since the observed extremes of 4096
    uniform draws lie within ~1e-3 of ±1, the radians agree to 1e-2 rad."""
    phi = _wrapped_ramp()
    radians, warnings, scaling = phase_to_radians(phi / np.pi, 'arbitrary', 'x.nii.gz')
    assert scaling.convention == 'observed_span'
    assert _angle_error(radians, phi).max() < 1e-2
    (warning,) = warnings
    assert warning.startswith('x.nii.gz: phase values span [-0.9996, 0.9991]')
    assert 'mapped to -pi and pi' in warning


@pytest.mark.parametrize(('values', 'units', 'message'), [
    (_wrapped_ramp() * 0.0037 / np.pi, 'arbitrary', r'span only \[-0.003699, 0.003697\].*far too '
                                                    'small.*chi = 0'),
    (_wrapped_ramp() * 0.0037 / np.pi, None, 'Units missing.*far too small'),
    (np.full(10, 7.0), 'arbitrary', r'span only \[7, 7\]'),
    (_wrapped_ramp() * 1e5, 'arbitrary', 'far too large for a wrapped phase'),
    (_wrapped_ramp() * 4096 / np.pi, 'rad', r'declared in radians.*"Units": "arbitrary"'),
])
def test_impossible_phase_is_refused_naming_the_file(values, units, message):
    with pytest.raises(ValueError, match=message) as err:
        phase_scaling(values, units, 'sub-01_echo-1_part-phase_MEGRE.nii.gz')
    assert str(err.value).startswith('sub-01_echo-1_part-phase_MEGRE.nii.gz: ')
    with pytest.raises(InputError, match=message):  # discovery: the same rule, its error type
        check_phase_range(values, units, path='p.nii.gz')


def test_nearly_constant_phase_declared_in_radians_is_kept_with_a_warning():
    """Declared radians are never rescaled; a nearly constant one is only flagged."""
    scaling = phase_scaling(np.full(8, 0.3, np.float32), 'rad', 'p.nii.gz')
    assert scaling.convention == 'rad' and 'nearly constant' in scaling.warning


def test_radians_labelled_arbitrary_are_taken_as_radians():
    scaling, note = check_phase_range(_wrapped_ramp(), 'arbitrary', path='p.nii.gz')
    assert scaling.convention == 'rad' and 'taken as radians' in note


def test_partly_covered_scanner_range_is_not_guessed():
    """Integers covering half of ±4096 are no known convention: observed span, warned."""
    values = np.rint(_wrapped_ramp() / np.pi * 2048)
    scaling = phase_scaling(values, 'arbitrary', 'p.nii.gz')
    assert scaling.convention == 'observed_span' and scaling.warning


def _visit(tiny_bids, storage, n_echoes=2):
    """A 2-echo visit whose phase echoes are stored as ``storage``."""
    paths = tiny_bids.megre('01', '01', n_echoes=n_echoes)
    _, slope, inter, units = PHASE_STORAGE[storage]
    truth = []
    for index, path in enumerate(paths['phase']):
        phi = _wrapped_ramp(48, seed=index).reshape(4, 4, 3)
        truth.append(phi)
        _write_scaled(path, stored_phase(phi, storage), nb.load(path).affine, slope, inter)
        sidecar = path.with_name(path.name.replace('.nii.gz', '.json'))
        write_json(sidecar, {'EchoTime': 0.004 + 0.005 * index, 'MagneticFieldStrength': 3.0,
                             **({'Units': units} if units else {})})
    return paths, truth


def test_discovery_and_chain_apply_the_same_rule(tiny_bids):
    """GE phase without Units: discovery notes milliradians once for the visit; the chain's
    reader recovers the radians to the 0.5 mrad rounding and records the decision per echo."""
    paths, truth = _visit(tiny_bids, 'ge')
    data = collect_subject(tiny_bids.root, '01')
    gre = data.sessions[0].megre
    notes = [str(p) for p in data.problems if 'milliradians' in str(p)]
    assert len(notes) == 1 and 'echo-1_part-phase_MEGRE.nii.gz' in notes[0]
    assert 'and 1 more echoes alike' in notes[0]
    signal, _, warnings, scalings = read_echoes(gre.mag_files, gre.phase_files, gre.phase_units)
    assert warnings == []
    assert [s['convention'] for s in scalings] == ['milliradians'] * 2
    assert scalings[0]['file'] == paths['phase'][0].name
    for echo, phi in enumerate(truth):
        assert _angle_error(np.angle(signal[..., echo]), phi).max() <= 5e-4 + 1e-6


def test_tiny_float_phase_fails_at_discovery(tiny_bids):
    _visit(tiny_bids, 'float-tiny')
    with pytest.raises(InputError, match='far too small') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-phase_MEGRE.nii.gz' in str(err.value)


def test_one_echo_of_a_2d_acquisition_is_flagged(tiny_bids):
    """Slice-wise phase offsets cancel in a multi-echo fit (tests/cli/test_vendor_variants.py)
    but not with one echo: the visit runs, with a note."""
    paths = tiny_bids.megre('01', '01', n_echoes=1)
    for path in paths['mag'] + paths['phase']:
        write_json(path.with_name(path.name.replace('.nii.gz', '.json')),
                   {'EchoTime': 0.004, 'MagneticFieldStrength': 3.0, 'Units': 'rad',
                    'MRAcquisitionType': '2D'})
    data = collect_subject(tiny_bids.root, '01')
    assert data.sessions[0].has_qsm_input
    assert any('one echo of a 2-D acquisition' in p and 'stripes' in p
               for p in map(str, data.problems))
