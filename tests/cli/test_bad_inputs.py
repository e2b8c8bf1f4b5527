"""Bad inputs end to end through the command line (issue 7).

Every case runs ``lesionqsm BIDS OUT participant`` on sub-01 and sub-02, visit ses-01, with a
defect in sub-01 (or in the output folder). Failing cases must end with exit code 1 (2 for an
unusable output folder), a summary line that names the file and the problem, no Python
traceback, and sub-02's outputs exactly those of the clean run. The dataset and the nipype work
directory are those of the session-wide clean run (``tiny_ses01_run``): each test restores the
files it altered, so unchanged nodes come from the cache and a case costs seconds, not a run.

The discovery-level checks behind these cases are unit-tested in ``tests/bids``; here we check
what the user sees at the end of a run.
"""

import errno
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

ANAT = 'sub-01/ses-01/anat'
LESIONS_TSV = 'derivatives/lesions/sub-01/sub-01_lesions.tsv'
DSEG = 'derivatives/lesions/sub-01/ses-01/anat/sub-01_ses-01_space-FLAIR_dseg.nii.gz'


def gre(echo, part, subject='01'):
    """Path (relative to the dataset) of one ses-01 GRE image."""
    return (f'sub-{subject}/ses-01/anat/sub-{subject}_ses-01_echo-{echo}_part-{part}'
            '_MEGRE.nii.gz')


def sidecar(rel):
    return rel.replace('.nii.gz', '.json')


class Scratch:
    """The shared dataset, with edits that are undone (byte for byte) after the test."""

    def __init__(self, run, pristine, tmp_path, caplog, capsys):
        self.bids, self.pristine, self.reference = run.bids, pristine, run.out
        self.work, self.tmp_path = run.work, tmp_path
        self.caplog, self.capsys = caplog, capsys
        self.touched = set()
        self.out = tmp_path / 'out'

    def path(self, rel):
        """Absolute path of ``rel``, remembered for restoring."""
        self.touched.add(rel)
        return self.bids / rel

    def restore(self):
        for rel in self.touched:
            shutil.copy2(self.pristine / rel, self.bids / rel)

    def edit_json(self, rel, change):
        path = self.path(rel)
        meta = json.loads(path.read_text())
        change(meta)
        path.write_text(json.dumps(meta, indent=2))

    def edit_image(self, rel, change, *, dtype=None):
        """Rewrite an image as ``change(data, affine) -> (data, affine)``."""
        path = self.path(rel)
        img = nb.load(path)
        data, affine = change(np.asanyarray(img.dataobj).copy(), img.affine.copy())
        header = img.header.copy()
        header.set_data_dtype(dtype or data.dtype)
        nb.save(nb.Nifti1Image(data, affine, header), path)

    def append_line(self, rel, line):
        path = self.path(rel)
        path.write_text(path.read_text() + line + '\n')


class Outcome:
    """Exit code, log messages, console text, end-of-run summary and stderr of one CLI run."""

    def __init__(self, code, records, stderr):
        self.code, self.stderr = code, stderr
        self.messages = [r.getMessage() for r in records]
        summaries = [m for m in self.messages if 'subject(s) failed' in m]
        self.summary = summaries[-1] if summaries else ''
        # what the CLI's console handler prints (the log file gets more, tracebacks included)
        console = [h for h in logging.getLogger().handlers
                   if getattr(h, 'lesionqsm_console', False)]
        self.console = '\n'.join(console[0].format(r) for r in records
                                 if r.levelno >= console[0].level and console[0].filter(r)) \
            if console else ''

    def assert_clean(self):
        """No Python traceback reached the user (console or stderr)."""
        assert self.console or self.stderr
        assert 'Traceback' not in self.stderr and 'Traceback' not in self.console
        assert 'File "' not in self.console


@pytest.fixture
def scratch(tiny_ses01_run, tiny_cohort, tmp_path, caplog, capsys, lesionqsm_cli):
    assert tiny_ses01_run.code == 0, 'the clean reference run failed'
    state = Scratch(tiny_ses01_run, tiny_cohort, tmp_path, caplog, capsys)

    def run(*extra, subjects=('01', '02')):
        """Run the CLI on ``subjects``, visit ses-01, into ``state.out``."""
        caplog.clear()
        code = lesionqsm_cli(state.bids, state.out, state.work, *extra, subjects=subjects)
        return Outcome(code, list(caplog.records), capsys.readouterr().err)

    state.run = run
    try:
        yield state
    finally:
        state.restore()


def relative_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob('*')
                  if p.is_file())


def assert_sub02_complete(scratch):
    """sub-02's derivatives: the clean run's file list, and the same χ map."""
    expected = relative_files(scratch.reference / 'sub-02')
    assert expected and relative_files(scratch.out / 'sub-02') == expected
    chi = 'sub-02/ses-01/anat/sub-02_ses-01_Chimap.nii.gz'
    np.testing.assert_array_equal(nb.load(scratch.out / chi).get_fdata(),
                                  nb.load(scratch.reference / chi).get_fdata())


def chi_outputs(out, subject='01'):
    return list(Path(out).glob(f'sub-{subject}/ses-01/anat/*_Chimap.nii.gz'))


# --------------------------------------------------------------------------------------------
# GRE defects: the visit (here the subject's only visit) fails, sub-02 is complete
# --------------------------------------------------------------------------------------------
def _drop_echo_time(s):
    s.edit_json(sidecar(gre(2, 'mag')), lambda meta: meta.pop('EchoTime'))


def _drop_field_strength(s):
    for echo in range(1, 6):
        for part in ('mag', 'phase'):
            s.edit_json(sidecar(gre(echo, part)), lambda meta: meta.pop('MagneticFieldStrength'))


def _crop_echo(s):
    for part in ('mag', 'phase'):
        s.edit_image(gre(3, part), lambda d, a: (d[:-2], a))


def _shift_phase(s):
    def shift(data, affine):
        affine[0, 3] += 1.5  # half a voxel: a different grid, same shape
        return data, affine

    s.edit_image(gre(2, 'phase'), shift)


def _truncate(s):
    path = s.path(gre(1, 'mag'))
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])


def _zero(part):
    def defect(s):
        s.edit_image(gre(2, part), lambda d, a: (np.zeros_like(d), a))

    return defect


def _nan_magnitude(s):
    def nan(data, affine):
        data = data.astype(np.float32)
        data[30:33, 30:33, 10] = np.nan
        return data, affine

    s.edit_image(gre(2, 'mag'), nan, dtype=np.float32)


GRE_CASES = {
    # case: (defect, file named in the summary, problem named in the summary)
    'missing EchoTime': (_drop_echo_time, gre(2, 'mag'), 'EchoTime is missing'),
    'missing MagneticFieldStrength': (_drop_field_strength, gre(1, 'mag'),
                                      'neither MagneticFieldStrength nor ImagingFrequency'),
    'echoes of different shapes': (_crop_echo, gre(3, 'mag'), 'not on the same grid'),
    'magnitude and phase on different grids': (_shift_phase, gre(2, 'phase'),
                                               'not on the same grid'),
    'truncated .nii.gz': (_truncate, gre(1, 'mag'), 'not a readable NIfTI image'),
    'all-zero phase': (_zero('phase'), gre(2, 'phase'), 'every voxel is zero'),
    'all-zero magnitude': (_zero('mag'), gre(2, 'mag'), 'every voxel is zero'),
    'NaN voxels in a magnitude': (_nan_magnitude, gre(2, 'mag'), '9 voxels are NaN'),
}


@pytest.mark.parametrize('case', list(GRE_CASES))
def test_bad_gre_fails_alone_with_a_clear_message(scratch, case):
    defect, named_file, problem = GRE_CASES[case]
    defect(scratch)
    result = scratch.run()
    assert result.code == 1
    result.assert_clean()
    assert '1 of 2 subject(s) failed' in result.summary
    cause = result.summary.split('sub-01: ', 1)[1]
    assert Path(named_file).name in cause and problem in cause
    assert not chi_outputs(scratch.out)
    assert_sub02_complete(scratch)


def test_field_strength_override_rescues_missing_field_strength(scratch):
    """--field-strength 3 gives the metadata's 3 T back: the χ map is the clean run's."""
    _drop_field_strength(scratch)
    result = scratch.run('--field-strength', '3', subjects=('01',))
    assert result.code == 0
    result.assert_clean()
    assert any('using the override 3 T' in m for m in result.messages)
    chi = 'sub-01/ses-01/anat/sub-01_ses-01_Chimap.nii.gz'
    np.testing.assert_array_equal(nb.load(scratch.out / chi).get_fdata(),
                                  nb.load(scratch.reference / chi).get_fdata())


# --------------------------------------------------------------------------------------------
# Lesion annotation defects: the QSM maps are written, the lesion table is not (or is, without
# the lesion that cannot be followed); exit code 1 with the reason
# --------------------------------------------------------------------------------------------
def test_label_map_off_its_flair_grid_keeps_qsm_drops_table(scratch):
    def shift(data, affine):
        affine[1, 3] += 2.0
        return data, affine

    scratch.edit_image(DSEG, shift)
    result = scratch.run()
    assert result.code == 1
    result.assert_clean()
    cause = result.summary.split('sub-01: ', 1)[1]
    assert cause.startswith('no lesion table (QSM maps still written)')
    assert Path(DSEG).name in cause and 'not on the same grid' in cause
    assert chi_outputs(scratch.out)
    assert not (scratch.out / 'sub-01' / 'sub-01_lesions.tsv').exists()
    assert_sub02_complete(scratch)


@pytest.mark.parametrize('row, problem', [
    ('7\tses-01\tpositive\tshell', "lesion 7 is absent from its detection visit's label map"),
    ('8\tses-09\tnegative\tnodular', 'lesion 8 detected at ses-09, which does not exist'),
], ids=['lesion id absent from the map', 'detection visit does not exist'])
def test_unfollowable_lesion_is_dropped_and_reported(scratch, row, problem):
    """The other lesions' table is written (identical to the clean run's); exit code 1."""
    scratch.append_line(LESIONS_TSV, row)
    result = scratch.run()
    assert result.code == 1
    result.assert_clean()
    cause = result.summary.split('sub-01: ', 1)[1]
    assert 'sub-01_lesions.tsv' in cause and problem in cause
    table = pd.read_csv(scratch.out / 'sub-01' / 'sub-01_lesions.tsv', sep='\t')
    reference = pd.read_csv(scratch.reference / 'sub-01' / 'sub-01_lesions.tsv', sep='\t')
    pd.testing.assert_frame_equal(table, reference)
    assert_sub02_complete(scratch)


def test_unparsable_acq_time(scratch):
    """Lesion ages need dates: QSM written, no lesion table; both files named."""
    tsv = scratch.path('sub-01/sub-01_sessions.tsv')
    tsv.write_text(tsv.read_text().replace('2011-08-03T15:12:00', 'August 3rd, 2011'))
    result = scratch.run()
    assert result.code == 1
    result.assert_clean()
    assert any('sub-01_sessions.tsv' in m and "'August 3rd, 2011' is not an ISO 8601" in m
               for m in result.messages)
    cause = result.summary.split('sub-01: ', 1)[1]
    assert 'sub-01_lesions.tsv' in cause and 'need the acq_time' in cause
    assert chi_outputs(scratch.out)
    assert not (scratch.out / 'sub-01' / 'sub-01_lesions.tsv').exists()
    assert_sub02_complete(scratch)


# --------------------------------------------------------------------------------------------
# Output folder problems and --stop-on-first-crash
# --------------------------------------------------------------------------------------------
def test_output_dir_under_a_regular_file(scratch):
    blocker = scratch.tmp_path / 'not_a_folder'
    blocker.write_text('')
    scratch.out = blocker / 'out'
    result = scratch.run()
    assert result.code == 2
    result.assert_clean()
    assert f'cannot write to {scratch.out}' in result.stderr


def test_read_only_output_dir(scratch):
    """Root ignores permission bits; the immutable attribute stops root too."""
    scratch.out.mkdir()
    if subprocess.run(['chattr', '+i', str(scratch.out)], capture_output=True).returncode:
        pytest.skip('chattr +i is not available here (no CAP_LINUX_IMMUTABLE or no chattr)')
    try:
        result = scratch.run()
    finally:
        subprocess.run(['chattr', '-i', str(scratch.out)], check=True)
    assert result.code == 2
    result.assert_clean()
    assert f'cannot write to {scratch.out}' in result.stderr
    assert list(scratch.out.iterdir()) == []


def test_full_disk_at_the_sink(scratch, monkeypatch):
    """ENOSPC on every rename into sub-01's derivatives: named, no partial file left."""
    real_replace = os.replace
    blocked = scratch.out / 'sub-01'

    def replace(src, dst, **kwargs):
        if Path(dst).is_relative_to(blocked):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, 'replace', replace)
    result = scratch.run()
    monkeypatch.undo()
    assert result.code == 1
    result.assert_clean()
    cause = result.summary.split('sub-01: ', 1)[1]
    assert 'No space left on device' in cause and str(blocked) in cause
    assert relative_files(blocked) == []  # no temporary or partial file
    assert_sub02_complete(scratch)


def test_stop_on_first_crash_at_discovery(scratch):
    """A bad sub-01 found before the run: nothing runs, sub-02 is not reported as finished."""
    _drop_echo_time(scratch)
    result = scratch.run('--stop-on-first-crash')
    assert result.code == 1
    result.assert_clean()
    assert '2 of 2 subject(s) failed' in result.summary
    assert 'EchoTime is missing' in result.summary
    assert 'sub-02: not processed or incomplete: --stop-on-first-crash' in result.summary
    assert not (scratch.out / 'sub-02').exists()
    assert not any(m.startswith('finished:') for m in result.messages)


def test_stop_on_first_crash_in_the_workflow(scratch):
    """A node crash (NaN magnitude) ends the run; the summary gives its cause and flags sub-02."""
    _nan_magnitude(scratch)
    result = scratch.run('--stop-on-first-crash')
    assert result.code == 1
    result.assert_clean()
    cause = result.summary.split('sub-01: ', 1)[1]
    assert 'prepare_echoes' in cause and '9 voxels are NaN or infinite' in cause
    assert 'sub-02: not processed or incomplete: --stop-on-first-crash ended the run at the ' \
           'failure of sub-01' in result.summary
    assert not chi_outputs(scratch.out)


# --------------------------------------------------------------------------------------------
# Inputs that are unusual but valid: the run succeeds (kept last, they recompute both subjects)
# --------------------------------------------------------------------------------------------
def _to_arbitrary_units(s, echo):
    """Phase in radians -> scanner integers in [-4096, 4095], ``Units: arbitrary``."""
    def scale(data, affine):
        return np.clip(np.rint(data / np.pi * 4096), -4096, 4095).astype(np.int16), affine

    s.edit_image(gre(echo, 'phase'), scale)
    s.edit_json(sidecar(gre(echo, 'phase')), lambda meta: meta.update(Units='arbitrary'))


def _rotation_x(degrees):
    angle = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rot


@pytest.mark.slow
def test_arbitrary_phase_units_and_oblique_acquisition_succeed(scratch):
    """sub-01's phase as scanner integers gives the χ of radians; sub-02 oblique runs through.

    Rescaling: the radian phase seen by the chain equals the original to the rounding of the
    integers, π/8192 rad, or π/4096 where +π had to be clipped to 4095 (float32: ~1e-7 rad).
    χ: that rounding is uniform noise of π/4096/√12 ≈ 2.3e-4 rad per echo against a local
    field of ~1e-2 rad on this phantom, and the dipole inversion amplifies noise; we measured
    an RMS χ difference of 5.7 % of the RMS χ inside the brain and require < 10 % (a wrong
    scale or offset gives ~100 %).
    """
    for echo in range(1, 6):
        _to_arbitrary_units(scratch, echo)
    # sub-02 ses-01: every image of the visit turned 12 degrees about a world axis through the
    # GRE centre (a consistent oblique acquisition, lesion maps still on their FLAIR)
    ref = nb.load(scratch.bids / gre(1, 'mag', '02'))
    centre = ref.affine @ np.r_[(np.array(ref.shape[:3]) - 1) / 2, 1]
    move, back = np.eye(4), np.eye(4)
    move[:3, 3], back[:3, 3] = -centre[:3], centre[:3]
    turn = back @ _rotation_x(12.0) @ move
    visit = sorted(p.relative_to(scratch.bids).as_posix() for p in
                   [*scratch.bids.glob('sub-02/ses-01/anat/*.nii.gz'),
                    *scratch.bids.glob('derivatives/lesions/sub-02/ses-01/anat/*.nii.gz')])
    for rel in visit:
        scratch.edit_image(rel, lambda d, a: (d, turn @ a))

    result = scratch.run()
    assert result.code == 0, result.summary
    result.assert_clean()

    prepared = scratch.work / 'lesionqsm_wf/sub_01_wf/ses_01_qsm_wf/prepare_echoes/signal.nii'
    signal = np.asanyarray(nb.load(prepared).dataobj)
    for echo, used in enumerate(np.moveaxis(signal, -1, 0), start=1):
        radians = nb.load(scratch.pristine / gre(echo, 'phase')).get_fdata()
        # the phase travels in the complex signal: it is defined where the magnitude is not 0
        has_phase = np.abs(used) > 0
        error = np.angle(np.exp(1j * (np.angle(used) - radians)))[has_phase]
        assert np.abs(error).max() < np.pi / 4096 + 1e-6
    chi = 'sub-01/ses-01/anat/sub-01_ses-01_Chimap.nii.gz'
    mask = nb.load(scratch.reference / chi.replace('Chimap', 'desc-brain_mask')).get_fdata() > 0
    got = nb.load(scratch.out / chi).get_fdata()[mask]
    want = nb.load(scratch.reference / chi).get_fdata()[mask]
    rms = np.sqrt(np.mean(want**2))
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.10 * rms

    oblique = nb.load(scratch.out / 'sub-02/ses-01/anat/sub-02_ses-01_Chimap.nii.gz')
    np.testing.assert_allclose(oblique.affine, turn @ ref.affine, atol=1e-4)  # not reoriented
    assert np.isfinite(oblique.get_fdata()).all() and np.any(oblique.get_fdata())
    meta = json.loads((scratch.out / 'sub-02/ses-01/anat/sub-02_ses-01_Chimap.json').read_text())
    assert meta['Units'] == 'ppm'
    table = pd.read_csv(scratch.out / 'sub-02' / 'sub-02_lesions.tsv', sep='\t')
    assert (table.status == 'ok').all() and np.isfinite(table.chi_rel_ppb).all()
