"""Background field removal: PDF and LBV on known sources, scale invariance, bad input."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from lesionqsm.qsm import background, background_methods
from lesionqsm.synth.head_phantom import head_phantom


@pytest.fixture(scope='module')
def compact_sources():
    """3 T head (air, bone and a layer of CSF around a χ = 0 brain) with compact sources in
    the brain (deep grey nuclei, lesions); noise-free so only the method's error is measured."""
    return head_phantom((2.25, 2.25, 2.0), outer_csf=True, margin_mm=4.5, uniform_brain=True,
                        delta_te=4.5e-3, field_noise=False)


def _relative_error(estimate, truth, region):
    """||e - mean e|| / ||t - mean t|| over a region: a constant offset of the local field is
    arbitrary (it maps to the χ reference, fixed later by the CSF mean)."""
    e = estimate[region] - truth[region]
    t = truth[region]
    return float(np.linalg.norm(e - e.mean()) / np.linalg.norm(t - t.mean()))


def test_phantom_background_dominates(compact_sources):
    """The test is only meaningful if the background is much larger than the local field."""
    ph = compact_sources
    m = ph.brain_mask
    background_field = ph.total_field - ph.local_field
    assert background_field[m].std() > 5 * ph.local_field[m].std()


def test_pdf_recovers_local_field(compact_sources):
    """PDF keeps the field of the sources inside the brain.

    Measured on this phantom (3 voxels, 6.75 mm, from the edge, default tolerance): 0.34,
    of which 0.25 is PDF's intrinsic ambiguity (the part of the nuclei's field that dipoles
    outside the mask can also produce; it stays with tol → 0) and the rest unconverged
    background, which is 8x the local field here.  Bound 0.4 (float32 rounding moves the
    unconverged part by a few per cent); without background removal the error is 5.4 (the
    background is > 5x the local field), so the bound is not loose.
    """
    ph = compact_sources
    m = ph.brain_mask
    local, info = background.pdf(ph.total_field, m, ph.voxel_size, noise_std=ph.noise_std,
                                 return_info=True)
    deep = ndi.binary_erosion(m, iterations=3)
    assert np.all(local[~m] == 0)
    assert _relative_error(local, ph.local_field, deep) < 0.4
    assert _relative_error(ph.total_field, ph.local_field, deep) > 5
    assert info['relative_residual'] <= 1e-3


def test_pdf_stall_stops_when_there_is_no_background(compact_sources):
    """A field with no source outside the brain (the local field alone): nothing is left for
    PDF to remove, its residual stalls at a few per cent and every further step fits part of
    the brain's own field with outside sources.  Measured: to tolerance 0.01, 67 CG steps and
    an error of 0.147 against the local field; stopped by the stall rule, 6 steps and 0.139.
    The rule must stop it early (bound 20 steps) and the result must be no worse."""
    ph = compact_sources
    m = ph.brain_mask
    kwargs = dict(noise_std=ph.noise_std, tol=0.01, crop=True, return_info=True)
    full, full_info = background.pdf(ph.local_field, m, ph.voxel_size, **kwargs)
    early, info = background.pdf(ph.local_field, m, ph.voxel_size, stall_patience=2, **kwargs)
    assert full_info['stopped_by'] == 'tolerance'
    assert info['stopped_by'] == 'stall'
    assert info['iterations'] < 20 < full_info['iterations']
    deep = ndi.binary_erosion(m, iterations=3)
    assert (_relative_error(early, ph.local_field, deep)
            < _relative_error(full, ph.local_field, deep))


def test_pdf_stall_at_the_last_allowed_step_is_reported_as_a_stall(compact_sources):
    """``stopped_by`` comes from the rule that fired, not from the iteration count: a stall at
    exactly ``max_iter`` is a stall, and one step fewer runs into the cap."""
    ph = compact_sources
    kwargs = dict(noise_std=ph.noise_std, tol=0.01, crop=True, return_info=True,
                  stall_patience=2)
    _, info = background.pdf(ph.local_field, ph.brain_mask, ph.voxel_size, **kwargs)
    steps = info['iterations']
    assert info['stopped_by'] == 'stall'
    _, at_cap = background.pdf(ph.local_field, ph.brain_mask, ph.voxel_size,
                               max_iter=steps, **kwargs)
    assert (at_cap['iterations'], at_cap['stopped_by']) == (steps, 'stall')
    _, before = background.pdf(ph.local_field, ph.brain_mask, ph.voxel_size,
                               max_iter=steps - 1, **kwargs)
    assert before['stopped_by'] == 'max_iter'


def test_pdf_stall_leaves_a_converging_solve_alone(compact_sources):
    """With a background 8x the local field the residual falls to the tolerance without a
    stall (3 steps here): the result is bitwise the one without the rule."""
    ph = compact_sources
    m = ph.brain_mask
    kwargs = dict(noise_std=ph.noise_std, tol=0.01, crop=True, return_info=True)
    plain, plain_info = background.pdf(ph.total_field, m, ph.voxel_size, **kwargs)
    ruled, info = background.pdf(ph.total_field, m, ph.voxel_size, stall_patience=2, **kwargs)
    assert info['stopped_by'] == plain_info['stopped_by'] == 'tolerance'
    np.testing.assert_array_equal(ruled, plain)


def test_stall_rule_is_the_default_of_pdf_edge_smv_only(compact_sources):
    """The default method stops a stalled PDF and records why in its info (the sidecar's
    ``background_info``); ``stall_patience=None`` (``pdf_stall_patience: null``) restores
    the run to tolerance, and neither the default method without outside sources (nothing
    would take up what the stopped PDF leaves) nor the toolbox's option set uses the rule."""
    ph = compact_sources
    m = ph.brain_mask
    common = dict(noise_std=ph.noise_std)
    default = background_methods.remove_background(ph.local_field, m, ph.voxel_size, **common)
    assert default.info['pdf_stopped_by'] == 'stall'
    off = background_methods.remove_background(ph.local_field, m, ph.voxel_size,
                                               stall_patience=None, **common)
    assert off.info['pdf_stopped_by'] == 'tolerance'
    toolbox = background_methods.remove_background(ph.local_field, m, ph.voxel_size,
                                                   method='medi_toolbox', **common)
    assert toolbox.info['pdf_stopped_by'] == 'tolerance'
    assert toolbox.info['pdf_iterations'] == off.info['pdf_iterations']
    no_outside = background_methods.remove_background(ph.local_field, m, ph.voxel_size,
                                                      outside_scale=0, **common)
    assert no_outside.info['pdf_stopped_by'] == 'tolerance'


def test_lbv_recovers_local_field(compact_sources):
    """LBV keeps the field of the sources inside the brain.

    Measured: 0.39 at 3 voxels from the edge: the harmonic part of the local field itself and
    the discrete (non-harmonic) field of the bone 3-4 mm outside the mask, which LBV's
    boundary values carry inward.  Bound 0.5.
    """
    ph = compact_sources
    m = ph.brain_mask
    local, local_mask = background.lbv(ph.total_field, m, ph.voxel_size, return_mask=True)
    deep = ndi.binary_erosion(m, iterations=3)
    assert np.all(local[~local_mask] == 0)
    assert np.array_equal(local_mask, ndi.binary_erosion(m, ndi.generate_binary_structure(3, 1)))
    assert _relative_error(local, ph.local_field, deep) < 0.5


def test_lbv_removes_harmonic_background_exactly():
    """A harmonic field (x² - y² + linear) is pure background: LBV returns ~0 (PCG at
    tol 1e-6 leaves 1e-4 of the field's range)."""
    n = (40, 36, 30)
    x, y, z = np.meshgrid(*[np.arange(k) - k / 2 for k in n], indexing='ij')
    mask = (x / 15) ** 2 + (y / 14) ** 2 + (z / 12) ** 2 < 1
    field = 0.01 * (x**2 - y**2) + 0.2 * z + 1.0
    local = background.lbv(field, mask, (1.0, 1.0, 1.0), tol=1e-6)
    assert np.abs(local).max() < 1e-4 * np.ptp(field[mask])


def test_pdf_does_not_depend_on_noise_scale(compact_sources):
    """Weights are normalised: noise maps 1 and 1e-4 times the size take the same number of
    CG steps to about the same residual (the MEDI toolbox would stop after 1 step instead of
    13); float32 rounding changes the final residual by 7 %, bound 10 %.

    The maps still differ by float32 rounding, which the ill-posed CG carries into the unconverged
    part of the result: measured 3.4 % of the local field's spread.  Bound 10 %; a run stopped
    after 3 steps differs by 170 %.
    """
    ph = compact_sources
    m = ph.brain_mask
    a, info_a = background.pdf(ph.total_field, m, ph.voxel_size, noise_std=ph.noise_std,
                               return_info=True)
    b, info_b = background.pdf(ph.total_field, m, ph.voxel_size, noise_std=ph.noise_std * 1e-4,
                               return_info=True)
    assert info_a['iterations'] == info_b['iterations']
    assert info_b['relative_residual'] == pytest.approx(info_a['relative_residual'], rel=0.1)
    assert (a - b)[m].std() < 0.1 * ph.local_field[m].std()


def test_data_weights_mean_one():
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[1:3, 1:3, 1:3] = True
    sigma = np.where(mask, 0.5, 0.0)
    sigma[1, 1, 1] = 0.25
    w = background.data_weights(sigma, mask)
    assert w[mask].mean() == pytest.approx(1.0, rel=1e-6)
    assert w[1, 1, 1] == pytest.approx(2 * w[2, 2, 2], rel=1e-6)
    assert np.all(w[~mask] == 0)


def test_background_bad_input():
    field = np.zeros((8, 8, 8))
    with pytest.raises(ValueError, match='empty'):
        background.pdf(field, np.zeros((8, 8, 8), bool), (1, 1, 1))
    with pytest.raises(ValueError, match='shape'):
        background.lbv(field, np.ones((8, 8, 7), bool), (1, 1, 1))
    thin = np.zeros((8, 8, 8), bool)
    thin[4, 4, :] = True
    with pytest.raises(ValueError, match='interior'):
        background.lbv(field, thin, (1, 1, 1))


def test_pdf_crop_works_on_the_mask_box(compact_sources):
    """Cropped PDF: FFTs on the mask's bounding box plus padding instead of the padded field
    of view, 0 outside the mask, and as accurate as the uncropped PDF 3 voxels in (measured
    0.346 against 0.34; bound 0.4 as for the uncropped test above)."""
    ph = compact_sources
    m = ph.brain_mask
    local, info = background.pdf(ph.total_field, m, ph.voxel_size, noise_std=ph.noise_std,
                                 crop=True, return_info=True)
    _, full_info = background.pdf(ph.total_field, m, ph.voxel_size, noise_std=ph.noise_std,
                                  return_info=True)
    assert np.prod(info['fft_shape']) < 0.8 * np.prod(full_info['fft_shape'])
    assert abs(info['iterations'] - full_info['iterations']) <= 1
    assert np.all(local[~m] == 0)
    deep = ndi.binary_erosion(m, iterations=3)
    assert _relative_error(local, ph.local_field, deep) < 0.4


@pytest.mark.parametrize('method', background_methods.METHODS)
def test_remove_background_methods(compact_sources, method):
    """Every method: local field 0 outside its mask, reliable voxels inside the brain, the
    documented erosion (outer layer for the edge-aware ones and LBV, 5 mm for the toolbox's
    option set, none for PDF), and the options MEDI needs."""
    ph = compact_sources
    m = ph.brain_mask
    res = background_methods.remove_background(ph.total_field, m, ph.voxel_size,
                                               noise_std=ph.noise_std, method=method)
    assert np.all(res.local_field_rad[~res.local_mask] == 0)
    assert np.all(res.reliable_mask <= m) and np.all(res.local_mask <= m)
    layers = {'pdf': 0, 'pdf_edge_smv': 1, 'lbv': 1, 'vsharp': 1}
    if method in layers:
        assert res.info['layers_lost'] == layers[method]
    else:  # 5 mm on 2.25 x 2.25 x 2 mm voxels: 3 voxel layers
        assert res.info['layers_lost'] == 3
    if method == 'pdf_edge_smv':
        radius = res.medi_options['smv_radius_mm']
        assert radius.shape == m.shape and res.medi_options['merit'] is False
        assert np.array_equal(radius != 0, res.local_mask)
        assert np.all(res.reliable_mask == (radius > 0))
        assert res.medi_options['outside_scale'] == background_methods.OUTSIDE_SOURCE_SCALE
    if method == 'medi_toolbox':
        assert res.medi_options == {'smv_radius_mm': 5.0, 'merit': True}


def test_remove_background_unknown_method(compact_sources):
    ph = compact_sources
    with pytest.raises(ValueError, match='background method must be one of'):
        background_methods.remove_background(ph.total_field, ph.brain_mask, ph.voxel_size,
                                             method='sharp')


def test_outside_sources_can_be_turned_off(compact_sources):
    """``outside_scale`` 0 (the option ``qsm.outside_source_scale: 0``): MEDI fits χ in the
    mask only, as before the outside sources; the local field does not change."""
    ph = compact_sources
    kwargs = dict(noise_std=ph.noise_std, method='pdf_edge_smv')
    on = background_methods.remove_background(ph.total_field, ph.brain_mask, ph.voxel_size,
                                              **kwargs)
    off = background_methods.remove_background(ph.total_field, ph.brain_mask, ph.voxel_size,
                                               outside_scale=0, **kwargs)
    assert off.medi_options['outside_scale'] is None
    assert np.array_equal(on.local_field_rad, off.local_field_rad)
