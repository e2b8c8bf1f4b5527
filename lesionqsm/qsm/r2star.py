"""R2* (1/s) from the multi-echo GRE magnitude: ARLO and weighted log-linear least squares."""

from dataclasses import dataclass

import numpy as np

from ..options import option


def _prepare(magnitude, echo_times, mask, min_echoes):
    mag = np.asarray(magnitude, dtype=np.float32)
    if mag.ndim != 4:
        raise ValueError(f'magnitude must be 4-D (X, Y, Z, echoes), got shape {mag.shape}')
    te = np.asarray(echo_times, dtype=float).ravel()
    if te.size != mag.shape[-1]:
        raise ValueError(f'{te.size} echo times were given for {mag.shape[-1]} echoes')
    if te.size < min_echoes:
        raise ValueError(f'this R2* estimator needs at least {min_echoes} echoes, got '
                         f'{te.size}')
    if np.any(np.diff(te) <= 0):
        raise ValueError(f'echo times must increase strictly, got {te.tolist()} s')
    if mask is None:
        mask = np.ones(mag.shape[:3], bool)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != mag.shape[:3]:
            raise ValueError(f'mask shape {mask.shape} differs from the image shape '
                             f'{mag.shape[:3]}')
    return mag, te, mask


def r2star_arlo(magnitude, echo_times, *, mask=None, max_r2star=1000.0):
    """R2* by ARLO, auto-regression on linear operations (Pei et al. 2015).

    With ``s_i = ΔTE/3 (S_i + 4 S_{i+1} + S_{i+2})`` (Simpson's integral of the decay over
    two spacings) and ``d_i = S_i - S_{i+2}``, a mono-exponential gives ``s_i ≈ T2* d_i``;
    ARLO's closed form, corrected for Simpson's error, is::

        T2* = (Σ s² + ΔTE/3 Σ s d) / (ΔTE/3 Σ d² + Σ s d),      R2* = 1 / T2*

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z, E)
        Echo magnitudes, any scale.
    echo_times : sequence of E float
        Echo times in s; at least 3, evenly spaced.
    mask : bool ndarray, shape (X, Y, Z), optional
        Voxels to compute; 0 elsewhere.
    max_r2star : float, optional
        Results are clipped to [0, max_r2star] 1/s (no-signal voxels give 0 or the cap).

    Returns
    -------
    float32 ndarray, shape (X, Y, Z)
        R2* in 1/s.

    Raises
    ------
    ValueError
        If fewer than 3 echoes, uneven spacing (use :func:`r2star_loglinear`), or shapes
        that do not match.

    References
    ----------
    .. [1] Pei M et al. Algorithm for fast monoexponential fitting based on Auto-Regression
       on Linear Operations (ARLO) of data. MRM 2015;73:843-850.
    """
    mag, te, mask = _prepare(magnitude, echo_times, mask, 3)
    spacing = np.diff(te)
    if np.ptp(spacing) > 1e-3 * spacing.mean():
        raise ValueError(f'ARLO needs evenly spaced echoes, got spacings {spacing.tolist()} s; '
                         'use r2star_loglinear')
    dte = np.float32(spacing.mean())
    y = mag[mask]
    s = dte / 3 * (y[:, :-2] + 4 * y[:, 1:-1] + y[:, 2:])
    d = y[:, :-2] - y[:, 2:]
    ss = np.sum(s * s, axis=1)
    sd = np.sum(s * d, axis=1)
    dd = np.sum(d * d, axis=1)
    numerator = ss + dte / 3 * sd
    denominator = dte / 3 * dd + sd
    with np.errstate(divide='ignore', invalid='ignore'):
        r2s = np.where(numerator > 0, denominator / numerator, 0)
    r2s = np.clip(np.nan_to_num(r2s, nan=0.0, posinf=max_r2star), 0, max_r2star)
    out = np.zeros(mag.shape[:3], np.float32)
    out[mask] = r2s
    return out


def r2star_loglinear(magnitude, echo_times, *, mask=None, max_r2star=1000.0):
    """R2* by weighted linear least squares of log magnitude against echo time.

    Fits ``log S_n = log S_0 - R2* TE_n`` with weights ``S_n²`` (the inverse variance of
    ``log S_n`` for Gaussian noise of fixed σ), so noisy late echoes count less.

    Parameters
    ----------
    magnitude : ndarray, shape (X, Y, Z, E)
        Echo magnitudes, any scale.
    echo_times : sequence of E float
        Echo times in s, at least 2, any spacing.
    mask : bool ndarray, shape (X, Y, Z), optional
        Voxels to compute; 0 elsewhere.
    max_r2star : float, optional
        Results are clipped to [0, max_r2star] 1/s.

    Returns
    -------
    float32 ndarray, shape (X, Y, Z)
        R2* in 1/s.

    Raises
    ------
    ValueError
        If fewer than 2 echoes, non-increasing echo times or shapes that do not match.
    """
    mag, te, mask = _prepare(magnitude, echo_times, mask, 2)
    y = mag[mask].astype(np.float64)
    positive = y > 0
    tiny = np.finfo(np.float32).tiny
    log_y = np.log(np.where(positive, y, tiny))
    w = np.where(positive, y * y, 0)
    t = te - te.mean()
    a11 = w.sum(axis=1)
    a12 = w @ t
    a22 = w @ (t * t)
    b1 = (w * log_y).sum(axis=1)
    b2 = (w * log_y) @ t
    det = a11 * a22 - a12 * a12
    with np.errstate(divide='ignore', invalid='ignore'):
        slope = np.where(det > 0, (a11 * b2 - a12 * b1) / det, 0)
    r2s = np.clip(np.nan_to_num(-slope, nan=0.0), 0, max_r2star)
    out = np.zeros(mag.shape[:3], np.float32)
    out[mask] = r2s
    return out


@dataclass(frozen=True)
class R2StarOptions:
    """Which R2* estimator to use."""

    r2star_method: str = option(
        'arlo', doc='R2* estimator; ARLO needs 3 or more evenly spaced echoes, otherwise the '
                    'log-linear fit is used and the sidecar says so',
        choices=('arlo', 'loglinear'))


def evenly_spaced(echo_times, *, rtol=1e-3):
    """True for 3 or more echo times with equal spacing (to ``rtol`` of the mean spacing)."""
    te = np.asarray(echo_times, dtype=float)
    spacing = np.diff(te)
    return te.size >= 3 and float(np.ptp(spacing)) <= rtol * float(spacing.mean())


def estimate_r2star(magnitude, echo_times, mask, options=R2StarOptions()):
    """The R2* step: ARLO where it applies, the log-linear fit otherwise.

    Parameters
    ----------
    magnitude : float ndarray, shape (X, Y, Z, E)
        Echo magnitudes, any scale.
    echo_times : sequence of E float
        Echo times in s, ascending.
    mask : bool ndarray, shape (X, Y, Z)
        Brain mask; R2* is 0 outside it.
    options : R2StarOptions

    Returns
    -------
    r2star : float32 ndarray, 1/s
        NaN everywhere for a single echo (there is no decay to fit).
    decisions : dict
        ``r2star_method``, the estimator that ran (``'none'`` for one echo).
    warnings : list of str
        Set when ARLO was asked for but the echoes do not allow it, or for one echo.
    """
    warnings = []
    method = options.r2star_method
    if len(echo_times) == 1:
        shape = np.shape(magnitude)[:3]
        return (np.full(shape, np.nan, np.float32), {'r2star_method': 'none'},
                ['R2*: one echo, no decay to fit; the R2* map is NaN and the CSF search, '
                 'which needs R2*, is skipped'])
    if method == 'arlo' and not evenly_spaced(echo_times):
        method = 'loglinear'
        warnings.append(f'R2*: ARLO needs 3 or more evenly spaced echoes ({len(echo_times)} '
                        'echoes here); the log-linear fit was used')
    estimator = r2star_arlo if method == 'arlo' else r2star_loglinear
    r2s = estimator(magnitude, echo_times, mask=mask)
    return np.where(mask, r2s, 0).astype(np.float32), {'r2star_method': method}, warnings
