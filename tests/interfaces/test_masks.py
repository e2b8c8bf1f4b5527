"""User-given brain masks (--derivatives) and FSL BET (--brain-mask bet)."""

import os
import stat
import sys

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.interfaces import masks


def _ball_image(path, shape, voxel, radius_mm, *, origin=None):
    """A ball of ``radius_mm`` around world (0, 0, 0) on an axis-aligned grid."""
    affine = np.diag([*voxel, 1.0])
    affine[:3, 3] = origin if origin is not None else -(np.asarray(shape) - 1) / 2 * voxel
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    data = (np.linalg.norm(world, axis=0) <= radius_mm).reshape(shape).astype(np.uint8)
    nb.save(nb.Nifti1Image(data, affine), str(path))
    return path


def _dice(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def test_resample_mask_to_another_grid(tmp_path):
    """A 40 mm ball drawn on a 1 mm grid, resampled onto a shifted 3 mm grid, equals the same
    ball drawn on that grid up to its edge voxels: Dice ≥ 0.97 (a 40 mm ball has ~13 % of its
    3 mm voxels on the edge, and trilinear + 0.5 misplaces at most a few of them); the same
    grid is returned unchanged."""
    fine = nb.load(_ball_image(tmp_path / 'fine.nii.gz', (100, 100, 100), (1.0, 1.0, 1.0), 40))
    coarse_path = _ball_image(tmp_path / 'coarse.nii.gz', (36, 36, 30), (3.0, 3.0, 3.5), 40,
                              origin=(-52.0, -54.0, -50.0))
    coarse = nb.load(coarse_path)
    resampled = masks.resample_mask(fine, coarse)
    assert resampled.shape == coarse.shape
    assert _dice(resampled, coarse.get_fdata() > 0) >= 0.97
    np.testing.assert_array_equal(masks.resample_mask(coarse, coarse), coarse.get_fdata() > 0)


def test_find_brain_mask(tmp_path):
    anat = tmp_path / 'sub-01' / 'ses-02' / 'anat'
    anat.mkdir(parents=True)
    (tmp_path / 'sub-01' / 'anat').mkdir()
    general = tmp_path / 'sub-01' / 'anat' / 'sub-01_desc-brain_mask.nii.gz'
    general.write_bytes(b'')
    (anat / 'sub-01_ses-02_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz').write_bytes(b'')
    assert masks.find_brain_mask(tmp_path, '01', '02') == general  # template space ignored
    visit = anat / 'sub-01_ses-02_acq-gre_desc-brain_mask.nii.gz'
    visit.write_bytes(b'')
    assert masks.find_brain_mask(tmp_path, '01', '02') == visit  # the visit's own first
    assert masks.find_brain_mask(tmp_path, '01', '03') == general
    assert masks.find_brain_mask(tmp_path, '02', '01') is None
    (anat / 'sub-01_ses-02_desc-brain_mask.nii').write_bytes(b'')
    with pytest.raises(ValueError, match='sub-01 ses-02: 2 brain masks in .*keep one'):
        masks.find_brain_mask(tmp_path, '01', '02')


def test_user_brain_mask_interface(tmp_path):
    """The node resamples the user's mask and records its source and file in the decisions."""
    magnitude = _ball_image(tmp_path / 'mag.nii.gz', (36, 36, 30), (3.0, 3.0, 3.5), 70)
    user = _ball_image(tmp_path / 'sub-01_desc-brain_mask.nii.gz', (100, 100, 100),
                       (1.0, 1.0, 1.0), 40)
    result = masks.UserBrainMask(in_magnitude=str(magnitude), in_mask=str(user)).run(
        cwd=str(tmp_path))
    out = nb.load(result.outputs.out_mask).get_fdata() > 0
    assert result.outputs.decisions['brain_mask'] == 'user-supplied mask'
    assert result.outputs.decisions['brain_mask_file'] == str(user)
    # 4/3 π 40³ = 268 mL; the 3 × 3 × 3.5 mm voxelisation is within 3 %
    assert out.sum() * 31.5 / 1000 == pytest.approx(268.1, rel=0.03)


def test_bet_command_line(tmp_path):
    """The BET call: mask only (-m -n), FSL's default fractional threshold; no FSL needed."""
    magnitude = _ball_image(tmp_path / 'mag.nii.gz', (8, 8, 8), (3.0, 3.0, 3.0), 9)
    node = masks.bet_interface(magnitude, tmp_path / 'bet.nii.gz')
    assert node.cmdline.split()[2:] == [str(tmp_path / 'bet.nii.gz'), '-f', '0.50', '-m', '-n']
    assert node.cmdline.split()[0] == 'bet'
    assert node._list_outputs()['mask_file'] == str(tmp_path / 'bet_mask.nii.gz')


FAKE_BET = '''#!{python}
"""Stand-in for FSL bet: the mask is every voxel above half the image's maximum."""
import sys
import nibabel as nb
img = nb.load(sys.argv[1])
out = sys.argv[2].replace('.nii.gz', '')
nb.save(nb.Nifti1Image((img.get_fdata() > img.get_fdata().max() / 2).astype('uint8'),
                       img.affine), out + '_mask.nii.gz')
with open(sys.argv[0] + '.log', 'a') as log:
    log.write(' '.join(sys.argv[1:]) + '\\n')
'''


@pytest.fixture
def fake_bet(tmp_path, monkeypatch):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    script = bindir / 'bet'
    script.write_text(FAKE_BET.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{bindir}{os.pathsep}{os.environ["PATH"]}')
    return script


def test_bet_node_runs_bet_through_nipype(tmp_path, fake_bet):
    """With a (fake) bet on PATH the node runs it and keeps its mask, recorded as BET's."""
    magnitude = _ball_image(tmp_path / 'mag.nii.gz', (30, 30, 30), (3.0, 3.0, 3.0), 30)
    result = masks.BETBrainMask(in_magnitude=str(magnitude)).run(cwd=str(tmp_path))
    out = nb.load(result.outputs.out_mask).get_fdata() > 0
    np.testing.assert_array_equal(out, nb.load(magnitude).get_fdata() > 0)
    assert result.outputs.decisions['brain_mask'] == 'magnitude by FSL BET'
    assert result.outputs.decisions['bet_command'].endswith('-f 0.50 -m -n')
    assert open(f'{fake_bet}.log').read().count('-m -n') == 1


def test_brain_mask_bet_without_bet_exits_2(tmp_path, monkeypatch, capsys):
    """``--brain-mask bet`` without bet on PATH: exit 2 at start-up, one clear line."""
    from lesionqsm.cli import main

    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), str(tmp_path / 'out'), 'participant', '--brain-mask', 'bet'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--brain-mask bet: FSL's 'bet' is not on PATH" in err
    assert 'Traceback' not in err
    assert not (tmp_path / 'out').exists()
