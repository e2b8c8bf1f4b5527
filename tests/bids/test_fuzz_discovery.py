"""Seeded fuzzing of discovery: sidecars, image headers and tables of one subject, corrupted
in 240 ways, never end in a traceback, and never change what another subject gets.

Each case corrupts one file of sub-01 (a copy of the template, restored afterwards) and runs
the participant level's discovery (:func:`lesionqsm.cli.run.discover`, which is everything that
happens before a node runs). Required of every case: no exception other than the structured
ones escapes; sub-01 is either reported as failed with messages that name the corrupted file
(exit code 1), or its corruption was harmless and it is discovered as usable; sub-02 (never
touched) is discovered exactly as in the clean dataset. A sample of cases also runs the whole
command line (exit code 1 or 2, no traceback on the console or stderr).

Cost: the image and table cases reuse one pybids index of sub-01 (their file names do not
change), the sidecar cases index it again (pybids reads sidecars while indexing).
"""

import gzip
import json
import logging
import shutil
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from bids_tree import TinyBIDS, standard_subject

from lesionqsm.bids.layout import _subject_layout, collect_subject
from lesionqsm.bids.problems import InputError

N_SIDECAR_CASES = 50
N_IMAGE_CASES = 90
N_TABLE_CASES = 70
N_CLI_CASES = 6


# ---------------------------------------------------------------------------------------------
# corruptions (each takes the file and a numpy Generator, rewrites the file)
# ---------------------------------------------------------------------------------------------
def _nasty_value(rng):
    values = [None, True, False, 'abc', '', 'n/a', [], [0.005], {'a': 1}, -1, 0, 1e308,
              float('nan'), float('inf'), -0.0, 5000, 'rad', 'degrees', 2**70, '3 T']
    return values[int(rng.integers(len(values)))]


def corrupt_sidecar(path, rng):
    text = path.read_text()
    choice = int(rng.integers(8))
    if choice == 0:
        path.write_text(text[: int(rng.integers(0, len(text)))])        # truncated JSON
        return
    if choice == 1:
        depth = int(rng.integers(40, 3000))
        path.write_text('{"x": ' + '[' * depth + ']' * depth + '}')      # nested too deep
        return
    if choice == 2:
        path.write_bytes(b'\xff\xfe' + text.encode('utf-16-le'))        # not UTF-8
        return
    meta = json.loads(text)
    key = sorted(meta)[int(rng.integers(len(meta)))]
    if choice == 3:
        del meta[key]
    elif choice == 4:
        meta = [meta]                                                    # not an object
    elif choice == 5:
        meta['Units'] = _nasty_value(rng)
    else:
        meta[key] = _nasty_value(rng)
    path.write_text(json.dumps(meta, allow_nan=True))


#: NIfTI-1 header fields: (byte offset, struct format) and values to put there.
_HEADER_FIELDS = {
    'dim0': (40, '<h', [0, 1, 2, 4, 5, 7, 8, -1]),
    'dim1': (42, '<h', [0, 1, 2, -3, 32767]),
    'dim3': (46, '<h', [0, 1, 2]),
    'dim4': (48, '<h', [0, 2, 3, -1]),
    'datatype': (70, '<h', [0, 1, 32, 128, 2304, 1792, 999]),
    'bitpix': (72, '<h', [0, 7, 64]),
    'pixdim1': (80, '<f', [0.0, -1.0, float('nan'), float('inf'), 1e-30]),
    'pixdim3': (88, '<f', [0.0, float('nan')]),
    'vox_offset': (108, '<f', [0.0, 1e9, -5.0]),
    'qform_code': (252, '<h', [0, 5, -1]),
    'sform_code': (254, '<h', [0, 9]),
    'srow_x0': (280, '<f', [0.0, float('nan'), float('inf')]),
    'srow_y1': (300, '<f', [0.0, float('nan')]),
    'magic': (344, '4s', [b'xxxx', b'\0\0\0\0']),
}


def corrupt_image(path, rng):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    choice = int(rng.integers(4))
    if choice == 0:                                                      # truncated file
        path.write_bytes(path.read_bytes()[: int(rng.integers(0, path.stat().st_size))])
        return
    if choice == 1:                                                      # flipped bytes
        for i in rng.integers(0, len(raw), size=int(rng.integers(1, 12))):
            raw[i] = int(rng.integers(256))
    else:                                                                # one header field
        name = sorted(_HEADER_FIELDS)[int(rng.integers(len(_HEADER_FIELDS)))]
        offset, fmt, values = _HEADER_FIELDS[name]
        raw[offset: offset + struct.calcsize(fmt)] = struct.pack(
            fmt, values[int(rng.integers(len(values)))])
    path.write_bytes(gzip.compress(bytes(raw)))


def corrupt_table(path, rng):
    lines = path.read_text().splitlines()
    choice = int(rng.integers(5))
    if choice == 0:
        path.write_text('')                                              # empty
        return
    if choice == 1:
        i = int(rng.integers(1, len(lines))) if len(lines) > 1 else 0
        lines.append(lines[i])                                           # duplicated row
    elif choice == 2:
        i = int(rng.integers(len(lines)))
        lines[i] += '\textra'                                            # ragged row
    else:
        i = int(rng.integers(len(lines)))
        cells = lines[i].split('\t')
        j = int(rng.integers(len(cells)))
        cells[j] = ['', 'n/a', 'garbage', '"', '-1', '0', '2020-13-45', '1e400', str(2**40),
                    '99999999999999999999999999999', 'ses-0 1', '2020-02-30T25:61:00',
                    'ses-99', 'POSITIVE', 'x' * 300][int(rng.integers(15))]
        lines[i] = '\t'.join(cells)
    path.write_text('\n'.join(lines) + '\n')


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """Two standard subjects; ``pristine`` keeps the original files for restoring."""
    root = tmp_path_factory.mktemp('fuzz')
    bids = TinyBIDS(root / 'bids')
    standard_subject(bids, '01')
    standard_subject(bids, '02')
    shutil.copytree(bids.root, root / 'pristine')
    return bids.root, root / 'pristine'


def _options(bids, subjects=('01', '02')):
    return SimpleNamespace(bids_dir=bids, participant_label=list(subjects), lesions_dir=None,
                           session_label=None, field_strength=None, stop_on_first_crash=False)


def _summary(data):
    """What discovery decided for a subject, in comparable form."""
    return {
        'sessions': [(s.session_id, s.acq_time, s.megre and (s.megre.mag_files,
                      s.megre.phase_files, s.megre.echo_times, s.megre.field_strength,
                      s.megre.phase_units), s.flair, s.lesion_dseg, [str(e) for e in s.errors])
                     for s in data.sessions],
        'lesions': None if data.lesions is None else data.lesions.to_dict('records'),
        'problems': [str(p) for p in data.problems],
        'lesion_errors': [str(p) for p in data.lesion_errors],
    }


def _files(root, suffixes):
    return sorted(p for p in (root / 'sub-01').rglob('*') if p.name.endswith(suffixes)) + \
        sorted(p for p in (root / 'derivatives' / 'lesions' / 'sub-01').rglob('*')
               if p.name.endswith(suffixes))


def _check_case(bids, target, data, error, clean):
    """Either a failure that names ``target``, or a usable subject.

    A sidecar's values are reported for its image (same name up to the extension)."""
    stem = target.name.split('.')[0]
    if error is not None:
        assert stem in str(error), f'{target.name}: {error}'
        return 'failed'
    texts = [str(p) for p in data.all_problems]
    unusable = not any(s.has_qsm_input for s in data.sessions)
    fatal = [p for p in data.all_problems if p.fatal]
    if fatal or unusable:
        assert any(stem in t for t in texts), f'{target.name}: {texts}'
        return 'failed'
    # harmless corruption: the subject is usable (its lesions may be fewer)
    assert [s.session_id for s in data.sessions] == [s[0] for s in clean['sessions']]
    return 'usable'


def _run_cases(bids, pristine, files, corrupt, n_cases, rng, *, reuse_layout, clean):
    layout = _subject_layout(bids, '01') if reuse_layout else None
    outcomes = {'failed': 0, 'usable': 0}
    for case in range(n_cases):
        target = files[int(rng.integers(len(files)))]
        corrupt(target, rng)
        data = error = None
        try:
            data = collect_subject(bids, '01', strict=False, layout=layout)
        except InputError as exc:
            error = exc
        finally:
            shutil.copy2(pristine / target.relative_to(bids), target)
        outcomes[_check_case(bids, target, data, error, clean)] += 1
        if case % 20 == 0:  # the untouched subject: exactly as in the clean dataset
            assert _summary(collect_subject(bids, '02', strict=False)) == clean['02']
    return outcomes


@pytest.mark.slow
def test_fuzzed_discovery_fails_clearly_or_works(dataset):
    bids, pristine = dataset
    clean = {s: _summary(collect_subject(bids, s, strict=False)) for s in ('01', '02')}
    clean['sessions'] = clean['01']['sessions']
    rng = np.random.default_rng(20190101)
    totals = {}
    for name, suffixes, corrupt, n_cases, reuse in [
            ('images', ('.nii.gz',), corrupt_image, N_IMAGE_CASES, True),
            ('tables', ('.tsv',), corrupt_table, N_TABLE_CASES, True),
            ('sidecars', ('.json',), corrupt_sidecar, N_SIDECAR_CASES, False)]:
        totals[name] = _run_cases(bids, pristine, _files(bids, suffixes), corrupt, n_cases, rng,
                                  reuse_layout=reuse, clean=clean)
    # the corruptions reach the checks (most fail) and some are harmless
    assert sum(t['failed'] for t in totals.values()) >= 150, totals
    assert all(t['failed'] for t in totals.values()), totals
    for subject in ('01', '02'):  # every file restored: both subjects as clean as at the start
        assert _summary(collect_subject(bids, subject, strict=False)) == clean[subject]


def test_fuzzed_inputs_through_the_command_line(dataset, tmp_path, caplog, capsys):
    """Exit code 1 or 2 and no traceback, for corruptions that stop sub-01 at discovery."""
    from lesionqsm.cli import main

    bids, pristine = dataset
    rng = np.random.default_rng(7)
    files = _files(bids, ('.json',)) + [p for p in _files(bids, ('.nii.gz',))
                                         if 'MEGRE' in p.name]
    for case in range(N_CLI_CASES):
        target = files[int(rng.integers(len(files)))]
        (corrupt_sidecar if target.suffix == '.json' else corrupt_image)(target, rng)
        caplog.clear()
        root = logging.getLogger()
        before = list(root.handlers)
        try:
            data = None
            try:
                data = collect_subject(bids, '01', strict=False)
            except InputError:
                pass
            if data is not None and any(s.has_qsm_input for s in data.sessions):
                continue  # would run the pipeline on 4x4x3 noise: not a discovery case
            code = main([str(bids), str(tmp_path / f'out{case}'), 'participant',
                         '--skip-bids-validation', '--participant-label', '01'])
        finally:
            shutil.copy2(pristine / target.relative_to(bids), target)
            for handler in root.handlers[:]:
                if handler not in before:
                    root.removeHandler(handler)
                    handler.close()
        err = capsys.readouterr().err
        assert code in (1, 2), (target.name, code)
        assert 'Traceback' not in err and 'Traceback' not in caplog.text
        summary = [r.getMessage() for r in caplog.records if 'subject(s) failed' in
                   r.getMessage()]
        assert summary and target.name in summary[-1], (target.name, summary)
