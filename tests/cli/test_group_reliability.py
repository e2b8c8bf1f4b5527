"""The group level names the lesion-visits measured where χ is not reliable."""

import pandas as pd

from lesionqsm.cli.group import unreliable_observations


def test_flagged_rows_are_named_whatever_their_parsed_type():
    """``chi_reliable`` is read as bool when a table holds only true/false, as text with n/a."""
    rows = {'participant_id': ['sub-01', 'sub-01', 'sub-02'], 'lesion_id': [1, 2, 1],
            'session_id': ['ses-01', 'ses-02', 'ses-01']}
    as_bool = pd.DataFrame({**rows, 'chi_reliable': [True, False, True]})
    as_text = pd.DataFrame({**rows, 'chi_reliable': ['true', 'n/a', 'false']})
    assert unreliable_observations(as_bool) == ['sub-01 lesion 2 ses-02']
    assert unreliable_observations(as_text) == ['sub-02 lesion 1 ses-01']


def test_tables_without_the_column_flag_nothing():
    table = pd.DataFrame({'participant_id': ['sub-01'], 'lesion_id': [1],
                          'session_id': ['ses-01']})
    assert unreliable_observations(table) == []
