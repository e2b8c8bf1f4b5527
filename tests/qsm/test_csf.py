"""Ventricular CSF mask (MEDI+0's rule) on the head phantom, with 3, 1 and no ventricles."""

import numpy as np
import pytest

from lesionqsm.morphology import erode_mm
from lesionqsm.qsm.csf import ventricular_csf_mask
from lesionqsm.qsm.r2star import r2star_arlo
from lesionqsm.synth.head_phantom import head_phantom

TE = 0.005 * np.arange(1, 6)


def _r2star(phantom):
    return r2star_arlo(np.abs(phantom.signal), TE, mask=phantom.brain_mask)


@pytest.mark.parametrize('ventricles', [3, 1])
def test_finds_the_ventricles(ventricles):
    """CSF R2* = 2 /s and WM = 20 /s at SNR 100 are 20 noise σ apart, so the mask is exactly
    the ventricles (no WM voxel falls below 5 /s); one ventricle is used with a message."""
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=ventricles)
    result = ventricular_csf_mask(_r2star(phantom), phantom.brain_mask, phantom.voxel_size)
    truth = phantom.csf_mask
    assert result.reference == 'ventricular_csf'
    assert result.n_seeds == ventricles
    np.testing.assert_array_equal(result.mask, truth)
    if ventricles < 3:
        assert f'only {ventricles} of the 3' in result.message


def test_no_csf_falls_back_to_whole_brain():
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=0)
    result = ventricular_csf_mask(_r2star(phantom), phantom.brain_mask, phantom.voxel_size)
    assert result.reference == 'whole_brain'
    assert 'no CSF found' in result.message
    np.testing.assert_array_equal(result.mask, phantom.brain_mask)


def test_seed_must_be_central_and_large_enough():
    """Low-R2* regions outside the 30 mm sphere are not seeds; specks below the minimum
    volume are ignored; a peripheral region connected to a seed is grown into."""
    shape, voxel = (60, 60, 40), (2.0, 2.0, 2.0)
    brain = np.ones(shape, bool)
    r2s = np.full(shape, 20.0, np.float32)
    r2s[50:54, 28:32, 18:22] = 1.0          # far from the centre (40 mm)
    r2s[30, 30, 20] = 1.0                   # one central voxel, 8 mm3 < 30 mm3
    result = ventricular_csf_mask(r2s, brain, voxel)
    assert result.reference == 'whole_brain'
    r2s[26:34, 28:32, 18:22] = 1.0          # central region, grown along a bridge to the far one
    r2s[34:50, 29:31, 19:21] = 1.0
    result = ventricular_csf_mask(r2s, brain, voxel)
    assert result.reference == 'ventricular_csf' and result.n_seeds == 1
    assert result.mask[52, 30, 20] and result.mask[30, 30, 20]
    assert result.mask.sum() == np.sum(r2s < 5)


def test_erosion_and_errors():
    """Low R2* within 10 mm of the brain surface is never CSF (MEDI's erosion)."""
    phantom = head_phantom((3.0, 3.0, 3.0), echo_times=TE, ventricles=0)
    r2s = _r2star(phantom)
    band = phantom.brain_mask & ~erode_mm(phantom.brain_mask, 10.0, phantom.voxel_size)
    r2s[band & phantom.region('wm')] = 1.0
    result = ventricular_csf_mask(r2s, phantom.brain_mask, phantom.voxel_size,
                                  sphere_radius_mm=200)
    assert result.reference == 'whole_brain'
    with pytest.raises(ValueError, match='same 3-D shape'):
        ventricular_csf_mask(r2s[:5], phantom.brain_mask, phantom.voxel_size)
    with pytest.raises(ValueError, match='empty'):
        ventricular_csf_mask(r2s, np.zeros_like(phantom.brain_mask), phantom.voxel_size)


@pytest.fixture(scope='module')
def synth_visit():
    """One visit of the synth cohort's 'tiny' preset: 3 mm GRE slab, 5 echoes, SNR 60."""
    cohort = pytest.importorskip('lesionqsm.synth.cohort')
    preset = cohort.resolve_preset('tiny')
    subjects = cohort.design_cohort(preset, 0)
    gre = cohort.simulate_gre(preset, subjects[0], 0, cohort.fine_grid_for(preset),
                              np.random.default_rng(0))
    return preset, gre


def test_synth_visit_masks_and_noise(synth_visit):
    """On the synth cohort (partial-volume tissue, extracerebral CSF, a slab that cuts the
    brain): the brain mask keeps the brain and its CSF (Dice ≥ 0.97; misses are partial-volume
    voxels at the skull) and < 1 % skull or scalp; the CSF mask lies in the ventricles (≥ 95 %
    of its voxels; the rest would be partial-volume neighbours) and covers at least half of
    them (the 10 mm erosion cuts the slab's ends); the fitted noise σ is the simulated one
    within 5 % (3 residual degrees of freedom × 40k voxels)."""
    from lesionqsm.qsm.masking import brain_mask_from_magnitude
    from lesionqsm.qsm.multiecho import fit_multiecho_complex
    from lesionqsm.synth.phantom import LABEL

    preset, gre = synth_visit
    te, voxel, tissue = np.asarray(preset.echo_times), preset.gre_voxel_mm, gre['tissue_gre']
    mask = brain_mask_from_magnitude(gre['mag'], voxel)
    brain = np.isin(tissue, [LABEL[k] for k in ('csf', 'gm', 'wm', 'ventricle', 'caudate',
                                                'putamen', 'pallidum', 'thalamus', 'vein')])
    assert 2 * np.sum(mask & brain) / (mask.sum() + brain.sum()) >= 0.97
    outside = np.isin(tissue, [LABEL['skull'], LABEL['scalp'], LABEL['air']])
    assert np.sum(mask & outside) < 0.01 * mask.sum()
    r2s = r2star_arlo(gre['mag'], te, mask=mask)
    result = ventricular_csf_mask(r2s, mask, voxel)
    ventricles = tissue == LABEL['ventricle']
    assert result.reference == 'ventricular_csf'
    assert np.sum(result.mask & ventricles) >= 0.95 * result.mask.sum()
    assert np.sum(result.mask & ventricles) >= 0.5 * ventricles.sum()
    fit = fit_multiecho_complex(gre['mag'] * np.exp(1j * gre['phase']), te, mask=mask)
    assert fit.noise_sigma == pytest.approx(gre['noise']['NoiseSigma'], rel=0.05)
