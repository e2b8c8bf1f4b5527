"""Reuse a subject report's figures when nothing they are drawn from has changed.

Drawing the figures (matplotlib, SVG) is most of the time a subject report takes: about
0.3 s per figure, 20 figures for a subject of 3 visits. A rerun of the participant level that
changes nothing would draw them all again, the same pictures. The figures depend only on
files: the subject's derivatives, its raw images and its lesion annotations. This cache
records a *fingerprint* of those files (each file's path, size and modification time in ns,
as nipype's ``timestamp`` hashing does), of the figure files written, and of lesionqsm's
version and report code; when the fingerprint is the same at the next report, the figures'
list and notes are read back instead of drawn. The HTML page itself is always rendered
again (it shows the latest run's log).

Trade-off (the same as ``timestamp`` hashing of nipype's cache): a file rewritten with the
same size and modification time is not noticed. The derivatives sinks leave a file that
already holds the right bytes untouched, so a rerun that changes nothing keeps every time.
Deleting the cache file (it lives in the work directory) makes the next report draw
everything.
"""

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

from .. import __version__

LOGGER = logging.getLogger('lesionqsm.report')

#: Bump when the drawing of a figure changes without a change of lesionqsm's version.
CACHE_FORMAT = 1


def _stamp(path):
    """``[path, size, mtime_ns]`` of a file, or ``[path, None, None]`` if it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def _tree(folder, skip=None):
    """Every file under ``folder`` (sorted), leaving out the folder ``skip``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    skip = Path(skip) if skip is not None else None
    found = []
    for root, dirs, files in os.walk(folder):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(root, d) != skip]
        found += [Path(root, name) for name in files]
    return sorted(found)


def source_files(run, figures_dir):
    """The files a subject's figures are drawn from.

    Parameters
    ----------
    run : lesionqsm.report.collect.SubjectRun
        The subject as found on disk.
    figures_dir : Path
        Where the figures are written (left out: they are outputs).

    Returns
    -------
    list of Path
        The subject's derivatives folder (every file but the figures), the raw images and
        the lesion annotations the figures use, and the lesion table.
    """
    files = _tree(Path(run.output_dir) / run.label, skip=figures_dir)
    for visit in run.visits:
        files += [Path(p) for p in visit.files.values()]
        files += [Path(p) for p in (visit.magnitude, visit.flair, visit.lesion_dseg)
                  if p is not None]
    if run.lesions_dir is not None:
        files += _tree(Path(run.lesions_dir) / run.label)
    if run.lesion_table_path is not None:
        files.append(Path(run.lesion_table_path))
    return sorted(set(files))


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


class FigureCache:
    """The stored figures of one subject report, valid while its fingerprint holds.

    Parameters
    ----------
    path : str or Path
        The cache file (JSON), e.g. ``WORK_DIR/reports/sub-01_figures.json``.
    run : lesionqsm.report.collect.SubjectRun
        The subject as found on disk now.
    figures_dir : Path
        Where the report writes its figures.
    """

    def __init__(self, path, run, figures_dir):
        self.path = Path(path)
        self.output_dir = Path(run.output_dir)
        visits = [(v.label, v.has_qsm, v.expected) for v in run.visits]
        code = sorted(Path(__file__).parent.glob('*.py'))  # the report's drawing code
        self.key = _digest([CACHE_FORMAT, __version__, [_stamp(p) for p in code], visits,
                            [_stamp(p) for p in source_files(run, figures_dir)]])

    def load(self):
        """The stored sections if the fingerprint and every stored figure file still match.

        Returns
        -------
        dict or None
            ``{'visits': {label: (figures, notes)}, 'lesions': [LesionSection, ...]}``, or
            None when the figures must be drawn (no cache, another fingerprint, a figure file
            deleted or altered, an unreadable cache).
        """
        from .subject import Figure, LesionSection

        try:
            stored = json.loads(self.path.read_text())
            if stored['key'] != self.key:
                return None
            if any(_stamp(self.output_dir / path) != [str(self.output_dir / path), *stamp]
                   for path, *stamp in stored['figures']):
                return None
            visits = {label: ([Figure(**f) for f in item['figures']], list(item['notes']))
                      for label, item in stored['visits'].items()}
            lesions = [LesionSection(**{**item, 'figures': [Figure(**f)
                                                            for f in item['figures']]})
                       for item in stored['lesions']]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return {'visits': visits, 'lesions': lesions}

    def save(self, visits, lesions):
        """Store the sections just drawn, with the stamps of their figure files.

        Parameters
        ----------
        visits : dict
            Visit label -> (list of Figure, list of notes).
        lesions : list of LesionSection
        """
        figures = [f for figs, _ in visits.values() for f in figs]
        figures += [f for section in lesions for f in section.figures]
        stamps = [[f.src, *_stamp(self.output_dir / f.src)[1:]] for f in figures]
        content = {
            'key': self.key,
            'figures': stamps,
            'visits': {label: {'figures': [dataclasses.asdict(f) for f in figs],
                               'notes': list(notes)}
                       for label, (figs, notes) in visits.items()},
            'lesions': [dataclasses.asdict(section) for section in lesions],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f'.{self.path.name}.tmp')
            tmp.write_text(json.dumps(content, indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:  # the cache only saves time: never fail a report for it
            LOGGER.warning('%s: the report figures could not be cached: %s', self.path, exc)
