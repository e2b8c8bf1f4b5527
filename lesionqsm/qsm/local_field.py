"""The background-removal step: total field → local field, with its options.

The algorithms are in :mod:`lesionqsm.qsm.background`; this module decides which one runs, on
which mask, and records the decision.
"""

from dataclasses import dataclass, field

import numpy as np

from ..options import option
from . import background


@dataclass(frozen=True)
class BackgroundOptions:
    """Background field removal."""

    background: str = option('pdf', doc='background field removal', choices=('pdf', 'lbv'))
    background_tol: float = option(1e-3, doc='relative residual at which CG stops',
                                   low=0.0, high=1.0, low_open=True, high_open=True)
    background_max_iter: int = option(200, doc='CG iterations, at most (PDF; LBV uses 500 '
                                               'unless set higher)', low=1)


@dataclass
class LocalField:
    """The result of background removal.

    Attributes
    ----------
    field : float32 ndarray, shape (X, Y, Z)
        Local field in the unit of the total field (radians per ΔTE in the chain), 0 outside
        ``mask``.
    mask : bool ndarray, shape (X, Y, Z)
        Where the local field is defined: the brain mask (PDF) or its interior (LBV, which
        spends the boundary layer on the boundary values).
    decisions : dict
        Method, settings, iterations and residual, for the sidecar.
    """

    field: np.ndarray
    mask: np.ndarray
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
    if options.background == 'pdf':
        local, info = background.pdf(total_field, brain_mask, voxel_size, b0_dir=b0_dir,
                                     noise_std=noise_std, tol=options.background_tol,
                                     max_iter=options.background_max_iter, return_info=True)
        mask = np.asarray(brain_mask, dtype=bool)
    else:
        local, mask, info = background.lbv(
            total_field, brain_mask, voxel_size, tol=options.background_tol,
            max_iter=max(500, options.background_max_iter), return_mask=True,
            return_info=True)
    decisions = {'background': options.background, 'background_tol': options.background_tol,
                 'background_info': {k: v for k, v in info.items()
                                     if isinstance(v, int | float | str)}}
    return LocalField(field=np.where(mask, local, 0).astype(np.float32), mask=mask,
                      decisions=decisions)
