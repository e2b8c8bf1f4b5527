"""Scans stored as scanners and converters store them (lesionqsm.synth.vendor), through the
command line: a χ within the accuracy of the synth truth, or a failed visit with a clear message.

One participant run holds the visit as generated (the reference: radians, 5 echoes, 3-D),
every variant that must give a map (one, two and unevenly spaced echoes, 2-D slices with a
phase offset per slice, a float phase in another range) and two that must be refused at
discovery (a ±0.0037 float phase, two echoes sharing an echo time).  Phase conventions that
only change the scale (Siemens, Philips, GE) are checked at discovery here and voxel by voxel
in tests/bids/test_phase_conventions.py: their chain is that of radians.
"""

import contextlib
import io
import json

import nibabel as nb
import numpy as np
import pytest
from scipy import ndimage

from lesionqsm.bids.layout import collect_subject
from lesionqsm.synth.phantom import LABEL
from lesionqsm.synth.vendor import write_variant

MAPPED = ('reference', 'echoes-1', 'echoes-2', 'echoes-uneven', 'slices-2d', 'float-unit')
REFUSED = ('float-tiny', 'echoes-duplicate-te')
#: Tissues whose mean χ relative to white matter is compared with the truth.
ROIS = ('caudate', 'putamen', 'pallidum', 'thalamus', 'gm', 'ventricle')


@pytest.fixture(scope='module')
def variants_run(tiny_cohort, tmp_path_factory, lesionqsm_cli):
    """sub-01 ses-01 of the tiny cohort written as each variant, run in one participant call."""
    root = tmp_path_factory.mktemp('vendor_variants')
    bids, out, work = root / 'bids', root / 'out', root / 'work'
    labels = {name: write_variant(tiny_cohort, name, out_dir=bids) for name in MAPPED + REFUSED}
    console = io.StringIO()
    with contextlib.redirect_stderr(console):
        code = lesionqsm_cli(bids, out, work, subjects=tuple(labels.values()), sessions=None)
    return {'code': code, 'console': console.getvalue(), 'labels': labels, 'bids': bids,
            'out': out}


def _outputs(run, name):
    label = run['labels'][name]
    prefix = run['out'] / f'sub-{label}' / 'ses-01' / 'anat' / f'sub-{label}_ses-01'
    truth = run['bids'] / 'derivatives' / 'groundtruth' / f'sub-{label}' / 'ses-01' / 'anat' / \
        f'sub-{label}_ses-01'
    return prefix, truth


def _roi_errors(run, name):
    """Per tissue, (measured − true) χ contrast to white matter, ppm, over eroded tissue cores
    inside the brain mask (the 3 mm voxels of the tiny grid mix tissues at their edges)."""
    prefix, truth_prefix = _outputs(run, name)
    chi = nb.load(f'{prefix}_Chimap.nii.gz').get_fdata()
    brain = nb.load(f'{prefix}_desc-brain_mask.nii.gz').get_fdata() > 0
    truth = nb.load(f'{truth_prefix}_Chimap.nii.gz').get_fdata()
    tissue = np.asarray(nb.load(f'{truth_prefix}_desc-tissue_dseg.nii.gz').dataobj)
    wm = ndimage.binary_erosion(tissue == LABEL['wm']) & brain
    errors = {}
    for roi in ROIS:
        core = ndimage.binary_erosion(tissue == LABEL[roi]) & brain
        if core.sum() >= 3:
            errors[roi] = (chi[core].mean() - chi[wm].mean()) - (truth[core].mean()
                                                                 - truth[wm].mean())
    assert len(errors) >= 3, f'too few tissue cores on the grid: {sorted(errors)}'
    return errors


def _sidecar(run, name):
    prefix, _ = _outputs(run, name)
    return json.loads(prefix.with_name(prefix.name + '_Chimap.json').read_text())


def test_refused_variants_fail_alone_with_the_file_named(variants_run):
    """Exit 1 (some subjects failed), every other variant finished, no traceback."""
    run = variants_run
    assert run['code'] == 1
    console = run['console']
    assert 'Traceback' not in console
    assert f'2 of {len(MAPPED) + len(REFUSED)} subject(s) failed' in console
    tiny = f"sub-{run['labels']['float-tiny']}_ses-01_echo-1_part-phase_MEGRE.nii.gz"
    assert any(tiny in line and 'phase values span only [-0.0037, 0.0037]' in line
               and 'far too small for a wrapped phase' in line for line in console.splitlines())
    dup = f"sub-{run['labels']['echoes-duplicate-te']}_ses-01_echo-2_part-mag_MEGRE.nii.gz"
    assert any(dup in line and 'both have EchoTime 0.0045 s' in line
               for line in console.splitlines())
    for name in REFUSED:
        assert not list(run['out'].glob(f"sub-{run['labels'][name]}/ses-*/anat/*_Chimap.nii.gz"))


def test_reference_visit_matches_the_truth(variants_run):
    """Every tissue's χ contrast to white matter within 0.035 ppm of the truth (measured
    0.016-0.022 ppm, cortical grey matter the worst: 3 mm voxels mix it with CSF and white
    matter, and TV regularisation shrinks small contrasts)."""
    errors = _roi_errors(variants_run, 'reference')
    assert max(abs(e) for e in errors.values()) <= 0.035, errors


@pytest.mark.parametrize(('name', 'tolerance'), [
    ('slices-2d', 0.002),      # lossless: the offsets per slice are part of φ0 in the fit
    ('float-unit', 0.002),     # lossless: φ/π rescaled from its observed span (float32)
    ('echoes-2', 0.015),       # fewer echoes, a noisier field
    ('echoes-uneven', 0.015),
])
def test_multi_echo_variants_match_the_reference(variants_run, name, tolerance):
    """Each tissue's χ contrast error against the truth is that of the reference visit, to
    ``tolerance`` ppm (measured 0.0000 ppm for the lossless variants, 0.0067 and 0.0031 ppm
    for two and three uneven echoes); a wrong phase scale or echo order moves the contrasts
    by their own size (0.05-0.1 ppm)."""
    reference = _roi_errors(variants_run, 'reference')
    errors = _roi_errors(variants_run, name)
    assert max(abs(errors[k] - reference[k]) for k in errors) <= tolerance, (errors, reference)


def test_one_echo_gives_a_map_and_says_what_it_lacks(variants_run):
    """One echo (TE 14.1 ms): no R2* (NaN map), whole-brain reference, both in the sidecar's
    warnings; χ contrasts within 0.05 ppm of the reference visit's (measured 0.027) and
    0.06 ppm of the truth (measured 0.036-0.039): the receive-phase offset φ0 of the synth (a
    quadratic of up to ~1 rad over the head) cannot be told from the field with one echo,
    and its non-harmonic part stays in χ."""
    run = variants_run
    sidecar = _sidecar(run, 'echoes-1')
    assert sidecar['ReferenceRegion'] == 'whole_brain'
    assert sidecar['Decisions']['r2star_method'] == 'none'
    assert any('one echo' in w and 'R2* map is NaN' in w for w in sidecar['Warnings'])
    assert any('single echo' in w and 'whole brain is the zero reference' in w
               for w in sidecar['Warnings'])
    prefix, _ = _outputs(run, 'echoes-1')
    assert np.isnan(nb.load(f'{prefix}_R2starmap.nii.gz').get_fdata()).all()
    errors = _roi_errors(run, 'echoes-1')
    reference = _roi_errors(run, 'reference')
    assert max(abs(e) for e in errors.values()) <= 0.06, errors
    assert max(abs(errors[k] - reference[k]) for k in errors) <= 0.05, (errors, reference)
    assert '1 echo (TE 14.1 ms)' in run['console']


def test_decisions_are_in_the_sidecar(variants_run):
    """The estimator, the phase scaling per echo and the guessed scale's warning."""
    run = variants_run
    assert _sidecar(run, 'echoes-2')['Decisions']['r2star_method'] == 'loglinear'
    uneven = _sidecar(run, 'echoes-uneven')
    assert uneven['Decisions']['r2star_method'] == 'loglinear'
    assert uneven['Decisions']['echo_times_s'] == [0.0045, 0.0093, 0.0189]
    floats = _sidecar(run, 'float-unit')
    scalings = floats['Decisions']['phase_scaling']
    assert len(scalings) == 5 and {s['convention'] for s in scalings} == {'observed_span'}
    assert sum('mapped to -pi and pi' in w for w in floats['Warnings']) == 5
    assert 'uneven echo spacing (TE 4.5, 9.3, 18.9 ms)' in run['console']


@pytest.mark.parametrize(('name', 'convention', 'units'), [
    ('siemens-dcm2niix', None, 'arbitrary'),
    ('siemens-unsigned', None, 'arbitrary'),
    ('philips', 'milliradians', 'arbitrary'),
    ('ge', 'milliradians', 'arbitrary'),
])
def test_scanner_phase_is_recognised_at_discovery(tiny_cohort, tmp_path, name, convention,
                                                  units):
    """Declared arbitrary: recognised silently; no Units (Philips, GE as dcm2niix writes
    them): one note naming the first echo and the convention."""
    label = write_variant(tiny_cohort, name, out_dir=tmp_path)
    data = collect_subject(tmp_path, label)
    assert data.sessions[0].megre.phase_units == units
    notes = [str(p) for p in data.problems]
    if convention is None:
        assert notes == []
    else:
        (line,) = notes
        assert f'sub-{label}_ses-01_echo-1_part-phase_MEGRE.nii.gz: phase Units missing' in line
        assert f'taken as {convention}' in line and 'and 4 more echoes alike' in line


def test_echoes_numbered_out_of_te_order_are_reordered(tiny_cohort, tmp_path):
    label = write_variant(tiny_cohort, 'echoes-reversed', out_dir=tmp_path)
    data = collect_subject(tmp_path, label)
    gre = data.sessions[0].megre
    assert gre.echo_times == [0.0045, 0.0093, 0.0141, 0.0189, 0.0237]
    assert gre.mag_files[0].endswith('_echo-5_part-mag_MEGRE.nii.gz')
    assert gre.phase_files[0].endswith('_echo-5_part-phase_MEGRE.nii.gz')
    (line,) = [str(p) for p in data.problems]
    assert 'echo numbers do not follow EchoTime (echo-1: 23.7 ms' in line
