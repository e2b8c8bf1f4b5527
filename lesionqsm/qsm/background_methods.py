"""The background-field step of the chain: one call per method, and what the inversion needs.

Each method returns the local field, the mask it is defined on, the voxels whose χ can be
trusted, and the options the dipole inversion (:func:`lesionqsm.qsm.medi.medi_plus_zero`) must
receive to model what was done to the field (an SMV high-pass has to be applied to the dipole
kernel too).

Methods
-------
``'pdf_edge_smv'`` (default)
    PDF on the mask's bounding box with a loose tolerance, stopped early when its residual
    stalls (:data:`PDF_STALL_PATIENCE`), then MEDI fits the edge-aware SMV
    high-pass of the field (:mod:`lesionqsm.qsm.vsmv`): the sphere is 10 mm in the interior,
    smaller towards the edge, the 7-point mean next to it; the residual harmonic field that PDF
    leaves is removed everywhere but the mask's outer voxel layer.  What the 7-point mean
    leaves of the background next to the edge, MEDI fits with sources outside the mask
    (:data:`OUTSIDE_SOURCE_SCALE`).
``'medi_toolbox'``
    The MEDI toolbox's ``MEDI_L1(..., 'smv', 5, 'merit')`` after its PDF: 5 mm SMV everywhere
    (the mask loses its outer 5 mm) and model-error reweighting.  For comparison with
    published MEDI+0 results.
``'pdf'``
    PDF alone (tolerance 1e-3), no residual-field removal.
``'lbv'``
    Laplacian boundary value; the mask loses its outer layer.
``'vsharp'``
    Edge-aware SMV high-pass followed by deconvolution with the largest sphere (V-SHARP-style).
"""

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from . import background, vsmv
from .smv import smv_filter

METHODS = ('pdf_edge_smv', 'medi_toolbox', 'pdf', 'lbv', 'vsharp')
DEFAULT_METHOD = 'pdf_edge_smv'

#: Largest sphere and number of sphere radii of the default edge-aware SMV.  Measured on the
#: independent phantoms (benchmarks/bench_background_methods.py): a 10 mm sphere in the
#: interior keeps more of the lesions' low spatial frequencies than the toolbox's 5 mm
#: (median / max lesion error 0.21 / 0.66 ppb against 0.20 / 1.35 at 1.5 mm 3 T, 0.29 / 0.88
#: against 0.62 / 3.34 at 1 mm 7 T), at the cost of one more sphere's FFTs per CG step.
EDGE_SMV_MAX_RADIUS_MM = 10.0
EDGE_SMV_SPHERES = 3

#: PDF tolerance before a residual-harmonic step: the step removes what PDF leaves, so PDF only
#: has to bring the background near the brain's surface down (12-15 CG steps on the
#: independent phantoms with skull and air, against the 200-step cap at 1e-3).
PDF_TOL_BEFORE_SMV = 0.01

#: ``'pdf_edge_smv'`` also stops PDF when its residual has not reached a new low for this many
#: CG steps (:func:`lesionqsm.qsm.background.pdf`'s ``stall_patience``).  With air and bone
#: around the brain the residual falls to the tolerance in 12-15 steps without a stall, so
#: nothing changes there; with no background sources (the 7 T and 0.6 mm phantoms) it stalls
#: at 8-11 % after 4-10 steps, and iterating on to the 200-step cap fits the brain's own edge
#: field with outside sources: maximum lesion error 1.08 → 0.92 ppb at 7 T, NRMSE 0.188 →
#: 0.133 at 0.6 mm (patience 1 and 4: 0.93 and 1.02 ppb at 7 T; benchmarks/
#: bench_background_methods.py with ``{"pdf_stall_patience": null}`` for the old behaviour).
#: What the stopped PDF leaves next to the edge is the outside sources' to take up: without
#: them (``outside_scale`` 0) the rule is off, since it would cost NRMSE 0.197 → 0.150 at 7 T
#: but 0.263 → 0.445 and slope 0.921 at 0.6 mm.
PDF_STALL_PATIENCE = 2

#: Scale ``P_B`` of the sources outside the mask that MEDI fits beside χ after the edge-aware
#: SMV (:func:`lesionqsm.qsm.medi.medi_plus_zero`'s ``outside_scale``).  The high-pass's
#: 7-point mean next to the edge leaves of the background field (bone and air one or two
#: voxels away) four times the local field's own signal; sources outside the mask model it
#: exactly.  Measured on the independent phantoms (benchmarks/bench_background_methods.py,
#: PDF run to its tolerance, before :data:`PDF_STALL_PATIENCE`): whole-brain NRMSE 0.238 /
#: 0.197 / 0.263 without, 0.125 / 0.110 / 0.208 at 1, 0.099 / 0.088 / 0.188 at 3, 0.111 /
#: 0.087 / 0.182 at 10; at 30 the lesion maximum grows (1.65 ppb at 1.5 mm) and at 100 the
#: slope drops (0.970).  With the stall rule (which changes only the 7 T and 0.6 mm phantoms):
#: at 1 the 7 T lesion maximum is 1.01 ppb (0.92 at 3), at 10 the 0.6 mm slope 0.974 (0.982).
OUTSIDE_SOURCE_SCALE = 3.0


@dataclass
class BackgroundResult:
    """Output of :func:`remove_background`.

    Attributes
    ----------
    local_field_rad : float32 ndarray
        Local field, unit of the input field, 0 outside ``local_mask``.
    local_mask : bool ndarray
        Voxels where the local field, and χ after the inversion, are defined.
    reliable_mask : bool ndarray
        Brain-mask voxels that were neither eroded nor extrapolated: outside it, χ is 0 or
        comes mostly from the inversion's regulariser (the ``desc-reliable_mask``).
    medi_options : dict
        Keyword options to pass on to :func:`lesionqsm.qsm.medi.medi_plus_zero`
        (``smv_radius_mm``: None, a radius in mm, or a per-voxel radius map; ``merit``;
        ``outside_scale``: the scale of the sources outside the mask MEDI fits, or None).
    info : dict
        What the method did (iterations, radii, voxel counts), for the sidecar.
    """

    local_field_rad: np.ndarray
    local_mask: np.ndarray
    reliable_mask: np.ndarray
    medi_options: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def remove_background(field_rad, mask, voxel_size, *, b0_dir=(0.0, 0.0, 1.0), noise_std=None,
                      method=DEFAULT_METHOD, max_radius_mm=EDGE_SMV_MAX_RADIUS_MM,
                      n_spheres=EDGE_SMV_SPHERES, tol=None, max_iter=200,
                      stall_patience=PDF_STALL_PATIENCE, outside_scale=OUTSIDE_SOURCE_SCALE):
    """Remove the background field with one of :data:`METHODS`.

    Parameters
    ----------
    field_rad : ndarray, shape (X, Y, Z)
        Unwrapped total field, radians per echo spacing ΔTE (any linear unit works).
    mask : bool ndarray, shape (X, Y, Z)
        Brain mask.
    voxel_size : tuple of 3 float
        Voxel size in mm.
    b0_dir : tuple of 3 float, optional
        Unit B0 vector in array axes.
    noise_std : None, float or ndarray, optional
        Field noise standard deviation (weights of PDF).
    method : str, optional
        One of :data:`METHODS` (default :data:`DEFAULT_METHOD`).
    max_radius_mm : float, optional
        Largest SMV sphere of ``'pdf_edge_smv'`` and ``'vsharp'``, mm (default
        :data:`EDGE_SMV_MAX_RADIUS_MM`; ``'medi_toolbox'`` always uses 5 mm).
    n_spheres : int, optional
        Number of sphere radii of the edge-aware filter (:func:`lesionqsm.qsm.vsmv.kernel_radii`;
        default :data:`EDGE_SMV_SPHERES`).
    tol : float, optional
        CG tolerance of PDF or LBV; default :data:`PDF_TOL_BEFORE_SMV` before an SMV step,
        1e-3 for ``'pdf'`` and ``'lbv'``.
    max_iter : int, optional
        CG iterations of PDF, at most (LBV uses at least 500).
    stall_patience : int or None, optional
        ``'pdf_edge_smv'`` with outside sources (``outside_scale`` > 0) only: PDF also stops
        when its residual has not reached a new low for this many CG steps (default
        :data:`PDF_STALL_PATIENCE`; None: run to ``tol``).
    outside_scale : float, optional
        ``'pdf_edge_smv'`` only: scale of the sources outside the mask that MEDI fits with χ
        (default :data:`OUTSIDE_SOURCE_SCALE`; 0 or None: none).

    Returns
    -------
    BackgroundResult

    Raises
    ------
    ValueError
        On an unknown method, or the errors of the method (empty mask, shapes).
    """
    if method not in METHODS:
        raise ValueError(f'background method must be one of {METHODS}, got {method!r}')
    mask = np.asarray(mask, dtype=bool)
    info = {'method': method}
    if method == 'lbv':
        local, local_mask, lbv_info = background.lbv(
            field_rad, mask, voxel_size, tol=1e-3 if tol is None else tol,
            max_iter=max(500, max_iter), return_mask=True, return_info=True)
        info.update(lbv_info)
        return BackgroundResult(local, local_mask, local_mask.copy(), {}, _counts(info, mask,
                                                                                   local_mask))
    if method == 'vsharp':
        local, kept = vsmv.vsharp(field_rad, mask, voxel_size, max_radius_mm=max_radius_mm,
                                  n_spheres=n_spheres)
        # the deconvolution is exact only where the largest sphere fits
        reliable = vsmv.radius_map(mask, voxel_size, max_radius_mm=max_radius_mm,
                                   n_spheres=1) == np.float32(max_radius_mm)
        info['radii_mm'] = vsmv.kernel_radii(voxel_size, max_radius_mm, n_spheres=n_spheres)
        return BackgroundResult(local, kept, reliable, {}, _counts(info, mask, kept))

    before_smv = method in ('pdf_edge_smv', 'medi_toolbox')
    if tol is None:
        tol = PDF_TOL_BEFORE_SMV if before_smv else 1e-3
    if method != 'pdf_edge_smv' or not outside_scale:
        # only MEDI's outside sources take up what a PDF stopped at its stall leaves
        stall_patience = None
    local, pdf_info = background.pdf(field_rad, mask, voxel_size, b0_dir=b0_dir,
                                     noise_std=noise_std, tol=tol, max_iter=max_iter,
                                     stall_patience=stall_patience, crop=before_smv,
                                     return_info=True)
    info.update({'pdf_' + k: v for k, v in pdf_info.items()})
    info['pdf_tol'] = tol
    if method == 'pdf':
        return BackgroundResult(local, mask.copy(), mask.copy(), {}, _counts(info, mask, mask))
    if method == 'medi_toolbox':
        kept = smv_filter(mask.astype(np.float32), voxel_size, 5.0) > 0.999
        info['smv_radius_mm'] = 5.0
        return BackgroundResult(np.where(kept, local, 0).astype(np.float32), kept, kept.copy(),
                                {'smv_radius_mm': 5.0, 'merit': True},
                                _counts(info, mask, kept))
    radius = vsmv.radius_map(mask, voxel_size, max_radius_mm=max_radius_mm,
                             n_spheres=n_spheres)
    kept = radius != 0
    # next to the edge only the 7-point mean fits: the data there constrain the Laplacian of
    # the field only, and χ comes mostly from the regulariser
    reliable = radius > 0
    info['radii_mm'] = vsmv.kernel_radii(voxel_size, max_radius_mm, n_spheres=n_spheres)
    info['neighbour_mean_voxels'] = int((radius < 0).sum())
    return BackgroundResult(np.where(kept, local, 0).astype(np.float32), kept, reliable,
                            {'smv_radius_mm': radius, 'merit': False,
                             'outside_scale': outside_scale or None},
                            _counts(info, mask, kept))


def _counts(info, mask, kept):
    lost = mask & ~kept
    info['voxels_lost'] = int(lost.sum())
    layers = ndi.distance_transform_cdt(np.pad(mask, 1), metric='taxicab')[1:-1, 1:-1, 1:-1]
    info['layers_lost'] = int(layers[lost].max()) if lost.any() else 0
    return info
