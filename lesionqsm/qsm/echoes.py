"""First step of the chain: phase in radians, echoes in TE order, one complex array.

Both the participant workflow (:class:`lesionqsm.interfaces.qsm.PrepareEchoes`) and
:func:`lesionqsm.qsm.reconstruct_session` start here, so the scale, sign and order of the echoes
are decided once.
"""

import os
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


#: Scanner phase conventions: name, stored value of -π, stored value of +π, who writes it.
#: Siemens stores 12 bits (0..4095); dcm2niix keeps them with ``scl_slope = 2`` and
#: ``scl_inter = -4096`` (nibabel applies them: -4096..4094), older converters without
#: (0..4095).  GE stores radians × 1000 as integers; Philips' rescale (intercept -3142) gives
#: milliradians.  Each maps linearly onto [-π, π).
SCANNER_PHASE_RANGES = (
    ('milliradians', -1000 * np.pi, 1000 * np.pi, 'GE or Philips, radians x 1000'),
    ('siemens_signed', -4096.0, 4096.0, 'Siemens 12-bit, dcm2niix scl_slope 2, scl_inter -4096'),
    ('siemens_unsigned', 0.0, 4096.0, 'Siemens 12-bit, unscaled'),
)
#: A wrapped phase image (with its noisy background) fills nearly all of its range; a scanner
#: range is taken only when the values cover at least this fraction of it.
MIN_RANGE_COVERAGE = 0.75
#: Slack on [-π, π] and [0, 2π] for values in radians (converters round ±π), rad.
RADIAN_SLACK = 0.02
#: Spans (in the stored unit) that no wrapped phase has: below, nearly constant (a phase scaled
#: to nothing, χ would come out 0); above, larger than any 16-bit scanner range.
MIN_PHASE_SPAN = 0.1
MAX_PHASE_SPAN = 65536.0


@dataclass(frozen=True)
class PhaseScaling:
    """How one stored phase volume maps onto radians: ``low`` → -π, ``high`` → +π.

    Attributes
    ----------
    convention : str
        ``'rad'``, one of :data:`SCANNER_PHASE_RANGES`, or ``'observed_span'`` (floats
        mapped from their own minimum and maximum).
    low, high : float
        Stored values of -π and +π.
    observed : tuple of 2 float
        Minimum and maximum of the finite stored values.
    path : str
        The file, for messages.
    warning : str or None
        Set when the scale was guessed from the observed span.
    """

    convention: str
    low: float
    high: float
    observed: tuple
    path: str = 'phase'
    warning: str | None = None

    def apply(self, phase):
        """``phase`` in radians, wrapped to [-π, π), float32."""
        phase = np.asarray(phase, dtype=np.float64)
        if self.convention != 'rad':
            phase = (phase - self.low) / (self.high - self.low) * (2 * np.pi) - np.pi
        return (np.mod(phase + np.pi, 2 * np.pi) - np.pi).astype(np.float32)

    def record(self):
        """The decision for the sidecar (file name, convention, ranges)."""
        return {'file': os.path.basename(str(self.path)), 'convention': self.convention,
                'stored_range': [float(self.observed[0]), float(self.observed[1])],
                'mapped_to_pi': [float(self.low), float(self.high)]}


def phase_scaling(phase, units=None, path='phase'):
    """Decide how a stored phase volume maps to radians, from its declared units and values.

    The one rule of lesionqsm for phase scaling, used at discovery (so bad phase fails before
    any computation, naming the file) and by the chain.

    1. ``units='rad'``: the values must lie in [-π, π] or [0, 2π] (they are never rescaled;
       a span below :data:`MIN_PHASE_SPAN` only gets a warning).
    2. Otherwise (``'arbitrary'`` or undeclared), in this order:

       - values in [-π, 2π] spanning at least π: radians;
       - values inside a scanner range of :data:`SCANNER_PHASE_RANGES` covering at least
         :data:`MIN_RANGE_COVERAGE` of it: that range (milliradians first, then Siemens
         [-4096, 4096), then [0, 4096));
       - any other span between :data:`MIN_PHASE_SPAN` and :data:`MAX_PHASE_SPAN`: the observed
         minimum and maximum map to -π and π, with a warning naming the file and the range.

    Parameters
    ----------
    phase : ndarray
        Phase values as nibabel reads them (``scl_slope``/``scl_inter`` applied).
    units : {'rad', 'arbitrary', None}
        Declared sidecar ``Units``.
    path : str
        File named in messages.

    Returns
    -------
    PhaseScaling

    Raises
    ------
    ValueError
        No finite value; declared radians outside [-π, 2π] or wider than 2π; undeclared or
        arbitrary units spanning less than :data:`MIN_PHASE_SPAN` (constant or nearly: no
        scale can be inferred, χ would be 0) or more than :data:`MAX_PHASE_SPAN`.  Each
        message names the file and the range.
    """
    values = np.asarray(phase)
    finite = values[np.isfinite(values)] if values.dtype.kind == 'f' else values.ravel()
    if finite.size == 0:
        raise ValueError(f'{path}: the phase image has no finite values')
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    shown = f'[{lo:.4g}, {hi:.4g}]'
    observed = (lo, hi)
    in_radians = (lo >= -np.pi - RADIAN_SLACK and hi <= 2 * np.pi + RADIAN_SLACK
                  and span <= 2 * np.pi + RADIAN_SLACK)
    if units == 'rad' and span < MIN_PHASE_SPAN and in_radians:
        return PhaseScaling('rad', -np.pi, np.pi, observed, str(path), warning=(
            f'{path}: phase declared in radians spans only {shown}: nearly constant, so the '
            'field and chi will be nearly 0 (a wrapped phase spans 2pi)'))
    if span < MIN_PHASE_SPAN:
        raise ValueError(
            f'{path}: phase values span only {shown} (Units {units or "missing"}): far too '
            f'small for a wrapped phase, which spans 2pi rad (or 4096 or 8192 scanner units); '
            'this image would give chi = 0 everywhere. Export the phase in radians or as '
            'scanner integers')
    if span > MAX_PHASE_SPAN:
        raise ValueError(f'{path}: phase values span {shown}: far too large for a wrapped phase '
                         '(radians, milliradians or 12-bit scanner integers)')
    if units == 'rad':
        if not in_radians:
            raise ValueError(f'{path}: phase declared in radians spans {shown}, outside [-pi, '
                             'pi] and [0, 2pi]; if it is in scanner units set "Units": '
                             '"arbitrary" in its JSON sidecar (it is then rescaled)')
        return PhaseScaling('rad', -np.pi, np.pi, observed, str(path))
    if in_radians and span >= np.pi:
        return PhaseScaling('rad', -np.pi, np.pi, observed, str(path))
    for name, low, high, _ in SCANNER_PHASE_RANGES:
        slack = 1.0  # one stored unit: converters round the ends
        if lo >= low - slack and hi <= high + slack and span >= MIN_RANGE_COVERAGE * (high - low):
            return PhaseScaling(name, low, high, observed, str(path))
    return PhaseScaling('observed_span', lo, hi, observed, str(path), warning=(
        f'{path}: phase values span {shown} (Units {units or "missing"}), neither radians nor '
        'a scanner range; their minimum and maximum were mapped to -pi and pi. Check the '
        'phase export if chi looks wrong'))


def phase_to_radians(phase, units, path='phase'):
    """Scale one stored phase volume to radians in [-π, π) by :func:`phase_scaling`.

    Parameters
    ----------
    phase : ndarray
        Phase as stored (``scl_slope`` and ``scl_inter`` applied).
    units : {'rad', 'arbitrary', None}
        Sidecar ``Units``.
    path : str
        File name used in messages.

    Returns
    -------
    phase_rad : float32 ndarray
    warnings : list of str
    scaling : PhaseScaling

    Raises
    ------
    ValueError
        As :func:`phase_scaling`.
    """
    scaling = phase_scaling(phase, units, path)
    return scaling.apply(phase), [scaling.warning] if scaling.warning else [], scaling


def complex_echoes(magnitudes, phases_rad):
    """``magnitude · exp(i phase)`` as complex64, echoes along the last axis.

    Parameters
    ----------
    magnitudes, phases_rad : sequence of E float ndarrays, shape (X, Y, Z)
        One magnitude (any scale) and one phase (radians) per echo.
    """
    magnitude = np.abs(np.stack([np.asarray(m, np.float32) for m in magnitudes], axis=-1))
    phase = np.stack([np.asarray(p, np.float32) for p in phases_rad], axis=-1)
    signal = np.empty(phase.shape, dtype=np.complex64)
    # real and imaginary parts in float32 (numpy's complex exp works in complex128)
    signal.real = magnitude * np.cos(phase)
    signal.imag = magnitude * np.sin(phase)
    return signal


def prepare_echoes(signal, echo_times, options=EchoOptions(), *, phase_scaling=None):
    """Order the echoes by TE, apply the phase sign and divide by the magnitude scale.

    Parameters
    ----------
    signal : complex ndarray, shape (X, Y, Z, E)
        Complex echoes, phase in radians, any magnitude scale.
    echo_times : sequence of E float
        Echo times in s (any order; duplicates are refused).
    options : EchoOptions
    phase_scaling : sequence of E dict, optional
        How each echo's phase was mapped to radians (:meth:`PhaseScaling.record`, in the order
        of ``echo_times``); copied, in TE order, into the decisions.

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
    if phase_scaling is not None:
        phase_scaling = list(phase_scaling)
        if len(phase_scaling) != te.size:
            raise ValueError(f'{len(phase_scaling)} phase scalings were given for {te.size} '
                             'echoes')
        decisions['phase_scaling'] = [phase_scaling[i] for i in order]
    return PreparedEchoes(signal=signal, magnitude=rss.astype(np.float32), echo_times=te,
                          scale=scale, decisions=decisions)
