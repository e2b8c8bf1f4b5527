"""Binary morphology in millimetres, against ndimage's morphology and the distance transform."""

import numpy as np
import pytest
from scipy import ndimage

from lesionqsm.morphology import ball, dilate_mm, erode_mm


def test_ball_is_anisotropic():
    structure = ball(3.0, (1.0, 1.0, 3.0))
    assert structure.shape == (7, 7, 3)
    assert structure[3, 3, 1] and structure[3, 3, 0]  # 3 mm away along the 3 mm axis
    assert not structure[0, 0, 1]


@pytest.mark.parametrize('voxel', [(1.0, 1.0, 1.0), (0.94, 0.94, 3.0)])
def test_dilation_in_the_lesion_box_equals_the_whole_volume(voxel):
    """The dilation runs on the mask's box grown by the ball: the same voxels as ndimage's
    dilation of the whole volume, also for masks that touch the array's faces."""
    rng = np.random.default_rng(1)
    shape = (30, 34, 16)
    for corner in [(0, 0, 0), (12, 14, 6), (25, 29, 13)]:
        mask = np.zeros(shape, bool)
        box = tuple(slice(c, c + 5) for c in corner)
        mask[box] = rng.random(mask[box].shape) > 0.4
        for radius in (1.0, 2.0, 5.0):
            expected = ndimage.binary_dilation(mask, structure=ball(radius, voxel))
            np.testing.assert_array_equal(dilate_mm(mask, radius, voxel), expected)
    assert not dilate_mm(np.zeros(shape, bool), 5.0, voxel).any()


def test_morphology_in_mm():
    """Erosion/dilation by a 3 mm ball on 1×1×2 mm voxels equal ndimage's binary morphology
    with the explicit ellipsoidal structuring element (distances in mm, not voxels)."""
    voxel = (1.0, 1.0, 2.0)
    grids = np.meshgrid(*[(np.arange(n) - n // 2) * v for n, v in zip((41, 41, 21), voxel,
                                                                        strict=True)],
                        indexing='ij')
    sphere = np.sqrt(sum(g**2 for g in grids)) <= 10
    offsets = np.meshgrid(*[np.arange(-3, 4) * v for v in voxel], indexing='ij')
    structure = np.sqrt(sum(o**2 for o in offsets)) <= 3.0
    np.testing.assert_array_equal(erode_mm(sphere, 3.0, voxel),
                                  ndimage.binary_erosion(sphere, structure))
    np.testing.assert_array_equal(dilate_mm(sphere, 3.0, voxel),
                                  ndimage.binary_dilation(sphere, structure))
    # Small radii take the structuring-element path: same answer as the distance transform.
    for radius in (1.0, 2.0, 2.5):
        distance_in = ndimage.distance_transform_edt(np.pad(sphere, 1), sampling=voxel)
        np.testing.assert_array_equal(erode_mm(sphere, radius, voxel),
                                      distance_in[1:-1, 1:-1, 1:-1] > radius)
        distance_out = ndimage.distance_transform_edt(~sphere, sampling=voxel)
        np.testing.assert_array_equal(dilate_mm(sphere, radius, voxel), distance_out <= radius)


def test_large_balls_by_fft_equal_the_distance_definition():
    """Balls wider than 5 voxels are counted by FFT convolution: on an irregular mask with
    anisotropic voxels, erosion keeps exactly the voxels farther than the radius from the
    outside, dilation adds exactly those within it (the distance transform's answer)."""
    voxel = (0.94, 0.94, 3.0)
    rng = np.random.default_rng(3)
    blob = ndimage.gaussian_filter(rng.standard_normal((48, 52, 20)), 3) > 0
    distance_in = ndimage.distance_transform_edt(np.pad(blob, 1), sampling=voxel)
    distance_out = ndimage.distance_transform_edt(~blob, sampling=voxel)
    for radius in (4.0, 7.5):
        np.testing.assert_array_equal(erode_mm(blob, radius, voxel),
                                      distance_in[1:-1, 1:-1, 1:-1] > radius)
        np.testing.assert_array_equal(dilate_mm(blob, radius, voxel), distance_out <= radius)
