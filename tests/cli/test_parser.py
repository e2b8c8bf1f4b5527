"""The command line: arguments, validators that name the bad path, exit codes."""

import json

import pytest

from lesionqsm.cli import main
from lesionqsm.cli.parser import ConfigError, build_parser, load_config


def test_positionals_and_defaults(tmp_path):
    opts = build_parser().parse_args([str(tmp_path), str(tmp_path / 'out'), 'participant',
                                      '--participant-label', 'sub-01', '02'])
    assert opts.participant_label == ['01', '02']
    assert opts.plugin == 'MultiProc' and opts.registration == 'auto'
    assert opts.poly_degree == 8


def test_missing_bids_dir_names_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path / 'nope'), str(tmp_path / 'out'), 'participant'])
    assert excinfo.value.code == 2
    assert 'nope: no such directory' in capsys.readouterr().err


def test_bad_plugin_args_json(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path), str(tmp_path / 'out'), 'participant', '--plugin-args', '{bad'])
    assert excinfo.value.code == 2
    assert 'not valid JSON' in capsys.readouterr().err


def test_unwritable_output_dir_exit_code(tmp_path, capsys):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    (tmp_path / 'bids').mkdir()
    code = main([str(tmp_path / 'bids'), str(blocker / 'out'), 'participant',
                 '--skip-bids-validation'])
    assert code == 2
    assert 'cannot write to' in capsys.readouterr().err


def test_config_unknown_parameter_is_named(tmp_path):
    config = tmp_path / 'params.json'
    config.write_text(json.dumps({'qsm': {'lambda_': 500, 'lamda_csf': 3}}))
    with pytest.raises(ConfigError, match='lamda_csf'):
        load_config(config)
    config.write_text(json.dumps({'qsm': {'lambda_': 500}}))
    assert load_config(config)['qsm'] == {'lambda_': 500}
    config.write_text('{not json')
    with pytest.raises(ConfigError, match='not a readable JSON'):
        load_config(config)
