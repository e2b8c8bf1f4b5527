"""QSM interfaces on tiny images with known answers (each wraps one lesionqsm.qsm function)."""

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.bids.images import ImageError
from lesionqsm.interfaces.qsm import CSFMask, PrepareEchoes, R2Star
from lesionqsm.qsm.echoes import phase_to_radians

AFFINE = np.diag([2.0, 2.0, 3.0, 1.0])


def _save(path, data, affine=AFFINE):
    nb.Nifti1Image(np.asarray(data), affine).to_filename(path)
    return str(path)


def _echoes(tmp_path, echo_times, *, r2star=25.0, freq_hz=12.0, shape=(8, 8, 6)):
    mags, phases = [], []
    for index, te in enumerate(echo_times, start=1):
        mag = np.full(shape, 1000.0 * np.exp(-r2star * te), np.float32)
        phase = np.full(shape, np.angle(np.exp(2j * np.pi * freq_hz * te)), np.float32)
        mags.append(_save(tmp_path / f'mag{index}.nii.gz', mag))
        phases.append(_save(tmp_path / f'phase{index}.nii.gz', phase))
    return mags, phases


def test_prepare_echoes_sorts_flips_phase_and_scales(tmp_path):
    """Echoes come out in TE order, conjugated, divided by the RSS magnitude's 99th percentile
    (a constant image: every RSS voxel becomes 1); float32 keeps ~7 digits, hence 1e-6."""
    tes = [0.010, 0.005, 0.015]
    mags, phases = _echoes(tmp_path, tes)
    result = PrepareEchoes(mag_files=mags, phase_files=phases, echo_times=tes,
                           options={'phase_sign': -1}).run(cwd=str(tmp_path))
    assert result.outputs.echo_times == [0.005, 0.010, 0.015]
    signal = np.asanyarray(nb.load(result.outputs.out_signal).dataobj)
    expected = -np.angle(np.exp(2j * np.pi * 12.0 * 0.005))
    assert np.angle(signal[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-6)
    rss = nb.load(result.outputs.out_magnitude).get_fdata()
    np.testing.assert_allclose(rss, 1.0, rtol=1e-6)
    mags_true = 1000 * np.exp(-25 * np.array([0.005, 0.010, 0.015]))
    assert result.outputs.decisions['magnitude_scale'] == pytest.approx(
        np.sqrt((mags_true**2).sum()), rel=1e-5)
    assert result.outputs.decisions['phase_sign'] == -1


def test_prepare_echoes_refuses_mismatched_grids(tmp_path):
    mags, phases = _echoes(tmp_path, [0.005, 0.010])
    _save(tmp_path / 'phase2.nii.gz', np.zeros((8, 8, 6), np.float32),
          affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ImageError, match='phase2.nii.gz'):
        PrepareEchoes(mag_files=mags, phase_files=phases,
                      echo_times=[0.005, 0.010]).run(cwd=str(tmp_path))


def test_arbitrary_phase_units_map_to_radians():
    """Scanner integers -4096..4095 span [-π, π): -4096 -> -π, 0 -> 0, 2048 -> π/2."""
    phase, warnings, _ = phase_to_radians(np.array([-4096.0, 0.0, 2048.0, 4095.0]), 'arbitrary')
    np.testing.assert_allclose(phase[:3], [-np.pi, 0.0, np.pi / 2], atol=1e-6)
    assert phase[3] == pytest.approx(np.pi - np.pi / 4096, abs=1e-5)
    assert warnings == []


@pytest.mark.parametrize(('echo_times', 'method'), [
    ([0.005, 0.010, 0.015, 0.020], 'arlo'),
    ([0.004, 0.007, 0.013, 0.020], 'loglinear'),   # uneven: ARLO cannot run
    ([0.005, 0.010], 'loglinear'),                  # two echoes: ARLO cannot run
])
def test_r2star_node_chooses_its_estimator(tmp_path, echo_times, method):
    """Noise-free monoexponential decay: R2* = 25 /s (float32 and, for ARLO, its trapezoid
    integral: 1e-3 /s and 0.5 /s); the estimator actually used is recorded, with a warning
    when ARLO was asked for and could not run."""
    mags, phases = _echoes(tmp_path, echo_times)
    prepared = PrepareEchoes(mag_files=mags, phase_files=phases,
                             echo_times=echo_times).run(cwd=str(tmp_path))
    mask = _save(tmp_path / 'mask.nii.gz', np.ones((8, 8, 6), np.uint8))
    result = R2Star(in_signal=prepared.outputs.out_signal, in_mask=mask,
                    echo_times=echo_times).run(cwd=str(tmp_path))
    r2s = nb.load(result.outputs.out_r2star).get_fdata()
    np.testing.assert_allclose(r2s, 25.0, atol=1e-3 if method == 'loglinear' else 0.5)
    decisions = result.outputs.decisions
    assert decisions['r2star_method'] == method
    assert bool(decisions['warnings']) == (method == 'loglinear')


def test_csf_node_falls_back_to_whole_brain(tmp_path):
    """No voxel below 5 /s: the reference is the whole brain, and the output says so."""
    r2s = _save(tmp_path / 'r2s.nii.gz', np.full((20, 20, 12), 20.0, np.float32))
    mask = np.zeros((20, 20, 12), np.uint8)
    mask[2:18, 2:18, 2:10] = 1
    result = CSFMask(in_r2star=r2s, in_mask=_save(tmp_path / 'm.nii.gz', mask)).run(
        cwd=str(tmp_path))
    assert result.outputs.reference == 'whole_brain'
    assert 'whole' in result.outputs.decisions['ReferenceMessage'].lower()
    assert result.outputs.decisions['warnings']  # a fallback is a warning
    # no CSF: nothing is written as CSF (the inversion step references the whole brain)
    assert not (nb.load(result.outputs.out_mask).get_fdata() > 0).any()
