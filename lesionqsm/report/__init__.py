"""Figures, per-subject and group HTML reports, and the methods boilerplate of a run.

Everything here reads what a run wrote to disk (the derivatives dataset, its logs and the
``group/`` folder), so reports can be made again at any time:

- :func:`write_subject_report` -> ``OUTPUT_DIR/sub-<label>.html`` (+ ``sub-<label>/figures/``)
- :func:`write_group_report` -> ``OUTPUT_DIR/group.html``
- :func:`write_citation` -> ``OUTPUT_DIR/logs/CITATION.md`` (+ ``.bib``, ``.html``)
"""

__all__ = ['write_subject_report', 'write_group_report', 'write_citation']


def write_subject_report(output_dir, subject, *, bids_dir=None, lesions_dir=None):
    """See :func:`lesionqsm.report.subject.write_subject_report`."""
    from .subject import write_subject_report as write

    return write(output_dir, subject, bids_dir=bids_dir, lesions_dir=lesions_dir)


def write_group_report(output_dir):
    """See :func:`lesionqsm.report.group.write_group_report`."""
    from .group import write_group_report as write

    return write(output_dir)


def write_citation(output_dir):
    """See :func:`lesionqsm.report.boilerplate.write_citation`."""
    from .boilerplate import write_citation as write

    return write(output_dir)
