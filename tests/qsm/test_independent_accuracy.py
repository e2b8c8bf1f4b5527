"""Accuracy of the whole chain on head phantoms made by an independent simulator (qsm-forward).

Each phantom (:mod:`independent_phantom`) is simulated by qsm-forward from tissue maps written
as NIfTI files; the chain gets only the complex echoes, echo times, field strength and affine,
computes its own brain mask, and is scored against the simulator's χ.  Targets (issue 11):
ROI slope in [0.98, 1.02], median lesion |error| ≤ 0.3 ppb, max ≤ 1 ppb, juxtacortical median
≤ 0.5 ppb, whole-brain NRMSE ≤ 0.15, at most one voxel layer of the brain mask lost.
"""

import numpy as np
import pytest

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


def test_keeps_the_brain_mask(chain):
    """At most the outer voxel layer of the chain's own mask is lost (issue 11 target; the
    MEDI toolbox's 5 mm SMV loses 9-14 layers on these phantoms)."""
    _, background, s = chain
    assert s['layers_lost'] <= 1
    assert np.all(background.reliable_mask <= background.local_mask)


def test_roi_slope(chain):
    """ROI slope in [0.95, 1.05] (measured 1.001 at 1.5 mm 3 T, 0.985 at 1 mm 7 T, 0.958 at
    0.6 × 0.6 × 2 mm and SNR 50, where the toolbox's option set gives 0.962 and PDF alone
    0.902; issue 11's [0.98, 1.02] is in test_issue_11_targets)."""
    _, _, s = chain
    assert 0.95 <= s['slope'] <= 1.05


def test_lesion_errors(chain):
    """The default chain's level on data it did not make: median lesion |error| ≤ 1 ppb,
    max ≤ 5 ppb, juxtacortical median ≤ 1 ppb (measured 0.20 / 0.66 / 0.26 ppb at 1.5 mm 3 T,
    0.28 / 0.87 / 0.58 at 1 mm 7 T, 0.67 / 1.92 / 0.65 at 0.6 × 0.6 × 2 mm and SNR 50).  PDF
    alone on the same phantoms: 0.79 / 6.27 / 2.53, 2.50 / 3.64 / 2.65 and 2.76 / 5.59 / 2.76
    (benchmarks/bench_background_methods.py)."""
    _, _, s = chain
    assert s['median_lesion'] <= 1.0
    assert s['max_lesion'] <= 5.0
    assert s['median_juxtacortical'] <= 1.0


def test_whole_brain_nrmse(chain):
    """NRMSE over the voxels with χ ≤ 0.3 (measured 0.238 at 1.5 mm 3 T, 0.197 at 1 mm 7 T,
    0.263 at 0.6 × 0.6 × 2 mm; most of it from the outermost kept layer, where only the
    7-point mean fits and PDF's residual is not discretely harmonic; PDF alone 0.33, 0.49 and
    0.58)."""
    _, _, s = chain
    assert s['nrmse'] <= 0.3
    # over the reliable voxels (desc-reliable_mask: without the outermost kept layer, where
    # only the 7-point mean fits): measured 0.114, 0.144 and 0.193
    assert s['nrmse_reliable'] <= 0.25


@pytest.mark.xfail(strict=True, reason='issue 11 targets not all reached yet: NRMSE on every '
                   'phantom, lesion errors at 0.6 x 0.6 x 2 mm (see the tests above)')
def test_issue_11_targets(chain):
    """Issue 11's targets: ROI slope in [0.98, 1.02], median lesion |error| ≤ 0.3 ppb,
    max ≤ 1 ppb, juxtacortical median ≤ 0.5 ppb, whole-brain NRMSE ≤ 0.15.  Strict: when a
    change reaches them on a phantom, this test fails and the bounds above must be
    tightened."""
    _, _, s = chain
    assert 0.98 <= s['slope'] <= 1.02
    assert s['median_lesion'] <= 0.3
    assert s['max_lesion'] <= 1.0
    assert s['median_juxtacortical'] <= 0.5
    assert s['nrmse'] <= 0.15
