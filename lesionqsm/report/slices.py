"""Image panels of the subject report: maps in three planes, contours, edges, lesion crops.

Every function takes arrays already on one grid and returns a matplotlib Figure.  Volumes are
turned to the closest RAS orientation for display only (nothing is resampled or written):
axial and coronal views show the subject's right on the right (neurological convention).
"""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nb  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from scipy import ndimage  # noqa: E402

__all__ = ['CHI_WINDOW_PPM', 'to_ras', 'centre_of', 'planes_figure', 'contour_mosaic',
           'edges_figure', 'lesion_strip_figure']

#: Display window of every χ panel, ppm (fixed, so visits and subjects compare by eye).
CHI_WINDOW_PPM = (-0.15, 0.15)
_PLANES = (('axial', 2, (0, 1)), ('coronal', 1, (0, 2)), ('sagittal', 0, (1, 2)))


def to_ras(data, affine):
    """Array reordered/flipped to the closest RAS orientation, and its voxel sizes (mm).

    Parameters
    ----------
    data : ndarray, 3-D
    affine : (4, 4) array_like
        Voxel-to-world affine of ``data``.

    Returns
    -------
    ras : ndarray, 3-D
    zooms : tuple of 3 float
        Voxel edge lengths along the RAS axes, mm.
    """
    ornt = nb.orientations.io_orientation(np.asarray(affine, float))
    ras = nb.orientations.apply_orientation(np.asarray(data), ornt)
    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    order = ornt[:, 0].astype(int)
    ras_zooms = np.empty(3)
    ras_zooms[order] = zooms
    return ras, tuple(float(z) for z in ras_zooms)


def centre_of(mask, fallback_shape=None):
    """Integer centre of mass of a mask (voxel indices), or the grid centre if it is empty."""
    if mask is not None and np.any(mask):
        return tuple(int(round(c)) for c in ndimage.center_of_mass(mask > 0))
    shape = fallback_shape if fallback_shape is not None else mask.shape
    return tuple(n // 2 for n in shape)


def _plane(volume, axis, index):
    index = int(np.clip(index, 0, volume.shape[axis] - 1))
    return np.take(volume, index, axis=axis).T  # rows: the second in-plane axis, upwards


def _aspect(zooms, axes):
    return zooms[axes[1]] / zooms[axes[0]]


def planes_figure(volume, zooms, *, vmin, vmax, cmap='gray', label='', centre=None,
                  contours=(), title=None):
    """A map in three orthogonal planes through ``centre`` with a colour bar.

    Parameters
    ----------
    volume : ndarray, 3-D, RAS (see :func:`to_ras`)
    zooms : tuple of 3 float
        Voxel sizes (mm) along the RAS axes.
    vmin, vmax : float
        Display window, in the map's units.
    cmap : str
        Matplotlib colour map.
    label : str
        Colour-bar label with units (e.g. ``'χ (ppm)'``).
    centre : tuple of 3 int, optional
        Voxel the planes pass through (default: the grid centre).
    contours : sequence of (mask, colour, name)
        Binary masks on the same grid drawn as contour lines.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    centre = centre if centre is not None else tuple(n // 2 for n in volume.shape)
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.3), dpi=100,
                             gridspec_kw={'width_ratios': [
                                 volume.shape[a[0]] * zooms[a[0]] for _, _, a in _PLANES]})
    image = None
    for ax, (name, axis, in_plane) in zip(axes, _PLANES, strict=True):
        image = ax.imshow(_plane(volume, axis, centre[axis]), cmap=cmap, vmin=vmin, vmax=vmax,
                          origin='lower', aspect=_aspect(zooms, in_plane),
                          interpolation='nearest')
        for mask, colour, _ in contours:
            sl = _plane(mask.astype(np.float32), axis, centre[axis])
            if sl.max() > 0.5:
                ax.contour(sl, levels=[0.5], colors=[colour], linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.subplots_adjust(left=0.01, right=0.9, top=0.86 if title else 0.92,
                        bottom=0.1 if contours else 0.03, wspace=0.03)
    cax = fig.add_axes([0.92, 0.15, 0.015, 0.65])
    bar = fig.colorbar(image, cax=cax)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if contours:
        handles = [Line2D([], [], color=c, lw=1.2, label=n) for _, c, n in contours]
        fig.legend(handles=handles, loc='lower left', fontsize=7, frameon=False, ncol=3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def contour_mosaic(background, zooms, contours, *, n_slices=6, title=None):
    """Axial slices of a background image with masks drawn as contours.

    Parameters
    ----------
    background : ndarray, 3-D, RAS
        E.g. the GRE magnitude; windowed at its 1st-99th percentiles inside the brain.
    zooms : tuple of 3 float
    contours : sequence of (mask, colour, name)
    n_slices : int
        Axial slices, evenly spread over the extent of the first mask.
    title : str, optional
    """
    first = contours[0][0] if contours else np.ones(background.shape, bool)
    z = np.flatnonzero(first.any(axis=(0, 1)))
    lo, hi = (int(z[0]), int(z[-1])) if z.size else (0, background.shape[2] - 1)
    picks = np.unique(np.linspace(lo, hi, n_slices + 2)[1:-1].round().astype(int))
    vmin, vmax = np.percentile(background[first] if first.any() else background, [1, 99])
    fig, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks), 2.2), dpi=100,
                             squeeze=False)
    for ax, k in zip(axes[0], picks, strict=True):
        ax.imshow(background[:, :, k].T, cmap='gray', vmin=vmin, vmax=vmax, origin='lower',
                  aspect=zooms[1] / zooms[0], interpolation='nearest')
        for mask, colour, _ in contours:
            sl = mask[:, :, k].T.astype(np.float32)
            if sl.max() > 0.5:
                ax.contour(sl, levels=[0.5], colors=[colour], linewidths=0.8)
        ax.set_title(f'z = {k}', fontsize=7)
        ax.set_axis_off()
    handles = [Line2D([], [], color=c, lw=1.2, label=n) for _, c, n in contours]
    fig.legend(handles=handles, loc='lower center', fontsize=7, frameon=False,
               ncol=len(handles))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.8 if title else 0.88, bottom=0.12,
                        wspace=0.03)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def edge_mask(image, brain=None, *, fraction=0.2):
    """Edges of a reference image for registration checks.

    Parameters
    ----------
    image : ndarray, 3-D
        Reference image (e.g. the baseline GRE magnitude).
    brain : bool ndarray, optional
        Brain mask of ``image``: the edges are its outline plus the strongest ``fraction`` of
        the image gradient inside it (ventricles, lesions), which the outline would otherwise
        outshine.  Without it, the strongest ``fraction`` of the gradient over the head.
    fraction : float
        Share of the (brain or head) voxels kept as internal edges.

    Returns
    -------
    bool ndarray
    """
    image = ndimage.gaussian_filter(np.asarray(image, np.float32), 0.7)
    grad = np.sqrt(sum(ndimage.sobel(image, axis=a) ** 2 for a in range(3)))
    if brain is None or not np.any(brain):
        region = ndimage.binary_dilation(image > 0.1 * np.percentile(image, 99))
        outline = np.zeros(image.shape, bool)
    else:
        brain = np.asarray(brain, bool)
        region = ndimage.binary_erosion(brain, iterations=2)
        outline = brain & ~ndimage.binary_erosion(brain)
    values = grad[region]
    if not values.size:
        return outline
    return outline | ((grad >= np.quantile(values, 1.0 - fraction)) & region)


def edges_figure(moving, edges, zooms, *, centre=None, title=None, moving_label='moving',
                 edges_label='reference edges'):
    """A resampled image in three planes with the edges of its reference drawn over it."""
    vmin, vmax = np.percentile(moving[moving != 0] if np.any(moving) else moving, [1, 99])
    return planes_figure(moving, zooms, vmin=vmin, vmax=vmax, cmap='gray',
                         label=f'{moving_label} (a.u.)', centre=centre,
                         contours=[(edges, '#ff3b30', edges_label)], title=title)


def lesion_strip_figure(panels, roi, shell, zooms, centre, *, half_width_mm=24.0,
                        window=CHI_WINDOW_PPM, title=None):
    """One lesion at every visit: axial χ crops with the lesion ROI and NAWM shell outlined.

    Parameters
    ----------
    panels : list of (str, ndarray or None)
        Visit label and χ (ppm) on the ROI's grid, RAS; None draws an empty panel (no χ).
    roi, shell : bool ndarray, RAS
        Lesion ROI (voxels at least half inside the lesion) and its NAWM shell.
    zooms : tuple of 3 float
    centre : tuple of 3 int
        Voxel at the lesion's centre of mass.
    half_width_mm : float
        Half the side of the square crop, mm.
    window : (float, float)
        χ window, ppm.
    """
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(1.75 * n + 0.9, 2.3), dpi=100, squeeze=False)
    k = int(np.clip(centre[2], 0, roi.shape[2] - 1))
    hx = max(int(round(half_width_mm / zooms[0])), 2)
    hy = max(int(round(half_width_mm / zooms[1])), 2)
    xs = slice(max(centre[0] - hx, 0), centre[0] + hx + 1)
    ys = slice(max(centre[1] - hy, 0), centre[1] + hy + 1)
    image = None
    for ax, (label, chi) in zip(axes[0], panels, strict=True):
        ax.set_axis_off()
        ax.set_title(label, fontsize=8)
        if chi is None:
            ax.text(0.5, 0.5, 'no χ map', ha='center', va='center', fontsize=8,
                    transform=ax.transAxes)
            continue
        image = ax.imshow(chi[xs, ys, k].T, cmap='gray', vmin=window[0], vmax=window[1],
                          origin='lower', aspect=zooms[1] / zooms[0], interpolation='nearest')
        for mask, colour in ((roi, '#ffcc00'), (shell, '#00c8ff')):
            sl = mask[xs, ys, k].T.astype(np.float32)
            if sl.max() > 0.5:
                ax.contour(sl, levels=[0.5], colors=[colour], linewidths=0.9)
    fig.subplots_adjust(left=0.01, right=0.86, top=0.78, bottom=0.14, wspace=0.04)
    if image is not None:
        cax = fig.add_axes([0.88, 0.2, 0.02, 0.5])
        bar = fig.colorbar(image, cax=cax)
        bar.set_label('χ (ppm)', fontsize=7)
        bar.ax.tick_params(labelsize=6)
    handles = [Line2D([], [], color='#ffcc00', lw=1.2, label='lesion ROI'),
               Line2D([], [], color='#00c8ff', lw=1.2, label='NAWM shell')]
    fig.legend(handles=handles, loc='lower left', fontsize=7, frameon=False, ncol=2)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
