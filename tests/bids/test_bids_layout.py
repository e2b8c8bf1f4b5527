"""Input discovery on hand-made BIDS trees: good layouts, layouts seen in the wild, bad inputs.

Every bad-input test checks that the message names the offending file (its basename) and the
problem.
"""

import gzip
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from bids_tree import write_json, write_nifti

from lesionqsm.bids.layout import InputError, collect_participants, collect_subject


def test_standard_subject(standard_bids):
    """Visits ordered by acq_time (ses-02 first), echoes, metadata, anatomy and lesions."""
    data = collect_subject(standard_bids.root, 'sub-01')
    assert data.subject == '01'
    assert [s.session_id for s in data.sessions] == ['02', '01']
    first = data.sessions[0]
    assert first.acq_time == datetime(2020, 1, 1, 9, 0, 0)
    gre = first.megre
    assert gre.echo_times == pytest.approx([0.004, 0.009, 0.014], abs=1e-12)
    assert gre.delta_te == pytest.approx(0.005, abs=1e-12)
    assert gre.field_strength == 3.0 and gre.phase_units == 'rad' and gre.has_phase
    assert [Path(p).name.split('_')[2] for p in gre.mag_files] == ['echo-1', 'echo-2', 'echo-3']
    assert all('part-phase' in p for p in gre.phase_files)
    assert first.flair.endswith('sub-01_ses-02_FLAIR.nii.gz')
    assert first.t1w.endswith('sub-01_ses-02_T1w.nii.gz')
    assert first.t1w_gd.endswith('sub-01_ses-02_ce-gadolinium_T1w.nii.gz')
    assert first.lesion_dseg.endswith('sub-01_ses-02_space-FLAIR_desc-lesions_dseg.nii.gz')
    assert data.baseline is first
    assert data.lesion_errors == [] and data.problems == []
    assert data.lesions.to_dict('list') == {
        'lesion_id': [1, 2], 'detected_session': ['02', '01'], 'rim': ['positive', 'negative'],
        'enhancement': ['shell', 'nodular']}


def test_collect_participants(standard_bids):
    standard_bids.megre('10', '01')
    standard_bids.megre('2', '01')
    root = standard_bids.root
    assert collect_participants(root) == ['01', '2', '10']
    assert collect_participants(root, ['sub-10', '01']) == ['10', '01']
    with pytest.raises(InputError, match=r'participant label\(s\) 03 not found'):
        collect_participants(root, ['01', '03'])
    with pytest.raises(InputError, match='no dataset_description.json'):
        collect_participants(root / 'sub-01')


def test_zero_padded_echoes_sorted_by_number(tiny_bids):
    """echo-01 .. echo-11: sorted by number, so echo-10 and echo-11 come last."""
    tiny_bids.megre('01', '01', n_echoes=11, echo_pad=2, dte=0.002)
    gre = collect_subject(tiny_bids.root, '01').sessions[0].megre
    labels = [Path(p).name.split('_')[2] for p in gre.mag_files]
    assert labels[-3:] == ['echo-09', 'echo-10', 'echo-11']
    assert np.all(np.diff(gre.echo_times) > 0) and gre.n_echoes == 11


def test_duplicate_echo_labels_refused(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    for path in paths['mag'][:1]:
        copy = path.with_name(path.name.replace('echo-1', 'echo-01'))
        copy.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match='are both magnitude echo 1') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-01_part-mag_MEGRE.nii.gz' in str(err.value)


def test_metadata_inherited_from_top_level(tiny_bids):
    """MagneticFieldStrength and phase Units only in top-level JSON files (inheritance)."""
    tiny_bids.megre('01', '01', field_strength=None, units=None)
    write_json(tiny_bids.root / 'MEGRE.json', {'MagneticFieldStrength': 7.0})
    write_json(tiny_bids.root / 'part-phase_MEGRE.json', {'Units': 'rad'})
    gre = collect_subject(tiny_bids.root, '01', check_data=False).sessions[0].megre
    assert gre.field_strength == 7.0 and gre.phase_units == 'rad'


def test_imaging_frequency_gives_field_strength(tiny_bids):
    """B0 = 127.74 MHz / 42.577478 MHz/T; the division is exact to float precision."""
    tiny_bids.megre('01', '01', field_strength=None)
    write_json(tiny_bids.root / 'MEGRE.json', {'ImagingFrequency': 127.74})
    data = collect_subject(tiny_bids.root, '01')
    gre = data.sessions[0].megre
    assert gre.field_strength == pytest.approx(127.74 / 42.577478, rel=1e-12)
    assert gre.field_strength_source == 'ImagingFrequency'
    assert any('B0 = 3.0002 T from ImagingFrequency' in p for p in map(str, data.problems))


def test_missing_field_strength(tiny_bids):
    tiny_bids.megre('01', '01', field_strength=None)
    with pytest.raises(InputError, match='neither MagneticFieldStrength nor ImagingFrequency') \
            as err:
        collect_subject(tiny_bids.root, '01')
    assert 'sub-01_ses-01_echo-1_part-mag_MEGRE.nii.gz' in str(err.value)
    data = collect_subject(tiny_bids.root, '01', field_strength_override=1.5)
    assert data.sessions[0].megre.field_strength == 1.5
    assert any('using the override 1.5 T' in p for p in map(str, data.problems))


def test_field_strength_out_of_range(tiny_bids):
    tiny_bids.megre('01', '01', field_strength=3000)
    with pytest.raises(InputError, match=r'field strength 3000 T .* outside') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE.nii.gz' in str(err.value)


def test_missing_echo_time(tiny_bids):
    paths = tiny_bids.megre('01', '01')
    sidecar = paths['mag'][1].with_name(paths['mag'][1].name.replace('.nii.gz', '.json'))
    write_json(sidecar, {'MagneticFieldStrength': 3.0})
    with pytest.raises(InputError, match='EchoTime is missing') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'sub-01_ses-01_echo-2_part-mag_MEGRE.nii.gz' in str(err.value)


def test_echo_time_in_milliseconds(tiny_bids):
    tiny_bids.megre('01', '01', te0=4.0, dte=5.0)
    with pytest.raises(InputError, match='looks like milliseconds') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE.nii.gz' in str(err.value)


def test_echo_times_out_of_order(tiny_bids):
    """Echo numbers that disagree with EchoTime: the echoes are used in EchoTime order."""
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    for part in ('mag', 'phase'):
        sidecar = paths[part][1].with_name(paths[part][1].name.replace('.nii.gz', '.json'))
        write_json(sidecar, {'EchoTime': 0.002, 'MagneticFieldStrength': 3.0, 'Units': 'rad'})
    data = collect_subject(tiny_bids.root, '01')
    gre = data.sessions[0].megre
    assert gre.echo_times == [0.002, 0.004]
    assert [f.split('_')[-3] for f in gre.mag_files] == ['echo-2', 'echo-1']
    assert [f.split('_')[-3] for f in gre.phase_files] == ['echo-2', 'echo-1']
    assert any('echo numbers do not follow EchoTime' in p for p in map(str, data.problems))


def test_magnitude_only_visit(tiny_bids):
    """A visit without phase is kept (registration can use it) with 'no phase data'."""
    tiny_bids.megre('01', '01')
    tiny_bids.megre('01', '02', phase=False)
    tiny_bids.sessions_tsv('01', [('ses-01', '2021-01-01'), ('ses-02', '2020-01-01')])
    data = collect_subject(tiny_bids.root, '01')
    no_phase = data.session('ses-02')
    assert no_phase.megre.phase_files == [] and not no_phase.megre.has_phase
    assert not no_phase.has_qsm_input
    assert any('no phase data' in p for p in map(str, no_phase.problems))
    assert any(p.startswith('ses-02: no phase data') for p in map(str, data.problems))
    assert data.baseline.session_id == '01'


def test_single_echo_gre_as_t1w(tiny_bids):
    """part-mag/part-phase T1w is a single-echo GRE: refused unless the single-echo path."""
    tiny_bids.megre('01', '01', n_echoes=1, suffix='T1w')
    with pytest.raises(InputError, match='only 1 echo') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'sub-01_ses-01_part-mag_T1w.nii.gz' in str(err.value)
    data = collect_subject(tiny_bids.root, '01', allow_single_echo=True)
    gre = data.sessions[0].megre
    assert gre.single_echo and gre.n_echoes == 1 and gre.delta_te is None
    assert gre.echo_times == [0.004]
    assert data.sessions[0].t1w is None  # the GRE parts are not the anatomical T1w


def test_single_echo_megre_accepted(tiny_bids):
    """A one-echo MEGRE runs the single-echo chain; the visit's notes say what it lacks."""
    tiny_bids.megre('01', '01', n_echoes=1)
    data = collect_subject(tiny_bids.root, '01')
    gre = data.sessions[0].megre
    assert gre.single_echo and gre.n_echoes == 1 and gre.has_phase
    assert any('1 echo (TE 4 ms)' in p and 'no R2*' in p for p in map(str, data.problems))


def test_echoes_with_different_shapes(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    write_nifti(paths['mag'][1], shape=(4, 4, 4))
    with pytest.raises(InputError, match=r'two echoes of one GRE.*shapes \(4, 4, 3\) vs '
                       r'\(4, 4, 4\)') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE' in str(err.value) and 'echo-2_part-mag' in str(err.value)


def test_echoes_with_different_affines(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    shifted[0, 3] = 5.0
    write_nifti(paths['mag'][1], affine=shifted)
    with pytest.raises(InputError, match='different affines') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-2_part-mag_MEGRE.nii.gz' in str(err.value)


def test_magnitude_and_phase_on_different_grids(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    write_nifti(paths['phase'][0], np.zeros((4, 4, 5)), shape=(4, 4, 5))
    with pytest.raises(InputError, match='magnitude and phase of one echo') as err:
        collect_subject(tiny_bids.root, '01')
    message = str(err.value)
    assert 'echo-1_part-mag_MEGRE.nii.gz' in message
    assert 'echo-1_part-phase_MEGRE.nii.gz' in message


def test_phase_echo_missing(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=3)
    paths['phase'][2].unlink()
    with pytest.raises(InputError, match='magnitude echo 3 has no phase image') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-3_part-mag_MEGRE.nii.gz' in str(err.value)


def test_phase_radians_out_of_range_refused(tiny_bids):
    """Scanner integers labelled 'rad' are refused, not silently rescaled."""
    tiny_bids.megre('01', '01', phase_data=np.linspace(-4096, 4095, 48).reshape(4, 4, 3))
    with pytest.raises(InputError, match=r'spans \[-4096, 4095\].*"Units": "arbitrary"') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-phase_MEGRE.nii.gz' in str(err.value)


def test_phase_zero_to_two_pi_accepted(tiny_bids):
    tiny_bids.megre('01', '01', phase_data=np.linspace(0, 2 * np.pi, 48).reshape(4, 4, 3))
    assert collect_subject(tiny_bids.root, '01').sessions[0].megre.phase_units == 'rad'


def test_phase_units_inferred_when_missing(tiny_bids):
    tiny_bids.megre('01', '01', units=None,
                    phase_data=np.linspace(-4096, 4095, 48).reshape(4, 4, 3))
    data = collect_subject(tiny_bids.root, '01')
    assert data.sessions[0].megre.phase_units == 'arbitrary'
    assert any('phase Units missing' in p and 'taken as siemens_signed' in p
               for p in map(str, data.problems))
    with pytest.raises(InputError, match='phase Units missing'):
        collect_subject(tiny_bids.root, '01', check_data=False)


def test_phase_units_degrees_refused(tiny_bids):
    tiny_bids.megre('01', '01', units='deg')
    with pytest.raises(InputError, match='phase Units .deg. is not') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'part-phase_MEGRE.nii.gz' in str(err.value)


def test_truncated_nifti(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    target = paths['phase'][1]
    raw = gzip.decompress(target.read_bytes())
    target.write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    with pytest.raises(InputError, match='not a readable NIfTI') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-2_part-phase_MEGRE.nii.gz' in str(err.value)


def test_all_zero_volume(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    write_nifti(paths['mag'][0], np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match='every voxel is zero') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE.nii.gz' in str(err.value)


def test_corrupt_sidecar(tiny_bids):
    paths = tiny_bids.megre('01', '01', n_echoes=2)
    sidecar = paths['mag'][0].with_name(paths['mag'][0].name.replace('.nii.gz', '.json'))
    sidecar.write_text('{"EchoTime": 0.0')
    with pytest.raises(InputError, match='not valid JSON') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE.json' in str(err.value)
    sidecar.write_text('[0.005]')
    with pytest.raises(InputError, match='must hold an object') as err:
        collect_subject(tiny_bids.root, '01')
    assert 'echo-1_part-mag_MEGRE.json' in str(err.value)


def test_non_strict_keeps_other_visits(tiny_bids):
    """strict=False: the broken visit carries its error, the good one is usable."""
    tiny_bids.megre('01', '01')
    tiny_bids.megre('01', '02', dte=0.0)  # three echoes at one echo time
    tiny_bids.sessions_tsv('01', [('ses-01', '2020-01-01'), ('ses-02', '2020-06-01')])
    data = collect_subject(tiny_bids.root, '01', strict=False)
    good, bad = data.sessions
    assert good.has_qsm_input and good.errors == []
    assert bad.megre is None and 'sub-01_ses-02_echo-1_part-mag_MEGRE.nii.gz' in str(bad.errors[0])


def test_no_session_level(tiny_bids):
    tiny_bids.megre('01', None)
    tiny_bids.anat('01', None, 'FLAIR')
    data = collect_subject(tiny_bids.root, '01')
    (only,) = data.sessions
    assert only.session_id is None and only.megre.n_echoes == 3
    assert only.flair.endswith('sub-01_FLAIR.nii.gz')


def test_session_label_filter(standard_bids):
    data = collect_subject(standard_bids.root, '01', session_label='ses-01')
    assert [s.session_id for s in data.sessions] == ['01']
    # lesion 1 was detected at ses-02, which is not processed: dropped and reported
    assert data.lesions['lesion_id'].tolist() == [2]
    with pytest.raises(InputError, match=r'session label\(s\) 07 not found'):
        collect_subject(standard_bids.root, '01', session_label=['07'])
    with pytest.raises(InputError, match='participant 05 not found'):
        collect_subject(standard_bids.root, '05')


def test_several_runs_last_used(tiny_bids):
    tiny_bids.megre('01', '01', n_echoes=2)
    flair = tiny_bids.anat_dir('01', '01')
    write_nifti(flair / 'sub-01_ses-01_run-1_FLAIR.nii.gz')
    write_nifti(flair / 'sub-01_ses-01_run-2_FLAIR.nii.gz')
    data = collect_subject(tiny_bids.root, '01')
    assert data.sessions[0].flair.endswith('run-2_FLAIR.nii.gz')
    assert any('several FLAIR acquisitions (2)' in p for p in map(str, data.problems))


def test_echo_time_from_sidecar_is_seconds():
    """Guard on the unit threshold: 0.5 s is the longest echo time accepted."""
    from lesionqsm.bids.metadata import MAX_ECHO_TIME_S, echo_time_s

    assert echo_time_s({'EchoTime': MAX_ECHO_TIME_S}, path='x') == 0.5
    with pytest.raises(InputError, match='x: EchoTime .abc. is not a number'):
        echo_time_s({'EchoTime': 'abc'}, path='x')
