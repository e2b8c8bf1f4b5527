"""Turn nipype crash files into one plain sentence per failed subject."""

import re
from pathlib import Path

_SUBJECT = re.compile(r'sub_([A-Za-z0-9]+)_wf')
_SESSION = re.compile(r'ses_([A-Za-z0-9]+)_')


def _last_error_line(traceback_lines):
    text = ''.join(traceback_lines).strip().splitlines()
    for line in reversed(text):
        line = line.strip()
        if line and not line.startswith(('File ', '^', '~')):
            return line
    return 'unknown error'


def _read_crash(crash_file, loadcrash):
    """Node name and traceback of a crash file, in nipype's pklz or txt format."""
    if crash_file.suffix == '.txt':
        text = crash_file.read_text(errors='replace')
        node = re.search(r'^Node: (.+)$', text, flags=re.MULTILINE)
        return {'node': node.group(1).strip() if node else crash_file.name,
                'traceback': [text.split('Traceback', 1)[-1]]}
    try:
        return loadcrash(str(crash_file))
    except Exception:  # an unreadable crash file still tells us the node's name
        return {'node': crash_file.name, 'traceback': ['unreadable crash file']}


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
        subject label -> 'ses-XX node: error message' for the first crash of that subject.
    """
    from nipype.utils.filemanip import loadcrash

    crash_dir = Path(crash_dir)
    causes = {}
    if not crash_dir.is_dir():
        return causes
    for crash_file in sorted(crash_dir.glob('crash-*'), key=lambda p: p.stat().st_mtime):
        if crash_file.stat().st_mtime < since:
            continue
        crash = _read_crash(crash_file, loadcrash)
        node_name = str(crash.get('node', crash_file.name))
        subject = _SUBJECT.search(node_name) or _SUBJECT.search(crash_file.name)
        label = subject.group(1) if subject else 'unknown'
        session = _SESSION.search(node_name)
        where = f'ses-{session.group(1)} ' if session else ''
        step = node_name.split('.')[-1]
        message = _last_error_line(crash.get('traceback', []))
        causes.setdefault(label, f'{where}{step}: {message} (details: {crash_file})')
    return causes
