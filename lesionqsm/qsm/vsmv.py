"""Edge-aware spherical mean value (SMV) filtering: the largest sphere that fits at each voxel.

The MEDI toolbox removes the background field left by PDF with a 5 mm SMV filter: a harmonic
field ``h`` equals its mean over any sphere inside the brain, so ``h - S * h = 0`` wherever the
sphere fits, and MEDI fits ``(1 - S) D χ`` to ``(1 - S) f``.  The price is the brain's outer
5 mm, where the sphere does not fit.  Here each voxel gets the largest kernel of a short list
that fits inside the mask: the sphere of ``max_radius_mm`` in the interior, smaller spheres
closer to the edge, and, next to the edge, the 7-point mean of the six neighbours (weights
∝ 1/h² per axis, so that it annihilates harmonic fields on anisotropic grids too: it is the
discrete Laplacian).  Only the outermost voxel layer, whose neighbours are not all in the mask,
is left out.

The operator ``H x = x - Σ_k M_k (K_k * x)`` (``M_k`` the voxels that use kernel ``k``) is
linear, its adjoint is ``Hᵀ y = y - Σ_k K_k * (M_k y)`` (every kernel is point-symmetric), and
it annihilates harmonic fields on the kept voxels.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.ndimage as ndi

from . import threads
from .smv import smv_kernel

#: Default largest sphere, mm (the MEDI toolbox's ``'smv', 5``).
MAX_RADIUS_MM = 5.0


def _neighbour_weights(voxel_size):
    """Weights of the 7-point mean per axis, ∝ 1/h², two neighbours each, summing to 1."""
    inv = np.array([1.0 / float(v) ** 2 for v in voxel_size])
    return inv / (2.0 * inv.sum())


class NeighbourMean:
    """The weighted mean of the six face neighbours, on one band of voxels (by flat indices).

    ``x - mean`` is ``-(Σ_a h_a² w_a) ∇²x`` for the 7-point Laplacian, so it is zero for any
    discrete-harmonic field.  Every voxel of the band has its six face neighbours inside the
    mask, hence inside the array, so ``index ± stride`` never leaves it; only the band's
    voxels and their neighbours are touched (no full-array pass).
    """

    def __init__(self, band, voxel_size):
        self.index = np.flatnonzero(band)
        strides = np.cumprod((1,) + band.shape[:0:-1])[::-1]
        self.steps = [(int(s), np.float32(w))
                      for s, w in zip(strides, _neighbour_weights(voxel_size), strict=True)]

    def mean_at(self, x):
        """The neighbour mean of ``x`` at the band's voxels (1-D, band order)."""
        flat = x.ravel()
        out = np.zeros(self.index.size, dtype=np.float32)
        for step, weight in self.steps:
            out += weight * (flat[self.index + step] + flat[self.index - step])
        return out

    def subtract_transpose(self, z, values):
        """``z -= Nᵀ v`` in place (``z`` C-contiguous), ``v`` given on the band (``values``,
        band order)."""
        if not z.flags.c_contiguous:  # ravel would copy, and the update would be lost
            raise ValueError('subtract_transpose needs a C-contiguous array')
        flat = z.ravel()
        for step, weight in self.steps:
            part = weight * values
            flat[self.index + step] -= part   # one shift: the targets are distinct
            flat[self.index - step] -= part


def kernel_radii(voxel_size, max_radius_mm=MAX_RADIUS_MM, *, n_spheres=2):
    """Sphere radii (mm) of the edge-aware filter, largest last.

    The smallest sphere has a radius of twice the largest voxel edge (a sphere of one voxel
    on an anisotropic grid is not round enough to annihilate harmonic fields); ``n_spheres``
    radii are spread evenly up to ``max_radius_mm``.
    """
    smallest = 2.0 * max(float(v) for v in voxel_size)
    if max_radius_mm <= smallest or n_spheres <= 1:
        return (float(max_radius_mm),)
    return tuple(float(r) for r in np.linspace(smallest, max_radius_mm, n_spheres))


def radius_map(mask, voxel_size, *, max_radius_mm=MAX_RADIUS_MM, n_spheres=2):
    """Per-voxel kernel choice: the largest sphere that fits in the mask, else the 7-point mean.

    Parameters
    ----------
    mask : bool ndarray, shape (X, Y, Z)
        Brain mask (voxels outside the array count as outside the mask).
    voxel_size : tuple of 3 float
        Voxel size in mm.
    max_radius_mm : float, optional
        Largest sphere, mm.
    n_spheres : int, optional
        Number of sphere radii (see :func:`kernel_radii`).

    Returns
    -------
    radius : float32 ndarray, shape of ``mask``, mm
        The sphere radius used at each voxel; ``-1`` for the 7-point mean; 0 outside the mask
        and on its outer layer (a face neighbour is outside).
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)
    dist = ndi.distance_transform_edt(padded, sampling=voxel_size)[1:-1, 1:-1, 1:-1]
    inner = ndi.binary_erosion(padded, ndi.generate_binary_structure(3, 1))[1:-1, 1:-1, 1:-1]
    radius = np.where(inner, -1.0, 0.0).astype(np.float32)
    for r in kernel_radii(voxel_size, max_radius_mm, n_spheres=n_spheres):
        # the sphere fits when the nearest voxel outside the mask is farther than its radius
        radius[inner & (dist > r)] = r
    return radius


def sphere_kernel(shape, voxel_size, radius_mm):
    """Half spectrum of the sphere mean, with its second moments made isotropic.

    On an anisotropic grid the voxels of a sphere have unequal second moments per axis, so the
    sphere mean does not annihilate quadratic harmonic fields such as ``x² - y²``.  Adding
    ``c_a (δ_{+a} + δ_{-a} - 2 δ_0)`` per axis (sum 0, so the kernel still has unit sum) raises
    the smaller moments to the largest; on an isotropic grid nothing changes.  The float32
    array is read-only and cached (MEDI's preconditioner asks for it at every Gauss-Newton
    step).
    """
    return _sphere_kernel_cached(tuple(int(n) for n in shape),
                                 tuple(float(v) for v in voxel_size), float(radius_mm))


@lru_cache(maxsize=8)
def _sphere_kernel_cached(shape, voxel_size, radius_mm):
    kernel = np.array(smv_kernel(shape, voxel_size, radius_mm, rfft=True), dtype=np.float32)
    reach = [int(np.floor(radius_mm / float(v))) for v in voxel_size]
    offsets = np.meshgrid(*[np.arange(-n, n + 1) * float(v)
                            for n, v in zip(reach, voxel_size, strict=True)],
                          indexing='ij', sparse=True)
    inside = sum(o**2 for o in offsets) <= radius_mm**2
    moments = np.array([float((np.broadcast_to(o**2, inside.shape)[inside]).mean())
                        for o in offsets])
    if np.ptp(moments) <= 1e-9 * moments.max():
        kernel.setflags(write=False)
        return kernel
    for axis, (n, v) in enumerate(zip(shape, voxel_size, strict=True)):
        c = (moments.max() - moments[axis]) / (2.0 * float(v) ** 2)
        if c == 0:
            continue
        m = kernel.shape[axis]
        freq = np.arange(m) / n
        symbol = (2.0 * np.cos(2.0 * np.pi * freq) - 2.0).astype(np.float32)
        kernel += np.float32(c) * symbol.reshape([-1 if a == axis else 1 for a in range(3)])
    kernel.setflags(write=False)
    return kernel


@dataclass
class EdgeAwareSMV:
    """The operator ``H`` of one radius map on one grid, with its kernels precomputed.

    Attributes
    ----------
    shape : tuple of 3 int
    voxel_size : tuple of 3 float
    bands : list of (float, bool ndarray)
        ``(radius_mm, voxels)`` per sphere, largest first.
    neighbour_band : bool ndarray
        Voxels that use the 7-point mean.
    kept : bool ndarray
        Voxels where ``H`` is defined (radius ≠ 0).
    """

    shape: tuple
    voxel_size: tuple
    bands: list
    neighbour_band: np.ndarray
    kept: np.ndarray

    @classmethod
    def from_radius_map(cls, radius, voxel_size):
        radius = np.asarray(radius, dtype=np.float32)
        values = sorted({float(r) for r in np.unique(radius) if r > 0}, reverse=True)
        bands = [(r, radius == np.float32(r)) for r in values]
        return cls(shape=radius.shape, voxel_size=tuple(float(v) for v in voxel_size),
                   bands=bands, neighbour_band=radius < 0, kept=radius != 0)

    def crop(self, box):
        """The same operator on a sub-box (kernels are rebuilt for the box's FFT size)."""
        return EdgeAwareSMV(shape=tuple(b.stop - b.start for b in box),
                            voxel_size=self.voxel_size,
                            bands=[(r, np.ascontiguousarray(m[box])) for r, m in self.bands],
                            neighbour_band=np.ascontiguousarray(self.neighbour_band[box]),
                            kept=np.ascontiguousarray(self.kept[box]))

    def sphere_kernels(self):
        return [sphere_kernel(self.shape, self.voxel_size, r) for r, _ in self.bands]

    def apply(self, x, *, workers=-1):
        """``H x = x - Σ_k M_k (K_k * x)``, 0 where ``H`` is not defined (float32)."""
        x = np.asarray(x, dtype=np.float32)
        spec = scipy.fft.rfftn(x, workers=workers)
        out = x.copy(order='C')  # written through a flat view below
        for (_, band), kernel in zip(self.bands, self.sphere_kernels(), strict=True):
            mean = scipy.fft.irfftn(spec * kernel, s=self.shape, workers=workers)
            out[band] -= mean[band]
        neighbours = NeighbourMean(self.neighbour_band, self.voxel_size)
        out.ravel()[neighbours.index] -= neighbours.mean_at(x)
        out[~self.kept] = 0
        return out

    def smooth_variance(self, var):
        """``Σ_k M_k (K_k * var)``: the local mean of a variance map under each voxel's kernel
        (the MEDI toolbox's noise update after SMV filtering)."""
        var = np.asarray(var, dtype=np.float32)
        spec = scipy.fft.rfftn(var, workers=-1)
        out = np.zeros(self.shape, dtype=np.float32)  # C order: written through a flat view
        for (_, band), kernel in zip(self.bands, self.sphere_kernels(), strict=True):
            mean = scipy.fft.irfftn(spec * kernel, s=self.shape, workers=-1)
            out[band] = mean[band]
        neighbours = NeighbourMean(self.neighbour_band, self.voxel_size)
        out.ravel()[neighbours.index] = neighbours.mean_at(var)
        return out


def dipole_operators(smv, dipole_rfft, *, workers=-1):
    """Forward ``x ↦ H (D * x)`` and adjoint ``y ↦ D * (Hᵀ y)`` for the MEDI data term.

    Parameters
    ----------
    smv : EdgeAwareSMV
        The high-pass operator on the solver's grid.
    dipole_rfft : float32 ndarray
        Dipole kernel (half spectrum) on the same grid.

    Returns
    -------
    forward, adjoint : callables float32 ndarray -> float32 ndarray
        One real FFT and ``1 + n`` inverse FFTs forward, ``1 + n`` FFTs and one inverse
        adjoint, for ``n`` sphere radii (the 7-point mean works on the image).  The band
        restrictions work on flat indices, so that apart from the FFTs each call costs a few
        passes over the array.
    """
    shape = smv.shape
    kernels = [(np.flatnonzero(band), (dipole_rfft * k).astype(np.float32))
               for (_, band), k in zip(smv.bands, smv.sphere_kernels(), strict=True)]
    neighbours = NeighbourMean(smv.neighbour_band, smv.voxel_size)
    kept = smv.kept.astype(np.float32)
    scratch = [np.empty(shape, dtype=np.float32) for _ in kernels]
    # large transforms: one single-threaded FFT per thread (see lesionqsm.qsm.threads)
    parallel = workers != 1
    fft_workers = 1 if parallel else workers

    def inverse(spec, kernel):
        return lambda: scipy.fft.irfftn(spec * kernel, s=shape, workers=fft_workers,
                                        overwrite_x=True)

    def forward(x):
        spec = scipy.fft.rfftn(x, workers=workers)
        dx, *means = threads.run_all([inverse(spec, dipole_rfft)]
                                     + [inverse(spec, kernel) for _, kernel in kernels],
                                     parallel=parallel)
        out = dx * kept
        flat_out = out.ravel()
        flat_out[neighbours.index] -= neighbours.mean_at(dx)
        for (index, _), mean in zip(kernels, means, strict=True):
            flat_out[index] -= mean.ravel()[index]
        return out

    def band_spectrum(flat_z, index, kernel, buffer):
        def job():
            buffer[...] = 0
            buffer.ravel()[index] = flat_z[index]
            part = scipy.fft.rfftn(buffer, workers=fft_workers)
            part *= kernel
            return part
        return job

    def adjoint(y):
        z = np.multiply(y, kept, dtype=np.float32)
        flat_z = z.ravel()
        values = flat_z[neighbours.index]
        parts = [band_spectrum(flat_z, index, kernel, buffer)
                 for (index, kernel), buffer in zip(kernels, scratch, strict=True)]
        z_corrected = z.copy()
        neighbours.subtract_transpose(z_corrected, values)

        def whole():
            spec = scipy.fft.rfftn(z_corrected, workers=fft_workers)
            spec *= dipole_rfft
            return spec

        spec, *band_specs = threads.run_all([whole] + parts, parallel=parallel)
        for part in band_specs:
            spec -= part
        return scipy.fft.irfftn(spec, s=shape, workers=workers, overwrite_x=True)

    return forward, adjoint


def vsharp(field, mask, voxel_size, *, max_radius_mm=MAX_RADIUS_MM, n_spheres=2,
           threshold=0.05):
    """V-SHARP-style background removal: edge-aware SMV high-pass, then deconvolution.

    ``H f`` (:class:`EdgeAwareSMV` on :func:`radius_map`) has no harmonic (background) part;
    the local field is recovered by dividing its spectrum by ``1 - S_R`` of the largest
    sphere where ``|1 - S_R| > threshold`` (truncated inverse).  The division is exact only
    where the largest sphere fits; closer to the edge it is an approximation.

    Parameters
    ----------
    field : ndarray, shape (X, Y, Z)
        Total field (any linear unit).
    mask : bool ndarray
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    max_radius_mm, n_spheres : float, int, optional
        Kernels, as :func:`radius_map`.
    threshold : float, optional
        Truncation of the inverse of ``1 - S_R``.

    Returns
    -------
    local : float32 ndarray
        Local field in the unit of ``field``, 0 outside ``kept``.
    kept : bool ndarray
        The mask without its outer voxel layer.

    References
    ----------
    .. [1] Wu B, Li W, Guidon A, Liu C. Magn Reson Med 2012;67:137-147 (V-SHARP).
    """
    mask = np.asarray(mask, dtype=bool)
    smv = EdgeAwareSMV.from_radius_map(
        radius_map(mask, voxel_size, max_radius_mm=max_radius_mm, n_spheres=n_spheres),
        voxel_size)
    high = smv.apply(np.where(mask, field, 0))
    big = smv_kernel(mask.shape, voxel_size, max(max_radius_mm, 1e-3), rfft=True)
    response = 1.0 - big
    inverse = np.where(np.abs(response) > threshold, 1.0 / np.where(
        response == 0, 1.0, response), 0.0).astype(np.float32)
    spec = scipy.fft.rfftn(high, workers=-1)
    spec *= inverse
    local = scipy.fft.irfftn(spec, s=mask.shape, workers=-1)
    return np.where(smv.kept, local, 0).astype(np.float32), smv.kept
