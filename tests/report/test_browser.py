"""Every report loads in a real browser (headless chromium): images, links, console, pixels.

Skipped without chromium, unless ``LESIONQSM_REQUIRE_BROWSER=1`` (CI) turns the skip into a
failure.  ``LESIONQSM_SCREENSHOT_DIR=docs`` also writes each report's screenshot there (the
README's pictures are made this way).
"""

import os
import shutil
from pathlib import Path

import pytest
from cdp_browser import Chromium, find_chromium, is_blank


@pytest.fixture(scope='module')
def browser():
    binary = find_chromium()
    if binary is None:
        message = 'chromium is not installed (bash .ci/chromium.sh installs it)'
        if os.environ.get('LESIONQSM_REQUIRE_BROWSER') == '1':
            pytest.fail(f'LESIONQSM_REQUIRE_BROWSER=1 but {message}')
        pytest.skip(message)
    with Chromium(binary) as chromium:
        yield chromium


def _check(browser, path, screenshot_name, *, min_images):
    result = browser.check(path)
    assert result.console_errors == [], result.console_errors
    assert result.failed_requests == [], result.failed_requests
    assert result.broken_images == [], result.broken_images
    assert result.n_images >= min_images
    assert result.missing_links == [], result.missing_links
    assert not is_blank(result.screenshot)
    target = os.environ.get('LESIONQSM_SCREENSHOT_DIR')
    if target and screenshot_name:
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / screenshot_name).write_bytes(result.screenshot)
    return result


def test_subject_reports_in_the_browser(browser, report_run):
    for subject, path in report_run.reports.items():
        result = _check(browser, path, f'report_sub-{subject}.png', min_images=10)
        assert f'sub-{subject}' in result.text
    assert 'Why this visit failed' in browser.check(report_run.reports['02']).text


def test_group_report_in_the_browser(browser, group_run):
    result = _check(browser, group_run.report, 'report_group.png', min_images=3)
    assert 'Fitted means with 95% confidence intervals' in result.text


def test_citation_in_the_browser(browser, report_run, group_run):
    result = _check(browser, group_run.citation['html'], 'report_citation.png', min_images=0)
    assert 'Methods boilerplate' in result.text
    _check(browser, report_run.citation['html'], None, min_images=0)


def test_broken_report_is_caught(browser, tmp_path, report_run):
    """The checks can fail: a report whose figure and link are gone is reported as such."""
    copy = tmp_path / 'out'
    shutil.copytree(report_run.out, copy, ignore=shutil.ignore_patterns('*.nii.gz'))
    figure = next((copy / 'sub-01' / 'figures').glob('*_desc-chi_Chimap.svg'))
    figure.unlink()
    (copy / 'sub-01' / 'sub-01_lesions.tsv').unlink()
    result = browser.check(copy / 'sub-01.html')
    assert any(figure.name in src for src in result.broken_images)
    assert any(link.endswith('sub-01_lesions.tsv') for link in result.missing_links)
