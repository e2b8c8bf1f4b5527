"""The background-removal step: total field → local field, with its options.

The methods are in :mod:`lesionqsm.qsm.background_methods` (and the algorithms under it in
:mod:`lesionqsm.qsm.background` and :mod:`lesionqsm.qsm.vsmv`); this module reads the options,
runs one method and records what it did.  Some methods end in the dipole inversion (an SMV
high-pass of the field has to be applied to the dipole model as well): what the inversion must
do is carried by :attr:`LocalField.inversion_smv`.
"""

from dataclasses import dataclass, field

import numpy as np

from ..options import option
from . import background_methods
from .background_methods import (
    DEFAULT_METHOD,
    EDGE_SMV_MAX_RADIUS_MM,
    EDGE_SMV_SPHERES,
    METHODS,
    OUTSIDE_SOURCE_SCALE,
    PDF_STALL_PATIENCE,
)


@dataclass(frozen=True)
class BackgroundOptions:
    """Background field removal."""

    background: str = option(
        DEFAULT_METHOD, doc='background field removal: pdf_edge_smv (PDF, then an edge-aware '
        'SMV inside MEDI), medi_toolbox (PDF, then MEDI_L1 smv 5 + merit), pdf, lbv, vsharp',
        choices=METHODS)
    background_tol: float | None = option(
        None, doc='relative residual at which PDF/LBV stop (null: 0.01 before an SMV step, '
        '1e-3 otherwise)', low=0.0, high=1.0, low_open=True, high_open=True)
    background_max_iter: int = option(200, doc='CG iterations, at most (PDF; LBV uses 500 '
                                               'unless set higher)', low=1)
    pdf_stall_patience: int | None = option(
        PDF_STALL_PATIENCE, doc='pdf_edge_smv with outside sources: PDF also stops when its '
        'residual has not reached a new low for this many CG steps (null: run to '
        'background_tol)', low=1)
    edge_smv_max_radius_mm: float = option(
        EDGE_SMV_MAX_RADIUS_MM, doc='largest SMV sphere of pdf_edge_smv and vsharp, mm',
        low=0.0, low_open=True)
    edge_smv_spheres: int = option(EDGE_SMV_SPHERES, doc='sphere radii of the edge-aware SMV',
                                   low=1, high=8)
    outside_source_scale: float = option(
        OUTSIDE_SOURCE_SCALE, doc='pdf_edge_smv: scale P_B of the sources outside the mask '
        'that MEDI fits beside χ, as total field inversion does (0: none)', low=0.0)


@dataclass
class LocalField:
    """The result of background removal.

    Attributes
    ----------
    field : float32 ndarray, shape (X, Y, Z)
        Local field in the unit of the total field (radians per ΔTE in the chain), 0 outside
        ``mask``.
    mask : bool ndarray, shape (X, Y, Z)
        Where the local field (and χ) is defined.
    reliable_mask : bool ndarray, shape (X, Y, Z)
        Brain-mask voxels that no step eroded or extrapolated (the ``desc-reliable_mask``).
    inversion_smv : dict
        What the dipole inversion must model: ``smv_radius_mm`` (None, a radius in mm, or a
        per-voxel radius map) and ``merit``; empty when the local field is final.
    decisions : dict
        Method, settings, iterations and residual, for the sidecar.
    """

    field: np.ndarray
    mask: np.ndarray
    reliable_mask: np.ndarray
    inversion_smv: dict = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)


def remove_background(total_field, brain_mask, voxel_size, *, b0_dir, noise_std=None,
                      options=BackgroundOptions()):
    """The background-removal step.

    Parameters
    ----------
    total_field : float ndarray, shape (X, Y, Z)
        Unwrapped total field, radians per ΔTE.
    brain_mask : bool ndarray, shape (X, Y, Z)
    voxel_size : tuple of 3 float
        mm.
    b0_dir : tuple of 3 float
        Unit B0 vector in array axes.
    noise_std : float ndarray, shape (X, Y, Z), optional
        Noise of the field (PDF's data weights).
    options : BackgroundOptions

    Returns
    -------
    LocalField
    """
    brain_mask = np.asarray(brain_mask, dtype=bool)
    result = background_methods.remove_background(
        total_field, brain_mask, voxel_size, b0_dir=b0_dir, noise_std=noise_std,
        method=options.background, max_radius_mm=options.edge_smv_max_radius_mm,
        n_spheres=options.edge_smv_spheres, tol=options.background_tol,
        max_iter=options.background_max_iter, stall_patience=options.pdf_stall_patience,
        outside_scale=options.outside_source_scale)
    smv = result.medi_options.get('smv_radius_mm')
    decisions = {
        'background': options.background,
        'background_info': {k: v for k, v in result.info.items()
                            if isinstance(v, int | float | str)},
        'reliable_voxels': int(result.reliable_mask.sum()),
        'brain_voxels': int(brain_mask.sum()),
    }
    if smv is not None:
        decisions['inversion_smv'] = ('edge-aware, per voxel' if np.ndim(smv) == 3
                                      else f'{float(smv):g} mm')
        decisions['inversion_merit'] = bool(result.medi_options.get('merit', False))
    if result.medi_options.get('outside_scale'):
        decisions['inversion_outside_scale'] = float(result.medi_options['outside_scale'])
    if 'radii_mm' in result.info:  # a tuple, kept out by the scalar filter above
        decisions['background_info']['radii_mm'] = result.info['radii_mm']
    return LocalField(field=np.where(result.local_mask, result.local_field_rad, 0)
                      .astype(np.float32),
                      mask=result.local_mask, reliable_mask=result.reliable_mask & brain_mask,
                      inversion_smv=dict(result.medi_options), decisions=decisions)
