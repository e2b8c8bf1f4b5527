"""One bad visit or subject never stops the others; the end-of-run summary says why."""

import pandas as pd

from lesionqsm.cli.crashes import summarise_crashes


def test_corrupt_visit_fails_alone(tiny_copy, tmp_path, caplog, lesionqsm_cli):
    """A truncated phase image of sub-02 ses-02: sub-01 complete, sub-02's ses-01 done."""
    phase = sorted(tiny_copy.glob('sub-02/ses-02/anat/*echo-2_part-phase_MEGRE.nii.gz'))[0]
    payload = phase.read_bytes()
    phase.write_bytes(payload[: len(payload) // 3])
    out, work = tmp_path / 'out', tmp_path / 'work'
    code = lesionqsm_cli(tiny_copy, out, work, sessions=('01', '02'))
    assert code == 1
    summary = [r.getMessage() for r in caplog.records if 'subject(s) failed' in r.getMessage()]
    assert summary and 'sub-02' in summary[0] and phase.name in summary[0]
    assert (out / 'sub-01' / 'sub-01_lesions.tsv').exists()
    assert list(out.glob('sub-02/ses-01/anat/*_Chimap.nii.gz'))
    assert not list(out.glob('sub-02/ses-02/anat/*_Chimap.nii.gz'))
    table = pd.read_csv(out / 'sub-02' / 'sub-02_lesions.tsv', sep='\t')
    assert (table[table.session_id == 'ses-02'].status == 'no QSM at this visit').all()


def test_crash_summary_names_subject_visit_and_cause(tmp_path):
    crash_dir = tmp_path / 'crash'
    crash_dir.mkdir()
    (crash_dir / 'crash-20260101-000000-root-invert_dipole-abc.txt').write_text(
        'Node: lesionqsm_wf.sub_07_wf.ses_03_qsm_wf.invert_dipole\n'
        'Working directory: /work/x\n\nTraceback (most recent call last):\n'
        '  File "x.py", line 1, in <module>\n'
        'ValueError: the local field is empty inside the brain mask\n')
    causes = summarise_crashes(crash_dir)
    assert list(causes) == ['07']
    assert causes['07'].startswith('ses-03 invert_dipole failed: the local field is empty inside '
                                   'the brain mask (details: ')

