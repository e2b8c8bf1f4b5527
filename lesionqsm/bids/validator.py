"""Run the official BIDS validator (PyPI ``bids-validator-deno``) and parse its JSON report."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

VALIDATOR_NAME = 'bids-validator-deno'


class ValidatorNotFoundError(RuntimeError):
    """The validator executable is not installed."""


@dataclasses.dataclass
class ValidationResult:
    """Outcome of one validator run.

    Attributes
    ----------
    errors : list of dict
        Issues of severity 'error': ``code``, ``location`` (file, '' for dataset-level),
        ``message``.
    warnings : list of dict
        Issues of severity 'warning' (empty when run with ``ignore_warnings``).
    returncode : int
        Exit status of the validator.
    raw : dict
        The parsed JSON report.
    """

    errors: list
    warnings: list
    returncode: int
    raw: dict

    @property
    def ok(self):
        """True when there is no error."""
        return not self.errors

    def summary(self, limit=20):
        """Human-readable list of the errors (at most ``limit``)."""
        lines = [f'{len(self.errors)} error(s), {len(self.warnings)} warning(s)']
        for issue in self.errors[:limit]:
            lines.append(f"  {issue['code']}: {issue['location'] or '(dataset)'}"
                         f"{': ' + issue['message'] if issue['message'] else ''}")
        return '\n'.join(lines)


def find_validator():
    """Path of the validator: next to the running Python first, then on PATH.

    Raises
    ------
    ValidatorNotFoundError
        With the command that installs it.
    """
    beside = Path(sys.executable).parent / VALIDATOR_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(VALIDATOR_NAME)
    if found:
        return found
    raise ValidatorNotFoundError(
        f'{VALIDATOR_NAME} not found next to {sys.executable} nor on PATH; install it with '
        f'`{sys.executable} -m pip install bids-validator-deno` (it runs offline)')


def _issues(report, severity):
    out = []
    for issue in report.get('issues', {}).get('issues', []):
        if issue.get('severity') != severity:
            continue
        out.append({'code': issue.get('code', ''), 'location': issue.get('location', ''),
                    'message': issue.get('issueMessage') or issue.get('subCode') or ''})
    return out


def run_bids_validator(bids_dir, *, ignore_warnings=True, timeout=600):
    """Validate a dataset with the official BIDS validator.

    Parameters
    ----------
    bids_dir : str or Path
        Dataset root (holds ``dataset_description.json``).
    ignore_warnings : bool, optional
        Pass ``--ignoreWarnings`` (warnings then are not reported).
    timeout : float, optional
        Seconds before the validator is killed.

    Returns
    -------
    ValidationResult

    Raises
    ------
    ValidatorNotFoundError
        If the validator is not installed (never skipped silently).
    FileNotFoundError
        If ``bids_dir`` is not a directory.
    RuntimeError
        If the validator does not produce a JSON report (its stderr is in the message).
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise FileNotFoundError(f'{bids_dir}: not a directory, nothing to validate')
    command = [find_validator(), '--format', 'json']
    if ignore_warnings:
        command.append('--ignoreWarnings')
    command.append(str(bids_dir))
    env = dict(os.environ, NO_COLOR='1')
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f'{VALIDATOR_NAME} gave no JSON report for {bids_dir} (exit '
                           f'{proc.returncode}): {proc.stderr.strip()[-2000:]}') from exc
    return ValidationResult(errors=_issues(report, 'error'),
                            warnings=[] if ignore_warnings else _issues(report, 'warning'),
                            returncode=proc.returncode, raw=report)
