"""The group level end to end on simulated lesion tables written in the participant schema."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from lesionqsm.cli import main
from lesionqsm.cli.group import group_options, read_lesion_tables, run_group_level
from lesionqsm.options import OptionError
from lesionqsm.stats.growth_curve import ModelError, fit_growth_curve
from lesionqsm.stats.options import GroupModelOptions
from lesionqsm.synth.lesion_table import simulate_lesion_table


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
    coef = json.loads(open(written['chi_coefficients'][:-4] + '.json').read())
    assert 'lme4' in coef['se']['Description'] and 'Satterthwaite' in coef['df']['Description']
    assert open(written['chi_figure_png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert not list((out / 'group').glob('.*.tmp'))  # atomic writes leave no temporaries


def test_written_numbers_equal_the_direct_fit(written, paper_cohort):
    """The TSV holds the Python API's fit (10 significant digits written)."""
    _, _, lesions, participants = paper_cohort
    fit = fit_growth_curve(lesions, participants)
    coef = pd.read_csv(written['chi_coefficients'], sep='\t')
    np.testing.assert_allclose(coef['estimate'], fit.fe_params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(coef['df'], fit.coefficient_table()['df'], rtol=1e-8)
    summary = json.loads(open(written['summary']).read())
    model = summary['susceptibility_model']
    assert model['n_lesions'] == 32 and model['n_patients'] == 19
    assert model['exclusions']['status_not_ok'] == 1
    assert model['optimum_checked'] is True and summary['optimum_not_verified'] == []
    assert summary['options']['degree'] == 8
    assert any('rim- relative to rim+' in line for line in summary['results'])


def test_volume_change_lrts_share_the_variant_fit(written):
    """The interaction test's reduced model is the variant itself: same ML log-likelihood."""
    lrt = pd.read_csv(written['chivolchange_lrt'], sep='\t').set_index('test')
    assert lrt.loc['volume_change:rim', 'loglik_reduced'] == pytest.approx(
        lrt.loc['volume_change', 'loglik_full'], rel=1e-12)


def test_group_errors(paper_cohort, tmp_path):
    out, bids, _, _ = paper_cohort
    with pytest.raises(ModelError, match='no sub-\\*/sub-\\*_lesions.tsv'):
        run_group_level(tmp_path, bids)
    with pytest.raises(ModelError, match='participants.tsv not found'):
        run_group_level(out, tmp_path)
    with pytest.raises(ModelError, match='must be below the number of distinct lesion ages.*'
                                         'support at most degree 8'):
        run_group_level(out, bids, GroupModelOptions(degree=9, figures=False))


def test_tables_are_read_in_one_pass_and_a_bad_one_is_named(paper_cohort, tmp_path):
    out, _, lesions, _ = paper_cohort
    tables = sorted(out.glob('sub-*/sub-*_lesions.tsv'))
    merged = read_lesion_tables(tables)
    assert len(merged) == len(lesions) and merged['lesion_id'].iloc[0] == '1'  # kept as text
    bad = tmp_path / 'sub-x_lesions.tsv'
    bad.write_text(tables[0].read_text().splitlines()[0] + '\n1\t2\n' + 'a\t' * 40 + '\n')
    with pytest.raises(ModelError, match='sub-x_lesions.tsv'):
        read_lesion_tables([*tables, bad])


def test_precedence_flag_over_config_over_default():
    assert group_options().degree == 8
    assert group_options({'degree': 5}).degree == 5
    assert group_options({'degree': 5}, degree=3).degree == 3  # the flag wins
    assert group_options({'covariates': ['edss']}, covariates=[]).covariates == ()
    with pytest.raises(OptionError, match='group.degre: unknown option; known: .*degree'):
        group_options({'degre': 5})
    with pytest.raises(OptionError, match="group.inference: must be one of 'satterthwaite'"):
        group_options({'inference': 'kenward'})
    with pytest.raises(OptionError, match='group.degree: must be an integer'):
        group_options({'degree': 'eight'})


@pytest.mark.parametrize('section, key', [({'degre': 5}, 'group.degre'),
                                          ({'degree': [8]}, 'group.degree'),
                                          ({'binning': 'edges'}, 'group')])
def test_bad_group_config_exits_2_naming_the_key(tmp_path, capsys, section, key):
    config = tmp_path / 'params.json'
    config.write_text(json.dumps({'group': section}))
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path), str(tmp_path / 'out'), 'group', '--config', str(config)])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert key in err and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()  # refused before anything ran


def test_command_line_flag_wins_over_config(paper_cohort, tmp_path):
    """--poly-degree 4 beats the config's degree 3; the config's other keys still apply."""
    out, bids, _, _ = paper_cohort
    copy = tmp_path / 'derivatives'
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns('group'))
    config = tmp_path / 'params.json'
    config.write_text(json.dumps({'group': {'degree': 3, 'figures': False,
                                            'inference': 'wald'}}))
    code = main([str(bids), str(copy), 'group', '--skip-bids-validation', '--config',
                 str(config), '--poly-degree', '4', '--covariates', 'edss', 'sex'])
    assert code == 0
    summary = json.loads((copy / 'group' / 'group_summary.json').read_text())
    assert summary['options']['degree'] == 4 and summary['options']['inference'] == 'wald'
    assert summary['susceptibility_model']['factor_levels'] == {'sex': ['F', 'M']}
    assert not list((copy / 'group').glob('*.png'))
