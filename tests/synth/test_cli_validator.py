"""The ``lesionqsm synth`` entry point and the BIDS validator runner."""

import sys

import pytest

from lesionqsm.bids import validator
from lesionqsm.synth.cli import build_parser, main


def test_cli_refuses_unknown_preset(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / 'out'), '--preset', 'huge'])
    assert info.value.code == 2
    assert 'huge' in capsys.readouterr().err


def test_cli_refuses_output_that_is_a_file(capsys, tmp_path):
    target = tmp_path / 'afile'
    target.write_text('x')
    with pytest.raises(SystemExit) as info:
        main([str(target)])
    assert info.value.code == 2
    assert 'afile' in capsys.readouterr().err


def test_cli_refuses_non_positive_snr(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path), '--snr', '0'])
    assert 'positive' in capsys.readouterr().err


def test_cli_parses_options(tmp_path):
    args = build_parser().parse_args([str(tmp_path), '--preset', 'tiny', '--seed', '7',
                                      '--phase-units', 'arbitrary', '--snr', '40'])
    assert (args.preset, args.seed, args.phase_units, args.snr) == ('tiny', 7, 'arbitrary', 40.0)


def test_missing_validator_is_an_error_not_a_skip(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, 'executable', str(tmp_path / 'python'))
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(validator.ValidatorNotFoundError, match='pip install'):
        validator.run_bids_validator(tmp_path)


def test_validator_refuses_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope'):
        validator.run_bids_validator(tmp_path / 'nope')


@pytest.mark.validator
def test_validator_reports_errors_of_a_broken_dataset(tmp_path):
    (tmp_path / 'sub-01' / 'anat').mkdir(parents=True)
    (tmp_path / 'sub-01' / 'anat' / 'sub-01_T1w.nii.gz').write_bytes(b'not a nifti')
    result = validator.run_bids_validator(tmp_path)
    assert not result.ok
    assert any(issue['code'] for issue in result.errors)
