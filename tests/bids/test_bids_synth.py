"""Input discovery on the synthetic cohort (``lesionqsm.synth`` tiny preset, one subject)."""

import pandas as pd
import pytest

from lesionqsm.bids.layout import collect_participants, collect_subject


@pytest.fixture(scope='module')
def synth_bids(tmp_path_factory):
    from lesionqsm.synth.cohort import generate_cohort

    root = tmp_path_factory.mktemp('synth') / 'bids'
    generate_cohort(root, preset='tiny', seed=0, n_subjects=1, n_lesions=3)
    return root


@pytest.mark.slow
def test_synth_subject_discovered(synth_bids):
    """Every visit complete, no problem; lesion ages equal the generator's ground truth.

    The ground-truth table prints ages with 7 significant digits, hence abs=1e-6 years.
    """
    from lesionqsm.synth.cohort import PRESETS

    assert collect_participants(synth_bids) == ['01']
    data = collect_subject(synth_bids, '01')
    assert data.problems == [] and data.lesion_errors == []
    times = [s.acq_time for s in data.sessions]
    assert times == sorted(times) and len(times) == 3
    for session in data.sessions:
        assert session.has_qsm_input and session.flair and session.t1w and session.t1w_gd
        assert session.megre.echo_times == pytest.approx(PRESETS['tiny'].echo_times, abs=1e-9)
        assert session.megre.field_strength == 3.0 and session.megre.phase_units == 'rad'
        assert session.lesion_dseg is not None

    truth = pd.read_csv(synth_bids / 'derivatives/groundtruth/sub-01/sub-01_lesions.tsv',
                        sep='\t')
    assert sorted(data.lesions['lesion_id']) == sorted(truth['lesion_id'].unique())
    detected = dict(zip(data.lesions['lesion_id'], data.lesions['detected_session'],
                        strict=True))
    for row in truth.itertuples():
        visit = data.session(row.session_id)
        detection = data.session(detected[row.lesion_id]).acq_time
        age = (visit.acq_time - detection).total_seconds() / 86400 / 365.25  # DESIGN.md
        assert age == pytest.approx(row.lesion_age_years, abs=1e-6)
