"""Console progress of the participant level: one line per finished step, with count and time.

``[37/122 00:41] sub-01 ses-02 dipole inversion (cached)``: the step's position among the
workflow's nodes, the time since the run started, where it ran (subject, visit) and what it
did in plain words.  A node is *cached* when nipype reused its result from the work directory
instead of running it again (its result was written before this run started).
"""

import logging
import re
import threading
import time
from pathlib import Path

LOGGER = logging.getLogger('lesionqsm')

_SUBJECT = re.compile(r'(?:^|\.)sub_([A-Za-z0-9]+)_wf(?:\.|$)')
_SESSION = re.compile(r'(?:^|\.)ses_([A-Za-z0-9]+)_')
_SESSION_PREFIX = re.compile(r'^ses_[A-Za-z0-9]+_')

#: Node name (without its ``ses_<label>_`` prefix) -> the step in plain words.
STEP_NAMES = {
    'gather_echoes': 'echo loading and checks',
    'prepare_echoes': 'echo loading and checks',
    'gather_decisions': 'step decisions gathered',
    'brain_mask': 'brain mask',
    'fit_echoes': 'multi-echo field fit',
    'unwrap': 'phase unwrapping',
    'r2star': 'R2* map',
    'csf_mask': 'CSF reference mask',
    'remove_background': 'background field removal',
    'invert_dipole': 'dipole inversion',
    'identity_xfm': 'baseline transform (identity)',
    'gre_to_baseline': 'GRE registration to baseline',
    'chi_to_baseline': 'χ resampling to baseline',
    'flair_to_gre': 'FLAIR registration to GRE',
    'flair_to_baseline': 'FLAIR transform to baseline',
    'lesions_to_baseline': 'lesion ROIs to baseline',
    'merge_chi': 'χ maps gathered',
    'merge_fractions': 'lesion ROIs gathered',
    'lesion_statistics': 'lesion statistics',
    'ds_chi': 'χ map written',
    'ds_chi_baseline': 'χ map (baseline space) written',
    'ds_r2star': 'R2* map written',
    'ds_brain_mask': 'brain mask written',
    'ds_csf_mask': 'CSF mask written',
    'ds_xfm': 'transform written',
    'ds_table': 'lesion table written',
    'fit_group_model': 'group model fit',
}


def step_name(node_name):
    """The plain name of a node's step, e.g. ``'ses_02_gre_to_baseline'`` -> registration."""
    key = _SESSION_PREFIX.sub('', node_name)
    return STEP_NAMES.get(key, key.replace('_', ' '))


def where(fullname):
    """``'sub-01 ses-02'`` from a node's full name (``lesionqsm_wf.sub_01_wf.ses_02_...``)."""
    subject = _SUBJECT.search(fullname)
    session = _SESSION.search(fullname)
    parts = []
    if subject:
        parts.append(f'sub-{subject.group(1)}')
    if session:
        parts.append(f'ses-{session.group(1)}')
    return ' '.join(parts)


def format_elapsed(seconds):
    """``mm:ss`` below one hour, ``h:mm:ss`` above."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes:02d}:{secs:02d}'


def _finished_before(node, instant):
    """True if the node's stored result was written before ``instant`` (POSIX s): cached.

    nipype rewrites ``result_<node>.pklz`` in the node's folder whenever the node runs and
    leaves it alone when the node is served from its cache, so one ``stat`` tells (reading the
    result back, a pickle of every output, cost ~5 ms per node on a rerun).
    """
    try:
        result_file = Path(node.output_dir(), f'result_{node.name}.pklz')
        return result_file.stat().st_mtime < instant
    except Exception:  # no result file (a failure), or no folder: not cached
        return False


class ProgressReporter:
    """nipype ``status_callback`` printing one line per finished node.

    Parameters
    ----------
    total : int, optional
        Number of nodes the run executes (see :meth:`for_workflow`); without it the count is
        printed alone.
    logger : logging.Logger, optional
        Where the lines go (INFO; FAILED steps at ERROR).
    clock : callable, optional
        Seconds since an arbitrary origin (``time.monotonic``); a test may pass its own.

    Examples
    --------
    >>> reporter = ProgressReporter(122)
    >>> plugin_args['status_callback'] = reporter  # doctest: +SKIP
    """

    def __init__(self, total=None, *, logger=None, clock=time.monotonic):
        self.total = int(total) if total else None
        self.logger = logger or LOGGER
        self._clock = clock
        self._origin = clock()
        self._wall_origin = time.time()
        self._lock = threading.Lock()
        self.done = 0
        self.lines = []

    @classmethod
    def for_workflow(cls, workflow, **kwargs):
        """A reporter whose total is the node count of ``workflow``'s execution graph.

        The nodes of every nested workflow but the ``IdentityInterface`` ones (nipype removes
        them before running), counted without building nipype's flat graph (a copy of every
        node, which ``workflow.run`` builds again).
        """
        from nipype.interfaces.utility import IdentityInterface

        try:
            total = sum(not isinstance(node.interface, IdentityInterface)
                        for node in workflow._get_all_nodes())
        except Exception:  # the count is a convenience: never stop a run for it
            total = None
        return cls(total, **kwargs)

    def line(self, node, status):
        """The progress line of a finished node, or None for a status that is not an end."""
        if status not in ('end', 'exception'):
            return None
        with self._lock:
            self.done += 1
            count = f'{self.done}/{self.total}' if self.total else f'{self.done}'
        elapsed = format_elapsed(self._clock() - self._origin)
        place = where(node.fullname)
        text = f'[{count} {elapsed}] {place + " " if place else ""}{step_name(node.name)}'
        if status == 'exception':
            return text + ' FAILED'
        if _finished_before(node, self._wall_origin):
            text += ' (cached)'
        return text

    def __call__(self, node, status):
        text = self.line(node, status)
        if text is None:
            return
        self.lines.append(text)
        level = logging.ERROR if status == 'exception' else logging.INFO
        self.logger.log(level, '%s', text)


_DEFAULT = []


def default_reporter():
    """The process-wide reporter of :func:`lesionqsm.cli.run.progress_callback` (no total)."""
    if not _DEFAULT:
        _DEFAULT.append(ProgressReporter())
    return _DEFAULT[0]


def closing_lines(output_dir, *, level, bids_dir=None, reports=(), citation=None):
    """What the console says at the end of a level: where things are and what comes next.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives dataset.
    level : {'participant', 'group'}
    bids_dir : str or Path, optional
        The raw dataset (for the next command).
    reports : sequence of str or Path
        HTML reports written.
    citation : str or Path, optional
        The methods boilerplate (``logs/CITATION.md``).

    Returns
    -------
    list of str
    """
    lines = [f'outputs: {output_dir}']
    lines += [f'report: {path}' for path in reports]
    if citation:
        lines.append(f'methods boilerplate: {citation}')
    if level == 'participant':
        lines.append(f'next: lesionqsm {bids_dir or "BIDS_DIR"} {output_dir} group')
    return lines
