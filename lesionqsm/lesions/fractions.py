"""Lesion ROIs carried from their FLAIR grid onto a GRE grid as partial-volume fractions."""

import numpy as np


def partial_volume_fraction(mask, mask_affine, out_shape, out_affine, *, world=None,
                            subdivisions=2):
    """Fraction of each output voxel covered by a mask drawn on a finer grid.

    Every mask voxel is split into ``subdivisions``³ sub-voxels whose centres are mapped into
    the output grid and counted in the output voxel they fall in (mass-conserving: the
    fractions sum to the mask's volume over the output voxel volume).

    Parameters
    ----------
    mask : bool ndarray, 3-D
        Mask on its own grid (e.g. a lesion on a 1 mm FLAIR).
    mask_affine, out_affine : (4, 4) array_like
        Voxel-to-world affines (mm) of the mask and of the output grid.
    out_shape : tuple of 3 int
        Output grid shape.
    world : (4, 4) array_like, optional
        World-to-world transform from the mask's scanner space to the output's (a rigid
        registration); identity if omitted.
    subdivisions : int
        Sub-voxels per mask voxel edge.

    Returns
    -------
    float32 ndarray, shape ``out_shape``, in [0, 1]
    """
    out_shape = tuple(int(n) for n in out_shape[:3])
    fraction = np.zeros(out_shape, np.float64)
    voxels = np.argwhere(mask)
    if not len(voxels):
        return fraction.astype(np.float32)
    steps = (np.arange(subdivisions) + 0.5) / subdivisions - 0.5
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing='ij'), -1).reshape(-1, 3)
    world = np.eye(4) if world is None else np.asarray(world, float)
    to_out = np.linalg.inv(np.asarray(out_affine, float)) @ world @ np.asarray(mask_affine,
                                                                                 float)
    mask_volume = abs(np.linalg.det(np.asarray(mask_affine, float)[:3, :3]))
    out_volume = abs(np.linalg.det(np.asarray(out_affine, float)[:3, :3]))
    weight = mask_volume / len(offsets) / out_volume
    for offset in offsets:
        points = voxels + offset
        ijk = np.rint(points @ to_out[:3, :3].T + to_out[:3, 3]).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < out_shape), axis=1)
        np.add.at(fraction, tuple(ijk[inside].T), weight)
    return np.clip(fraction, 0.0, 1.0).astype(np.float32)


def lesion_fractions(labels, labels_affine, out_shape, out_affine, *, world=None):
    """Every lesion's partial-volume fraction on the output grid.

    Parameters
    ----------
    labels : integer ndarray, 3-D
        Lesion label map (lesion id per voxel, 0 = background) on its FLAIR grid.
    labels_affine, out_affine : (4, 4) array_like
        Voxel-to-world affines (mm).
    out_shape : tuple of 3 int
        Output (GRE) grid shape.
    world : (4, 4) array_like, optional
        World-to-world transform from the FLAIR's scanner space to the GRE's.

    Returns
    -------
    ids : list of int
        Lesion ids, ascending.
    fractions : float32 ndarray, shape ``out_shape + (max(1, len(ids)),)``
        One volume per lesion (all zero when there is no lesion).
    """
    labels = np.rint(np.asarray(labels)).astype(np.int64)
    ids = [int(i) for i in np.unique(labels) if i > 0]
    volumes = [partial_volume_fraction(labels == lesion_id, labels_affine, out_shape,
                                       out_affine, world=world) for lesion_id in ids]
    if not volumes:
        return ids, np.zeros(tuple(out_shape[:3]) + (1,), np.float32)
    return ids, np.stack(volumes, axis=-1).astype(np.float32)
