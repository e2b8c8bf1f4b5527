"""First step of the chain: phase in radians, echoes in TE order, one complex array.

Both the participant workflow (:class:`lesionqsm.interfaces.qsm.PrepareEchoes`) and
:func:`lesionqsm.qsm.reconstruct_session` start here, so the scale, sign and order of the echoes
are decided once.
"""

from dataclasses import dataclass, field

import numpy as np

from ..options import option


@dataclass(frozen=True)
class EchoOptions:
    """How the stored echoes are read."""

    phase_sign: int = option(1, doc='-1 for scanners that store the conjugate phase',
                             choices=(1, -1))


@dataclass
class PreparedEchoes:
    """One visit's echoes, ready for the chain.

    Attributes
    ----------
    signal : complex64 ndarray, shape (X, Y, Z, E)
        ``magnitude · exp(i phase)`` in TE order, conjugated when ``phase_sign = -1``, divided
        by ``scale``.
    magnitude : float32 ndarray, shape (X, Y, Z)
        Root-sum-of-squares magnitude of ``signal`` over echoes.
    echo_times : float64 ndarray, shape (E,)
        Echo times in s, ascending.
    scale : float
        The 99th percentile of the root-sum-of-squares magnitude of the input, which
        ``signal`` was divided by (so no step sees the arbitrary scale of the images).
    decisions : dict
        What was done, for the sidecar.
    warnings : list of str
    """

    signal: np.ndarray
    magnitude: np.ndarray
    echo_times: np.ndarray
    scale: float
    decisions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def phase_to_radians(phase, units, path='phase'):
    """Scale one stored phase volume to radians in [-π, π).

    Parameters
    ----------
    phase : ndarray
        Phase as stored.
    units : {'rad', 'arbitrary'}
        Sidecar ``Units``.  Scanner integers are mapped linearly from their stored range
        (``[-4096, 4096)`` or ``[0, 4096)`` when the data fit in it, the data range otherwise)
        onto [-π, π).
    path : str
        File name used in messages.

    Returns
    -------
    phase_rad : float32 ndarray
    warnings : list of str

    Raises
    ------
    ValueError
        A constant phase, which cannot be rescaled.
    """
    phase = np.asarray(phase, dtype=np.float64)
    warnings = []
    if units == 'arbitrary':
        low, high = float(np.nanmin(phase)), float(np.nanmax(phase))
        if high <= low:
            raise ValueError(f'{path}: phase is constant ({low}); it cannot be rescaled')
        if low >= -4096 and high <= 4096:
            low, high = (-4096.0, 4096.0) if low < 0 else (0.0, 4096.0)
        phase = (phase - low) / (high - low) * 2 * np.pi - np.pi
    elif np.nanmax(np.abs(phase)) > np.pi + 1e-3:
        warnings.append(f'{path}: Units is rad but values reach {np.nanmax(np.abs(phase)):.2f};'
                        ' wrapped to [-pi, pi)')
    wrapped = np.angle(np.exp(1j * phase)).astype(np.float32)
    return wrapped, warnings


def complex_echoes(magnitudes, phases_rad):
    """``magnitude · exp(i phase)`` as complex64, echoes along the last axis.

    Parameters
    ----------
    magnitudes, phases_rad : sequence of E float ndarrays, shape (X, Y, Z)
        One magnitude (any scale) and one phase (radians) per echo.
    """
    magnitude = np.abs(np.stack([np.asarray(m, np.float32) for m in magnitudes], axis=-1))
    phase = np.stack([np.asarray(p, np.float32) for p in phases_rad], axis=-1)
    return (magnitude * np.exp(1j * phase)).astype(np.complex64)


def prepare_echoes(signal, echo_times, options=EchoOptions()):
    """Order the echoes by TE, apply the phase sign and divide by the magnitude scale.

    Parameters
    ----------
    signal : complex ndarray, shape (X, Y, Z, E)
        Complex echoes, phase in radians, any magnitude scale.
    echo_times : sequence of E float
        Echo times in s (any order; duplicates are refused).
    options : EchoOptions

    Returns
    -------
    PreparedEchoes

    Raises
    ------
    ValueError
        Not 4-D complex, echo count and echo times disagree, duplicate echo times, or every
        magnitude voxel zero.
    """
    signal = np.asarray(signal)
    if signal.ndim != 4:
        raise ValueError('the echoes must be 4-D (X, Y, Z, echoes), got shape '
                         f'{signal.shape}')
    if not np.iscomplexobj(signal):
        raise ValueError('the echoes must be complex (magnitude · exp(i phase)), got dtype '
                         f'{signal.dtype}')
    te = np.asarray(echo_times, dtype=np.float64).ravel()
    if te.size != signal.shape[-1]:
        raise ValueError(f'{te.size} echo times were given for {signal.shape[-1]} echoes')
    if not np.all(np.isfinite(te)) or np.any(te <= 0):
        raise ValueError(f'echo times must be positive numbers of seconds, got {te.tolist()}')
    order = np.argsort(te, kind='stable')
    te = te[order]
    if np.any(np.diff(te) <= 0):
        raise ValueError(f'duplicate echo times: {te.tolist()} s')
    signal = signal[..., order].astype(np.complex64, copy=True)
    if options.phase_sign == -1:
        np.conjugate(signal, out=signal)
    rss = np.sqrt(np.sum(signal.real**2 + signal.imag**2, axis=-1))
    scale = float(np.percentile(rss, 99))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError('the echoes are zero (or nearly everywhere): nothing to reconstruct')
    signal /= np.float32(scale)
    rss /= np.float32(scale)
    decisions = {'echo_times_s': te.tolist(), 'phase_sign': int(options.phase_sign),
                 'magnitude_scale': scale}
    return PreparedEchoes(signal=signal, magnitude=rss.astype(np.float32), echo_times=te,
                          scale=scale, decisions=decisions)
