"""A subject report reuses its figures while the files they are drawn from are unchanged."""

import os
import shutil

from lesionqsm.report import subject as subject_report
from lesionqsm.report.collect import collect_subject
from lesionqsm.report.figure_cache import FigureCache


def _counting_draws(monkeypatch):
    """Count the figures written to SVG (each one drawn by matplotlib)."""
    drawn = []
    save = subject_report._save_svg

    def counting(fig, path):
        drawn.append(path.name)
        return save(fig, path)

    monkeypatch.setattr(subject_report, '_save_svg', counting)
    return drawn


def test_second_report_reuses_every_figure(report_run, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    shutil.copytree(report_run.out / 'sub-01', out / 'sub-01')
    shutil.copytree(report_run.out / 'logs', out / 'logs')
    shutil.copy2(report_run.out / 'dataset_description.json', out)
    cache = tmp_path / 'work' / 'reports' / 'sub-01_figures.json'
    drawn = _counting_draws(monkeypatch)

    first = subject_report.write_subject_report(out, '01', bids_dir=report_run.bids,
                                                figure_cache=cache)
    n_figures = len(drawn)
    assert n_figures >= 3 * 3  # χ, R2* and masks at each of the 3 visits, at least
    html = first.read_text()
    second = subject_report.write_subject_report(out, '01', bids_dir=report_run.bids,
                                                 figure_cache=cache)
    assert len(drawn) == n_figures  # nothing drawn again
    assert second.read_text() == html  # the same page: same figures, captions and notes

    figures = out / 'sub-01' / 'figures'

    def valid():
        run = collect_subject(out, '01', bids_dir=report_run.bids)
        return FigureCache(cache, run, figures).load() is not None

    chimap = next((out / 'sub-01' / 'ses-02').rglob('*_Chimap.nii.gz'))
    stat = chimap.stat()
    os.utime(chimap, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not valid()  # a source image with another time: drawn again
    os.utime(chimap, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert valid()

    svg = next(figures.glob('*.svg'))
    svg.unlink()
    assert not valid()  # a deleted figure: all drawn again, as at the first report
