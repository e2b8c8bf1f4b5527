"""The BIDS validator's findings on the console: one line per kind of problem, naming the key,
how many files and the first three; that it ran and passed; never a traceback."""

import contextlib
import io
import json

import pytest

from lesionqsm.bids import validator
from lesionqsm.cli import main
from lesionqsm.synth.vendor import write_variant


def _issue(code, sub_code, location):
    return {'code': code, 'subCode': sub_code, 'severity': 'error', 'location': location,
            'issueMessage': 'Field description: ...\n(long text)', 'rule': 'rules.x'}


def _result(issues, code_messages):
    report = {'issues': {'issues': issues, 'codeMessages': code_messages}}
    return validator.ValidationResult(errors=validator._issues(report, 'error'), warnings=[],
                                      returncode=16, raw=report)


def test_findings_group_by_key_and_name_three_files():
    """Six sidecars lack EchoTime, each reported by two schema rules (12 issues): one line,
    6 files, the first 3 named as sidecars; another code gets its description and count."""
    names = [f'/sub-02/ses-01/anat/sub-02_ses-01_echo-{e}_part-{p}_MEGRE.nii.gz'
             for e in (2, 3, 4) for p in ('mag', 'phase')]
    issues = [_issue('SIDECAR_KEY_REQUIRED', 'EchoTime', n) for n in names for _ in range(2)]
    issues.append(_issue('JSON_INVALID', '', '/sub-01/anat/sub-01_T1w.json'))
    result = _result(issues, {'JSON_INVALID': 'Not a valid JSON file. Check the syntax.'})
    assert result.findings() == [
        'EchoTime missing from 6 sidecars: sub-02_ses-01_echo-2_part-mag_MEGRE.json, '
        'sub-02_ses-01_echo-2_part-phase_MEGRE.json, sub-02_ses-01_echo-3_part-mag_MEGRE.json, '
        '...',
        'JSON_INVALID: Not a valid JSON file. - 1 file: sub-01_T1w.json',
    ]
    assert result.summary().splitlines()[0] == '13 error(s) of 2 kind(s), 0 warning(s)'


def _run(argv):
    console = io.StringIO()
    with contextlib.redirect_stderr(console):
        code = main([str(a) for a in argv])
    return code, console.getvalue()


@pytest.mark.validator
def test_invalid_dataset_gets_one_line_per_missing_key(tiny_cohort, tmp_path):
    bids = tmp_path / 'bids'
    label = write_variant(tiny_cohort, 'echoes-2', out_dir=bids)
    anat = bids / f'sub-{label}' / 'ses-01' / 'anat'
    for sidecar in anat.glob('*_echo-2_*_MEGRE.json'):
        meta = json.loads(sidecar.read_text())
        del meta['EchoTime']
        sidecar.write_text(json.dumps(meta))
    phase = anat / f'sub-{label}_ses-01_echo-1_part-phase_MEGRE.json'
    meta = json.loads(phase.read_text())
    del meta['Units']
    phase.write_text(json.dumps(meta))
    code, console = _run([bids, tmp_path / 'out', 'participant', '-w', tmp_path / 'work'])
    assert code == 2
    assert 'Traceback' not in console
    lines = [line for line in console.splitlines() if line.startswith('ERROR: BIDS validator')]
    assert lines[0] == (f'ERROR: BIDS validator: EchoTime missing from 2 sidecars: '
                        f'sub-{label}_ses-01_echo-2_part-mag_MEGRE.json, '
                        f'sub-{label}_ses-01_echo-2_part-phase_MEGRE.json')
    assert lines[1] == (f'ERROR: BIDS validator: Units missing from 1 sidecar: '
                        f'sub-{label}_ses-01_echo-1_part-phase_MEGRE.json')
    assert 'not valid BIDS (the 2 kind(s) of error above)' in lines[2]
    assert len(lines) == 3


@pytest.mark.validator
def test_valid_dataset_says_validation_ran_and_passed(tiny_cohort, tmp_path, caplog):
    from lesionqsm.cli import validate_input

    bids = tmp_path / 'bids'
    write_variant(tiny_cohort, 'echoes-2', out_dir=bids)
    caplog.set_level('INFO', logger='lesionqsm')
    assert validate_input(bids) == 0
    (message,) = [r.getMessage() for r in caplog.records if 'BIDS validator' in r.getMessage()]
    assert message.startswith('BIDS validator (bids-validator-deno ')
    assert message.endswith(f'ran on {bids}: passed')


def test_missing_validator_is_a_message_not_a_traceback(tiny_cohort, tmp_path, monkeypatch):
    def missing():
        raise validator.ValidatorNotFoundError('bids-validator-deno not found; install it with '
                                               '`python -m pip install bids-validator-deno`')

    monkeypatch.setattr(validator, 'find_validator', missing)
    bids = tmp_path / 'bids'
    write_variant(tiny_cohort, 'echoes-2', out_dir=bids)
    code, console = _run([bids, tmp_path / 'out', 'participant', '-w', tmp_path / 'work'])
    assert code == 2 and 'Traceback' not in console
    assert 'ERROR: BIDS validator: bids-validator-deno not found' in console
    assert 'use --skip-bids-validation' in console
