"""A tiny synthetic cohort, generated once per test session, shared by the workflow tests."""

import shutil

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
