"""The group report from a real group-level run: model, Table, tests, figures."""

import re

import pandas as pd

from lesionqsm.report.group import paper_table


def test_group_level_ran_and_report_lists_the_model(group_run):
    assert group_run.code == 0
    html = group_run.report.read_text()
    assert group_run.report == group_run.out / 'group.html'
    assert 'chi_rel_ppb ~ poly(lesion_age, 1) * rim + (1 | patient) + (1 | patient:lesion)' \
        in html
    assert '<th>Patients</th><td>6</td>' in html
    assert '<th>Lesions</th><td>12 (rim+ ' in html
    assert f'<th>Lesion visits (observations)</th><td>{len(group_run.lesions)}</td>' in html
    assert '<th>Covariates</th><td>none</td>' in html


def test_table_shows_the_fitted_means_written(group_run):
    means = pd.read_csv(group_run.out / 'group' / 'group_desc-chi_fittedmeans.tsv', sep='\t')
    html = group_run.report.read_text()
    section = html.split('id="model-chi"')[1].split('</section>')[0]
    for _, row in means[means['rim'] == 'positive'].iterrows():
        cell = f"{row['estimate']:.2f} ({row['ci_low']:.2f}, {row['ci_high']:.2f})"
        assert cell in section, cell
    lrt = pd.read_csv(group_run.out / 'group' / 'group_desc-chi_lrt.tsv', sep='\t')
    for test in lrt['test']:
        assert f'<td>{test}</td>' in section
    coefficients = pd.read_csv(group_run.out / 'group' / 'group_desc-chi_coefficients.tsv',
                               sep='\t')
    for term in coefficients['term']:
        assert f'<td>{term}</td>' in section


def test_group_figures_are_referenced_and_exist(group_run):
    html = group_run.report.read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert 'group/group_desc-chi_trajectory.svg' in sources
    assert 'group/figures/group_desc-chi_observed.svg' in sources
    for src in sources:
        assert (group_run.out / src).is_file(), src
    # the group level's figure carries its caption, shown under it
    assert 'no covariates in the model' in html


def test_extrapolated_ages_are_kept_apart():
    means = pd.DataFrame({
        'age_years': [0.0, 0.0, 0.0, 6.0, 6.0, 6.0],
        'rim': ['positive', 'negative', 'difference'] * 2,
        'n_lesions': [3, 4, 7, 0, 0, 0],
        'estimate': [10.0, 5.0, -5.0, 20.0, 1.0, -19.0],
        'ci_low': [8.0, 3.0, -8.0, 2.0, -9.0, -40.0],
        'ci_high': [12.0, 7.0, -2.0, 38.0, 11.0, 2.0],
        'p_value': [None, None, 0.0004, None, None, 0.08],
        'extrapolated': [False, False, False, True, True, True],
    })
    header, observed, extrapolated = paper_table(means)
    assert header[0] == 'Lesion age (y)'
    assert observed == [['0', '10.00 (8.00, 12.00)', '3', '5.00 (3.00, 7.00)', '4',
                         '-5.00 (-8.00, -2.00)', '< 0.001']]
    assert [row[0] for row in extrapolated] == ['6']


def test_group_citation_describes_the_model(group_run):
    md = group_run.citation['md'].read_text()
    assert 'degree-1 orthogonal polynomial in lesion age' in md
    assert 'no covariates' in md
    assert f'on {len(group_run.lesions)} lesion visits of 12 lesions in 6 patients' in md
