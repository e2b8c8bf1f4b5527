"""The methods paragraph says what the run did, from the χ map sidecars."""

import json

from lesionqsm.report import boilerplate


def _write_chimap_sidecar(root, options):
    anat = root / 'sub-01' / 'ses-01' / 'anat'
    anat.mkdir(parents=True)
    sidecar = {'Algorithm': 'MEDI+0', 'ReferenceRegion': 'ventricular_csf', 'Options': options}
    (anat / 'sub-01_ses-01_Chimap.json').write_text(json.dumps(sidecar))


def test_outside_sources_are_described_and_cited(tmp_path):
    """With the default background step the paragraph names the outside sources, their
    weight and the total-field-inversion paper; with ``outside_source_scale`` 0 it does not."""
    _write_chimap_sidecar(tmp_path / 'on', {'background': 'pdf_edge_smv',
                                            'edge_smv_max_radius_mm': 10.0,
                                            'outside_source_scale': 3.0})
    _write_chimap_sidecar(tmp_path / 'off', {'background': 'pdf_edge_smv',
                                             'edge_smv_max_radius_mm': 10.0,
                                             'outside_source_scale': 0.0})
    texts = {}
    for name in ('on', 'off'):
        written = boilerplate.write_citation(tmp_path / name)
        texts[name] = written['md'].read_text() + written['bib'].read_text()
    assert 'total field inversion' in texts['on']
    assert 'preconditioner weight 3 outside the mask' in texts['on']
    assert '10.1002/mrm.26331' in texts['on']
    assert 'total field inversion' not in texts['off']
    assert '10.1002/mrm.26331' not in texts['off']
