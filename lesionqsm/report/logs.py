"""Read a run's log and nipype crash files: warnings, errors and why a visit failed.

The log is ``OUTPUT_DIR/logs/lesionqsm_<level>_<YYYYmmdd-HHMMSS>.log`` (one per run, the latest
is the run being reported); each record starts with ``<date> <time>,<ms> <LEVEL> <logger>:``
and may continue on the following lines.  Crash files are nipype's text crash files in
``OUTPUT_DIR/logs/crash/``.
"""

import re
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ['LogRecord', 'CrashReport', 'latest_log', 'read_log', 'read_run_log',
           'crash_reports', 'record_session']

_RECORD = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)?) ([A-Z]+) ([\w.]+): ?(.*)$')
_LOG_NAME = re.compile(r'^lesionqsm_(\w+?)_(\d{8}-\d{6})\.log$')
_SESSION = re.compile(r'(?<![A-Za-z0-9])ses-([A-Za-z0-9]+)|(?:^|[./_])ses_([A-Za-z0-9]+)_')
_NODE = re.compile(r'^Node: (.+)$', re.MULTILINE)


@dataclass
class LogRecord:
    """One log record: time stamp, level, logger name, full message, visit it names."""

    time: str
    level: str
    name: str
    message: str
    session: str | None = None


@dataclass
class CrashReport:
    """A nipype crash file reduced to where and why a node failed."""

    path: Path
    node: str
    session: str | None
    step: str
    message: str


def record_session(text):
    """The visit a message is about (``ses-02`` or a node path ``ses_02_...``), or None."""
    match = _SESSION.search(text)
    if not match:
        return None
    return match.group(1) or match.group(2)


def _mentions(subject):
    label = re.escape(subject)
    return re.compile(rf'(?<![A-Za-z0-9])sub-{label}(?![A-Za-z0-9])|sub_{label}_wf')


def latest_log(output_dir, level):
    """The newest ``lesionqsm_<level>_*.log`` of ``output_dir/logs``, or None."""
    logs = []
    for path in (Path(output_dir) / 'logs').glob(f'lesionqsm_{level}_*.log'):
        match = _LOG_NAME.match(path.name)
        if match and match.group(1) == level:
            logs.append((match.group(2), path))
    return max(logs)[1] if logs else None


def log_start_time(path):
    """POSIX time at which the run of a log file started (from its name), or 0."""
    match = _LOG_NAME.match(Path(path).name) if path else None
    if not match:
        return 0.0
    return time.mktime(time.strptime(match.group(2), '%Y%m%d-%H%M%S'))


def read_log(path):
    """Every record of a log file, continuation lines joined to their record."""
    records = []
    try:
        lines = Path(path).read_text(errors='replace').splitlines()
    except OSError:
        return records
    for line in lines:
        match = _RECORD.match(line)
        if match:
            stamp, level, name, message = match.groups()
            records.append(LogRecord(stamp, level, name, message))
        elif records:
            records[-1].message += '\n' + line
    for record in records:
        record.session = record_session(record.message)
    return records


def read_run_log(output_dir, level, subject=None):
    """Warnings and errors of the latest run of ``level`` (for one subject, if given).

    Returns
    -------
    log_file : Path or None
    records : list of LogRecord
        WARNING and above that name the subject (``sub-<label>`` or its workflow
        ``sub_<label>_wf``); every such record when ``subject`` is None.  The closing summary
        of failed subjects is left out (see ``failures``).
    failures : list of str
        The subject's causes from the summary at the end of the run ("N of M subject(s)
        failed"), in plain words.
    """
    path = latest_log(output_dir, level)
    if path is None:
        return None, [], []
    records, failures = [], []
    mentions = _mentions(subject) if subject else None
    for record in read_log(path):
        if record.level not in ('WARNING', 'ERROR', 'CRITICAL'):
            continue
        if re.match(r'\d+ of \d+ subject\(s\) failed:', record.message):
            for line in record.message.splitlines()[1:]:
                line = line.strip()
                if subject is None or line.startswith(f'sub-{subject}:'):
                    failures.append(line if subject is None
                                    else line.split(':', 1)[1].strip())
            continue
        if mentions is None or mentions.search(record.message):
            records.append(record)
    return path, records, failures


_QUALIFIED = re.compile(r'^(?:[A-Za-z_]\w*\.)+(\w+(?:Error|Exception|Exit)): ')


def _last_error_line(text):
    """The exception line of a traceback, without the exception's module path."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(('File ', '^', '~')):
            return _QUALIFIED.sub(r'\1: ', line)
    return 'unknown error'


def crash_reports(output_dir, subject, *, since=None):
    """The subject's nipype crash files in ``output_dir/logs/crash`` (text format).

    Parameters
    ----------
    output_dir : str or Path
    subject : str
        Label without ``sub-``.
    since : Path or float, optional
        The run's log file (crash files older than its start are from earlier runs) or a
        POSIX time.
    """
    crash_dir = Path(output_dir) / 'logs' / 'crash'
    if not crash_dir.is_dir():
        return []
    start = log_start_time(since) if isinstance(since, str | Path) else float(since or 0.0)
    mentions = _mentions(subject)
    reports = []
    for path in sorted(crash_dir.glob('crash-*.txt'), key=lambda p: p.stat().st_mtime):
        if path.stat().st_mtime < start:
            continue
        text = path.read_text(errors='replace')
        match = _NODE.search(text)
        node = match.group(1).strip() if match else path.name
        if not (mentions.search(node) or mentions.search(path.name)):
            continue
        reports.append(CrashReport(path=path, node=node, session=record_session(node),
                                   step=node.split('.')[-1],
                                   message=_last_error_line(text.split('Traceback', 1)[-1])))
    return reports
