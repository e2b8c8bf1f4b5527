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
        Issues of severity 'error': ``code``, ``sub_code`` (the key, for sidecar issues),
        ``location`` (file, '' for dataset-level), ``message``.
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

    def findings(self, issues=None, *, named=3):
        """One line per kind of problem: the key or code, how many files, the first named.

        Parameters
        ----------
        issues : list of dict, optional
            Default: the errors.
        named : int, optional
            Files named per line.

        Returns
        -------
        list of str
            E.g. ``EchoTime missing from 6 sidecars: sub-02_ses-01_echo-2_part-mag_MEGRE.json,
            ...``; kinds in order of first appearance, files sorted by path.
        """
        groups = {}
        for issue in self.errors if issues is None else issues:
            key = (issue['code'], issue.get('sub_code', ''))
            files = groups.setdefault(key, [])
            location = issue['location']
            if location not in files:
                files.append(location)
        descriptions = self.raw.get('issues', {}).get('codeMessages', {})
        return [_finding(code, sub_code, files, descriptions.get(code, ''), named)
                for (code, sub_code), files in groups.items()]

    def summary(self, limit=20):
        """Human-readable list of the errors, one line per kind (at most ``limit`` kinds)."""
        lines = self.findings()
        head = [f'{len(self.errors)} error(s) of {len(lines)} kind(s), '
                f'{len(self.warnings)} warning(s)']
        return '\n'.join(head + ['  ' + line for line in lines[:limit]])


def _sidecar_name(location):
    """The JSON sidecar of a data file (``.../x_MEGRE.nii.gz`` → ``x_MEGRE.json``)."""
    name = location.rsplit('/', 1)[-1]
    for ext in ('.nii.gz', '.nii', '.tsv.gz', '.tsv'):
        if name.endswith(ext):
            return name[:-len(ext)] + '.json'
    return name


def _first_sentence(text, limit=160):
    text = ' '.join(str(text).split())
    end = text.find('. ')
    text = text if end < 0 else text[:end + 1]
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _finding(code, sub_code, locations, description, named):
    """One line of :meth:`ValidationResult.findings`."""
    files = sorted(loc for loc in locations if loc)
    count = len(files)
    if code == 'SIDECAR_KEY_REQUIRED' and sub_code:
        names = [_sidecar_name(f) for f in files]
        plural = 'sidecar' if count == 1 else 'sidecars'
        head = f'{sub_code} missing from {count} {plural}'
    else:
        names = [f.rsplit('/', 1)[-1] for f in files]
        what = f'{code} ({sub_code})' if sub_code else code
        about = _first_sentence(description)
        head = f'{what}{": " + about if about else ""} - {count} file{"s" * (count != 1)}' \
            if count else f'{what}{": " + about if about else ""} (dataset)'
    shown = ', '.join(names[:named]) + (', ...' if count > named else '')
    return f'{head}: {shown}' if names else head


def validator_version():
    """The installed validator's package version, or ``'unknown'``."""
    from importlib import metadata

    try:
        return metadata.version(VALIDATOR_NAME)
    except metadata.PackageNotFoundError:
        return 'unknown'


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
        out.append({'code': issue.get('code', ''), 'sub_code': issue.get('subCode', ''),
                    'location': issue.get('location', ''),
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
