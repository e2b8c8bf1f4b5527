"""Turn nipype crash files into one plain sentence per failed subject.

:func:`read_crash` is the one reader of a crash file (nipype's ``.txt`` or ``.pklz``): it gives
the node's full name and the exception's own message, without the traceback. Whatever an
interface raises, the user then reads which visit and step failed, why, and where the details
are (the crash file).
"""

import re
from pathlib import Path

_SUBJECT = re.compile(r'sub_([A-Za-z0-9]+)_wf')
_SESSION = re.compile(r'ses_([A-Za-z0-9]+)_')
#: ``SomeError: message`` at the start of an exception line.
_EXCEPTION_NAME = re.compile(r'^(?:[A-Za-z_][\w.]*\.)?([A-Z]\w*(?:Error|Exception|Warning|Exit))'
                             r'(?::\s*|$)')


def _last_error_line(traceback_lines):
    """The exception line of a traceback (its last line that is not code or a marker)."""
    text = ''.join(traceback_lines).strip().splitlines()
    for line in reversed(text):
        line = line.strip()
        if line and not line.startswith(('File ', '^', '~')):
            return line
    return 'unknown error'


def plain_reason(error_line):
    """``'ImageError: x.nii: not readable'`` -> ``'x.nii: not readable'``.

    The exception's class name is kept only when the exception has no message of its own
    (``MemoryError``), since it then is the only reason given.
    """
    match = _EXCEPTION_NAME.match(error_line)
    if not match:
        return error_line
    rest = error_line[match.end():].strip()
    return rest or match.group(1)


def read_crash(crash_file):
    """Node name and reason of one nipype crash file.

    Parameters
    ----------
    crash_file : str or Path
        ``crash-*.txt`` or ``crash-*.pklz``.

    Returns
    -------
    node : str
        The node's full name (``lesionqsm_wf.sub_01_wf.ses_01_qsm_wf.prepare_echoes``), or the
        file name when the crash file cannot be read.
    reason : str
        The exception's message, without traceback or exception class.
    """
    crash_file = Path(crash_file)
    if crash_file.suffix == '.txt':
        text = crash_file.read_text(errors='replace')
        node = re.search(r'^Node: (.+)$', text, flags=re.MULTILINE)
        crash = {'node': node.group(1).strip() if node else crash_file.name,
                 'traceback': [text.split('Traceback', 1)[-1]]}
    else:
        from nipype.utils.filemanip import loadcrash

        try:
            crash = loadcrash(str(crash_file))
        except Exception:  # an unreadable crash file still tells us the node's name
            crash = {'node': crash_file.name, 'traceback': ['unreadable crash file']}
    return str(crash.get('node', crash_file.name)), \
        plain_reason(_last_error_line(crash.get('traceback', [])))


def summarise_crashes(crash_dir, *, since=0.0):
    """Read nipype crash files written after ``since`` and say why each subject failed.

    Parameters
    ----------
    crash_dir : str or Path
        nipype's ``crashdump_dir``.
    since : float
        Ignore crash files older than this POSIX time (earlier runs).

    Returns
    -------
    dict
        subject label -> ``'ses-XX <step> failed: <reason> (details: <crash file>)'`` for the
        first crash of that subject.
    """
    crash_dir = Path(crash_dir)
    causes = {}
    if not crash_dir.is_dir():
        return causes
    for crash_file in sorted(crash_dir.glob('crash-*'), key=lambda p: p.stat().st_mtime):
        if crash_file.stat().st_mtime < since:
            continue
        node_name, reason = read_crash(crash_file)
        subject = _SUBJECT.search(node_name) or _SUBJECT.search(crash_file.name)
        label = subject.group(1) if subject else 'unknown'
        session = _SESSION.search(node_name)
        where = f'ses-{session.group(1)} ' if session else ''
        step = node_name.split('.')[-1]
        causes.setdefault(label, f'{where}{step} failed: {reason} (details: {crash_file})')
    return causes
