"""Accuracy of the whole chain on head phantoms made by an independent simulator (qsm-forward).

Each phantom (:mod:`independent_phantom`) is simulated by qsm-forward from tissue maps written
as NIfTI files; the chain gets only the complex echoes, echo times, field strength and affine,
computes its own brain mask, and is scored against the simulator's χ.  Targets (issue 11):
ROI slope in [0.98, 1.02], median lesion |error| ≤ 0.3 ppb, max ≤ 1 ppb, juxtacortical median
≤ 0.5 ppb, whole-brain NRMSE ≤ 0.15, at most one voxel layer of the brain mask lost.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi

from lesionqsm.qsm.constants import ppm_to_radians
from lesionqsm.qsm.geometry import b0_direction

pytest.importorskip('qsm_forward')

import independent_phantom as ip  # noqa: E402


@pytest.fixture(scope='module', params=list(ip.TEST_PHANTOMS))
def chain(request, tmp_path_factory):
    """(phantom, reconstruction, scores) of one phantom through the default chain."""
    ph = ip.simulate(tmp_path_factory.mktemp('phantom'), **ip.TEST_PHANTOMS[request.param])
    chi, chi_mask, brain_mask, _, reconstruction = ip.run_chain(ph)
    scores = ip.score(chi, chi_mask, brain_mask, ph, reliable_mask=reconstruction.reliable_mask)
    print(f"\n{request.param}: slope {scores['slope']:.3f}, lesion median "
          f"{scores['median_lesion']:.2f} max {scores['max_lesion']:.2f} juxtacortical "
          f"{scores['median_juxtacortical']:.2f} ppb, NRMSE {scores['nrmse']:.3f} (reliable "
          f"voxels {scores['nrmse_reliable']:.3f}), layers lost {scores['layers_lost']}")
    return ph, reconstruction, scores


def test_phantom_has_every_lesion_kind(chain):
    """Deep, juxtacortical (edge within 3 mm of the cortex) and rim lesions are all there and
    all measurable inside the chain's χ mask."""
    ph, _, s = chain
    assert {les.kind for les in ph.lesions} == {'deep', 'juxtacortical', 'rim'}
    assert np.all(np.isfinite(s['lesion_errors']))


def test_field_matches_simulator(chain):
    """The multi-echo fit and unwrapping give back the noise-free field qsm-forward put in the
    echoes, to within the fit's own noise estimate: deeper than 5 voxels from the mask's edge
    the rms difference is 0.85-1.25 times the median ``noise_std`` there (measured 1.03 at
    1.5 mm 3 T, 1.02 at 1 mm 7 T, 1.04 at 0.6 × 0.6 × 2 mm; 1 is an exact estimate), and no
    voxel of the mask is off by π rad per echo spacing or more (an unwrapping error is 2π)."""
    ph, r, _ = chain
    truth = ppm_to_radians(ph.field_ppm, field_strength=ph.field_strength,
                           delta_te=r.delta_te)
    mask = r.brain_mask
    left = r.unwrapped_field_rad - truth
    left -= np.median(left[mask])
    deep = mask & (ndi.distance_transform_edt(mask) > 5)
    ratio = np.sqrt(np.mean(left[deep] ** 2)) / np.median(r.noise_std[deep])
    assert 0.85 <= ratio <= 1.25
    assert np.abs(left[mask]).max() < np.pi


def test_keeps_the_brain_mask(chain):
    """At most the outer voxel layer of the chain's own mask is lost (issue 11 target; the
    MEDI toolbox's 5 mm SMV loses 9-14 layers on these phantoms)."""
    _, background, s = chain
    assert s['layers_lost'] <= 1
    assert np.all(background.reliable_mask <= background.local_mask)


def test_roi_slope(chain):
    """ROI slope in [0.96, 1.04] (measured 1.000 at 1.5 mm 3 T, 0.994 at 1 mm 7 T, 0.982 at
    0.6 × 0.6 × 2 mm and SNR 50, where the toolbox's option set gives 0.962 and PDF alone
    0.902; issue 11's [0.98, 1.02] is in test_issue_11_targets)."""
    _, _, s = chain
    assert 0.96 <= s['slope'] <= 1.04


def test_lesion_errors(chain):
    """The default chain's level on data it did not make: median lesion |error| ≤ 0.6 ppb,
    max ≤ 2 ppb, juxtacortical median ≤ 0.7 ppb (measured 0.22 / 0.48 / 0.46 ppb at 1.5 mm
    3 T, 0.10 / 0.92 / 0.44 at 1 mm 7 T, 0.28 / 0.62 / 0.23 at 0.6 × 0.6 × 2 mm and SNR 50;
    without the sources outside the mask, ``outside_source_scale: 0``: 0.20 / 0.66 / 0.26,
    0.28 / 0.87 / 0.58 and 0.67 / 1.92 / 0.65).  PDF alone on the same phantoms: 0.79 / 6.27
    / 2.53, 2.50 / 3.64 / 2.65 and 2.76 / 5.59 / 2.76 (benchmarks/bench_background_methods.py)."""
    _, _, s = chain
    assert s['median_lesion'] <= 0.6
    assert s['max_lesion'] <= 2.0
    assert s['median_juxtacortical'] <= 0.7


def test_whole_brain_nrmse(chain):
    """NRMSE over the voxels with χ ≤ 0.25 (measured 0.099 at 1.5 mm 3 T, 0.059 at 1 mm 7 T,
    0.133 at 0.6 × 0.6 × 2 mm; without the sources outside the mask 0.238, 0.197 and 0.263,
    most of it in the outermost kept layer, where only the 7-point mean fits; PDF alone 0.33,
    0.49 and 0.58)."""
    _, _, s = chain
    assert s['nrmse'] <= 0.25
    # over the reliable voxels (desc-reliable_mask: without the outermost kept layer):
    # measured 0.063, 0.057 and 0.110
    assert s['nrmse_reliable'] <= 0.18


def test_issue_11_targets(chain):
    """Issue 11's targets: ROI slope in [0.98, 1.02], median lesion |error| ≤ 0.3 ppb,
    max ≤ 1 ppb, juxtacortical median ≤ 0.5 ppb, whole-brain NRMSE ≤ 0.15.  Measured: 1.000,
    0.22 / 0.48, 0.46, 0.099 at 1.5 mm 3 T; 0.994, 0.10 / 0.92, 0.44, 0.059 at 1 mm 7 T;
    0.982, 0.28 / 0.62, 0.23, 0.133 at 0.6 × 0.6 × 2 mm and SNR 50.  PDF to its tolerance
    without the stall rule (``PDF_STALL_PATIENCE``) misses the 7 T maximum (1.08) and the
    0.6 mm slope, median and NRMSE (0.975, 0.39, 0.188)."""
    _, _, s = chain
    assert 0.98 <= s['slope'] <= 1.02
    assert s['median_lesion'] <= 0.3
    assert s['max_lesion'] <= 1.0
    assert s['median_juxtacortical'] <= 0.5
    assert s['nrmse'] <= 0.15


@pytest.fixture(scope='module')
def slab_chain(tmp_path_factory):
    """The 1.5 mm phantom acquired as a slab holding the middle half of the brain's height."""
    ph = ip.simulate(tmp_path_factory.mktemp('slab'),
                     **ip.TEST_PHANTOMS['1.5mm-3T-skull-snr100'])
    height = np.flatnonzero(ip.brain_tissue(ph.labels).any(axis=(0, 1)))
    first = int(height[0] + 0.25 * (height[-1] - height[0]))
    stop = int(height[0] + 0.75 * (height[-1] - height[0]))
    cut = ip.slab(ph, first, stop)
    chi, chi_mask, brain_mask, _, reconstruction = ip.run_chain(cut)
    return cut, reconstruction, ip.score(chi, chi_mask, brain_mask, cut)


def test_brain_cut_by_the_field_of_view(slab_chain):
    """A slab that cuts the brain at both faces, as a thin clinical slab does (28 slices of
    1.5 mm; the echoes carry the whole head's field).  The chain says so, and stays accurate:
    no periodic image of one face reaches the other.  Measured: slope 1.000, median / max
    lesion |error| 0.24 / 0.80 ppb, NRMSE 0.105, 7 lesions measured (full coverage scored on
    the same slices: 1.000, 0.27 / 0.96, 0.089).  The median of so few lesions moves with the
    noise: with noise seed 7 it is 0.63 ppb (full coverage 0.33), max 0.79, NRMSE 0.093, hence
    its bound of 0.7 ppb."""
    _, r, s = slab_chain
    assert any('reaches 2 faces of the field of view (z first, z last)' in w
               for w in r.warnings)
    assert 0.98 <= s['slope'] <= 1.02
    assert s['median_lesion'] <= 0.7
    assert s['max_lesion'] <= 1.0
    assert s['nrmse'] <= 0.15


@pytest.fixture(scope='module')
def oblique_chain(tmp_path_factory):
    """The 1.5 mm phantom acquired with its slices tilted 20° about the first array axis."""
    ph = ip.simulate(tmp_path_factory.mktemp('oblique'),
                     **ip.TEST_PHANTOMS['1.5mm-3T-skull-snr100'], tilt_deg=20.0)
    chi, chi_mask, brain_mask, _, reconstruction = ip.run_chain(ph)
    return ph, ip.score(chi, chi_mask, brain_mask, ph,
                        reliable_mask=reconstruction.reliable_mask)


def test_oblique_acquisition(oblique_chain):
    """Slices tilted 20° from axial, B0 along (0, sin 20°, cos 20°) of the array: the chain
    takes B0's direction from the affine (qsm-forward writes the tilt into it, as an oblique
    scan's header has it).  Measured: slope 0.998, median / max lesion |error| 0.25 / 2.43
    ppb, NRMSE 0.256, 0.103 over the reliable voxels (noise seed 7: 0.996, 0.29 / 1.10, 0.272,
    0.104).  Ignoring the tilt (an axial affine on the same echoes) gives slope 0.900, median
    4.6 ppb, NRMSE 2.42.  The whole-brain NRMSE misses issue 11's 0.15 (0.099 without the
    tilt): the k-space dipole field of the phantom's voxelised air and bone is not harmonic
    inside the brain when B0 is oblique to the grid, and the outermost kept layer takes the
    rest (rms 21 ppb against 7 without the tilt, ``bench_edge_error.py --tilt-deg 20``)."""
    ph, s = oblique_chain
    np.testing.assert_allclose(b0_direction(ph.affine), [0.0, np.sin(np.deg2rad(20.0)),
                                                         np.cos(np.deg2rad(20.0))], atol=1e-6)
    assert 0.98 <= s['slope'] <= 1.02
    assert s['median_lesion'] <= 0.6
    assert s['nrmse_reliable'] <= 0.15
    assert s['nrmse'] <= 0.35
