"""Brain mask from the magnitude of a head phantom (air, scalp, dark skull, brain)."""

import numpy as np
import pytest

from lesionqsm.qsm.masking import (
    brain_mask_from_magnitude,
    largest_component,
    otsu_threshold,
)
from lesionqsm.synth.head_phantom import head_phantom


def _dice(a, b):
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


@pytest.fixture(scope='module')
def phantom():
    return head_phantom((2.0, 2.0, 3.0), echo_times=[0.005, 0.010, 0.015, 0.020], lesions=False,
                        snr=40.0)


@pytest.mark.parametrize('scale', [1e-3, 1e3])
def test_brain_mask_matches_phantom_brain(phantom, scale):
    """Dice ≥ 0.95 against the phantom brain at any magnitude scale: the default 1 mm erosion
    on 2×2×3 mm voxels removes at most the outer voxel layer of a 130×160×120 mm brain
    (≤ 5 % of its volume).  No scalp or skull voxel is kept."""
    magnitude = np.abs(phantom.signal) * scale
    mask = brain_mask_from_magnitude(magnitude, phantom.voxel_size)
    brain = phantom.brain_mask
    assert _dice(mask, brain) >= 0.95
    assert not np.any(mask & ~brain)
    # Ventricles and the dark pallidum at late echoes are inside the mask (hole filling).
    assert np.all(mask[phantom.csf_mask]) and np.all(mask[phantom.nuclei['pallidum']])


def test_brain_mask_late_echo_dark_nuclei_and_threshold(phantom):
    """A single late echo (R2* makes the pallidum darker than the scalp) still gives the whole
    brain; a user threshold of 0.3 of the 99th percentile gives the same mask."""
    late = np.abs(phantom.signal[..., -1])
    mask = brain_mask_from_magnitude(late, phantom.voxel_size, erosion_mm=0.0)
    assert _dice(mask, phantom.brain_mask) >= 0.98
    fixed = brain_mask_from_magnitude(late, phantom.voxel_size, threshold=0.3, erosion_mm=0.0)
    assert _dice(fixed, mask) >= 0.99


def test_brain_mask_errors():
    with pytest.raises(ValueError, match='zero'):
        brain_mask_from_magnitude(np.zeros((8, 8, 8)), (1, 1, 1))
    with pytest.raises(ValueError, match='3-D or 4-D'):
        brain_mask_from_magnitude(np.ones((8, 8)), (1, 1, 1))


def test_largest_component():
    two = np.zeros((10, 10, 10), bool)
    two[1:3, 1:3, 1:3] = True
    two[5:9, 5:9, 5:9] = True
    assert largest_component(two).sum() == 64


def test_otsu_separates_two_classes():
    """Two well-separated Gaussian classes: the threshold falls between them (3σ apart)."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.02, 5000), rng.normal(0.8, 0.05, 2000)])
    threshold = otsu_threshold(values)
    assert 0.16 < threshold < 0.65
    with pytest.raises(ValueError, match='distinct'):
        otsu_threshold(np.ones(10))
