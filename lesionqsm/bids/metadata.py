"""Reading GRE acquisition metadata (echo times, field strength, phase units) from BIDS sidecars.

Every function that can fail raises :class:`InputError`, whose message names the file and what
is wrong with it. Metadata dictionaries are the ones pybids returns, so values inherited from
top-level JSON files (``MEGRE.json``, ``sub-01/sub-01_part-phase_MEGRE.json``, ...) are already
merged in.
"""

import math
import re

from lesionqsm.qsm.constants import GAMMA_HZ
from lesionqsm.qsm.echoes import phase_scaling

from .problems import InputError

__all__ = ['InputError', 'check_phase_range', 'echo_number', 'echo_time_s', 'field_strength_t',
           'phase_units']


#: Accepted range of B0, in tesla: anything outside is a unit or typing mistake.
FIELD_STRENGTH_RANGE_T = (0.05, 21.2)
#: Longest plausible GRE echo time in seconds: larger values are milliseconds written as seconds.
MAX_ECHO_TIME_S = 0.5


def echo_number(label, *, path=None):
    """Echo index from a BIDS ``echo`` label; ``'01'`` and ``'1'`` are the same echo.

    Parameters
    ----------
    label : str or int
        The value of the ``echo-<label>`` entity.
    path : str or Path, optional
        The file the label comes from, named in the error.

    Returns
    -------
    int

    Raises
    ------
    InputError
        The label is not a positive integer.
    """
    text = str(label).strip()
    if not re.fullmatch(r'[0-9]+', text) or int(text) < 1:
        raise InputError(f'{path or "echo entity"}: echo label {label!r} is not a positive '
                         'integer', file=path, key='echo', expected='a positive integer')
    return int(text)


def echo_time_s(meta, *, path):
    """``EchoTime`` in seconds from a sidecar, checked.

    Parameters
    ----------
    meta : dict
        The file's metadata (inherited keys included).
    path : str or Path
        The image file, named in the errors.

    Returns
    -------
    float
        Echo time in s.

    Raises
    ------
    InputError
        ``EchoTime`` is missing, not a positive number, or larger than 0.5 s (milliseconds
        written where BIDS requires seconds).
    """
    expected = f'a number of seconds in (0, {MAX_ECHO_TIME_S}]'

    def fail(message):
        return InputError(f'{path}: {message}', file=path, key='EchoTime', expected=expected)

    if 'EchoTime' not in meta:
        raise fail('EchoTime is missing from its JSON sidecar (and from any inherited top-level '
                   'JSON); it is needed, in seconds, for every echo')
    value = meta['EchoTime']
    te = _number(value)
    if te is None:
        raise fail(f'EchoTime {_show(value)} is not a number (seconds)')
    if not math.isfinite(te) or te <= 0:
        raise fail(f'EchoTime {_show(value)} must be a positive number of seconds')
    if te > MAX_ECHO_TIME_S:
        raise fail(f'EchoTime {te:g} is larger than {MAX_ECHO_TIME_S} s; BIDS requires seconds '
                   '(it looks like milliseconds)')
    return te


def _number(value):
    """``value`` as a float if it is a JSON number (or numeric text), else None.

    Booleans, lists, objects and null are not numbers, even where Python would convert them.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def _show(value, limit=60):
    """A value for a message, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'



def field_strength_t(meta, *, path, override=None):
    """B0 in tesla: ``MagneticFieldStrength``, else ``ImagingFrequency``/γ, else ``override``.

    Parameters
    ----------
    meta : dict
        The file's metadata (inherited keys included).
    path : str or Path
        The image file, named in the errors.
    override : float, optional
        Field strength in T to use when the sidecar has neither key (the command line's
        ``--field-strength``).

    Returns
    -------
    field_strength : float
        B0 in T.
    source : str
        ``'MagneticFieldStrength'``, ``'ImagingFrequency'`` or ``'override'``.

    Raises
    ------
    InputError
        Neither key nor an override is available, or the value is not a number in
        0.05-21.2 T.

    Notes
    -----
    ``ImagingFrequency`` is in MHz (DICOM tag 0018,0084); B0 = f / 42.577478 MHz/T. A value
    given in metadata wins over the override: the override is for data without one.
    """
    low, high = FIELD_STRENGTH_RANGE_T
    expected = f'a number of tesla in {low}-{high}'
    for key in ('MagneticFieldStrength', 'ImagingFrequency'):
        if key in meta and not (isinstance(meta[key], str) and meta[key] in ('', 'n/a')) \
                and meta[key] is not None:
            value = _number(meta[key])
            if value is None:
                raise InputError(f'{path}: {key} {_show(meta[key])} is not a number', file=path,
                                 key=key, expected=expected)
            b0 = value if key == 'MagneticFieldStrength' else value / (GAMMA_HZ / 1e6)
            source = key
            break
    else:
        if override is None:
            raise InputError(f'{path}: neither MagneticFieldStrength nor ImagingFrequency is in '
                             'its JSON sidecar; give the field strength on the command line '
                             '(--field-strength, in T)', file=path, key='MagneticFieldStrength',
                             expected=expected)
        b0, source = float(override), 'override'
    if not math.isfinite(b0) or not low <= b0 <= high:
        raise InputError(f'{path}: field strength {b0:g} T (from {source}) is outside '
                         f'{low}-{high} T', file=path, key=source, expected=expected)
    return b0, source


def phase_units(meta, *, path):
    """Declared phase ``Units``: ``'rad'``, ``'arbitrary'`` or None when the sidecar has none.

    Raises
    ------
    InputError
        ``Units`` is something else (degrees are not accepted: BIDS allows rad or arbitrary).
    """
    units = meta.get('Units')
    if units is None:
        return None
    normalised = units.strip().lower() if isinstance(units, str) else None
    if normalised in ('rad', 'radian', 'radians'):
        return 'rad'
    if normalised == 'arbitrary':
        return 'arbitrary'
    raise InputError(f'{path}: phase Units {_show(units)} is not "rad" or "arbitrary"',
                     file=path, key='Units', expected='"rad" or "arbitrary"')


def check_phase_range(data, units, *, path):
    """How one phase echo maps to radians (:func:`lesionqsm.qsm.echoes.phase_scaling`), checked.

    Parameters
    ----------
    data : ndarray
        Phase image values (``scl_slope``/``scl_inter`` applied).
    units : {'rad', 'arbitrary', None}
        Declared units (None: inferred from the values).
    path : str or Path
        The phase file, named in the errors.

    Returns
    -------
    scaling : PhaseScaling
        The convention, its range and a warning when the scale was guessed.
    note : str or None
        What was inferred, for the visit's problem list (``Units`` missing or a scanner
        convention recognised).

    Raises
    ------
    InputError
        Any refusal of :func:`~lesionqsm.qsm.echoes.phase_scaling`: declared radians outside
        [-π, 2π], or a span far too small or too large for a wrapped phase.

    Notes
    -----
    Decision: values declared in radians are never rescaled (guessing a scale would silently
    change every field map); the run refuses and asks for ``"Units": "arbitrary"``. Scanner
    integers are recognised by their range (Siemens ±4096 or 0..4095, GE/Philips ±3142
    milliradians); floats in any other range are mapped from their observed span, with a
    warning.
    """
    try:
        scaling = phase_scaling(data, units, path=str(path))
    except ValueError as exc:
        raise InputError(str(exc), file=path, key='Units',
                         expected='radians in [-pi, pi] or a scanner phase range') from None
    lo, hi = scaling.observed
    if scaling.warning:
        return scaling, scaling.warning
    if units is None or (units == 'arbitrary' and scaling.convention == 'rad'):
        where = f'{path}: phase Units {units or "missing from the sidecar"}; values span ' \
                f'[{lo:.4g}, {hi:.4g}]'
        if scaling.convention == 'rad':
            return scaling, f'{where} so they are taken as radians'
        return scaling, (f'{where} so they are taken as {scaling.convention} '
                         f'([{scaling.low:.6g}, {scaling.high:.6g}) -> [-pi, pi))')
    return scaling, None
