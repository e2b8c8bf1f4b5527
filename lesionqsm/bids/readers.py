"""Reading a dataset's JSON sidecars and TSV tables, with limits, failing with the file's name.

Sidecars and tables come from the dataset, so they are read defensively: a size limit (a JSON
sidecar of gigabytes is a mistake, and would be read into memory), a nesting-depth limit (a
JSON nested thousands of levels deep exhausts Python's recursion before any error can name the
file), and the requirement that a sidecar holds a JSON object. Every failure is an
:class:`~lesionqsm.bids.problems.InputError` naming the file.
"""

import csv
import io
import json
from pathlib import Path

import pandas as pd

from .problems import KIND_VISIT, InputError

#: Largest JSON sidecar read, in bytes (real sidecars are a few kB).
MAX_SIDECAR_BYTES = 1 << 20
#: Deepest nesting of JSON objects/arrays accepted in a sidecar (real sidecars: 2-4).
MAX_SIDECAR_DEPTH = 32
#: Largest TSV table read, in bytes.
MAX_TABLE_BYTES = 64 << 20


def json_depth(text):
    """Deepest nesting of ``{``/``[`` in JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in '[{':
            depth += 1
            deepest = max(deepest, depth)
        elif char in ']}':
            depth -= 1
    return deepest


def read_sidecar(path, *, kind=KIND_VISIT):
    """A JSON sidecar as a dict, checked for size, depth, syntax and type.

    Parameters
    ----------
    path : str or Path
        The ``.json`` file.
    kind : str, optional
        Problem kind of the error (what a bad sidecar stops).

    Returns
    -------
    dict

    Raises
    ------
    InputError
        Unreadable, larger than :data:`MAX_SIDECAR_BYTES`, nested deeper than
        :data:`MAX_SIDECAR_DEPTH`, not valid JSON, or not a JSON object.
    """
    path = Path(path)
    expected = f'a JSON object of at most {MAX_SIDECAR_BYTES} bytes and depth ' \
               f'{MAX_SIDECAR_DEPTH}'

    def fail(what):
        return InputError(f'{path}: {what}', kind=kind, file=path, expected=expected)

    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            raise fail(f'JSON sidecar of {size} bytes is larger than the {MAX_SIDECAR_BYTES} '
                       'bytes accepted')
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise fail(f'cannot be read ({exc.strerror or exc})') from exc
    except UnicodeDecodeError:
        raise fail('not valid JSON (not UTF-8 text)') from None
    depth = json_depth(text)
    if depth > MAX_SIDECAR_DEPTH:
        raise fail(f'JSON nested {depth} levels deep (at most {MAX_SIDECAR_DEPTH} accepted)')
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise fail(f'not valid JSON ({exc})') from None
    if not isinstance(payload, dict):
        raise fail(f'a JSON sidecar must hold an object ({{...}}), not a '
                   f'{type(payload).__name__}')
    return payload


def read_tsv(path, *, kind=KIND_VISIT):
    """A BIDS TSV table as text cells (``n/a`` kept as text), failing with the file's name.

    Raises
    ------
    InputError
        Unreadable, larger than :data:`MAX_TABLE_BYTES`, empty, or malformed (ragged rows).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f'{path}: cannot be read ({exc.strerror or exc})', kind=kind,
                         file=path) from exc
    if size > MAX_TABLE_BYTES:
        raise InputError(f'{path}: table of {size} bytes is larger than the {MAX_TABLE_BYTES} '
                         'bytes accepted', kind=kind, file=path)
    expected = 'tab-separated columns with a header line, the same number on every line'
    try:
        text = path.read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f'{path}: not a readable TSV table ({exc})', kind=kind, file=path,
                         expected=expected) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f'{path}: not a readable TSV table (empty file)', kind=kind, file=path,
                         expected=expected)
    width = lines[0].count('\t') + 1
    for number, line in enumerate(lines[1:], start=2):
        if line.count('\t') + 1 != width:
            raise InputError(f'{path}: not a readable TSV table (line {number} has '
                             f'{line.count(chr(9)) + 1} cells, the header {width})', kind=kind,
                             file=path, expected=expected)
    try:
        return pd.read_csv(io.StringIO('\n'.join(lines)), sep='\t', dtype=str,
                           keep_default_na=False, quoting=csv.QUOTE_NONE)
    except Exception as exc:  # pandas raises several types for malformed tables
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f'{path}: not a readable TSV table ({detail})', kind=kind, file=path,
                         expected=expected) from None
