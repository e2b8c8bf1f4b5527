"""Options objects: one frozen dataclass per step, its defaults and bounds defined once.

Every step of the pipeline (echo fit, masking, background removal, inversion, lesion measures,
group model, ...) takes one options object.  The object is a frozen dataclass whose fields
carry their allowed values in ``field(metadata=...)``:

``choices``
    the allowed values of a string (or any) option;
``low`` / ``high``
    inclusive bounds of a number; ``low_open`` / ``high_open`` make them exclusive;
``doc``
    one line for ``--help``, the README and error messages.

:func:`options_from_mapping` builds an options object from a ``--config`` section, checking
every key, type and bound, so that a bad value is refused at start-up with the key named.
Nothing here imports nipype.
"""

import dataclasses
import math
import types
import typing


class OptionError(ValueError):
    """An option that does not exist, has the wrong type, or lies outside its range.

    Attributes
    ----------
    key : str
        Dotted name of the option (``'qsm.lambda_'``).
    """

    def __init__(self, key, message):
        super().__init__(f'{key}: {message}')
        self.key = key


def option(default, *, doc, choices=None, low=None, high=None, low_open=False,
           high_open=False):
    """A dataclass field with its documentation and allowed values (see module docstring)."""
    metadata = {'doc': doc, 'choices': choices, 'low': low, 'high': high,
                'low_open': low_open, 'high_open': high_open}
    if isinstance(default, list | dict | set):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def describe(field, annotation=None):
    """What values a field accepts, in words (for messages and --help)."""
    meta = field.metadata
    if meta.get('choices'):
        return 'one of ' + ', '.join(repr(c) for c in meta['choices'])
    parts = []
    if meta.get('low') is not None:
        parts.append(f"{'>' if meta.get('low_open') else '>='} {meta['low']:g}")
    if meta.get('high') is not None:
        parts.append(f"{'<' if meta.get('high_open') else '<='} {meta['high']:g}")
    kind = _type_name(field.type if annotation is None else annotation)
    return f"{kind} {' and '.join(parts)}".strip()


def _type_name(annotation):
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, '__name__', str(annotation))


def _resolved_types(cls):
    return typing.get_type_hints(cls)


def check_value(key, field, annotation, value):
    """Return ``value`` converted to the field's type, or raise :class:`OptionError`."""
    meta = field.metadata
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if value is None:
        if optional:
            return None
        raise OptionError(key, f'must be {describe(field)}, got null')
    if optional:
        annotation = next(a for a in args if a is not type(None))
        origin = typing.get_origin(annotation)
    if annotation is bool:
        if not isinstance(value, bool):
            raise OptionError(key, f'must be true or false, got {value!r}')
    elif annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise OptionError(key, f'must be an integer ({describe(field)}), got {value!r}')
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(key, f'must be a number ({describe(field)}), got {value!r}')
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(key, f'must be a finite number ({describe(field)}), got {value}')
    elif annotation is str:
        if not isinstance(value, str):
            raise OptionError(key, f'must be a string ({describe(field)}), got {value!r}')
    elif origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise OptionError(key, f'must be a list, got {value!r}')
        (item_type,) = args[:1] or (str,)
        value = [check_value(f'{key}[{i}]', dataclasses.field(metadata={}), item_type, v)
                 for i, v in enumerate(value)]
        value = tuple(value) if origin is tuple else value
    choices = meta.get('choices')
    if choices is not None and value not in choices:
        raise OptionError(key, f'must be {describe(field)}, got {value!r}')
    low, high = meta.get('low'), meta.get('high')
    if low is not None and (value < low or (meta.get('low_open') and value == low)):
        raise OptionError(key, f'must be {describe(field)}, got {value!r}')
    if high is not None and (value > high or (meta.get('high_open') and value == high)):
        raise OptionError(key, f'must be {describe(field)}, got {value!r}')
    return value


def options_from_mapping(cls, mapping=None, *, section='', **overrides):
    """Build an options object of class ``cls`` from a mapping, checking every entry.

    Parameters
    ----------
    cls : dataclass type
        The step's options class.
    mapping : dict, optional
        Values as read from ``--config`` (JSON types).
    section : str, optional
        Name of the config section, used in messages (``'qsm'`` gives ``qsm.lambda_``).
    **overrides
        Values that take precedence over ``mapping`` (command-line flags); ``None`` means
        "not given".

    Returns
    -------
    options : cls

    Raises
    ------
    OptionError
        An unknown key (the known ones are listed), a wrong type, a non-finite number or a
        value outside the documented range; then the object's own ``check()`` if it has one.
    """
    mapping = dict(mapping or {})
    if not isinstance(mapping, dict):
        raise OptionError(section or 'config', f'must be a JSON object, got {mapping!r}')
    mapping.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _resolved_types(cls)
    prefix = f'{section}.' if section else ''
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise OptionError(f'{prefix}{unknown[0]}',
                          f'unknown option; known: {", ".join(sorted(fields))}')
    values = {name: check_value(f'{prefix}{name}', fields[name], hints[name], value)
              for name, value in mapping.items()}
    options = cls(**values)
    check = getattr(options, 'check', None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            if isinstance(exc, OptionError):
                raise
            raise OptionError(section or cls.__name__, str(exc)) from exc
    return options


def options_as_dict(options):
    """The options as a JSON-serialisable dict (for sidecars and provenance)."""
    return {f.name: _jsonable(getattr(options, f.name)) for f in dataclasses.fields(options)}


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return options_as_dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def options_help(cls):
    """One line per option: name, default, allowed values and meaning (for --help)."""
    hints = _resolved_types(cls)
    lines = []
    for field in dataclasses.fields(cls):
        default = field.default if field.default is not dataclasses.MISSING \
            else field.default_factory()
        allowed = describe(field, hints[field.name])
        lines.append(f'{field.name} = {default!r} ({allowed}): {field.metadata.get("doc", "")}')
    return lines
