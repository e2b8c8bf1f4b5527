"""Lesion ROI statistics on hand-made images with known values."""

import numpy as np
import pytest

from lesionqsm.lesions import regions as roi


def test_lesion_and_shell_statistics():
    """Lesion χ 0.030 ppm on NAWM −0.010 ppm gives 40 ppb; a lesion elsewhere stays out."""
    chi = np.full((30, 30, 30), -0.010, dtype=np.float32)
    lesion = np.zeros(chi.shape, bool)
    lesion[10:14, 10:14, 10:14] = True
    chi[lesion] = 0.030
    other = np.zeros(chi.shape, bool)
    other[15:18, 10:14, 10:14] = True  # a second lesion inside the first one's shell
    chi[other] = 0.5
    brain = np.ones(chi.shape, bool)
    shell = roi.nawm_shell(lesion, exclude=other | lesion, brain_mask=brain,
                           voxel_size=(1.0, 1.0, 1.0), inner_mm=1.0, outer_mm=4.0)
    assert not (shell & (lesion | other)).any()
    # a whole-voxel lesion: the partial-volume estimate and the ROI mean agree exactly
    stats = roi.lesion_excess_statistics(chi, lesion.astype(np.float32), exclude=other | lesion,
                                         brain_mask=brain, voxel_size=(1.0, 1.0, 1.0),
                                         others=other, dilation_mm=0.0, inner_mm=1.0,
                                         outer_mm=4.0)
    assert stats['chi_lesion_ppb'] == pytest.approx(30.0, abs=1e-3)
    assert stats['chi_nawm_ppb'] == pytest.approx(-10.0, abs=1e-3)
    assert stats['chi_rel_ppb'] == pytest.approx(40.0, abs=1e-3)
    assert stats['chi_rel_roi_mean_ppb'] == pytest.approx(40.0, abs=1e-3)
    assert stats['n_voxels'] == 64


def test_empty_roi_gives_nan():
    chi = np.zeros((5, 5, 5))
    empty = np.zeros(chi.shape, bool)
    stats = roi.lesion_excess_statistics(chi, empty.astype(np.float32), exclude=empty,
                                         brain_mask=~empty, voxel_size=(1.0, 1.0, 1.0))
    assert np.isnan(stats['chi_rel_ppb']) and stats['n_voxels'] == 0


def test_label_volumes():
    labels = np.zeros((10, 10, 10), np.int16)
    labels[:2, :2, :2] = 3
    labels[5, 5, 5] = 7
    assert roi.label_volumes_mm3(labels, (1.0, 1.0, 2.0)) == {3: 16.0, 7: 2.0}
