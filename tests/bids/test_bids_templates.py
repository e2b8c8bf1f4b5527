"""Derivative names, the output registry, JSON templates and the fixed-file writers."""

import json

import pytest

from lesionqsm import bids_templates as templates
from lesionqsm.bids.templates_io import write_dataset_description


@pytest.mark.parametrize('name, expected', [
    ('chimap', 'sub-01/ses-02/anat/sub-01_ses-02_Chimap.nii.gz'),
    ('chimap_baseline', 'sub-01/ses-02/anat/sub-01_ses-02_space-baseline_Chimap.nii.gz'),
    ('r2starmap', 'sub-01/ses-02/anat/sub-01_ses-02_R2starmap.nii.gz'),
    ('brain_mask', 'sub-01/ses-02/anat/sub-01_ses-02_desc-brain_mask.nii.gz'),
    ('csf_mask', 'sub-01/ses-02/anat/sub-01_ses-02_desc-csf_mask.nii.gz'),
    ('xfm_gre_to_baseline',
     'sub-01/ses-02/anat/sub-01_ses-02_from-GRE_to-baseline_mode-image_xfm.mat'),
    ('lesion_table', 'sub-01/sub-01_lesions.tsv'),
])
def test_registered_output_paths(tmp_path, name, expected):
    path = templates.output_path(tmp_path, name, subject='sub-01', session='ses-02')
    assert path == tmp_path / expected


def test_lesion_table_path_is_where_the_group_level_reads(tmp_path):
    assert templates.lesion_table_path(tmp_path, '07') == tmp_path / 'sub-07/sub-07_lesions.tsv'


def test_entity_order_and_errors(tmp_path):
    path = templates.derivative_path(tmp_path, subject='01', session=None, suffix='Chimap',
                                     extension='.json', desc='raw', run=2, acq='fast',
                                     space='baseline')
    assert path == (tmp_path / 'sub-01' / 'anat'
                    / 'sub-01_acq-fast_run-2_space-baseline_desc-raw_Chimap.json')
    with pytest.raises(ValueError, match="BIDS desc label 'brain_mask' must be letters"):
        templates.derivative_path(tmp_path, subject='01', suffix='mask', desc='brain_mask',
                                  extension='.nii.gz')
    with pytest.raises(ValueError, match='unknown BIDS entity colour'):
        templates.derivative_path(tmp_path, subject='01', suffix='mask', colour='red',
                                  extension='.nii.gz')
    with pytest.raises(ValueError, match="extension 'nii' must start with a dot"):
        templates.derivative_path(tmp_path, subject='01', suffix='mask', extension='nii')
    with pytest.raises(ValueError, match="unknown derivative 'chi'"):
        templates.output_path(tmp_path, 'chi', subject='01')


def test_lesion_dictionary_matches_interface_columns():
    """The data dictionary lists the columns the lesion-statistics interface writes, in order."""
    from lesionqsm.interfaces.lesions import LESION_TABLE_COLUMNS

    assert templates.LESION_TABLE_COLUMNS == tuple(LESION_TABLE_COLUMNS)
    dictionary = templates.lesion_table_dictionary()
    assert dictionary['chi_rel_ppb']['Units'] == 'ppb'
    assert dictionary['volume_mm3']['Units'] == 'mm^3'
    assert set(dictionary['rim']['Levels']) == {'positive', 'negative', 'n/a'}


def test_dataset_description(tmp_path):
    out = tmp_path / 'derivatives'
    (out / '.bidsignore').parent.mkdir()
    (out / '.bidsignore').write_text('mine/\n')
    write_dataset_description(out, bids_dir=tmp_path / 'raw', version='1.2.3')
    description = json.loads((out / 'dataset_description.json').read_text())
    assert description['DatasetType'] == 'derivative'
    assert description['GeneratedBy'][0] | {'Description': ''} == {
        'Name': 'lesionqsm', 'Version': '1.2.3', 'Description': ''}
    assert description['DatasetLinks'] == {'raw': '../raw'}
    assert description['SourceDatasets'] == [{'URL': 'bids:raw:'}]
    ignored = (out / '.bidsignore').read_text().splitlines()
    assert ignored[0] == 'mine/' and '*_xfm.mat' in ignored
    assert (out / 'README').read_text().startswith('# lesionqsm derivatives')
