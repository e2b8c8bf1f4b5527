"""Image geometry: the B0 direction in array axes, read from the NIfTI affine."""

import numpy as np


def b0_direction(affine, *, scanner_b0=(0.0, 0.0, 1.0)):
    """Unit B0 vector expressed in the array axes of an image.

    Parameters
    ----------
    affine : (4, 4) array_like
        Voxel-to-world (RAS+, mm) affine of the image, as ``img.affine``.  Scanner
        coordinates are assumed: world z is the magnet bore axis.
    scanner_b0 : tuple of 3 float, optional
        B0 direction in world coordinates; (0, 0, 1) for every clinical scanner.

    Returns
    -------
    b0_dir : ndarray, shape (3,), float64
        Unit vector ``b`` such that the component of a physical displacement along array axis
        ``i`` contributes ``b[i]`` to its projection on B0.  An axial acquisition gives
        (0, 0, ±1); an oblique one keeps its obliquity (nothing is reoriented).

    Raises
    ------
    ValueError
        If the affine is singular.
    """
    affine = np.asarray(affine, dtype=float)
    rotation_zooms = affine[:3, :3]
    zooms = np.linalg.norm(rotation_zooms, axis=0)
    if np.any(zooms == 0) or abs(np.linalg.det(rotation_zooms)) < 1e-12:
        raise ValueError('the image affine is singular: no B0 direction can be derived')
    cosines = rotation_zooms / zooms
    b0_world = np.asarray(scanner_b0, dtype=float)
    b0_world = b0_world / np.linalg.norm(b0_world)
    b0_dir = cosines.T @ b0_world
    return b0_dir / np.linalg.norm(b0_dir)


def voxel_sizes(affine):
    """Voxel edge lengths in mm, in array-axis order, from an affine."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0))
