"""Where lesionqsm may write: not into its input datasets, not through links out of OUTPUT."""

import os

import pytest
from bids_tree import write_json

from lesionqsm.bids.images import (
    OutputPathError,
    atomic_write_text,
    check_inside,
    links_out_of,
)
from lesionqsm.bids.locations import LocationError, check_write_locations


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / 'bids'
    write_json(root / 'dataset_description.json', {'Name': 'raw', 'BIDSVersion': '1.10.0'})
    (root / 'sub-01' / 'anat').mkdir(parents=True)
    write_json(root / 'derivatives' / 'lesions' / 'dataset_description.json', {'Name': 'l'})
    return root


@pytest.mark.parametrize('where, message', [
    ('bids', 'is the input dataset'),
    ('bids/sub-01/..', 'is the input dataset'),
    ('link_to_bids', 'is the input dataset'),
    ('.', 'contains the input dataset'),
    ('bids/sub-01/out', 'lies inside the input dataset'),
    ('bids/code/work', 'lies inside the input dataset'),
    ('link_to_bids/sub-01/x', 'lies inside the input dataset'),
    ('bids/derivatives', 'lesion-annotation dataset'),
    ('bids/derivatives/lesions', 'lesion-annotation dataset'),
    ('bids/derivatives/lesions/sub-01', 'lesion-annotation dataset'),
    ('bids/derivatives/x/../lesions', 'lesion-annotation dataset'),
])
@pytest.mark.parametrize('option', ['output_dir', '--work-dir'])
def test_refused_locations(raw, where, message, option):
    (raw.parent / 'link_to_bids').symlink_to(raw)
    folder = raw.parent / where
    kwargs = {'output_dir': raw.parent / 'out', 'work_dir': raw.parent / 'work'}
    kwargs['output_dir' if option == 'output_dir' else 'work_dir'] = folder
    with pytest.raises(LocationError, match=message) as err:
        check_write_locations(raw, **kwargs)
    assert str(err.value).startswith(f'{option} {folder}')


def test_accepted_locations(raw, tmp_path):
    check_write_locations(raw, output_dir=raw / 'derivatives' / 'lesionqsm',
                          work_dir=tmp_path / 'work')
    check_write_locations(raw, output_dir=tmp_path / 'out', work_dir=None)
    # a lesion dataset given elsewhere frees bids/derivatives/lesions ... but not itself
    elsewhere = tmp_path / 'annotations'
    elsewhere.mkdir()
    with pytest.raises(LocationError, match='lesion-annotation dataset'):
        check_write_locations(raw, output_dir=elsewhere / 'out', lesions_dir=elsewhere)


def test_link_out_of_output_is_refused_and_named(tmp_path):
    out, outside = tmp_path / 'out', tmp_path / 'outside'
    outside.mkdir()
    (out / 'sub-01').mkdir(parents=True)
    (out / 'sub-01' / 'ses-01').symlink_to(outside, target_is_directory=True)
    (out / 'inner').symlink_to(out / 'sub-01', target_is_directory=True)  # stays inside: fine
    assert links_out_of(out) == [out / 'sub-01' / 'ses-01']
    target = out / 'sub-01' / 'ses-01' / 'anat' / 'x.json'
    with pytest.raises(OutputPathError, match=f'{out / "sub-01" / "ses-01"}: symbolic link to '
                                              f'{outside}, outside the output folder'):
        atomic_write_text(target, '{}', root=out)
    assert list(outside.iterdir()) == []  # nothing created through the link
    check_inside(out, out / 'inner' / 'y.json')
    with pytest.raises(OutputPathError, match='not inside the output folder'):
        check_inside(out, tmp_path / 'elsewhere.json')


def test_identical_rewrite_keeps_file_and_altered_file_is_replaced(tmp_path):
    path = tmp_path / 'a.json'
    atomic_write_text(path, 'same')
    os.utime(path, (1_000_000, 1_000_000))
    atomic_write_text(path, 'same')
    assert path.stat().st_mtime == 1_000_000  # same bytes (SHA-256): untouched
    path.write_text('altered')
    atomic_write_text(path, 'same')
    assert path.read_text() == 'same'
    assert [p.name for p in tmp_path.iterdir()] == ['a.json']  # no temporary left


@pytest.mark.parametrize('where', ['bids', 'bids/sub-01/..', 'link_to_bids',
                                   'bids/derivatives/lesions', 'bids/sub-01/out'])
def test_cli_refuses_before_writing_anything(raw, where, capsys):
    """Exit 2 naming the folder; the raw dataset is byte for byte unchanged (no description,
    .bidsignore, logs or work folder written into it)."""
    from lesionqsm.cli import main

    (raw.parent / 'link_to_bids').symlink_to(raw)
    before = {p: p.read_bytes() for p in raw.rglob('*') if p.is_file()}
    folders = sorted(p for p in raw.rglob('*') if p.is_dir())
    code = main([str(raw), str(raw.parent / where), 'participant', '--skip-bids-validation',
                 '-w', str(raw.parent / 'work')])
    assert code == 2
    err = capsys.readouterr().err
    assert f'lesionqsm: error: output_dir {raw.parent / where}' in err and 'Traceback' not in err
    assert {p: p.read_bytes() for p in raw.rglob('*') if p.is_file()} == before
    assert sorted(p for p in raw.rglob('*') if p.is_dir()) == folders


def test_cli_refuses_output_with_a_link_out(raw, tmp_path, capsys):
    from lesionqsm.cli import main

    out, outside = tmp_path / 'out', tmp_path / 'outside'
    outside.mkdir()
    out.mkdir()
    (out / 'logs').symlink_to(outside, target_is_directory=True)
    code = main([str(raw), str(out), 'participant', '--skip-bids-validation'])
    assert code == 2
    assert f'{out / "logs"}: symbolic link to {outside}' in capsys.readouterr().err
    assert list(outside.iterdir()) == []
