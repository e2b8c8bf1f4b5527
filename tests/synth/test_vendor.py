"""lesionqsm.synth.vendor writes one visit as a scanner would have stored it."""

import json

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.synth.vendor import main, stored_phase, write_variant


def test_command_line_writes_variants_and_refuses_a_missing_visit(tiny_cohort, tmp_path, capsys):
    assert main([str(tiny_cohort), 'echoes-2', 'slices-2d', '--out-dir', str(tmp_path)]) == 0
    assert 'echoes-2: sub-echoes2' in capsys.readouterr().out
    anat = tmp_path / 'sub-echoes2' / 'ses-01' / 'anat'
    assert sorted(p.name for p in anat.glob('*.nii.gz')) == [
        f'sub-echoes2_ses-01_echo-{e}_part-{p}_MEGRE.nii.gz' for e in (1, 2)
        for p in ('mag', 'phase')]
    truth = tmp_path / 'derivatives' / 'groundtruth' / 'sub-echoes2' / 'ses-01' / 'anat'
    assert (truth / 'sub-echoes2_ses-01_Chimap.nii.gz').exists()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / 'nothing'), 'ge'])
    assert exit_info.value.code == 2
    assert 'no GRE echoes to copy' in capsys.readouterr().err


def test_slice_offsets_are_per_slice_and_the_same_for_every_echo(tiny_cohort, tmp_path):
    """2-D variant minus source phase: one constant per slice (float32 wrap: 1e-5 rad),
    equal across echoes; the sidecar says 2D with interleaved slice times."""
    label = write_variant(tiny_cohort, 'slices-2d', out_dir=tmp_path)
    src = tiny_cohort / 'sub-01' / 'ses-01' / 'anat'
    dst = tmp_path / f'sub-{label}' / 'ses-01' / 'anat'
    offsets = []
    for echo in (1, 3):
        a = nb.load(src / f'sub-01_ses-01_echo-{echo}_part-phase_MEGRE.nii.gz').get_fdata()
        b = nb.load(dst / f'sub-{label}_ses-01_echo-{echo}_part-phase_MEGRE.nii.gz').get_fdata()
        diff = np.exp(1j * (b - a))
        per_slice = np.angle(diff.mean(axis=(0, 1)))
        assert np.abs(np.angle(diff * np.exp(-1j * per_slice))).max() < 1e-5
        offsets.append(per_slice)
    np.testing.assert_allclose(offsets[0], offsets[1], atol=1e-5)
    assert np.ptp(offsets[0]) > 1.0  # really different between slices
    meta = json.loads((dst / f'sub-{label}_ses-01_echo-1_part-phase_MEGRE.json').read_text())
    timing = np.array(meta['SliceTiming'])
    assert meta['MRAcquisitionType'] == '2D'
    assert np.all(np.diff(timing[0::2]) > 0) and timing[1] > timing[-2]  # evens, then odds


def test_unknown_storage_is_refused():
    with pytest.raises(ValueError, match='unknown phase storage'):
        stored_phase(np.zeros(3), 'degrees')
