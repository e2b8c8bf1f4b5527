"""Load the run's images for display and bring them onto one grid with the written transforms.

Transforms are read as written by the run (FSL FLIRT convention, ``*_xfm.mat``) and applied
with :mod:`lesionqsm.registration.fsl_matrix`; lesion ROIs are carried from their FLAIR grid
with the pipeline's partial-volume rule (:mod:`lesionqsm.lesions.fractions`).
"""

from dataclasses import dataclass

import nibabel as nb
import numpy as np
from scipy import ndimage

from ..registration.fsl_matrix import fsl_to_world, read_fsl_matrix

__all__ = ['Grid', 'load', 'world_from_xfm', 'resample', 'same_grid']


@dataclass
class Grid:
    """A loaded 3-D image: data (float32), affine and voxel sizes (mm, ``pixdim``)."""

    data: np.ndarray
    affine: np.ndarray
    zooms: tuple

    @property
    def shape(self):
        return self.data.shape


def load(path):
    """A 3-D image (the first volume of a 4-D one) as a :class:`Grid`."""
    img = nb.load(str(path))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    return Grid(data=np.squeeze(data) if data.ndim > 3 else data, affine=img.affine.copy(),
                zooms=tuple(float(z) for z in img.header.get_zooms()[:3]))


def same_grid(a, b, *, atol=1e-3):
    """True when two grids have the same shape and affine (to ``atol`` mm)."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=atol)


def world_from_xfm(path, moving, reference):
    """World (scanner RAS mm) matrix of a FLIRT matrix file between two grids."""
    return fsl_to_world(read_fsl_matrix(path), in_shape=moving.shape, in_affine=moving.affine,
                        ref_shape=reference.shape, ref_affine=reference.affine,
                        in_zooms=moving.zooms, ref_zooms=reference.zooms)


def resample(moving, reference, *, world=None, order=1):
    """``moving`` resampled onto ``reference``'s grid; ``world`` maps moving to reference mm.

    Parameters
    ----------
    moving, reference : Grid
    world : (4, 4) array_like, optional
        ``x_ref_world = world @ x_moving_world``; identity (scanner coordinates) if omitted.
    order : int
        Spline order (1 trilinear, 0 nearest).

    Returns
    -------
    float32 ndarray, shape ``reference.shape`` (0 outside the moving image)
    """
    world = np.eye(4) if world is None else np.asarray(world, float)
    ref_to_moving = np.linalg.inv(moving.affine) @ np.linalg.inv(world) @ reference.affine
    return ndimage.affine_transform(moving.data, ref_to_moving[:3, :3],
                                    offset=ref_to_moving[:3, 3], output_shape=reference.shape,
                                    order=order, mode='constant', cval=0.0).astype(np.float32)
