"""Loading and saving NIfTI images with errors that name the file, and atomic writes."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nb
import numpy as np


class ImageError(ValueError):
    """An input image is unreadable or unusable; the message names the file."""


def load_image(path, *, ndim=None, finite=True):
    """Load a NIfTI image, failing with a message that names the file.

    Parameters
    ----------
    path : str or Path
        Image file (``.nii`` or ``.nii.gz``).
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions (trailing singleton dimensions are ignored).
    finite : bool, optional
        Refuse images with NaN or infinite voxels.

    Returns
    -------
    nibabel.Nifti1Image
        With its data loaded (a truncated ``.nii.gz`` fails here, not later).

    Raises
    ------
    ImageError
        The file is missing, not NIfTI, truncated, of the wrong dimensionality, or not finite.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f'{path}: file not found')
    try:
        img = nb.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ImageError(f'{path}: not a readable NIfTI image ({exc})') from exc
    shape = tuple(n for i, n in enumerate(data.shape) if i < 3 or n != 1)
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in accepted:
            raise ImageError(f'{path}: expected a {" or ".join(map(str, accepted))}-D image, '
                             f'got shape {data.shape}')
    if finite and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ImageError(f'{path}: {n_bad} voxels are NaN or infinite')
    if abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise ImageError(f'{path}: singular affine, the voxel-to-world geometry is unusable')
    return img


def same_grid(img_a, img_b, *, atol=1e-3):
    """True if two images share shape (first 3 axes) and affine (to ``atol`` mm)."""
    return (img_a.shape[:3] == img_b.shape[:3]
            and np.allclose(img_a.affine, img_b.affine, atol=atol))


def check_same_grid(img_a, path_a, img_b, path_b):
    """Raise :class:`ImageError` naming both files unless they share shape and affine."""
    if not same_grid(img_a, img_b):
        raise ImageError(f'{path_a} and {path_b} are not on the same grid '
                         f'(shapes {img_a.shape[:3]} vs {img_b.shape[:3]}, or different affines)')


def load_mask_on_grid(path, reference_img, reference_path='reference'):
    """Load a mask and check it lies on ``reference_img``'s grid; returns a bool array."""
    img = load_image(path, ndim=3)
    check_same_grid(img, path, reference_img, reference_path)
    return np.asanyarray(img.dataobj) > 0


@contextmanager
def atomic_target(path, *, suffix='.tmp'):
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A failure (or a kill) inside the block never leaves a partial ``path``: the temporary file
    is removed on error, and the rename is atomic on one file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb+') as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, payload):
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_target(path) as tmp, open(tmp, 'wb') as handle:
        handle.write(payload)
    return Path(path)


def atomic_write_text(path, text):
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_copy(src, dst):
    """Copy ``src`` to ``dst`` through a temporary file in ``dst``'s folder and a rename."""
    with atomic_target(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def save_image_atomic(img, path):
    """Save a nibabel image to ``path`` atomically (temporary name in the same folder, rename)."""
    path = Path(path)
    suffix = ''.join(path.suffixes[-2:]) if path.name.endswith('.nii.gz') else path.suffix
    with atomic_target(path, suffix=suffix) as tmp:
        nb.save(img, tmp)
    return path


def save_like(data, reference_img, out_dir, filename, *, dtype=np.float32):
    """Save ``data`` on ``reference_img``'s grid (same affine and header) as out_dir/filename."""
    header = reference_img.header.copy()
    header.set_data_dtype(dtype)
    img = nb.Nifti1Image(np.asarray(data, dtype=dtype), reference_img.affine, header)
    img.header.set_xyzt_units('mm', 'sec')
    return str(save_image_atomic(img, Path(out_dir) / filename))
