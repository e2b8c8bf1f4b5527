"""Plausibility checks of the brain mask and the χ map, and the 1 mL floor of the CSF reference."""

import numpy as np
import pytest

from lesionqsm.qsm.csf import ventricular_csf_mask
from lesionqsm.qsm.masking import make_brain_mask
from lesionqsm.qsm.plausibility import (
    ImplausibleChiError,
    check_brain_mask,
    check_chi,
    touched_faces,
)


def _ball(shape, radius_vox, centre=None):
    centre = np.asarray(centre if centre is not None else [(n - 1) / 2 for n in shape])
    grid = np.indices(shape).reshape(3, -1).T
    return (np.linalg.norm(grid - centre, axis=1) <= radius_vox).reshape(shape)


def test_whole_brain_in_view_is_silent():
    """A 1.26 L ball (radius 67 mm) inside a 2 mm grid: no face, volume in range, no warning.
    Its volume is 4/3 π r³ up to the voxelisation (<1 % at 33 voxels of radius)."""
    mask = _ball((80, 80, 80), 33.5)
    decisions, warnings = check_brain_mask(mask, (2.0, 2.0, 2.0))
    assert warnings == []
    assert decisions['brain_volume_ml'] == pytest.approx(4 / 3 * np.pi * 67**3 / 1000, rel=0.01)
    assert decisions['mask_touches_faces'] == []


def test_small_mask_in_a_large_view_warns():
    """The in-vivo failure of the issue: a small ball (0.6 % of the field of view) with exit
    0; now a warning names the volume and says part of the brain is missing."""
    mask = _ball((80, 80, 80), 8, centre=(12, 12, 12))
    _, warnings = check_brain_mask(mask, (2.0, 2.0, 2.0))
    assert len(warnings) == 1 and 'less than the 800 mL' in warnings[0]
    assert 'part of the brain is probably missing' in warnings[0]


def test_cut_brain_and_oversized_mask_warn():
    """A slab whose mask reaches the top and bottom faces: one warning naming both faces and
    no volume warning (a cut brain has a partial volume); a mask filling a 3.4 L field of view
    is too large."""
    mask = _ball((80, 80, 20), 33.5, centre=(39.5, 39.5, 9.5))
    decisions, warnings = check_brain_mask(mask, (2.0, 2.0, 3.0))
    assert decisions['mask_touches_faces'] == ['z first', 'z last']
    assert len(warnings) == 1 and 'reaches 2 faces' in warnings[0]
    full = np.ones((100, 100, 40), bool)
    _, warnings = check_brain_mask(full, (2.0, 2.0, 2.0))
    assert len(warnings) == 2 and 'more than the 2000 mL' in warnings[1]
    assert touched_faces(full) == ['x first', 'x last', 'y first', 'y last', 'z first',
                                   'z last']


def test_make_brain_mask_records_checks_and_source():
    magnitude = np.ones((80, 80, 80), np.float32)
    user = _ball((80, 80, 80), 8, centre=(12, 12, 12))
    result = make_brain_mask(magnitude, (2.0, 2.0, 2.0), user_mask=user, source='user',
                             source_file='/data/sub-01_desc-brain_mask.nii.gz')
    assert result.decisions['brain_mask'] == 'user-supplied mask'
    assert result.decisions['brain_mask_file'].endswith('sub-01_desc-brain_mask.nii.gz')
    assert len(result.warnings) == 1
    with pytest.raises(ValueError, match='sub-01_desc-brain_mask.nii.gz is empty'):
        make_brain_mask(magnitude, (2.0, 2.0, 2.0), user_mask=np.zeros_like(user),
                        source_file='sub-01_desc-brain_mask.nii.gz')


@pytest.mark.parametrize('chi, message', [
    (np.zeros((10, 10, 10)), 'exactly 0 everywhere'),
    (np.full((10, 10, 10), 0.02), r'constant \(0.02 ppm\)'),
    (np.linspace(-3, 3, 1000).reshape(10, 10, 10), r'spans -2.94 to 2.94 ppm'),
    (np.where(np.arange(1000).reshape(10, 10, 10) % 2, np.nan, 0.0), 'non-finite'),
])
def test_implausible_chi_fails(chi, message):
    with pytest.raises(ImplausibleChiError, match=message):
        check_chi(chi, np.ones(chi.shape, bool))


def test_plausible_chi_passes():
    """A brain-like χ (±0.2 ppm, a few veins at 0.45) passes; percentiles are reported."""
    rng = np.random.default_rng(0)
    chi = rng.normal(0.0, 0.05, (20, 20, 20))
    chi[:2, :2, :] = 0.45
    info = check_chi(chi, np.ones(chi.shape, bool))
    assert -0.2 < info['chi_p1_ppm'] < 0 < info['chi_p99_ppm'] <= 0.45
    with pytest.raises(ImplausibleChiError, match='no voxel'):
        check_chi(chi, np.zeros(chi.shape, bool))


def test_csf_below_one_ml_is_no_reference():
    """A low-R2* block at the brain's centre of 5×5×5 voxels of 2.2 mm (1.33 mL) is the
    reference; with a 1.5 mL floor, or cut to 2×5×5 voxels (0.53 mL) under the default 1 mL
    floor, the whole brain is, and the message gives the volume (exact voxel counts)."""
    shape, voxel = (40, 40, 40), (2.2, 2.2, 2.2)
    brain = _ball(shape, 18)
    r2s = np.full(shape, 20.0, np.float32)
    r2s[18:23, 18:23, 18:23] = 2.0  # 125 voxels × 10.65 mm3 = 1.33 mL
    kept = ventricular_csf_mask(r2s, brain, voxel)
    assert kept.reference == 'ventricular_csf'
    assert kept.mask.sum() * np.prod(voxel) / 1000 == pytest.approx(1.331, rel=1e-3)
    small = ventricular_csf_mask(r2s, brain, voxel, min_total_ml=1.5)
    assert small.reference == 'whole_brain'
    assert 'is 1.33 mL, less than 1.5 mL' in small.message
    r2s[20:23, 18:23, 18:23] = 20.0  # 50 voxels: 0.53 mL < the default 1 mL
    small = ventricular_csf_mask(r2s, brain, voxel)
    assert small.reference == 'whole_brain' and 'is 0.53 mL, less than 1 mL' in small.message
