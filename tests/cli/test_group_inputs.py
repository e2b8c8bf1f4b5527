"""The group level's inputs (lesion tables, participants.tsv, the ``group`` options), checked.

The cohort: lesion tables of 6 patients in the participant level's derivative layout, drawn by
:func:`lesionqsm.synth.lesion_table.simulate_lesion_table`, and their participants.tsv.  Each
fault class has a case with the message it must give; then a seeded fuzz corrupts one file in
110 ways and reads the inputs as the group level does (no model fit: milliseconds a case), and
a sample of cases, and a fuzz of the ``group`` options, run the whole command line.

Required of every fuzz case: no exception other than the structured ones; a subject whose file
is bad is left out with messages naming the file (or participants.tsv is refused as a whole,
naming it); the other subjects' rows are exactly those of the clean cohort; what is accepted
satisfies the contract the models rely on (checked here independently of the reader).
"""

import json
import logging
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from lesionqsm.bids.problems import InputError
from lesionqsm.cli import main
from lesionqsm.cli.group import group_options, read_inputs
from lesionqsm.options import OptionError
from lesionqsm.stats.options import GroupModelOptions
from lesionqsm.synth.lesion_table import simulate_lesion_table, write_group_inputs

#: The model of every case: two patient covariates read from participants.tsv, degree 1.
OPTIONS = GroupModelOptions(degree=1, covariates=('edss', 'age'), figures=False)
CONFIG = {'group': {'degree': 1, 'covariates': ['edss', 'age'], 'figures': False}}
SUBJECTS = [f'{k:03d}' for k in range(1, 7)]
N_TABLE_CASES = 60
N_PARTICIPANT_CASES = 50
N_OPTION_CASES = 30
CLI_EVERY = 20  # every 20th fuzz case also runs the command line (6 runs, ~3 s each)


def _table(root, subject='001'):
    return root / 'out' / f'sub-{subject}' / f'sub-{subject}_lesions.tsv'


@pytest.fixture(scope='module')
def cohort(tmp_path_factory):
    """``root/out/sub-*/sub-*_lesions.tsv`` and ``root/bids/participants.tsv``; ``pristine``
    is a copy for restoring; ``clean`` the inputs as read from the untouched files."""
    root = tmp_path_factory.mktemp('group_inputs')
    lesions, participants, _ = simulate_lesion_table(
        n_patients=6, n_lesions=14, visits_per_lesion=4, rng=np.random.default_rng(3))
    write_group_inputs(root, lesions, participants)
    shutil.copytree(root, root.parent / f'{root.name}_pristine')
    clean = read_inputs(root / 'out', root / 'bids', OPTIONS)
    assert clean.problems == [] and len(clean.tables) == 6
    return root, root.parent / f'{root.name}_pristine', clean


@pytest.fixture
def restore(cohort):
    """Every file of the cohort as it was, after the test."""
    root, pristine, _ = cohort
    yield root
    for path in pristine.rglob('*.tsv'):
        shutil.copy2(path, root / path.relative_to(pristine))


def _edit(path, line, column, value):
    """Put ``value`` in one cell (line 1 = header) of a TSV file."""
    lines = path.read_text().splitlines()
    header = lines[0].split('\t')
    cells = lines[line - 1].split('\t')
    cells[header.index(column)] = value
    lines[line - 1] = '\t'.join(cells)
    path.write_text('\n'.join(lines) + '\n')


def _rewrite(path, change):
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(change(lines)) + '\n')


def _drop_column(lines, name):
    j = lines[0].split('\t').index(name)
    return ['\t'.join(c for i, c in enumerate(line.split('\t')) if i != j) for line in lines]


# ---------------------------------------------------------------------------------------------
# one case per fault class: (file, edit, the message fragment a user sees)
# ---------------------------------------------------------------------------------------------
LESION_FAULTS = {
    'empty file': (lambda p: p.write_text(''), 'not a readable TSV table (empty file)'),
    'not UTF-8': (lambda p: p.write_bytes(b'\xff\xfe' + p.read_bytes()),
                  'not a readable TSV table'),
    'ragged line': (lambda p: _rewrite(p, lambda ls: ls[:2] + [ls[2] + '\tx'] + ls[3:]),
                    'line 3 has 17 cells, the header 16'),
    'column twice': (lambda p: _rewrite(p, lambda ls: [ls[0].replace('n_voxels', 'rim')]
                                        + ls[1:]), 'column(s) rim appear more than once'),
    'missing column': (lambda p: _rewrite(p, lambda ls: _drop_column(ls, 'chi_rel_ppb')),
                       'missing column(s) chi_rel_ppb'),
    'header only': (lambda p: _rewrite(p, lambda ls: ls[:1]), 'holds no rows'),
    'other subject': (lambda p: _edit(p, 2, 'participant_id', 'sub-003'),
                      'participant_id on line 2 is not the subject of the file'),
    'bad label': (lambda p: _edit(p, 3, 'lesion_id', '1;rm'),
                  "lesion_id on line 3 is not a BIDS label ('1;rm')"),
    'bad session': (lambda p: _edit(p, 3, 'session_id', 'ses-0 2'),
                    'session_id on line 3 is not a BIDS label'),
    'rim vocabulary': (lambda p: _edit(p, 2, 'rim', 'POSITIVE'),
                       "rim on line 2 is not a known value ('POSITIVE')"),
    'enhancement vocabulary': (lambda p: _edit(p, 2, 'enhancement', 'ring'),
                               'enhancement on line 2 is not a known value'),
    'empty status': (lambda p: _edit(p, 2, 'status', ''), 'status on line 2 is empty'),
    'not a number': (lambda p: _edit(p, 3, 'chi_rel_ppb', 'garbage'),
                     "chi_rel_ppb on line 3 is not a number ('garbage')"),
    'empty number': (lambda p: _edit(p, 3, 'volume_mm3', ''),
                     'volume_mm3 on line 3 is not a number'),
    'infinite': (lambda p: _edit(p, 3, 'chi_rel_ppb', '1e400'),
                 "chi_rel_ppb on line 3 is not finite ('1e400')"),
    'out of range': (lambda p: _edit(p, 3, 'baseline_volume_mm3', '-1'),
                     'baseline_volume_mm3 on line 3 lies outside 0 to 2e+06'),
    'not an integer': (lambda p: _edit(p, 3, 'n_voxels', '2.5'),
                       'n_voxels on line 3 is not an integer'),
    'age n/a': (lambda p: _edit(p, 3, 'lesion_age_years', 'n/a'),
                'lesion_age_years on line 3 is n/a'),
    'duplicate row': (lambda p: _rewrite(p, lambda ls: ls + [ls[3]]),
                      'session_id on lines 4, 22 repeats a lesion_id and session_id pair'),
    'volume change': (lambda p: _edit(p, 3, 'volume_change_mm3', '12345'),
                      'volume_change_mm3 on line 3 is not volume_mm3 - baseline_volume_mm3'),
    'rim varies': (lambda p: _edit(p, 3, 'rim', 'positive'),
                   'rim on lines 2, 3, 4, 5 differs between the rows of one lesion'),
    'no detection row': (lambda p: _edit(p, 2, 'session_id', 'ses-99'),
                         'detected_session on lines 2, 3, 4, 5 names a visit that has no row'),
    'date': (lambda p: _edit(p, 3, 'acq_time', '2020-02-30T25:61:00'),
             "acq_time on line 3 is not an ISO 8601 date-time"),
    'age vs dates': (lambda p: _edit(p, 3, 'lesion_age_years', '0.7'),
                     "lesion_age_years on line 3 disagrees with acq_time"),
}


@pytest.mark.parametrize('fault', sorted(LESION_FAULTS))
def test_each_lesion_table_fault_leaves_its_subject_out(cohort, restore, fault):
    """sub-002's table (lines 2-5: lesion 1, rim-, 4 visits; 21 lines) with one fault."""
    root, _, clean = cohort
    edit, message = LESION_FAULTS[fault]
    path = _table(root, '002')
    lines = path.read_text().splitlines()
    assert lines[1].split('\t')[6] == 'negative' and lines[5].split('\t')[1] == '2'
    edit(path)
    inputs = read_inputs(root / 'out', root / 'bids', OPTIONS)
    assert list(inputs.left_out) == ['002']
    text = ' | '.join(inputs.left_out['002'])
    assert str(path) in text and message in text, text
    _assert_others_unchanged(inputs, clean, {'002'})


@pytest.mark.parametrize('folder, name', [('sub-002', 'sub-007_lesions.tsv'),
                                           ('sub-0 7', 'sub-0 7_lesions.tsv')])
def test_a_misplaced_table_leaves_its_folder_subject_out(cohort, restore, folder, name):
    root, _, clean = cohort
    path = root / 'out' / folder / name
    path.parent.mkdir(exist_ok=True)
    shutil.copy2(_table(root, '002'), path)
    try:
        inputs = read_inputs(root / 'out', root / 'bids', OPTIONS)
    finally:
        path.unlink()
    label = folder.removeprefix('sub-')
    assert list(inputs.left_out) == [label]
    assert inputs.left_out[label] == [f'{path}: a lesion table must be sub-<label>/sub-<label>'
                                      '_lesions.tsv, the same <label> of letters and digits '
                                      f'twice (found in {folder}/)']
    _assert_others_unchanged(inputs, clean, {label})


PARTICIPANT_FAULTS = {  # (edit, left out, message); left out None: refused (InputError)
    'not a number': (lambda p: _edit(p, 3, 'edss', 'abc'), ['002'],
                     "edss on line 3 is not a number ('abc')"),
    'infinite': (lambda p: _edit(p, 4, 'age', 'inf'), ['003'], "age on line 4 is not finite"),
    'out of range': (lambda p: _edit(p, 4, 'edss', '11'), ['003'],
                     'edss on line 4 lies outside 0 to 10 EDSS points'),
    'listed twice': (lambda p: _rewrite(p, lambda ls: ls + [ls[5]]), ['005'],
                     'participant_id on lines 6, 8 lists a participant more than once'),
    'no row': (lambda p: _rewrite(p, lambda ls: ls[:6]), ['006'],
               'no row for sub-006, whose covariates (edss, age) the model needs'),
    'bad id': (lambda p: _edit(p, 7, 'participant_id', 'sub-0 6'), ['006'],
               "participant_id on line 7 is not sub-<label> ('sub-0 6')"),
    'empty file': (lambda p: p.write_text(''), None, 'not a readable TSV table (empty file)'),
    'ragged': (lambda p: _rewrite(p, lambda ls: ls + ['sub-007\t1']), None,
               'line 8 has 2 cells, the header 6'),
    'column twice': (lambda p: _rewrite(p, lambda ls: [ls[0].replace('sex', 'age')] + ls[1:]),
                     None, 'column(s) age appear more than once'),
    'no participant_id': (lambda p: _rewrite(p, lambda ls: _drop_column(ls, 'participant_id')),
                          None, "no 'participant_id' column"),
    'covariate absent': (lambda p: _rewrite(p, lambda ls: _drop_column(ls, 'edss')), None,
                         'covariate column(s) edss found in neither the lesion tables nor'),
}


@pytest.mark.parametrize('fault', sorted(PARTICIPANT_FAULTS))
def test_each_participants_fault(cohort, restore, fault):
    root, _, clean = cohort
    edit, left_out, message = PARTICIPANT_FAULTS[fault]
    path = root / 'bids' / 'participants.tsv'
    edit(path)
    if left_out is None:
        with pytest.raises(InputError, match=re.escape(message)) as excinfo:
            read_inputs(root / 'out', root / 'bids', OPTIONS)
        assert str(path) in str(excinfo.value)
        return
    inputs = read_inputs(root / 'out', root / 'bids', OPTIONS)
    assert list(inputs.left_out) == left_out
    text = ' | '.join(p.message for p in inputs.problems)  # left out, and warnings
    assert str(path) in text and message in text, text
    _assert_others_unchanged(inputs, clean, set(left_out))


def test_mixed_covariate_column_is_refused_unless_categorical(cohort, restore):
    root, _, _ = cohort
    path = root / 'bids' / 'participants.tsv'
    _edit(path, 3, 'sex', '1')
    options = GroupModelOptions(degree=1, covariates=('edss', 'sex'), figures=False)
    with pytest.raises(InputError, match="covariate column 'sex' holds numbers and text"):
        read_inputs(root / 'out', root / 'bids', options)
    categorical = GroupModelOptions(degree=1, covariates=('edss', 'sex'), categorical=('sex',),
                                    figures=False)
    assert read_inputs(root / 'out', root / 'bids', categorical).problems == []


def test_a_bad_row_of_a_subject_without_lesions_is_a_warning(cohort, restore):
    root, _, _ = cohort
    _rewrite(root / 'bids' / 'participants.tsv', lambda ls: ls + ['sub-099\t40\tF\tbad\t1\t1'])
    inputs = read_inputs(root / 'out', root / 'bids', OPTIONS)
    assert inputs.left_out == {}
    assert [p.kind for p in inputs.problems] == ['note'] and 'line 8' in inputs.problems[0].message


def test_command_line_fits_the_others_exits_1_and_records_what_was_left_out(cohort, restore,
                                                                            capsys):
    """One bad lesion table: the five other patients are fitted (the model's own count), the
    exit code is 1, and the summary and group.html name the subject and the file and record
    the version and the command line."""
    from lesionqsm import __version__

    root, _, clean = cohort
    path = _table(root, '002')
    _edit(path, 2, 'rim', 'POSITIVE')
    code, console = _cli(root, capsys)
    assert code == 1 and 'Traceback' not in console
    assert f'sub-002 left out of the group models: {path}: rim on line 2' in console
    summary = json.loads((root / 'out' / 'group' / 'group_summary.json').read_text())
    assert list(summary['subjects_left_out']) == ['002']
    assert summary['input_problems'][0]['file'] == str(path)
    assert summary['input_problems'][0]['key'] == 'rim'
    assert summary['susceptibility_model']['n_patients'] == 5
    assert summary['susceptibility_model']['n_observations'] == \
        len(clean.lesions) - len(_rows(clean.lesions, '002'))
    assert str(path) not in summary['lesion_tables'] and len(summary['lesion_tables']) == 5
    assert summary['lesionqsm_version'] == __version__
    assert summary['command'] == (f"lesionqsm {root / 'bids'} {root / 'out'} group "
                                  f"--skip-bids-validation --config {root / 'params.json'}")
    page = (root / 'out' / 'group.html').read_text()
    assert 'id="left-out"' in page and '<strong>sub-002</strong>' in page
    assert f'<td>{summary["command"]}</td>' in page and f'<td>{__version__}</td>' in page


# ---------------------------------------------------------------------------------------------
# the contract the models rely on, checked independently of the reader
# ---------------------------------------------------------------------------------------------
def _assert_contract(inputs):
    lesions = inputs.lesions
    for column, low, high in (('lesion_age_years', 0, 100), ('chi_rel_ppb', -1e4, 1e4),
                              ('volume_mm3', 0, 2e6), ('baseline_volume_mm3', 0, 2e6)):
        values = lesions[column].to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        assert np.isfinite(present).all() and ((present >= low) & (present <= high)).all()
    assert not np.isnan(lesions['lesion_age_years'].to_numpy(dtype=float)).any()
    assert not lesions.duplicated(['participant_id', 'lesion_id', 'session_id']).any()
    assert set(lesions['rim'].dropna()) <= {'positive', 'negative'}
    assert all(re.fullmatch('[0-9a-zA-Z]+', str(v)) for v in lesions['lesion_id'])
    for _, rows in lesions.groupby(['participant_id', 'lesion_id']):
        assert rows['rim'].nunique(dropna=False) == 1
        assert (rows['lesion_age_years'] == rows['lesion_age_years'].min()).sum() >= 1
    used = inputs.participants[inputs.participants['participant_id'].isin(
        lesions['participant_id'])]
    assert not used['participant_id'].duplicated().any()
    assert set(lesions['participant_id']) <= set(used['participant_id'])
    for column, high in (('edss', 10), ('age', 130)):
        values = pd.to_numeric(used[column]).to_numpy(dtype=float)
        present = values[~np.isnan(values)]
        assert ((present >= 0) & (present <= high)).all()


def _rows(frame, subject):
    return frame[frame['participant_id'] == f'sub-{subject}'].reset_index(drop=True)


def _assert_others_unchanged(inputs, clean, touched):
    for subject in SUBJECTS:
        if subject not in touched and subject not in inputs.left_out:
            expected = _rows(clean.lesions, subject)  # (a column added to another table
            pd.testing.assert_frame_equal(                # is n/a in this one)
                _rows(inputs.lesions, subject)[expected.columns], expected)
    for subject in inputs.left_out:
        assert _rows(inputs.lesions, subject).empty


# ---------------------------------------------------------------------------------------------
# seeded fuzz
# ---------------------------------------------------------------------------------------------
NASTY = ['', 'n/a', 'garbage', '"', '-1', '0', '1e400', 'inf', '-inf', 'nan', str(2**40),
         '9' * 30, 'ses-0 1', '2020-13-45', '2020-02-30T25:61:00', 'ses-99', 'POSITIVE',
         'x' * 300, '1.5', 'sub-999', '\x00', ' 1 ', 'positive', 'negative', 'n/a\tn/a']


def corrupt(path, rng):
    """One random corruption of a TSV file (whole file, a line, the header, or one cell)."""
    raw = path.read_bytes()
    if not raw:
        return
    lines = raw.decode(errors='replace').splitlines()
    choice = int(rng.integers(10))
    if choice == 0:
        path.write_bytes(raw[: int(rng.integers(0, len(raw)))])          # truncated
        return
    if choice == 1:
        at = int(rng.integers(len(raw)))
        path.write_bytes(raw[:at] + bytes(rng.integers(0, 256, 3).tolist()) + raw[at:])
        return
    if len(lines) < 2:
        path.write_text('')                                              # emptied
        return
    i = int(rng.integers(1, len(lines)))
    if choice == 2:
        lines.insert(int(rng.integers(1, len(lines) + 1)), lines[i])       # duplicated row
    elif choice == 3:
        lines[i] = lines[i].rsplit('\t', 1)[0] if rng.random() < 0.5 else lines[i] + '\tx'
    elif choice == 4:
        del lines[i]                                                     # row removed
    elif choice == 5:
        cells = lines[0].split('\t')                                     # header cell
        cells[int(rng.integers(len(cells)))] = str(rng.choice(['x', 'rim', 'age', '']))
        lines[0] = '\t'.join(cells)
    else:
        cells = lines[i].split('\t')                                     # one cell
        cells[int(rng.integers(len(cells)))] = NASTY[int(rng.integers(len(NASTY)))]
        lines[i] = '\t'.join(cells)
    path.write_text('\n'.join(lines) + '\n')


def _cli(root, capsys):
    config = root / 'params.json'
    config.write_text(json.dumps(CONFIG))
    handlers = list(logging.getLogger().handlers)
    try:
        code = main([str(root / 'bids'), str(root / 'out'), 'group', '--skip-bids-validation',
                     '--config', str(config)])
    finally:
        for handler in logging.getLogger().handlers[:]:
            if handler not in handlers and isinstance(handler, logging.FileHandler):
                logging.getLogger().removeHandler(handler)
                handler.close()
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize('target', ['lesion tables', 'participants.tsv'])
def test_fuzz_group_inputs(cohort, restore, capsys, target):
    """Seeded corruptions of one file: the subject concerned is left out (or participants.tsv
    refused) with messages naming the file; the others are read as in the clean cohort."""
    root, pristine, clean = cohort
    rng = np.random.default_rng(17 if target == 'lesion tables' else 13)
    n_cases = N_TABLE_CASES if target == 'lesion tables' else N_PARTICIPANT_CASES
    outcomes = {'left out': 0, 'refused': 0, 'accepted': 0}
    for case in range(n_cases):
        subject = SUBJECTS[int(rng.integers(6))]
        path = _table(root, subject) if target == 'lesion tables' \
            else root / 'bids' / 'participants.tsv'
        corrupt(path, rng)
        try:
            try:
                inputs = read_inputs(root / 'out', root / 'bids', OPTIONS)
            except InputError as exc:
                assert target == 'participants.tsv' and str(path) in str(exc), str(exc)
                outcome = 'refused'
            else:
                texts = [m for ms in inputs.left_out.values() for m in ms]
                assert all(str(path) in t for t in texts), texts
                if target == 'lesion tables':
                    assert set(inputs.left_out) <= {subject}
                _assert_others_unchanged(inputs, clean, {subject})
                _assert_contract(inputs)
                outcome = 'left out' if inputs.left_out else 'accepted'
            if case % CLI_EVERY == 0:
                code, console = _cli(root, capsys)
                assert 'Traceback' not in console, console
                assert code == {'left out': 1, 'refused': 2, 'accepted': 0}[outcome], console
                if outcome != 'accepted':
                    assert path.name in console, console
        finally:
            shutil.copy2(pristine / path.relative_to(root), path)
        outcomes[outcome] += 1
    # most corruptions are caught; some are harmless (a plausible number, a row removed)
    print(target, outcomes)
    assert outcomes['left out'] + outcomes['refused'] >= 0.6 * n_cases, outcomes


# ---------------------------------------------------------------------------------------------
# the group options
# ---------------------------------------------------------------------------------------------
OPTION_VALUES = [None, True, 'eight', '', [], [8], {'a': 1}, -1, 0, 1, 2.5, 1e400, float('nan'),
                 ['edss', 3], 'edges', [0.0, float('inf')], 99]


@pytest.mark.parametrize('section, message', [
    ({'table_ages': []}, 'group: table_ages must list one or more lesion ages >= 0'),
    ({'table_ages': [-1.0, 2.0]}, 'group: table_ages must list one or more lesion ages >= 0'),
    ({'covariates': ['edss', 'edss']}, 'group: covariates lists edss more than once'),
])
def test_cross_field_group_options_exit_2(cohort, tmp_path, capsys, section, message):
    config = tmp_path / 'params.json'
    config.write_text(json.dumps({'group': section}))
    with pytest.raises(SystemExit) as excinfo:
        main([str(cohort[0] / 'bids'), str(tmp_path / 'out'), 'group', '--config', str(config)])
    err = capsys.readouterr().err
    assert excinfo.value.code == 2 and message in err and 'Traceback' not in err, err


def test_fuzz_group_options_exit_2_naming_the_key(cohort, tmp_path, capsys):
    """Random ``group`` sections: refused with exit 2 naming group.<key> (or the section)
    before anything is written, or valid (then not run: the fit is tested above)."""
    root = cohort[0]
    rng = np.random.default_rng(5)
    keys = [*GroupModelOptions.__dataclass_fields__, 'degre', 'Degree', 'lambda']
    refused = 0
    for case in range(N_OPTION_CASES):
        key = keys[int(rng.integers(len(keys)))]
        value = OPTION_VALUES[int(rng.integers(len(OPTION_VALUES)))]
        try:
            group_options({key: value})
        except OptionError:
            pass
        else:
            continue
        refused += 1
        config = tmp_path / f'params{case}.json'
        config.write_text(json.dumps({'group': {key: value}}))
        out = tmp_path / f'out{case}'
        with pytest.raises(SystemExit) as excinfo:
            main([str(root / 'bids'), str(out), 'group', '--config', str(config)])
        err = capsys.readouterr().err
        assert excinfo.value.code == 2 and 'Traceback' not in err, err
        assert f'group.{key}' in err or 'group: ' in err, err
        assert str(config) in err and not out.exists(), err
    assert refused >= N_OPTION_CASES // 2
