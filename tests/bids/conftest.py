"""Fixtures: tiny hand-made BIDS trees (helpers in ``bids_tree``)."""

import pytest
from bids_tree import TinyBIDS, standard_subject


@pytest.fixture
def tiny_bids(tmp_path):
    """A builder on an empty dataset in ``tmp_path/bids``."""
    return TinyBIDS(tmp_path / 'bids')


@pytest.fixture
def standard_bids(tiny_bids):
    standard_subject(tiny_bids)
    return tiny_bids
