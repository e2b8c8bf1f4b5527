"""Visit dates and order: sessions.tsv, scans.tsv fallback, label fallback, ties."""

from datetime import datetime

import pytest
from bids_tree import write_tsv

from lesionqsm.bids.layout import collect_subject
from lesionqsm.bids.sessions import order_sessions, parse_acq_time


def test_parse_acq_time():
    assert parse_acq_time('2020-03-04T05:06:07') == datetime(2020, 3, 4, 5, 6, 7)
    assert parse_acq_time('2020-03-04 05:06:07.5') == datetime(2020, 3, 4, 5, 6, 7, 500000)
    assert parse_acq_time('2020-03-04') == datetime(2020, 3, 4)
    # time zones are converted to UTC: 01:00+02:00 is 23:00 UTC the day before
    assert parse_acq_time('2020-03-04T01:00:00+02:00') == datetime(2020, 3, 3, 23)
    assert parse_acq_time('2020-03-04T01:00:00Z') == datetime(2020, 3, 4, 1)
    assert parse_acq_time('n/a') is None and parse_acq_time('') is None
    with pytest.raises(ValueError, match="'03/04/2020' is not an ISO 8601"):
        parse_acq_time('03/04/2020')


def test_order_ties_and_missing():
    ordered, problems = order_sessions({'2': datetime(2020, 1, 1), '1': datetime(2020, 1, 1),
                                        '0': datetime(2019, 1, 1)})
    assert ordered == ['0', '1', '2']
    assert list(map(str, problems)) == [
        'ses-1 and ses-2 share acq_time 2020-01-01T00:00:00: ordered by label, lesion age '
        'between them is 0']
    ordered, problems = order_sessions({'10': datetime(2019, 1, 1), '2': None})
    assert ordered == ['2', '10']
    assert 'no usable acq_time for ses-2' in str(problems[0])


def _two_visits(bids):
    bids.megre('01', 'a', n_echoes=2)
    bids.megre('01', 'b', n_echoes=2)


def test_scans_tsv_fallback(tiny_bids):
    """Without sessions.tsv the earliest acq_time of each visit's scans.tsv orders the visits."""
    _two_visits(tiny_bids)
    sub = tiny_bids.root / 'sub-01'
    write_tsv(sub / 'ses-a' / 'sub-01_ses-a_scans.tsv', ['filename', 'acq_time'],
              [('anat/x.nii.gz', '2021-05-01T10:00:00'), ('anat/y.nii.gz', '2021-05-01T09:00:00')])
    write_tsv(sub / 'ses-b' / 'sub-01_ses-b_scans.tsv', ['filename', 'acq_time'],
              [('anat/x.nii.gz', '2020-05-01T10:00:00')])
    data = collect_subject(tiny_bids.root, '01')
    assert [s.session_id for s in data.sessions] == ['b', 'a']
    assert data.sessions[1].acq_time == datetime(2021, 5, 1, 9)
    assert data.problems == []


def test_unparsable_acq_time_reported_then_scans_fallback(tiny_bids):
    _two_visits(tiny_bids)
    tiny_bids.sessions_tsv('01', [('ses-a', 'yesterday'), ('ses-b', '2020-01-01')])
    data = collect_subject(tiny_bids.root, '01')
    assert [s.session_id for s in data.sessions] == ['a', 'b']   # label order
    assert data.sessions[0].acq_time is None
    messages = "\n".join(map(str, data.problems))
    assert "sub-01_sessions.tsv: line 2 (a): acq_time 'yesterday' is not an ISO 8601" in messages
    assert 'no usable acq_time for ses-a' in messages
    # a scans.tsv for the visit fills the gap
    write_tsv(tiny_bids.root / 'sub-01' / 'ses-a' / 'sub-01_ses-a_scans.tsv',
              ['filename', 'acq_time'], [('anat/x.nii.gz', '2021-01-01')])
    data = collect_subject(tiny_bids.root, '01')
    assert [s.session_id for s in data.sessions] == ['b', 'a']


def test_no_dates_at_all_orders_by_label(tiny_bids):
    for ses in ('2', '10', '1'):
        tiny_bids.megre('01', ses, n_echoes=2)
    data = collect_subject(tiny_bids.root, '01')
    assert [s.session_id for s in data.sessions] == ['1', '2', '10']
    assert all(s.acq_time is None for s in data.sessions)
    assert any('ordered by label and lesion ages cannot be computed' in p
               for p in map(str, data.problems))


def test_two_visits_same_date(tiny_bids):
    _two_visits(tiny_bids)
    tiny_bids.sessions_tsv('01', [('ses-b', '2020-01-01'), ('ses-a', '2020-01-01')])
    data = collect_subject(tiny_bids.root, '01')
    assert [s.session_id for s in data.sessions] == ['a', 'b']
    assert any('ses-a and ses-b share acq_time' in p for p in map(str, data.problems))


def test_sessions_tsv_without_acq_time_column(tiny_bids):
    _two_visits(tiny_bids)
    write_tsv(tiny_bids.root / 'sub-01' / 'sub-01_sessions.tsv', ['session_id', 'age'],
              [('ses-a', 30), ('ses-b', 31)])
    data = collect_subject(tiny_bids.root, '01')
    assert any('sub-01_sessions.tsv: no acq_time column' in p for p in map(str, data.problems))
