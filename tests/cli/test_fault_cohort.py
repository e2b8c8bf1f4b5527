"""A cohort where every subject but one carries a different fault: the good subject completes
with exactly the clean run's outputs, every faulty one is reported in plain words (file, step,
reason); a rerun restores deleted or altered outputs by rerunning only the sinks.

Runs on the session-wide clean run's dataset and work directory (``tiny_ses01_run``): the
faulty subjects are copies of sub-01's first visit added for the test (and removed after), so
only they and the sinks compute anything.
"""

import json
import logging
import os
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

HOSTILE = 'x$(touch${IFS}FILE)'
LESIONS_TSV = 'derivatives/lesions/sub-01/sub-01_lesions.tsv'


def clone_visit(bids, new):
    """Copy sub-01's ses-01 (images, sidecars, sessions.tsv) as ``sub-<new>`` (QSM only)."""
    src = bids / 'sub-01'
    dst = bids / f'sub-{new}'
    for path in sorted((src / 'ses-01' / 'anat').iterdir()):
        target = dst / 'ses-01' / 'anat' / path.name.replace('sub-01_', f'sub-{new}_')
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    shutil.copy2(src / 'sub-01_sessions.tsv', dst / f'sub-{new}_sessions.tsv')
    return dst / 'ses-01' / 'anat'


def gre(anat, echo, part):
    return next(anat.glob(f'*_echo-{echo}_part-{part}_MEGRE.nii.gz'))


def _deep_sidecar(anat):
    path = gre(anat, 2, 'phase').with_suffix('').with_suffix('.json')
    path.write_text('{"EchoTime": 0.01, "x": ' + '[' * 4000 + ']' * 4000 + '}')
    return path, 'JSON nested 4001 levels deep'


def _four_d_magnitude(anat):
    path = gre(anat, 1, 'mag')
    img = nb.load(path)
    stack = np.stack([np.asanyarray(nb.load(gre(anat, e, 'mag')).dataobj) for e in (1, 2, 3)],
                     axis=-1)
    nb.save(nb.Nifti1Image(stack, img.affine, img.header), path)
    return path, 'is 4-D with 3 volumes'


def _single_slice(anat):
    for part in ('mag', 'phase'):
        path = gre(anat, 3, part)
        img = nb.load(path)
        nb.save(nb.Nifti1Image(np.asanyarray(img.dataobj)[:, :, :1], img.affine, img.header),
                path)
    return gre(anat, 3, 'mag'), 'at least 3 voxels per axis'


def _echo_time_as_bool(anat):
    path = gre(anat, 2, 'mag').with_suffix('').with_suffix('.json')
    meta = json.loads(path.read_text())
    meta['EchoTime'] = True
    path.write_text(json.dumps(meta))
    return gre(anat, 2, 'mag'), 'EchoTime True is not a number'


def _nan_magnitude(anat):
    """Passes discovery (values are not read for NaN there); the echo-preparing step refuses."""
    path = gre(anat, 2, 'mag')
    img = nb.load(path)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    data[10:13, 10:13, 5] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nb.save(nb.Nifti1Image(data, img.affine, header), path)
    return path, 'prepare_echoes failed: '


FAULTS = {'03': _deep_sidecar, '04': _four_d_magnitude, '05': _single_slice,
          '06': _echo_time_as_bool, '07': _nan_magnitude}


def console_text(records):
    """What the command line's console handler prints for ``records`` (the log file keeps
    nipype's tracebacks; the console must not)."""
    console = [h for h in logging.getLogger().handlers if getattr(h, 'lesionqsm_console', False)]
    assert console, 'the command line installs its console handler'
    return '\n'.join(console[0].format(r) for r in records
                     if r.levelno >= console[0].level and console[0].filter(r))


def files_of(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob('*')
                  if p.is_file())


def assert_same_outputs(got_dir, want_dir, *, skip=()):
    """Same file names; NIfTI voxels, tables, sidecars and matrices equal.

    The report's pictures (``figures/``) are left to tests/report: which ones a report draws
    depends on the other visits of the run, and matplotlib's SVG ids vary.
    """
    def derivatives(folder):
        return [f for f in files_of(folder) if not f.startswith('figures/')]

    want = [f for f in derivatives(want_dir) if f not in skip]
    assert derivatives(got_dir) == want
    for rel in want:
        got, ref = Path(got_dir) / rel, Path(want_dir) / rel
        if rel.endswith('.nii.gz'):
            np.testing.assert_array_equal(nb.load(got).get_fdata(), nb.load(ref).get_fdata())
        elif rel.endswith('.tsv'):
            pd.testing.assert_frame_equal(pd.read_csv(got, sep='\t'), pd.read_csv(ref, sep='\t'))
        elif rel.endswith('.json'):
            assert json.loads(got.read_text()) == json.loads(ref.read_text()), rel
        else:
            assert got.read_bytes() == ref.read_bytes(), rel


@pytest.fixture
def cohort(tiny_ses01_run, tiny_cohort):
    """The shared dataset plus the faulty subjects; sub-01's lesion table gets an id no label
    map can hold. Everything is undone afterwards."""
    assert tiny_ses01_run.code == 0, 'the clean reference run failed'
    bids = tiny_ses01_run.bids
    added = []
    try:
        expected = {}
        for label, fault in FAULTS.items():
            anat = clone_visit(bids, label)
            added.append(bids / f'sub-{label}')
            path, problem = fault(anat)
            expected[label] = (path.name, problem)
        clone_visit(bids, 'hostile')
        (bids / 'sub-hostile').rename(bids / f'sub-{HOSTILE}')
        added.append(bids / f'sub-{HOSTILE}')
        expected[HOSTILE] = (f'sub-{HOSTILE}', 'is not a BIDS label')
        tsv = bids / LESIONS_TSV
        tsv.write_text(tsv.read_text() + f'{10**30}\tses-01\tpositive\tshell\n')
        expected['01'] = ('sub-01_lesions.tsv', 'no lesion table (QSM maps still written)')
        yield tiny_ses01_run, expected
    finally:
        for folder in added:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.copy2(tiny_cohort / LESIONS_TSV, bids / LESIONS_TSV)


@pytest.mark.slow
def test_each_fault_costs_only_its_subject(cohort, tmp_path, caplog, lesionqsm_cli):
    run, expected = cohort
    out = tmp_path / 'out'
    code = lesionqsm_cli(run.bids, out, run.work, subjects=None)
    assert code == 1
    messages = [r.getMessage() for r in caplog.records]
    summary = [m for m in messages if 'subject(s) failed' in m][-1]
    assert f'{len(expected)} of {len(expected) + 1} subject(s) failed' in summary
    causes = {line.split(': ', 1)[0].strip()[4:]: line.split(': ', 1)[1]
              for line in summary.splitlines()[1:]}
    for label, (named_file, problem) in expected.items():
        assert named_file in causes[label] and problem in causes[label], (label, causes[label])
    assert 'finished: sub-02' in messages
    assert 'Traceback' not in console_text(caplog.records)
    assert not list(run.bids.parent.rglob('FILE')) and not list(tmp_path.rglob('FILE'))
    # the good subject: exactly the clean run's outputs; sub-01: its QSM, no lesion table
    assert_same_outputs(out / 'sub-02', run.out / 'sub-02')
    assert_same_outputs(out / 'sub-01', run.out / 'sub-01',
                        skip=('sub-01_lesions.tsv', 'sub-01_lesions.json'))
    for label in FAULTS:
        assert not list(out.glob(f'sub-{label}/**/*_Chimap.nii.gz'))


@pytest.mark.slow
def test_rerun_restores_deleted_and_altered_outputs(tiny_ses01_run, tmp_path, lesionqsm_cli,
                                                    caplog):
    run = tiny_ses01_run
    assert run.code == 0
    out = tmp_path / 'out'
    assert lesionqsm_cli(run.bids, out, run.work) == 0
    first_step = (run.work / 'lesionqsm_wf' / 'sub_01_wf' / 'ses_01_qsm_wf' / 'prepare_echoes'
                  / 'result_prepare_echoes.pklz')
    computed_at = first_step.stat().st_mtime
    shutil.rmtree(out / 'sub-01')
    altered = out / 'sub-02' / 'ses-01' / 'anat' / 'sub-02_ses-01_desc-brain_mask.json'
    altered.write_text('{}')
    caplog.clear()
    assert lesionqsm_cli(run.bids, out, run.work) == 0
    assert 'finished: sub-01, sub-02' in [r.getMessage() for r in caplog.records]
    assert first_step.stat().st_mtime == computed_at  # cached: only the sinks ran again
    for subject in ('sub-01', 'sub-02'):
        assert_same_outputs(out / subject, run.out / subject)


def test_incomplete_outputs_are_never_reported_finished(tiny_ses01_run, tmp_path,
                                                        lesionqsm_cli, caplog, monkeypatch):
    """A sink that (wrongly) writes nothing: the end-of-run check names the missing file."""
    from lesionqsm.interfaces.bids import DerivativesDataSink

    real = DerivativesDataSink._run_interface

    def forgetful(self, runtime):
        if self.inputs.suffix == 'R2starmap' and 'sub-02' in self.inputs.source_file:
            self._results['out_file'] = self.inputs.in_file
            return runtime
        return real(self, runtime)

    monkeypatch.setattr(DerivativesDataSink, '_run_interface', forgetful)
    code = lesionqsm_cli(tiny_ses01_run.bids, tmp_path / 'out', tiny_ses01_run.work)
    assert code == 1
    messages = [r.getMessage() for r in caplog.records]
    summary = [m for m in messages if 'subject(s) failed' in m][-1]
    assert 'sub-02: 2 expected output(s) missing or empty after the run, e.g. ' in summary
    assert 'sub-02_ses-01_R2starmap.nii.gz' in summary
    assert 'finished: sub-01' in messages
    assert os.path.exists(tmp_path / 'out' / 'sub-01' / 'sub-01_lesions.tsv')
