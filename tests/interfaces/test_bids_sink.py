"""DerivativesDataSink: names, sidecars, atomic writes, and a derivatives tree the official
BIDS validator accepts."""

import json
import os
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from lesionqsm import bids_templates as templates
from lesionqsm.bids.labels import parse_bids_name
from lesionqsm.bids.templates_io import write_dataset_description
from lesionqsm.bids.validator import run_bids_validator
from lesionqsm.interfaces.bids import DerivativesDataSink

AFFINE = np.diag([0.9, 0.9, 2.0, 1.0])


def _raw(tmp_path):
    """A raw dataset with one first-echo magnitude (the sinks' source file)."""
    raw = tmp_path / 'bids'
    (raw / 'sub-01' / 'ses-01' / 'anat').mkdir(parents=True)
    (raw / 'dataset_description.json').write_text('{"Name": "raw", "BIDSVersion": "1.10.0"}')
    source = raw / 'sub-01' / 'ses-01' / 'anat' / 'sub-01_ses-01_echo-1_part-mag_MEGRE.nii.gz'
    nb.save(nb.Nifti1Image(np.ones((3, 3, 2), np.float32), AFFINE), str(source))
    return raw, source


def _image(path, data, *, dtype=np.float32):
    img = nb.Nifti1Image(np.asarray(data, dtype=dtype), AFFINE)  # no spatial units set
    nb.save(img, str(path))
    return str(path)


def _sink(tmp_path, source, in_file, **kwargs):
    sink = DerivativesDataSink(base_directory=str(tmp_path / 'out'), source_file=str(source),
                               in_file=in_file, **kwargs)
    sink.base_dir = str(tmp_path / 'work')
    return sink.run().outputs


def test_parse_bids_name():
    entities, suffix, ext = parse_bids_name('/x/sub-01_ses-2_acq-fast_echo-01_part-phase_MEGRE'
                                            '.nii.gz')
    assert entities == {'sub': '01', 'ses': '2', 'acq': 'fast', 'echo': '01', 'part': 'phase'}
    assert (suffix, ext) == ('MEGRE', '.nii.gz')


def test_chimap_name_data_and_sidecar(tmp_path):
    raw, source = _raw(tmp_path)
    chi = np.arange(18, dtype=np.float32).reshape(3, 3, 2) / 100
    outputs = _sink(tmp_path, source, _image(tmp_path / 'chi.nii', chi), suffix='Chimap',
                    meta_dict={'QSMParameters': {'lambda': 1000}, 'Units': 'ppm'})
    out = Path(outputs.out_file)
    assert out == tmp_path / 'out/sub-01/ses-01/anat/sub-01_ses-01_Chimap.nii.gz'
    img = nb.load(str(out))
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), chi)   # stored unchanged
    np.testing.assert_allclose(img.affine, AFFINE)
    assert img.header.get_xyzt_units()[0] == 'mm'
    meta = json.loads(Path(outputs.out_meta).read_text())
    assert meta['Units'] == 'ppm' and meta['SkullStripped'] is True
    assert meta['QSMAlgorithm'] == 'MEDI+0' and meta['QSMParameters'] == {'lambda': 1000}
    assert meta['Sources'] == ['bids:raw:sub-01/ses-01/anat/sub-01_ses-01_echo-1_part-mag_'
                               'MEGRE.nii.gz']
    description = json.loads((tmp_path / 'out/dataset_description.json').read_text())
    assert description['DatasetType'] == 'derivative'
    assert description['GeneratedBy'][0]['Name'] == 'lesionqsm'
    assert description['DatasetLinks'] == {'raw': '../bids'}
    assert '*_xfm.mat' in (tmp_path / 'out/.bidsignore').read_text().splitlines()


def test_mask_stored_as_uint8(tmp_path):
    _, source = _raw(tmp_path)
    mask = np.zeros((3, 3, 2))
    mask[1, 1, :] = 0.7
    outputs = _sink(tmp_path, source, _image(tmp_path / 'm.nii.gz', mask), suffix='mask',
                    desc='brain')
    assert outputs.out_file.endswith('sub-01_ses-01_desc-brain_mask.nii.gz')
    img = nb.load(outputs.out_file)
    assert img.get_data_dtype() == np.uint8
    assert int(np.asanyarray(img.dataobj).sum()) == 2
    assert json.loads(Path(outputs.out_meta).read_text())['Type'] == 'Brain'


def test_entities_kept_and_dismissed(tmp_path):
    raw, _ = _raw(tmp_path)
    source = raw / 'sub-01/ses-01/anat/sub-01_ses-01_acq-fast_run-2_echo-3_part-phase_MEGRE.nii'
    in_file = _image(tmp_path / 'f.nii.gz', np.ones((3, 3, 2)))
    default = _sink(tmp_path, source, in_file, suffix='R2starmap')
    assert Path(default.out_file).name == 'sub-01_ses-01_acq-fast_run-2_R2starmap.nii.gz'
    kept = _sink(tmp_path, source, in_file, suffix='R2starmap', dismiss_entities=['part'])
    assert Path(kept.out_file).name == 'sub-01_ses-01_acq-fast_run-2_echo-3_R2starmap.nii.gz'


def test_transform_copied_verbatim(tmp_path):
    _, source = _raw(tmp_path)
    matrix = tmp_path / 'flirt.mat'
    matrix.write_text('1 0 0 0.5\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    outputs = _sink(tmp_path, source, str(matrix), suffix='xfm', extension='.mat', from_='GRE',
                    to='baseline', mode='image')
    expected = templates.output_path(tmp_path / 'out', 'xfm_gre_to_baseline', subject='01',
                                     session='01')
    assert Path(outputs.out_file) == expected
    assert expected.read_text() == matrix.read_text()


def test_dataset_description_written_once(tmp_path):
    _, source = _raw(tmp_path)
    description = tmp_path / 'out' / 'dataset_description.json'
    write_dataset_description(tmp_path / 'out', version='9.9')
    _sink(tmp_path, source, _image(tmp_path / 'c.nii.gz', np.ones((3, 3, 2))), suffix='Chimap')
    assert json.loads(description.read_text())['GeneratedBy'][0]['Version'] == '9.9'


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A crash between writing the temporary file and the rename leaves the old file intact
    and no temporary behind."""
    _, source = _raw(tmp_path)
    first = _sink(tmp_path, source, _image(tmp_path / 'a.nii.gz', np.ones((3, 3, 2))),
                  suffix='Chimap')
    before = Path(first.out_file).read_bytes()

    def crash(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(Exception, match='disk full'):
        _sink(tmp_path, source, _image(tmp_path / 'b.nii.gz', np.full((3, 3, 2), 5.0)),
              suffix='Chimap')
    folder = Path(first.out_file).parent
    assert Path(first.out_file).read_bytes() == before
    assert not [p for p in os.listdir(folder) if p.startswith('.')]


def test_runs_as_nipype_node(tmp_path):
    from nipype.pipeline import engine as pe

    _, source = _raw(tmp_path)
    node = pe.Node(DerivativesDataSink(base_directory=str(tmp_path / 'out'),
                                       source_file=str(source), suffix='mask', desc='csf'),
                   name='ds_csf', run_without_submitting=True, base_dir=str(tmp_path / 'w'))
    node.inputs.in_file = _image(tmp_path / 'csf.nii.gz', np.ones((3, 3, 2)))
    result = node.run()
    assert result.outputs.out_file.endswith('sub-01_ses-01_desc-csf_mask.nii.gz')


def test_custom_space_without_reference_warns(tmp_path, caplog):
    _, source = _raw(tmp_path)
    with caplog.at_level('WARNING', logger='nipype.interface'):
        _sink(tmp_path, source, _image(tmp_path / 'c.nii.gz', np.ones((3, 3, 2))),
              suffix='Chimap', space='baseline')
    assert 'no SpatialReference was given' in caplog.text


def _write_lesion_table(tmp_path, out):
    """The lesion table and its dictionary, through the workflow's lesion-table sink."""
    from lesionqsm.interfaces.lesions import LesionTableSink

    columns = templates.LESION_TABLE_COLUMNS
    row = dict.fromkeys(columns, 'n/a')
    row.update(participant_id='sub-01', lesion_id=1, session_id='ses-01', rim='positive',
               lesion_age_years=0.0, chi_rel_ppb=12.5, status='ok')
    table = tmp_path / 'table.tsv'
    pd.DataFrame([row], columns=list(columns)).to_csv(table, sep='\t', index=False)
    dictionary = tmp_path / 'dictionary.json'
    dictionary.write_text(json.dumps(templates.lesion_table_dictionary()))
    LesionTableSink(output_dir=str(out), subject='01', in_table=str(table),
                    in_dictionary=str(dictionary)).run()


@pytest.mark.validator
def test_derivatives_tree_passes_bids_validator(tmp_path):
    """Every kind of file we write, through the sink and the writers: no validator error."""
    raw, source = _raw(tmp_path)
    out = tmp_path / 'out'
    write_dataset_description(out, bids_dir=raw)
    image = _image(tmp_path / 'img.nii.gz', np.ones((3, 3, 2)))
    matrix = tmp_path / 'm.mat'
    matrix.write_text('1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    for name, in_file in [('chimap', image), ('chimap_baseline', image), ('r2starmap', image),
                          ('brain_mask', image), ('csf_mask', image),
                          ('xfm_gre_to_baseline', str(matrix))]:
        spec = templates.OUTPUTS[name]
        _sink(tmp_path, source, in_file, suffix=spec.suffix, extension=spec.extension,
              spatial_reference=templates.spatial_reference('01', '01'),
              meta_dict={'QSMParameters': {'lambda': 1000}} if spec.suffix == 'Chimap'
              else {}, **spec.entities())
    _write_lesion_table(tmp_path, out)
    result = run_bids_validator(out, ignore_warnings=False)
    assert result.errors == [], result.summary()
    assert result.returncode == 0
    # every warning left is advisory metadata, none about our names or sidecar contents
    assert {w['code'] for w in result.warnings} <= {'TOO_FEW_AUTHORS', 'SIDECAR_KEY_RECOMMENDED'}
    # the same tree without .bidsignore is refused: the test can fail
    (out / '.bidsignore').unlink()
    refused = run_bids_validator(out)
    assert {e['code'] for e in refused.errors} == {'NOT_INCLUDED'}
    assert {e['location'] for e in refused.errors} >= {'/sub-01/sub-01_lesions.tsv'}


def test_rerun_restores_deleted_or_altered_output_and_keeps_intact_one(tmp_path):
    """The sink node always reruns from its cached input: a deleted or altered derivative is
    written back byte for byte; an intact one keeps its modification time."""
    from nipype.pipeline import engine as pe

    _, source = _raw(tmp_path)
    in_file = _image(tmp_path / 'chi.nii.gz', np.arange(18).reshape(3, 3, 2) / 7)

    def run():
        node = pe.Node(DerivativesDataSink(base_directory=str(tmp_path / 'out'),
                                           source_file=str(source), suffix='Chimap',
                                           in_file=in_file),
                       name='ds_chi', run_without_submitting=True, base_dir=str(tmp_path / 'w'))
        return Path(node.run().outputs.out_file)

    out = run()
    sidecar = out.with_name(out.name.replace('.nii.gz', '.json'))
    original, original_meta = out.read_bytes(), sidecar.read_text()
    os.utime(out, (1_000_000, 1_000_000))
    run()
    assert out.stat().st_mtime == 1_000_000          # same bytes: left alone
    out.unlink()
    sidecar.write_text('{"Units": "altered"}')
    run()
    assert out.read_bytes() == original and sidecar.read_text() == original_meta


def test_sink_refuses_a_link_out_of_the_output_folder(tmp_path):
    _, source = _raw(tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir()
    (tmp_path / 'out' / 'sub-01').mkdir(parents=True)
    (tmp_path / 'out' / 'sub-01' / 'ses-01').symlink_to(outside, target_is_directory=True)
    with pytest.raises(Exception, match='ses-01: symbolic link to .*outside, outside the output '
                                        'folder'):
        _sink(tmp_path, source, _image(tmp_path / 'c.nii.gz', np.ones((3, 3, 2))),
              suffix='Chimap')
    assert list(outside.iterdir()) == []
