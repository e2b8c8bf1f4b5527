"""The whole chain for one visit on the head phantom: accuracy, scale and phase-sign invariance.

The phantom (:mod:`lesionqsm.synth.head_phantom`; 3 mm isotropic, 0.8× adult size, 3 T,
5 echoes ΔTE = 5 ms, SNR 100) has air at +9.4 ppm around a skull, so the background field
wraps inside the head; three deep grey nuclei (60, 80, 150 ppb), white matter at -30 ppb and
five lesions (-10 to +50 ppb from white matter), relative to CSF = 0.  One MEDI+0
reconstruction takes ~10 s on 2 cores; three are run here.
"""

import numpy as np
import pytest

from lesionqsm.qsm import reconstruct_session
from lesionqsm.qsm.constants import ppm_to_radians
from lesionqsm.synth.head_phantom import head_phantom, roi_errors

TE = 0.005 * np.arange(1, 6)


@pytest.fixture(scope='module')
def phantom():
    return head_phantom((3.0, 3.0, 3.0), scale=0.8, echo_times=TE, snr=100.0)


@pytest.fixture(scope='module')
def large_scale(phantom):
    """Magnitudes ×1000 (e.g. scanner integers)."""
    return reconstruct_session(phantom.signal * np.float32(1e3), TE, field_strength=3.0,
                               affine=phantom.affine)


def _roi_values(phantom, result):
    """(truth, estimate) in ppb for WM and the nuclei, and for the lesions relative to WM."""
    e = roi_errors(result.chi_ppm, phantom, mask=result.local_mask)
    return (np.r_[e['wm_true'], e['nuclei_true']], np.r_[e['wm_est'], e['nuclei_est']],
            e['lesion_true'], e['lesion_est'])


def test_intermediate_maps(phantom, large_scale):
    """The steps this chain owns are exact up to noise: brain mask = phantom brain (Dice ≥ 0.99
    at 3 mm with sharp tissue edges), unwrapped field = true total field + one global 2πk
    within 6 propagated σ at every voxel (P(6σ) = 2e-9 per voxel, 37k voxels), CSF mask = the
    ventricles (CSF R2* 2 /s vs ≥ 20 /s elsewhere, 20 σ apart)."""
    r = large_scale
    brain = phantom.brain_mask
    assert 2 * np.sum(r.brain_mask & brain) / (r.brain_mask.sum() + brain.sum()) >= 0.99
    truth = ppm_to_radians(phantom.field_ppm, field_strength=3.0, delta_te=0.005)
    diff = (r.unwrapped_field_rad - truth)[r.brain_mask]
    k = np.round(np.median(diff) / (2 * np.pi))
    assert np.all(np.abs(diff - 2 * np.pi * k) < 6 * r.noise_std[r.brain_mask])
    assert r.reference == 'ventricular_csf'
    np.testing.assert_array_equal(r.csf_mask, phantom.csf_mask & r.local_mask)
    assert r.r2star[phantom.region('wm')].mean() == pytest.approx(20.0, rel=0.02)
    assert r.delta_te == pytest.approx(0.005)
    assert r.metadata['Decisions']['r2star_method'] == 'arlo'


def test_chi_in_rois_against_truth(phantom, large_scale):
    """MEDI+0 on this chain: CSF mean 0 (float64 referencing: 1e-6 ppm); ROI regression slope
    in [0.9, 1.1]; median lesion |error| ≤ 3 ppb (the issue's bound for 3 mm data); every ROI
    within 15 ppb, 10 % of the phantom's 150 ppb range: the 4 mm lesions are 9-12 voxels of
    3 mm, all on their surface, and TV regularisation shrinks such small contrasts by up to
    ~25 %.  Measured with PDF tol 1e-3 (benchmarks/bench_qsm_chain_accuracy_a.py --voxel 3
    --scale 0.8): slope 0.96, median lesion error 0.8 ppb, worst ROI 6.5 ppb."""
    r = large_scale
    assert abs(float(np.mean(r.chi_ppm[r.csf_mask], dtype=np.float64))) < 1e-6
    truth, estimate, lesion_truth, lesion_estimate = _roi_values(phantom, r)
    x = np.concatenate([truth[1:], lesion_truth + truth[0]])
    y = np.concatenate([estimate[1:], lesion_estimate + estimate[0]])
    slope = np.polyfit(x, y, 1)[0]
    assert 0.9 <= slope <= 1.1
    assert np.median(np.abs(lesion_estimate - lesion_truth)) <= 3.0
    assert np.max(np.abs(estimate - truth)) <= 15.0
    assert np.max(np.abs(lesion_estimate - lesion_truth)) <= 15.0


def test_invariant_to_magnitude_scale(phantom, large_scale):
    """×0.001 and ×1000 give the same maps: the echoes are normalised first, so the two runs
    differ only by float32 rounding of the inputs (1 ulp).  Every map this chain computes
    agrees to 1e-5 (masks exactly, the local field to 1e-4 rad); MEDI+0 amplifies those
    differences to a few ppb at isolated voxels (an edge-mask voxel flipping), so χ is
    compared through its ROI means (0.75 ppb) and its 99th percentile voxel difference
    (1 ppb).  With the sources outside the mask, MEDI's CG stops at its step cap rather than
    at its tolerance (here 7 of its 8 solves), so the rounding difference is not iterated
    away, and how far it grows depends on the float rounding of the numpy/scipy build: the
    ROI means moved by 0.15 ppb with one build and by 0.32 with numpy 2.4.6 / scipy 1.17.1;
    with the latter, scale factors 1e-3, 1e-2, 0.1, 3, 7 and 100 against 1000 moved them by
    0.29-0.55 ppb and the 99th percentile by 0.44-0.92 ppb (0.47 at 1e-3).  The ROI errors
    against the truth are 0.1-3.5 ppb on this phantom.  (Without the outside sources 0.1 and
    0.5 ppb bounds held.)"""
    small = reconstruct_session(phantom.signal * np.float32(1e-3), TE, field_strength=3.0,
                                affine=phantom.affine)
    for name in ('brain_mask', 'csf_mask', 'local_mask'):
        np.testing.assert_array_equal(getattr(small, name), getattr(large_scale, name))
    for name in ('field_rad', 'noise_std', 'unwrapped_field_rad'):
        np.testing.assert_allclose(getattr(small, name), getattr(large_scale, name),
                                   atol=1e-5)
    # PDF is ill-posed: its float32 CG turns a 1-ulp input difference into a smooth change
    # of the fitted background of ~4 % of the local field (RMS) at the same iteration count;
    # the χ comparison below shows it does not reach the susceptibility values.
    mask = large_scale.local_mask
    rms = np.sqrt(np.mean(large_scale.local_field_rad[mask] ** 2))
    diff_rms = np.sqrt(np.mean((small.local_field_rad - large_scale.local_field_rad)[mask] ** 2))
    assert diff_rms < 0.06 * rms
    np.testing.assert_allclose(small.r2star, large_scale.r2star, atol=1e-3)   # 1/s
    diff = np.abs(small.chi_ppm - large_scale.chi_ppm)[large_scale.local_mask]
    assert np.percentile(diff, 99) < 1e-3
    for a, b in zip(_roi_values(phantom, small), _roi_values(phantom, large_scale),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=0.75)


def test_phase_sign(phantom):
    """Conjugated echoes with phase_sign=-1 give exactly the input of the normal run
    (conjugation is exact), hence the same χ; the wrong sign flips every ROI.  TKD keeps this
    check fast: the sign is handled before any inversion."""
    common = dict(field_strength=3.0, affine=phantom.affine)
    normal = reconstruct_session(phantom.signal, TE, options={'inversion': 'tkd'}, **common)
    conjugate = reconstruct_session(np.conj(phantom.signal), TE, **common,
                                    options={'inversion': 'tkd', 'phase_sign': -1})
    np.testing.assert_array_equal(conjugate.chi_ppm, normal.chi_ppm)
    assert conjugate.metadata['Decisions']['phase_sign'] == -1
    wrong = reconstruct_session(np.conj(phantom.signal), TE, options={'inversion': 'tkd'},
                                **common)
    pallidus = phantom.nuclei['pallidum']
    assert normal.chi_ppm[pallidus].mean() > 0.1     # paramagnetic is positive
    assert wrong.chi_ppm[pallidus].mean() < -0.1


def test_fast_options_uneven_echoes(phantom):
    """LBV + TKD + Laplacian unwrapping on uneven echoes: R2* switches to log-linear, the CSF
    reference holds (mean 0), and the nuclei keep their order; TKD's known underestimation
    (≈ 20 % at threshold 0.19) only allows a loose check: each nucleus's contrast to white
    matter within 25 % of its truth (measured -3, -14, -14 %).  The contrast, not the value
    against CSF: TKD's error on the small CSF region shifts the whole map (white matter comes
    out at -47 ppb, truth -30), which put the putamen at 40 % below its truth against CSF with
    this phantom and the previous one alike; 25 % of the contrasts (90, 110, 180 ppb) is a
    tighter bound in ppb than the former 40 % of the values (60, 80, 150 ppb)."""
    te = np.array([0.004, 0.008, 0.014, 0.022, 0.030])
    uneven = head_phantom((3.0, 3.0, 3.0), scale=0.8, echo_times=te, snr=100.0)
    r = reconstruct_session(uneven.signal, te, field_strength=3.0, affine=uneven.affine,
                            options={'background': 'lbv', 'inversion': 'tkd',
                                     'unwrapping': 'laplacian'})
    assert r.metadata['Decisions']['r2star_method'] == 'loglinear'
    assert any('log-linear' in w for w in r.warnings)
    assert r.reference == 'ventricular_csf'
    assert abs(float(np.mean(r.chi_ppm[r.csf_mask], dtype=np.float64))) < 1e-6
    e = roi_errors(r.chi_ppm, uneven, mask=r.local_mask)
    assert np.all(np.diff(e['nuclei_est']) > 0)
    np.testing.assert_allclose(e['nuclei_est'] - e['wm_est'], e['nuclei_true'] - e['wm_true'],
                               rtol=0.25)


@pytest.fixture(scope='module')
def no_ventricles():
    """The head phantom without ventricles (as a small or cropped field of view)."""
    return head_phantom((3.0, 3.0, 3.0), scale=0.8, echo_times=TE, ventricles=0)


def test_no_csf_gives_whole_brain_reference_at_full_contrast(no_ventricles):
    """No ventricles: the reference is the whole brain, MEDI+0 runs without its CSF term (plain
    MEDI), and contrasts keep their size.  Passing the whole brain as "CSF" to λ_CSF pulled
    every voxel towards the brain mean and halved every contrast (slope ≈ 0.5); the slope of
    nuclei and lesions relative to white matter must lie in [0.9, 1.1] (measured: see the
    test's output), and the sidecar must say ``whole_brain`` and warn."""
    phantom = no_ventricles
    r = reconstruct_session(phantom.signal, TE, field_strength=3.0, affine=phantom.affine)
    assert r.reference == 'whole_brain'
    assert r.metadata['ReferenceRegion'] == 'whole_brain'
    assert r.metadata['Decisions']['CSFTerm'] is False
    assert any('no CSF found' in w for w in r.warnings)
    assert abs(float(np.mean(r.chi_ppm[r.csf_mask], dtype=np.float64))) < 1e-6
    e = roi_errors(r.chi_ppm, phantom, mask=r.local_mask)
    truth = np.r_[e['nuclei_true'] - e['wm_true'], e['lesion_true']]
    estimate = np.r_[e['nuclei_est'] - e['wm_est'], e['lesion_est']]
    slope = np.polyfit(truth, estimate, 1)[0]
    print(f'no-ventricle phantom: ROI slope {slope:.3f}')
    # measured 0.933 with the default edge-aware SMV (0.969 with PDF alone): at 3 mm the
    # nuclei and lesions span 2-4 voxels, and the SMV high-pass leaves their lowest spatial
    # frequencies to the regulariser; at 2 mm both give 0.96.  The fault guarded against
    # halves every contrast (slope ≈ 0.5).
    assert 0.9 <= slope <= 1.1


def test_input_errors(phantom):
    signal, affine = phantom.signal[:8, :8, :8], phantom.affine
    with pytest.raises(ValueError, match='qsm.phase_sign: must be one of 1, -1, got 0'):
        reconstruct_session(signal, TE, field_strength=3.0, affine=affine,
                            options={'phase_sign': 0})
    with pytest.raises(ValueError, match='qsm.lamda: unknown option; known: .*lambda_'):
        reconstruct_session(signal, TE, field_strength=3.0, affine=affine,
                            options={'lamda': 10})
    with pytest.raises(ValueError, match='qsm.lambda_: must be a finite number'):
        reconstruct_session(signal, TE, field_strength=3.0, affine=affine,
                            options={'lambda_': float('nan')})
    with pytest.raises(ValueError, match='complex'):
        reconstruct_session(np.abs(signal), TE, field_strength=3.0, affine=affine)
    with pytest.raises(ValueError, match='echo times'):
        reconstruct_session(signal, TE[:3], field_strength=3.0, affine=affine)
    with pytest.raises(ValueError, match='background'):
        reconstruct_session(signal, TE, field_strength=3.0, affine=affine,
                            options={'background': 'sharp'})
    with pytest.raises(ValueError, match='field_strength'):
        reconstruct_session(signal, TE, field_strength=0, affine=affine)
    with pytest.raises(ValueError, match='brain mask has shape'):
        reconstruct_session(signal, TE, field_strength=3.0, affine=affine,
                            brain_mask=np.ones((4, 4, 4), bool))
