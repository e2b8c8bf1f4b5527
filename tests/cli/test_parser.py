"""The command line: arguments, validators that name the bad path, exit codes."""

import json
import re

import pytest

from lesionqsm.cli import main
from lesionqsm.cli.parser import ConfigError, build_parser, load_config


def test_positionals_and_defaults(tmp_path):
    opts = build_parser().parse_args([str(tmp_path), str(tmp_path / 'out'), 'participant',
                                      '--participant-label', 'sub-01', '02'])
    assert opts.participant_label == ['01', '02']
    assert opts.plugin == 'MultiProc' and opts.registration == 'auto'
    assert opts.poly_degree is None  # not given: --config, else GroupModelOptions decides


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
    with pytest.raises(ConfigError, match='qsm.lamda_csf: unknown option; known: .*lambda_csf'):
        load_config(config)
    config.write_text(json.dumps({'qsm': {'lambda_': 500}}))
    options = load_config(config)['qsm']
    assert options.inversion.lambda_ == 500.0
    assert options.inversion.lambda_csf == 100.0  # the default, defined once
    config.write_text('{not json')
    with pytest.raises(ConfigError, match='not a readable JSON'):
        load_config(config)


@pytest.mark.parametrize(('config', 'message'), [
    ({'qsm': {'background': 'sharp'}},
     "qsm.background: must be one of 'pdf_edge_smv', 'medi_toolbox', 'pdf', 'lbv', 'vsharp', "
     "got 'sharp'"),
    ({'qsm': {'smv_radius_mm': 5}},
     "qsm.smv_radius_mm: background 'pdf_edge_smv' already ends in an SMV inside MEDI"),
    ({'qsm': {'background': 'pdf', 'outside_source_scale': 3}},
     'qsm.outside_source_scale: the sources outside the mask are fitted after the '
     "pdf_edge_smv background step only, not 'pdf'"),
    ({'qsm': {'outside_source_scale': -1}}, 'qsm.outside_source_scale: must be float >= 0'),
    ({'qsm': {'lambda_': 'big'}}, "qsm.lambda_: must be a number"),
    ({'qsm': {'lambda_': -1}}, 'qsm.lambda_: must be float > 0, got -1.0'),
    ({'qsm': {'max_gn_iter': 2.5}}, 'qsm.max_gn_iter: must be an integer'),
    ({'qsm': {'merit': 'yes'}}, 'qsm.merit: must be true or false'),
    ({'lesions': {'nawm_inner_mm': 6.0}}, 'nawm_inner_mm .6.0. must be below nawm_outer_mm'),
    ({'lesions': {'estimator': 'mean'}}, "lesions.estimator: must be one of"),
    ({'stats': {}}, "unknown section 'stats'"),
    ({'group': {'degre': 3}}, 'group.degre: unknown option'),
])
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, config, message):
    """Every bad option is refused at start-up (exit 2), the key and the allowed values named,
    before anything is read from the dataset or written."""
    path = tmp_path / 'params.json'
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path), str(tmp_path / 'out'), 'participant', '--config', str(path)])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert 'Traceback' not in err
    assert not (tmp_path / 'out').exists()


def test_nan_option_is_refused(tmp_path):
    """JSON's NaN literal (Python's json reads it) must not reach the solvers."""
    path = tmp_path / 'params.json'
    path.write_text('{"qsm": {"lambda_csf": NaN}}')
    with pytest.raises(ConfigError, match='qsm.lambda_csf: must be a finite number'):
        load_config(path)


def test_flag_overrides_config(tmp_path):
    """Precedence: command-line flag > --config > default."""
    path = tmp_path / 'params.json'
    path.write_text(json.dumps({'qsm': {'phase_sign': 1}}))
    assert load_config(path, phase_sign=-1)['qsm'].echoes.phase_sign == -1
    assert load_config(path)['qsm'].echoes.phase_sign == 1
    assert load_config(None)['qsm'].echoes.phase_sign == 1


def test_help_options_lists_every_option(capsys):
    assert main(['--help-options']) == 0
    out = capsys.readouterr().out
    for name in ('lambda_ = 1000.0', 'background = ', 'csf_r2star_threshold', 'nawm_outer_mm'):
        assert name in out


def test_unwritable_work_dir_exit_code(tmp_path, capsys):
    """A work directory that cannot be created is named (with the -w hint) before any work."""
    bids = tmp_path / 'bids'
    bids.mkdir()
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    code = main([str(bids), str(tmp_path / 'out'), 'participant', '-w',
                 str(blocker / 'work'), '--skip-bids-validation'])
    assert code == 2
    err = capsys.readouterr().err
    assert f'cannot write to {blocker / "work"} (the work directory' in err


def test_atomic_writes_follow_the_umask(tmp_path):
    """Outputs get the mode a plain open() gives (0644 under umask 022), not mkstemp's 0600,
    so colleagues and containers running under another uid can read them."""
    import os

    from lesionqsm.bids.images import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / 'x.json', '{}')
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777) == 0o644


def test_log_opens_with_command_and_versions(tmp_path, capsys):
    """The log file starts with the command line and the versions; the console stays quiet."""
    import logging

    from lesionqsm.cli.run import log_provenance, setup_logging

    root = logging.getLogger()
    before = list(root.handlers)
    try:
        log_file = setup_logging(tmp_path, 'participant')
        log_provenance(['bids', 'out dir', 'participant'])
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
    lines = log_file.read_text().splitlines()
    assert lines[0].endswith("command: lesionqsm bids 'out dir' participant")
    assert 'versions: python ' in lines[1] and 'nipype ' in lines[1] and 'lesionqsm ' in lines[1]
    assert 'command:' not in capsys.readouterr().err
