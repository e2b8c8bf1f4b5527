"""Nothing from a dataset runs as code: hostile labels are refused at discovery, and the
per-subject SLURM job script quotes every value it holds."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from lesionqsm.bids.layout import collect_participants, collect_subject
from lesionqsm.bids.problems import KIND_SUBJECT, InputError
from lesionqsm.cli.coarse import _write_job_script, subject_command

#: A subject label holding shell syntax: creates FILE when a shell expands it.
HOSTILE = 'x$(touch${IFS}FILE)'


def test_job_script_quotes_every_value(tmp_path):
    """The script runs the command with the hostile label as one literal argument; the
    command substitution in the label, the log folder and the working folder never runs."""
    folder = tmp_path / f'out {HOSTILE}' / 'logs'
    folder.mkdir(parents=True)
    cwd = tmp_path / f'cwd-{HOSTILE}'
    cwd.mkdir()
    exit_file = folder / f'sub-{HOSTILE}.exitcode'
    seen = folder / 'argv.txt'
    command = ['bash', '-c', 'printf "%s\\n" "$@" > "$0"', str(seen), '--participant-label',
               HOSTILE, "it's `touch FILE` \"quoted\""]
    script = folder / f'sub-{HOSTILE}.sh'
    _write_job_script(script, command, exit_file=exit_file, cwd=cwd)
    proc = subprocess.run(['bash', str(script)], capture_output=True, text=True,
                          env={'PATH': '/usr/bin:/bin', 'SLURM_JOB_ID': '42'}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert seen.read_text().splitlines() == ['--participant-label', HOSTILE,
                                             "it's `touch FILE` \"quoted\""]
    assert exit_file.read_text().strip() == '0'
    assert not list(tmp_path.rglob('FILE')), 'a label was executed by the shell'


def test_subject_command_passes_the_label_as_one_token(tmp_path):
    cmd = subject_command(['bids', 'out', 'participant'], HOSTILE, work_dir=tmp_path, nprocs=1,
                          mem_gb=1)
    assert cmd[cmd.index('--participant-label') + 1] == HOSTILE


@pytest.fixture
def hostile_dataset(standard_bids):
    """The standard subject sub-01 plus a copy of it in a folder named with shell syntax."""
    import shutil

    shutil.copytree(standard_bids.root / 'sub-01', standard_bids.root / f'sub-{HOSTILE}')
    return standard_bids.root


def test_hostile_subject_folder_is_refused_at_discovery(hostile_dataset):
    assert collect_participants(hostile_dataset) == ['01', HOSTILE]  # listed, to be reported
    with pytest.raises(InputError, match=r'is not a BIDS label \(letters and digits only\)') \
            as err:
        collect_subject(hostile_dataset, HOSTILE)
    problem = err.value.problem
    assert problem.kind == KIND_SUBJECT and problem.key == 'sub'
    assert problem.file == str(hostile_dataset / f'sub-{HOSTILE}')
    with pytest.raises(InputError, match='--participant-label: .* is not a BIDS label'):
        collect_participants(hostile_dataset, [HOSTILE])
    assert not list(hostile_dataset.parent.rglob('FILE'))


def test_hostile_subject_fails_alone(hostile_dataset, caplog):
    """Discovery for the participant level: the hostile folder is a failed subject with its
    reason, sub-01 goes on."""
    from lesionqsm.cli.run import discover

    opts = SimpleNamespace(bids_dir=hostile_dataset, participant_label=None, lesions_dir=None,
                           session_label=None, field_strength=None, stop_on_first_crash=False)
    subjects, runnable, failures = discover(opts)
    assert subjects == ['01', HOSTILE]
    assert [d.subject for d in runnable] == ['01']
    assert list(failures) == [HOSTILE]
    assert f'sub-{HOSTILE}' in failures[HOSTILE] and 'not a BIDS label' in failures[HOSTILE]


def test_hostile_session_folder_is_a_visit_error(standard_bids):
    import shutil

    shutil.copytree(standard_bids.root / 'sub-01' / 'ses-01',
                    standard_bids.root / 'sub-01' / f'ses-{HOSTILE}')
    data = collect_subject(standard_bids.root, '01', strict=False)
    bad = data.session(HOSTILE)
    assert bad.megre is None and 'session label' in str(bad.errors[0])
    assert bad.errors[0].file == str(standard_bids.root / 'sub-01' / f'ses-{HOSTILE}')
    assert data.session('01').has_qsm_input and data.session('02').has_qsm_input


def test_hostile_entity_in_a_gre_name_is_refused(tiny_bids):
    files = tiny_bids.megre('01', '01', n_echoes=2)
    for path in files['mag'] + files['phase']:
        for old in (path, path.with_name(path.name.replace('.nii.gz', '.json'))):
            old.rename(old.with_name(old.name.replace('sub-01_ses-01_', 'sub-01_ses-01_acq-a$b_')))
    with pytest.raises(InputError, match=r"entity acq-'a\$b' is not a BIDS label"):
        collect_subject(tiny_bids.root, '01')


def test_cli_refuses_hostile_participant_label(hostile_dataset, tmp_path, capsys):
    from lesionqsm.cli import main

    code = main([str(hostile_dataset), str(tmp_path / 'out'), 'participant',
                 '--skip-bids-validation', '--participant-label', HOSTILE])
    assert code == 2
    assert not list(Path(tmp_path).rglob('FILE'))
