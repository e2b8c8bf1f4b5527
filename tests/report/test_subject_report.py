"""Per-subject reports from a real run: every visit's and lesion's figures, failure reasons."""

import re

import pandas as pd
import pytest

FAILED = ('02', '03')  # (subject, session) the fixture makes fail (conftest.report_run)


def _images(html):
    return re.findall(r'<img src="([^"]+)"', html)


def _section(html, ident):
    """The HTML of ``<section id="ident" ...>`` up to the next section of the same kind."""
    start = html.index(f'<section id="{ident}"')
    end = html.find('</section>', start)
    return html[start:end]


def test_reports_are_written_where_fmriprep_puts_them(report_run):
    assert report_run.code == 1  # sub-02 ses-03 failed on purpose
    for subject, path in report_run.reports.items():
        assert path == report_run.out / f'sub-{subject}.html'
        html = path.read_text()
        sources = _images(html)
        assert sources, subject
        for src in sources:
            assert src.startswith(f'sub-{subject}/figures/') and src.endswith('.svg')
            assert (report_run.out / src).stat().st_size > 1000, src


@pytest.mark.parametrize('subject', ['01', '02'])
def test_every_visit_has_its_figures(report_run, subject):
    html = report_run.reports[subject].read_text()
    sessions = sorted(p.name for p in (report_run.bids / f'sub-{subject}').glob('ses-*'))
    assert len(sessions) == 3
    for index, session in enumerate(sessions):
        section = _section(html, session)
        sources = _images(section)
        if (subject, session[4:]) == FAILED:
            assert sources == []  # no χ map: nothing drawn
            continue
        expected = ['desc-chi_Chimap', 'desc-r2star_R2starmap', 'desc-masks_mask',
                    'desc-flairtogre_reg']
        if index:  # follow-ups: GRE over the baseline's edges, FLAIR after both transforms
            expected += ['desc-gretobaseline_reg', 'desc-flairtobaseline_reg']
        for kind in expected:
            assert any(f'sub-{subject}_{session}_{kind}.svg' in s for s in sources), (session,
                                                                                      kind)
        assert 'fixed window -0.15 to 0.15 ppm' in section
        assert '<th>lambda_</th><td>1000</td>' in section
        assert '<th>max_gn_iter</th><td>2</td>' in section  # the run's --config, not a default


def test_every_lesion_has_roi_and_trajectory(report_run):
    table = pd.read_csv(report_run.out / 'sub-01' / 'sub-01_lesions.tsv', sep='\t',
                        dtype={'lesion_id': str})
    html = report_run.reports['01'].read_text()
    lesions = sorted(table['lesion_id'].unique())
    assert lesions
    for lesion in lesions:
        section = _section(html, f'lesion-{lesion}')
        sources = _images(section)
        assert f'sub-01/figures/sub-01_desc-lesion{lesion}_Chimap.svg' in sources
        assert f'sub-01/figures/sub-01_desc-lesion{lesion}_trajectory.svg' in sources
        assert 'NAWM shell (1-5 mm' in section
    # the lesion table is shown row by row: one row per lesion × visit
    table_html = html.split('<table id="lesion-table">')[1].split('</table>')[0]
    rows = table_html.count('<tr>') - 1
    assert rows == len(table)


def test_failed_visit_shows_its_reason(report_run):
    html = report_run.reports['02'].read_text()
    summary = _section(html, 'summary')
    assert re.search(r'ses-03</a></td>\s*<td>[^<]*</td>\s*<td class="status-failed">failed',
                     summary)
    section = _section(html, 'ses-03')
    reasons = re.findall(r'<div class="box error failure-reason">(.*?)</div>', section,
                         re.DOTALL)
    assert reasons
    text = ' '.join(reasons)
    # the crash of the node that read the echoes, with its error and its crash file
    assert re.search(r'\w+_echoes: \w+Error: .*9 voxels are NaN', text)
    assert 'logs/crash/crash-' in text
    for other in ('ses-01', 'ses-02'):
        assert 'failure-reason' not in _section(html, other)


def test_sub01_has_no_failure(report_run):
    html = report_run.reports['01'].read_text()
    assert 'failure-reason' not in html
    assert 'This subject failed' not in html


def test_citation_states_the_parameters_used(report_run):
    md = report_run.citation['md'].read_text()
    # the run's --config (2 Gauss-Newton steps of 20 CG iterations), not the defaults (10, 100)
    assert 'at most 2 Gauss-Newton iterations of at most 20 conjugate-gradient' in md
    assert 'λ = 1000, λ_CSF = 100' in md
    assert 'MEDI+0' in md and 'the ventricular CSF (5 maps)' in md  # 6 visits, 1 failed
    assert 'group-level' in md or 'not fitted in this output folder' in md
    bib = report_run.citation['bib'].read_text()
    for key in ('liu2018medi0', 'gorgolewski2011nipype', 'zhang2019ajnr'):
        assert f'@article{{{key},' in bib and f'[{key}]' in md
    assert report_run.citation['html'].read_text().count('<li id=') == bib.count('@')
