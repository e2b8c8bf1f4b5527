"""FSL FLIRT's 4×4 matrix convention and its conversions to world (RAS mm) and voxel affines.

A FLIRT matrix ``M`` maps *FSL scaled-voxel* coordinates of the input (moving) image to those of
the reference image: ``x_ref = M @ x_in``.  An image's scaled-voxel coordinates are its voxel
indices times its voxel sizes (``pixdim``), after flipping the first axis,
``i -> (n_i - 1) - i``, when the voxel-to-world affine has a positive determinant
("neurological" storage).  The world (scanner RAS, mm) affines of the two images are *not* part
of the matrix, which is why converting needs both images' shapes, affines and voxel sizes.

The functions here are pure (no file I/O except :func:`read_fsl_matrix` and
:func:`write_fsl_matrix`) and follow fslpy's ``Image.getAffine('voxel', 'fsl')`` and FLIRT's
``-omat`` output.

Naming used throughout: ``W`` is the *world* matrix that maps a point of the input image's
scanner space to the same anatomical point in the reference image's scanner space,
``x_ref_world = W @ x_in_world``; a resampler therefore reads the input at ``W⁻¹ @ x_ref_world``.

References
----------
.. [1] Jenkinson M, Smith S. A global optimisation method for robust affine registration of
   brain images. Med Image Anal 2001;5:143-156.
.. [2] fslpy, ``fsl/data/image.py`` (``voxToScaledVoxMat``) and ``fsl/transform/flirt.py``.
"""

from pathlib import Path

import numpy as np

__all__ = [
    'compose_fsl',
    'format_fsl_matrix',
    'fsl_scaled_voxel_affine',
    'fsl_to_voxel',
    'fsl_to_world',
    'max_displacement_mm',
    'read_fsl_matrix',
    'rotation_angle_deg',
    'voxel_to_fsl',
    'world_to_fsl',
    'write_fsl_matrix',
]


def _as_affine(affine, name='affine'):
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f'{name} must be a 4x4 matrix, got shape {affine.shape}')
    if not np.all(np.isfinite(affine)):
        raise ValueError(f'{name} has NaN or infinite entries')
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f'{name} is singular (determinant of its 3x3 part is ~0)')
    return affine


def fsl_scaled_voxel_affine(shape, affine, zooms=None):
    """Matrix from voxel indices to FSL scaled-voxel coordinates (mm) of one image.

    Parameters
    ----------
    shape : tuple of int
        Image shape; only the first three entries are used.
    affine : (4, 4) array_like
        Voxel-to-world affine (only the sign of its determinant is used).
    zooms : tuple of 3 float, optional
        Voxel sizes in mm as FSL reads them (``header.get_zooms()[:3]``, i.e. ``pixdim``).
        Default: the column norms of ``affine``.

    Returns
    -------
    V : (4, 4) float64 ndarray
        ``x_fsl = V @ [i, j, k, 1]``: ``diag(zooms)`` with, for a positive-determinant affine,
        the first axis flipped about the image, ``x = (n_0 - 1 - i) * zooms[0]``.

    Raises
    ------
    ValueError
        If the affine is singular, ``shape`` has fewer than 3 axes or a voxel size is not > 0.
    """
    affine = _as_affine(affine)
    if len(shape) < 3:
        raise ValueError(f'shape must have at least 3 axes, got {tuple(shape)}')
    if zooms is None:
        zooms = np.linalg.norm(affine[:3, :3], axis=0)
    zooms = np.asarray(zooms, dtype=np.float64)[:3]
    if zooms.shape != (3,) or np.any(~np.isfinite(zooms)) or np.any(zooms <= 0):
        raise ValueError(f'voxel sizes must be 3 positive numbers, got {zooms.tolist()}')
    scaled = np.diag([*zooms, 1.0])
    if np.linalg.det(affine[:3, :3]) > 0:
        flip = np.eye(4)
        flip[0, 0] = -1.0
        flip[0, 3] = float(shape[0] - 1)
        scaled = scaled @ flip
    return scaled


def fsl_to_voxel(fsl_mat, *, in_shape, in_affine, ref_shape, ref_affine, in_zooms=None,
                 ref_zooms=None):
    """Voxel-to-voxel matrix (input indices to reference indices) of a FLIRT matrix.

    Parameters
    ----------
    fsl_mat : (4, 4) array_like
        FLIRT matrix, input scaled-voxel mm to reference scaled-voxel mm.
    in_shape, ref_shape : tuple of int
        Shapes of the input (moving) and reference images.
    in_affine, ref_affine : (4, 4) array_like
        Their voxel-to-world affines.
    in_zooms, ref_zooms : tuple of 3 float, optional
        Their ``pixdim`` voxel sizes in mm (default: affine column norms).

    Returns
    -------
    (4, 4) float64 ndarray
        ``[i, j, k, 1]_ref = result @ [i, j, k, 1]_in``.
    """
    v_in = fsl_scaled_voxel_affine(in_shape, in_affine, in_zooms)
    v_ref = fsl_scaled_voxel_affine(ref_shape, ref_affine, ref_zooms)
    return np.linalg.inv(v_ref) @ _as_affine(fsl_mat, 'FSL matrix') @ v_in


def voxel_to_fsl(vox_mat, *, in_shape, in_affine, ref_shape, ref_affine, in_zooms=None,
                 ref_zooms=None):
    """Inverse of :func:`fsl_to_voxel`: FLIRT matrix from a voxel-to-voxel matrix."""
    v_in = fsl_scaled_voxel_affine(in_shape, in_affine, in_zooms)
    v_ref = fsl_scaled_voxel_affine(ref_shape, ref_affine, ref_zooms)
    return v_ref @ _as_affine(vox_mat, 'voxel matrix') @ np.linalg.inv(v_in)


def fsl_to_world(fsl_mat, *, in_shape, in_affine, ref_shape, ref_affine, in_zooms=None,
                 ref_zooms=None):
    """World matrix ``W`` (input scanner RAS mm to reference scanner RAS mm) of a FLIRT matrix.

    Parameters are those of :func:`fsl_to_voxel`.

    Returns
    -------
    W : (4, 4) float64 ndarray
        ``x_ref_world = W @ x_in_world``; for a rigid FLIRT matrix and orthogonal affines whose
        ``pixdim`` equals their column norms, ``W`` is rigid too.
    """
    in_affine = _as_affine(in_affine, 'input affine')
    ref_affine = _as_affine(ref_affine, 'reference affine')
    vox = fsl_to_voxel(fsl_mat, in_shape=in_shape, in_affine=in_affine, ref_shape=ref_shape,
                       ref_affine=ref_affine, in_zooms=in_zooms, ref_zooms=ref_zooms)
    return ref_affine @ vox @ np.linalg.inv(in_affine)


def world_to_fsl(world_mat, *, in_shape, in_affine, ref_shape, ref_affine, in_zooms=None,
                 ref_zooms=None):
    """FLIRT matrix of a world matrix ``W`` (input RAS mm to reference RAS mm).

    The inverse of :func:`fsl_to_world`; parameters are those of :func:`fsl_to_voxel` with
    ``world_mat`` in place of ``fsl_mat``.
    """
    in_affine = _as_affine(in_affine, 'input affine')
    ref_affine = _as_affine(ref_affine, 'reference affine')
    vox = np.linalg.inv(ref_affine) @ _as_affine(world_mat, 'world matrix') @ in_affine
    return voxel_to_fsl(vox, in_shape=in_shape, in_affine=in_affine, ref_shape=ref_shape,
                        ref_affine=ref_affine, in_zooms=in_zooms, ref_zooms=ref_zooms)


def compose_fsl(a_to_b, b_to_c):
    """FLIRT matrix A→C from A→B and B→C (as ``convert_xfm -omat ac -concat bc ab``).

    Both matrices meet in B's scaled-voxel space, so the composition is a matrix product.
    """
    return _as_affine(b_to_c, 'B-to-C matrix') @ _as_affine(a_to_b, 'A-to-B matrix')


def read_fsl_matrix(path):
    """Read a 4×4 FLIRT matrix text file.

    Raises
    ------
    ValueError
        If the file is missing or does not hold a finite, invertible 4×4 matrix; the message
        names the file.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f'{path}: matrix file not found')
    try:
        mat = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f'{path}: not a whitespace-separated numeric matrix ({exc})') from exc
    if mat.shape != (4, 4):
        raise ValueError(f'{path}: expected a 4x4 matrix, got shape {mat.shape}')
    try:
        return _as_affine(mat, 'matrix')
    except ValueError as exc:
        raise ValueError(f'{path}: {exc}') from exc


def format_fsl_matrix(mat):
    """Text of a 4×4 matrix in FLIRT's ``-omat`` layout (10 significant digits, two spaces)."""
    mat = _as_affine(mat, 'FSL matrix')
    lines = []
    for row in mat:
        values = [0.0 if abs(v) < 5e-15 else float(v) for v in row]
        lines.append(''.join(f'{v:.10g}  ' for v in values))
    return '\n'.join(lines) + '\n'


def write_fsl_matrix(path, mat):
    """Write a 4×4 matrix as FLIRT does; returns the path as str."""
    from ..bids.images import atomic_write_text

    return str(atomic_write_text(path, format_fsl_matrix(mat)))


def rotation_angle_deg(mat):
    """Rotation angle in degrees of the 3×3 part of a rigid matrix (0 for the identity)."""
    rot = np.asarray(mat, dtype=np.float64)[:3, :3]
    cos = (np.trace(rot) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def max_displacement_mm(mat_a, mat_b, points):
    """Largest distance in mm between where two 4×4 matrices send the same points.

    Parameters
    ----------
    mat_a, mat_b : (4, 4) array_like
        Two point transforms in the same (mm) space.
    points : (N, 3) array_like
        Points in mm, e.g. the world coordinates of brain-mask voxels.

    Returns
    -------
    float
        ``max_n |A p_n - B p_n|`` in mm.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    diff = np.asarray(mat_a, np.float64) - np.asarray(mat_b, np.float64)
    moved = points @ diff[:3, :3].T + diff[:3, 3]
    return float(np.sqrt((moved**2).sum(axis=1)).max()) if len(points) else 0.0
