"""Fixtures shared by the workflow and CLI tests: one tiny synthetic cohort per test session.

``tiny_cohort`` is generated once (15-45 s); tests that modify inputs work on ``tiny_copy``.
``tiny_ses01_run`` is one uninterrupted participant run (sub-01 and sub-02, ses-01 only) whose
work directory later runs of the same dataset reuse through nipype's cache.
"""

import logging
import shutil
from types import SimpleNamespace

import pytest


@pytest.fixture(scope='session')
def tiny_cohort(tmp_path_factory):
    """The ``tiny`` preset of :mod:`lesionqsm.synth` (seed 0): a BIDS dataset with ground truth."""
    from lesionqsm.synth.cohort import generate_cohort

    root = tmp_path_factory.mktemp('tiny_cohort') / 'bids'
    generate_cohort(root, preset='tiny', seed=0)
    return root


@pytest.fixture
def tiny_copy(tiny_cohort, tmp_path):
    """A private, writable copy of the tiny cohort (for tests that modify inputs)."""
    target = tmp_path / 'bids'
    shutil.copytree(tiny_cohort, target)
    return target


def run_lesionqsm(bids, out, work, *extra, subjects=('01', '02'), sessions=('01',)):
    """Run ``lesionqsm BIDS OUT participant`` in this process; returns the exit code.

    Restricted to ``subjects`` and ``sessions`` (None: all), 2 processes, no BIDS validation,
    nipype polling every 0.2 s (its 2 s default costs seconds per graph level on cached runs).
    The log-file handler the CLI adds to the root logger is removed afterwards, so runs in one
    test session do not write into each other's logs.
    """
    from lesionqsm.cli import main

    argv = [str(bids), str(out), 'participant', '-w', str(work), '--nprocs', '2',
            '--skip-bids-validation', '--plugin-args', '{"poll_sleep_duration": 0.2}']
    if subjects:
        argv += ['--participant-label', *subjects]
    if sessions:
        argv += ['--session-label', *sessions]
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        return main(argv + [str(e) for e in extra])
    finally:
        for handler in root.handlers[:]:
            if handler not in before and isinstance(handler, logging.FileHandler):
                root.removeHandler(handler)
                handler.close()


@pytest.fixture(scope='session')
def tiny_ses01_run(tiny_cohort, tmp_path_factory):
    """One clean run of sub-01 and sub-02, visit ses-01, on a session-wide copy of the cohort.

    Returns a namespace with ``bids`` (the copy), ``out``, ``work`` and ``code`` (exit code).
    Tests may alter files of ``bids`` only if they restore them byte for byte with their
    modification times (``shutil.copy2`` from ``tiny_cohort``), so the cache in ``work`` stays
    valid for everyone.
    """
    root = tmp_path_factory.mktemp('tiny_ses01_run')
    bids, out, work = root / 'bids', root / 'out', root / 'work'
    shutil.copytree(tiny_cohort, bids)
    code = run_lesionqsm(bids, out, work)
    return SimpleNamespace(bids=bids, out=out, work=work, code=code)


@pytest.fixture(scope='session')
def lesionqsm_cli():
    """:func:`run_lesionqsm` for test modules (conftest modules are not importable by name)."""
    return run_lesionqsm


@pytest.fixture
def restore_nipype_config():
    """Put nipype's global execution settings back after a test that configures them."""
    from nipype import config as nipype_config

    saved = {k: nipype_config.get('execution', k) for k in nipype_config._sections['execution']}
    yield
    for key, value in saved.items():
        nipype_config.set('execution', key, value)
