"""The group level end to end on simulated lesion tables written in the participant schema."""

import json

import numpy as np
import pandas as pd
import pytest

from lesionqsm.stats.growth_curve import ModelError, fit_growth_curve
from lesionqsm.synth.lesion_table import simulate_lesion_table
from lesionqsm.workflows.group import init_group_wf, run_group_level


def _write_cohort(root, lesions, participants):
    out, bids = root / 'derivatives', root / 'bids'
    for pid, rows in lesions.groupby('participant_id'):
        (out / pid).mkdir(parents=True, exist_ok=True)
        rows.to_csv(out / pid / f'{pid}_lesions.tsv', sep='\t', index=False, na_rep='n/a')
    bids.mkdir(parents=True, exist_ok=True)
    participants.to_csv(bids / 'participants.tsv', sep='\t', index=False, na_rep='n/a')
    return out, bids


@pytest.fixture(scope='module')
def paper_cohort(tmp_path_factory):
    lesions, participants, truth = simulate_lesion_table(
        n_patients=19, n_lesions=32, visits_per_lesion=5, n_rim_positive=16,
        rng=np.random.default_rng(2019))
    lesions.loc[lesions.index[-1], 'status'] = 'lesion outside the brain mask'
    lesions.loc[lesions.index[-1], 'chi_rel_ppb'] = np.nan
    out, bids = _write_cohort(tmp_path_factory.mktemp('group'), lesions, participants)
    return out, bids, lesions, participants


@pytest.fixture(scope='module')
def written(paper_cohort):
    out, bids, _, _ = paper_cohort
    return run_group_level(out, bids)


def test_outputs_and_data_dictionaries(written, paper_cohort):
    out = paper_cohort[0]
    for kind in ('chi_coefficients', 'chi_lrt', 'chi_fitted_means', 'chivolchange_coefficients',
                 'chivolchange_lrt', 'volume_coefficients', 'volume_fitted_means', 'summary',
                 'chi_figure_png', 'chi_figure_svg', 'volume_figure_png', 'volume_figure_svg'):
        assert kind in written, kind
    for path in written.values():
        assert path.startswith(str(out / 'group')), path
        if path.endswith('.tsv'):
            table = pd.read_csv(path, sep='\t')
            dictionary = json.loads(open(path[:-4] + '.json').read())
            assert set(table.columns) == set(dictionary), path  # every column described
    means = pd.read_csv(written['chi_fitted_means'], sep='\t')
    units = json.loads(open(written['chi_fitted_means'][:-4] + '.json').read())
    assert units['estimate']['Units'] == 'ppb' and len(means) == 27
    assert 'lme4' in json.loads(open(written['chi_coefficients'][:-4] + '.json').read())['se'][
        'Description']
    assert open(written['chi_figure_png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert not list((out / 'group').glob('.*.tmp'))  # atomic writes leave no temporaries


def test_written_numbers_equal_the_direct_fit(written, paper_cohort):
    """The TSV holds the Python API's fit (10 significant digits written)."""
    _, _, lesions, participants = paper_cohort
    fit = fit_growth_curve(lesions, participants)
    coef = pd.read_csv(written['chi_coefficients'], sep='\t')
    np.testing.assert_allclose(coef['estimate'], fit.fe_params, rtol=1e-8, atol=1e-10)
    summary = json.loads(open(written['summary']).read())
    model = summary['susceptibility_model']
    assert model['n_lesions'] == 32 and model['n_patients'] == 19
    assert model['exclusions']['status_not_ok'] == 1
    assert model['converged'] is True
    assert any('rim- relative to rim+' in line for line in summary['results'])


def test_group_errors(paper_cohort, tmp_path):
    out, bids, _, _ = paper_cohort
    with pytest.raises(ModelError, match='no sub-\\*/sub-\\*_lesions.tsv'):
        run_group_level(tmp_path, bids)
    with pytest.raises(ModelError, match='participants.tsv not found'):
        run_group_level(out, tmp_path)
    with pytest.raises(ModelError, match='must be below the number of distinct lesion ages'):
        run_group_level(out, bids, degree=9)


def test_group_workflow_graph():
    wf = init_group_wf(output_dir='derivatives', degree=4, covariates=['edss'])
    names = {node.fullname for node in wf._create_flat_graph().nodes()}
    assert names == {'group_wf.inputnode', 'group_wf.fit_group_model', 'group_wf.outputnode'}
    node = wf.get_node('fit_group_model')
    assert node.inputs.degree == 4 and node.inputs.covariates == ['edss']
