"""Reading GRE acquisition metadata (echo times, field strength, phase units) from BIDS sidecars.

Every function that can fail raises :class:`InputError`, whose message names the file and what
is wrong with it. Metadata dictionaries are the ones pybids returns, so values inherited from
top-level JSON files (``MEGRE.json``, ``sub-01/sub-01_part-phase_MEGRE.json``, ...) are already
merged in.
"""

import math
import re

import numpy as np

from lesionqsm.qsm.constants import GAMMA_HZ

from .problems import InputError

__all__ = ['InputError', 'check_phase_range', 'echo_number', 'echo_time_s', 'field_strength_t',
           'phase_units']


#: Accepted range of B0, in tesla: anything outside is a unit or typing mistake.
FIELD_STRENGTH_RANGE_T = (0.05, 21.2)
#: Longest plausible GRE echo time in seconds: larger values are milliseconds written as seconds.
MAX_ECHO_TIME_S = 0.5
#: Slack on the [-π, π] phase range: scanners store ±π as ±4096 in 12 bits, converters round.
PHASE_RANGE_SLACK_RAD = 0.02


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
    """Check phase values against their declared units; infer the units when undeclared.

    Parameters
    ----------
    data : ndarray
        Phase image values.
    units : {'rad', 'arbitrary', None}
        Declared units (None: infer from the values).
    path : str or Path
        The phase file, named in the errors.

    Returns
    -------
    units : {'rad', 'arbitrary'}
    note : str or None
        A message for the visit's problem list when something was inferred.

    Raises
    ------
    InputError
        Declared radians whose values span more than one 2π cycle, or lie outside
        [-π, 2π] (beyond a 0.02 rad rounding slack).

    Notes
    -----
    Decision: values declared in radians are never rescaled. [-π, π] and [0, 2π] are both
    wrapped phase and are accepted as they are (the complex fit only uses exp(iφ)). Anything
    wider means the sidecar is wrong (typically scanner integers labelled "rad"); guessing a
    scale would silently change every field map, so the run refuses and asks for
    ``"Units": "arbitrary"``, which the echo-gathering step rescales. Without a
    ``Units`` key, values inside [-π, 2π] are taken as radians, anything else as arbitrary,
    and the choice is reported.
    """
    finite = np.asarray(data)[np.isfinite(data)]
    if finite.size == 0:
        raise InputError(f'{path}: the phase image has no finite values', file=path)
    lo, hi = float(finite.min()), float(finite.max())
    slack = PHASE_RANGE_SLACK_RAD
    in_radians = lo >= -math.pi - slack and hi <= 2 * math.pi + slack and (
        hi - lo <= 2 * math.pi + slack)
    if units == 'rad':
        if not in_radians:
            raise InputError(f'{path}: phase declared in radians spans [{lo:.4g}, {hi:.4g}], '
                             'outside [-pi, pi] and [0, 2pi]; if it is in scanner units set '
                             '"Units": "arbitrary" in its JSON sidecar (it is then rescaled)',
                             file=path, key='Units', expected='values in [-pi, pi] or [0, 2pi]')
        return 'rad', None
    if units == 'arbitrary':
        if hi - lo <= 0:
            raise InputError(f'{path}: phase in arbitrary units is constant ({lo:g}); it cannot '
                             'be rescaled to radians', file=path)
        return 'arbitrary', None
    inferred = 'rad' if in_radians else 'arbitrary'
    return inferred, (f'{path}: phase Units missing from the sidecar; values span '
                      f'[{lo:.4g}, {hi:.4g}] so they are taken as {inferred}')
