"""Loading and saving NIfTI images with errors that name the file, and atomic writes.

:func:`image_header` is the one check of an input image's header (dimensionality, voxel
sizes, affine, data type) and :func:`check_same_grid` the one check that two images share a
grid; discovery and the interfaces both use them.
"""

import hashlib
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import nibabel as nb
import numpy as np

from .problems import KIND_VISIT, InputError

#: Fewest voxels along each spatial axis (finite differences and the dipole kernel need 3).
MIN_VOXELS_PER_AXIS = 3
#: Smallest |det| of the affine's 3x3 part, in mm³ (below: a singular voxel-to-world map).
MIN_VOXEL_VOLUME_MM3 = 1e-9


class ImageError(InputError):
    """An input image is unreadable or unusable; the message names the file."""


def _fail(path, what, *, key=None, expected=None, kind=KIND_VISIT):
    return ImageError(f'{path}: {what}', kind=kind, file=path, key=key, expected=expected)


def spatial_shape(shape):
    """``shape`` without trailing singleton axes beyond the third."""
    shape = tuple(int(n) for n in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _stored_zooms(path, img):
    """Voxel sizes as stored in the file (mm, first 3 axes).

    nibabel replaces a stored voxel size of 0 by 1 when it loads a header (with a log
    message), which would hide a broken header: the stored ``pixdim`` is read again here.
    """
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as handle:
        raw = type(img.header).from_fileobj(handle, check=False)
    n_axes = min(3, len(img.shape))
    return tuple(float(z) for z in raw['pixdim'][1:1 + n_axes])


def image_header(path, *, kind=KIND_VISIT):
    """Open a NIfTI without reading its data and check that it can be one 3-D volume.

    Parameters
    ----------
    path : str or Path
        Image file.
    kind : str, optional
        Problem kind of the error (what a bad image stops).

    Returns
    -------
    nibabel.Nifti1Image
        Lazily loaded (header only).

    Raises
    ------
    ImageError
        The file is missing or not NIfTI; it is not 3-D (a 4-D file holding every echo is
        refused with that reason: BIDS stores one echo per file); it has fewer than
        :data:`MIN_VOXELS_PER_AXIS` voxels along an axis; a voxel size is zero, negative or not
        finite; the affine is not finite or not invertible; or its data type is not a real
        number type.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, 'file not found', kind=kind)
    try:
        img = nb.load(str(path))
        shape = spatial_shape(img.shape)
        zooms = _stored_zooms(path, img)
        affine = np.asarray(img.affine, dtype=float)
        dtype = np.dtype(img.get_data_dtype())
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise _fail(path, f'not a readable NIfTI image ({exc})', kind=kind) from exc
    if len(shape) == 4:
        raise _fail(path, f'is 4-D with {shape[3]} volumes (shape {shape}); one 3-D volume '
                    'per file is expected: if these are echoes, store each as its own '
                    'echo-<index> file', key='dim', expected='3-D', kind=kind)
    if len(shape) != 3:
        raise _fail(path, f'is {len(shape)}-D (shape {shape}); a 3-D volume is expected',
                    key='dim', expected='3-D', kind=kind)
    if min(shape) < MIN_VOXELS_PER_AXIS:
        raise _fail(path, f'has shape {shape}: at least {MIN_VOXELS_PER_AXIS} voxels per axis '
                    'are needed (a single slice cannot be processed)', key='dim',
                    expected=f'>= {MIN_VOXELS_PER_AXIS} voxels per axis', kind=kind)
    if not all(math.isfinite(z) and z > 0 for z in zooms):
        raise _fail(path, f'voxel sizes {zooms} mm: each must be finite and > 0', key='pixdim',
                    expected='finite voxel sizes > 0 mm', kind=kind)
    if not np.all(np.isfinite(affine)):
        raise _fail(path, 'the affine (voxel-to-world matrix) holds NaN or infinite values',
                    key='affine', expected='a finite, invertible affine', kind=kind)
    if abs(np.linalg.det(affine[:3, :3])) < MIN_VOXEL_VOLUME_MM3:
        raise _fail(path, 'singular affine, the voxel-to-world geometry is unusable',
                    key='affine', expected='a finite, invertible affine', kind=kind)
    if dtype.kind not in 'biuf':
        raise _fail(path, f'data type {dtype} is not a real number type', key='datatype',
                    expected='integer or floating-point voxels', kind=kind)
    return img


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
        raise ImageError(f'{path}: file not found', file=path)
    try:
        img = nb.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ImageError(f'{path}: not a readable NIfTI image ({exc})', file=path) from exc
    shape = tuple(n for i, n in enumerate(data.shape) if i < 3 or n != 1)
    if ndim is not None:
        accepted = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in accepted:
            raise ImageError(f'{path}: expected a {" or ".join(map(str, accepted))}-D image, '
                             f'got shape {data.shape}')
    if finite and np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        n_bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ImageError(f'{path}: {n_bad} voxels are NaN or infinite', file=path)
    affine = np.asarray(img.affine, dtype=float)
    zooms = img.header.get_zooms()[:3]
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageError(f'{path}: singular affine (or not finite), the voxel-to-world geometry '
                         'is unusable', file=path, key='affine')
    if not all(math.isfinite(float(z)) and z > 0 for z in zooms):
        raise ImageError(f'{path}: voxel sizes {tuple(float(z) for z in zooms)} mm: each must '
                         'be finite and > 0', file=path, key='pixdim')
    return img


def grid_mismatch(img_a, img_b, *, atol=1e-3):
    """How two images' grids differ (None if they share shape and affine to ``atol`` mm)."""
    shape_a, shape_b = tuple(img_a.shape[:3]), tuple(img_b.shape[:3])
    if shape_a != shape_b:
        return f'shapes {shape_a} vs {shape_b}'
    if not np.allclose(img_a.affine, img_b.affine, atol=atol):
        return 'same shape, different affines'
    return None


def same_grid(img_a, img_b, *, atol=1e-3):
    """True if two images share shape (first 3 axes) and affine (to ``atol`` mm)."""
    return grid_mismatch(img_a, img_b, atol=atol) is None


def check_same_grid(img_a, path_a, img_b, path_b, *, what='are', kind=KIND_VISIT):
    """Raise :class:`ImageError` naming both files unless they share shape and affine.

    Parameters
    ----------
    img_a, img_b : nibabel image
        Loaded or lazily opened (only the header is used).
    path_a, path_b : str or Path
        Their files, named in the message.
    what : str, optional
        Words between the file names and "not on the same grid" (``'(two echoes) are'``).
    kind : str, optional
        Problem kind of the error.
    """
    detail = grid_mismatch(img_a, img_b)
    if detail is not None:
        raise ImageError(f'{path_a} and {path_b} {what} not on the same grid ({detail})',
                         kind=kind, file=path_b, key='affine', expected=f'the grid of {path_a}')


def load_mask_on_grid(path, reference_img, reference_path='reference'):
    """Load a mask and check it lies on ``reference_img``'s grid; returns a bool array."""
    img = load_image(path, ndim=3)
    check_same_grid(img, path, reference_img, reference_path)
    return np.asanyarray(img.dataobj) > 0


class OutputPathError(OSError):
    """A write into the output folder would leave it (through a symbolic link)."""


def check_inside(root, path):
    """Refuse ``path`` unless writing it stays inside ``root``, links included.

    Every existing component from ``root`` down to ``path`` that is a symbolic link must point
    inside ``root`` (a link out of it would lead the write elsewhere). ``root`` itself may be a
    link (the user chose it).

    Raises
    ------
    OutputPathError
        Naming the link, or ``path`` when it is not under ``root`` at all.
    """
    root, path = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise OutputPathError(f'{path}: not inside the output folder {root}') from None
    real_root = Path(os.path.realpath(root))
    current = root
    for part in relative.parts:
        if part in ('', '.', '..'):
            raise OutputPathError(f'{path}: not inside the output folder {root}')
        current = current / part
        if current.is_symlink() and not is_within(os.path.realpath(current), real_root):
            raise link_error(current, root)
        if not current.exists():
            break


def is_within(path, folder):
    """True if ``path`` is ``folder`` or lies under it (both taken literally)."""
    return Path(path) == Path(folder) or Path(folder) in Path(path).parents


def link_error(link, root):
    """The error for a symbolic link that leads out of the output folder ``root``."""
    return OutputPathError(f'{link}: symbolic link to {os.readlink(link)}, outside the output '
                           f'folder {root}; lesionqsm does not write through it: remove it or '
                           'choose another output folder')


def links_out_of(root):
    """Symbolic links under ``root`` (not followed) that point outside it, sorted."""
    real_root = Path(os.path.realpath(root))
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            entry = Path(folder) / name
            if entry.is_symlink() and not is_within(os.path.realpath(entry), real_root):
                found.append(entry)
    return sorted(found)


def _same_bytes(path_a, path_b, chunk=1 << 20):
    """True if two files hold the same bytes (compared by SHA-256)."""
    if os.path.getsize(path_a) != os.path.getsize(path_b):
        return False
    digests = []
    for path in (path_a, path_b):
        digest = hashlib.sha256()
        with open(path, 'rb') as handle:
            for block in iter(lambda handle=handle: handle.read(chunk), b''):
                digest.update(block)
        digests.append(digest.digest())
    return digests[0] == digests[1]


@contextmanager
def atomic_target(path, *, suffix='.tmp', root=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A failure (or a kill) inside the block never leaves a partial ``path``: the temporary file
    is removed on error, and the rename is atomic on one file system. When ``path`` already
    holds exactly the bytes written (same SHA-256) it is left untouched, so a rerun does not
    change its modification time; an altered or deleted file is replaced.

    Parameters
    ----------
    path : str or Path
        The file to write.
    suffix : str, optional
        Suffix of the temporary name (``.nii.gz`` for nibabel).
    root : str or Path, optional
        Output folder that ``path`` must stay inside (:func:`check_inside`), checked before
        any folder is created.
    """
    path = Path(path)
    if root is not None:
        check_inside(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        if path.is_file() and not path.is_symlink() and _same_bytes(tmp, path):
            os.unlink(tmp)
            return
        with open(tmp, 'rb+') as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, payload, *, root=None):
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_target(path, root=root) as tmp, open(tmp, 'wb') as handle:
        handle.write(payload)
    return Path(path)


def atomic_write_text(path, text, *, root=None):
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode('utf-8'), root=root)


def atomic_copy(src, dst, *, root=None):
    """Copy ``src`` to ``dst`` through a temporary file in ``dst``'s folder and a rename."""
    with atomic_target(dst, root=root) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def save_image_atomic(img, path, *, root=None):
    """Save a nibabel image to ``path`` atomically (temporary name in the same folder, rename)."""
    path = Path(path)
    suffix = ''.join(path.suffixes[-2:]) if path.name.endswith('.nii.gz') else path.suffix
    with atomic_target(path, suffix=suffix, root=root) as tmp:
        nb.save(img, tmp)
    return path


def save_like(data, reference_img, out_dir, filename, *, dtype=np.float32):
    """Save ``data`` on ``reference_img``'s grid (same affine and header) as out_dir/filename."""
    header = reference_img.header.copy()
    header.set_data_dtype(dtype)
    img = nb.Nifti1Image(np.asarray(data, dtype=dtype), reference_img.affine, header)
    img.header.set_xyzt_units('mm', 'sec')
    return str(save_image_atomic(img, Path(out_dir) / filename))
