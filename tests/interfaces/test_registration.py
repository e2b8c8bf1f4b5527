"""Rigid coregistration and resampling (lesionqsm.interfaces.registration, rigid_engine).

The test head is an analytic phantom: nested soft-edged ellipsoids (scalp, skull, CSF, grey and
white matter, ventricles, deep grey nuclei, lesions, a face) with GRE-magnitude or FLAIR
contrast and Rician noise.  A moved visit is made by evaluating the phantom at the moved
coordinates, not by resampling an image, so the true motion is known exactly.
"""

import json
import os
import stat
import sys

import nibabel as nb
import numpy as np
import pytest

from lesionqsm.bids.images import ImageError
from lesionqsm.interfaces import registration as reg
from lesionqsm.registration import fsl_matrix as fm
from lesionqsm.registration import resolve_engine
from lesionqsm.registration import rigid as rigid_engine

# (centre mm, semi-axes mm, rotation about z in degrees, tissue), painted in this order.
STRUCTURES = [
    ((0, 0, 0), (72, 92, 64), 0, 'scalp'),
    ((0, 1, 1), (67, 86, 58), 0, 'skull'),
    ((0, 2, 3), (63, 81, 54), 0, 'csf'),
    ((0, 3, 4), (60, 78, 51), 0, 'gm'),
    ((0, 5, 8), (48, 63, 38), 0, 'wm'),
    ((-11, 8, 12), (6, 24, 9), 8, 'ventricle'),
    ((11, 8, 12), (6, 24, 9), -8, 'ventricle'),
    ((-21, 2, 2), (7, 11, 8), 0, 'deep_gm'),
    ((21, 2, 2), (7, 11, 8), 0, 'deep_gm'),
    ((-30, -20, 20), (5, 7, 4), 30, 'lesion'),
    ((26, 30, 18), (4, 4, 6), 0, 'lesion'),
    ((14, -35, 5), (6, 4, 4), 60, 'lesion'),
    ((0, 70, -30), (20, 15, 18), 0, 'scalp'),  # the face: breaks front-back symmetry
]
CONTRAST = {
    'gre': dict(scalp=0.6, skull=0.05, csf=0.9, gm=0.75, wm=0.6, ventricle=0.95, deep_gm=0.45,
                lesion=0.8),
    'flair': dict(scalp=0.7, skull=0.05, csf=0.12, gm=0.65, wm=0.48, ventricle=0.08,
                  deep_gm=0.55, lesion=1.0),
}
BRAIN_CENTRE, BRAIN_AXES = np.array([0.0, 3.0, 4.0]), np.array([60.0, 78.0, 51.0])
GRE_SHAPE, GRE_ZOOMS = (128, 128, 40), (1.5, 1.5, 3.0)


def head_intensity(points, contrast='gre', edge_mm=1.0):
    """Phantom intensity at head-space points (N, 3) in mm; edges ramp over 2·edge_mm."""
    points = np.asarray(points, np.float32)
    values = np.zeros(len(points), np.float32)
    for centre, axes, angle, tissue in STRUCTURES:
        offset = points - np.asarray(centre, np.float32)
        idx = np.flatnonzero(np.all(np.abs(offset) < max(axes) + 4 * edge_mm, axis=1))
        d = offset[idx]
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        r = np.sqrt(((c * d[:, 0] + s * d[:, 1]) / axes[0]) ** 2
                    + ((-s * d[:, 0] + c * d[:, 1]) / axes[1]) ** 2 + (d[:, 2] / axes[2]) ** 2)
        weight = np.clip((1 - r) * (min(axes) / (2 * edge_mm)) + 0.5, 0, 1)
        values[idx] += (CONTRAST[contrast][tissue] - values[idx]) * weight
    return values


def rigid(angles_deg, translation_mm):
    """4×4 rigid matrix: rotations about x, then y, then z (degrees), then a shift (mm)."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    mat = np.eye(4)
    mat[:3, :3] = rz @ ry @ rx
    mat[:3, 3] = translation_mm
    return mat


def grid_affine(shape, zooms, *, neurological=False):
    """Axis-aligned affine centred on the world origin; LAS (det < 0) unless neurological."""
    affine = np.diag([*zooms, 1.0])
    if not neurological:
        affine[0, 0] = -zooms[0]
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def head_image(shape, zooms, *, motion=None, contrast='gre', noise=0.02, rng=None,
               neurological=False, tilt_deg=0.0):
    """The phantom head, moved by ``motion`` (head point p appears at motion @ p), on a grid.

    The grid is tilted by ``tilt_deg`` about world x (an oblique acquisition).  Returns float32
    data and its affine.  Rician noise of σ = ``noise`` (signal max ~1).
    """
    affine = rigid((tilt_deg, 0, 0), (0, 0, 0)) @ grid_affine(shape, zooms,
                                                             neurological=neurological)
    to_head = (np.eye(4) if motion is None else np.linalg.inv(motion)) @ affine
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    head = (to_head[:3, :3].astype(np.float32) @ ijk + to_head[:3, 3:4].astype(np.float32)).T
    data = head_intensity(head, contrast).reshape(shape)
    if noise:
        rng = np.random.default_rng(rng)
        data = np.abs(data + noise * (rng.standard_normal(shape, np.float32)
                                      + 1j * rng.standard_normal(shape, np.float32)))
    return data.astype(np.float32), affine


def brain_points(motion=None, step_mm=4.0):
    """Points filling the brain ellipsoid (mm), moved by ``motion``: where accuracy is judged."""
    axes = np.arange(-80, 81, step_mm)
    grid = np.stack(np.meshgrid(axes, axes, axes, indexing='ij'), -1).reshape(-1, 3)
    inside = grid[(((grid - BRAIN_CENTRE) / BRAIN_AXES) ** 2).sum(1) < 1]
    motion = np.eye(4) if motion is None else motion
    return inside @ motion[:3, :3].T + motion[:3, 3]


def registration_error(world_estimate, motion):
    """Max displacement (mm) over the moved brain and rotation error (°) against the truth.

    The moving scan shows head point p at ``motion @ p``; the matrix that brings it back onto
    the reference (head at rest) is ``motion⁻¹``.
    """
    truth = np.linalg.inv(motion)
    return (fm.max_displacement_mm(world_estimate, truth, brain_points(motion)),
            fm.rotation_angle_deg(world_estimate @ motion))


def mkdir(path):
    """A working directory for one interface run (nipype needs it to exist)."""
    path.mkdir(parents=True, exist_ok=True)
    return path


BRAIN_TISSUES = ('gm', 'wm', 'ventricle', 'caudate', 'putamen', 'pallidum', 'thalamus')


def synth_registration_cases(bids_dir):
    """Registration problems of a synth cohort with their true world matrices.

    For each subject: every later visit's echo-1 GRE magnitude onto the first visit's, and
    each visit's FLAIR onto the same visit's GRE magnitude.  The ground-truth head motion
    ``M_v`` (``derivatives/groundtruth/.../*_motion.json``) maps baseline-head coordinates to
    visit v, so the true moving-to-reference world matrix is ``M_ref @ M_v⁻¹``; FLAIR and GRE
    of one visit share the motion (identity).  Accuracy is judged over the brain voxels of the
    reference visit's ground-truth tissue map.

    Yields
    ------
    name, moving_file, reference_file, true_world, brain_points_in_moving_world
    """
    from pathlib import Path

    root = Path(bids_dir)
    truth_root = root / 'derivatives' / 'groundtruth'
    for subject_dir in sorted(root.glob('sub-*')):
        sub = subject_dir.name
        sessions = sorted(d.name for d in subject_dir.glob('ses-*'))
        motions, gre, brains = {}, {}, {}
        for ses in sessions:
            prefix = f'{sub}_{ses}'
            motions[ses] = np.array(json.loads(
                (truth_root / sub / ses / f'{prefix}_motion.json').read_text())['Matrix'])
            gre[ses] = subject_dir / ses / 'anat' / f'{prefix}_echo-1_part-mag_MEGRE.nii.gz'
            tissue = nb.load(truth_root / sub / ses / 'anat' / f'{prefix}_desc-tissue_dseg.nii.gz')
            names = (truth_root / sub / ses / 'anat' / f'{prefix}_desc-tissue_dseg.tsv')
            rows = [line.split('\t') for line in names.read_text().splitlines()[1:]]
            labels = [int(i) for i, name in rows if name in BRAIN_TISSUES]
            ijk = np.argwhere(np.isin(np.asanyarray(tissue.dataobj), labels))
            brains[ses] = ijk @ tissue.affine[:3, :3].T + tissue.affine[:3, 3]
        base = sessions[0]
        for ses in sessions:
            if ses != base:
                true = motions[base] @ np.linalg.inv(motions[ses])
                moved_brain = brains[base] @ np.linalg.inv(true)[:3, :3].T \
                    + np.linalg.inv(true)[:3, 3]
                yield f'{sub} {ses}->{base} GRE', gre[ses], gre[base], true, moved_brain
            flair = subject_dir / ses / 'anat' / f'{sub}_{ses}_FLAIR.nii.gz'
            yield f'{sub} {ses} FLAIR->GRE', flair, gre[ses], np.eye(4), brains[ses]


def save(path, data, affine):
    nb.save(nb.Nifti1Image(data, affine), str(path))
    return str(path)


@pytest.fixture(scope='module')
def gre_reference():
    return head_image(GRE_SHAPE, GRE_ZOOMS, rng=1)


# ---------------------------------------------------------------------------------------------
# The built-in engine
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('angles,shift', [((5, 0, 0), (0, 0, 0)),
                                          ((3, -4, 2), (4, -5, 3)),
                                          ((-4, 3, -3), (5, 2, -4))])
def test_builtin_recovers_rigid_motion(gre_reference, angles, shift):
    """Same-modality GRE visits, up to 5° and 5 mm: within 0.5 mm and 0.5° (issue 4).

    Measured error is ~0.1-0.2 mm and ~0.02-0.07° for these motions; the follow-up is stored
    neurological (det > 0) and the reference radiological, so the x flip is exercised.
    """
    motion = rigid(angles, shift)
    moving, moving_affine = head_image(GRE_SHAPE, GRE_ZOOMS, motion=motion, rng=2,
                                       neurological=True)
    result = rigid_engine.register_rigid(gre_reference[0], gre_reference[1], moving,
                                         moving_affine)
    displacement, angle = registration_error(result.world, motion)
    assert displacement < 0.5
    assert angle < 0.5


def test_builtin_with_oblique_reference():
    """Reference tilted 12° (oblique slices), moving axis-aligned, 2×2×3 mm: 0.5 mm / 0.5°.

    Measured 0.34 mm and 0.25°; coarser voxels than the GRE test, hence the larger error.
    """
    motion = rigid((3, -4, 2), (4, -5, 3))
    ref, ref_affine = head_image((96, 96, 40), (2.0, 2.0, 3.0), rng=1, tilt_deg=12.0)
    moving, moving_affine = head_image((96, 96, 40), (2.0, 2.0, 3.0), motion=motion, rng=2,
                                       neurological=True)
    result = rigid_engine.register_rigid(ref, ref_affine, moving, moving_affine)
    displacement, angle = registration_error(result.world, motion)
    assert displacement < 0.5
    assert angle < 0.5


def test_to_sitk_geometry_matches_the_nibabel_affine():
    """ITK's physical point of index (i, j, k) is the LPS flip of affine @ (i, j, k); exact."""
    affine = rigid((12, -5, 30), (3, -4, 5)) @ grid_affine((6, 7, 8), (1.5, 2.0, 3.0))
    image = rigid_engine.to_sitk(np.arange(336, dtype=np.float32).reshape(6, 7, 8), affine)
    for ijk in [(0, 0, 0), (5, 1, 2), (2, 6, 7)]:
        expected = np.diag([-1.0, -1.0, 1.0]) @ (affine @ [*ijk, 1])[:3]
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(ijk), expected,
                                   atol=1e-9)
        assert image[ijk] == 56 * ijk[0] + 8 * ijk[1] + ijk[2]


def test_builtin_is_deterministic():
    """A fixed sampling seed and thread count give bit-identical matrices run to run."""
    ref, ref_affine = head_image((64, 64, 24), (3.0, 3.0, 5.0), rng=1)
    moving, moving_affine = head_image((64, 64, 24), (3.0, 3.0, 5.0), rng=2,
                                       motion=rigid((2, 0, -3), (3, 1, 0)))
    first = rigid_engine.register_rigid(ref, ref_affine, moving, moving_affine)
    second = rigid_engine.register_rigid(ref, ref_affine, moving, moving_affine)
    np.testing.assert_array_equal(first.world, second.world)
    assert first.iterations == second.iterations


def test_metric_samples_are_capped_per_level():
    """Each level samples its fraction of the shrunk reference grid, but at most
    ``max_samples`` voxels: a 240 x 240 x 48 GRE keeps 25 % of its 43,200 voxels at shrink 4
    and 50,000 at shrink 2 and 1; the fractions used are recorded."""
    fractions = rigid_engine._capped_fractions((240, 240, 48), (4, 2, 1), (0.25, 0.25, 0.1),
                                               50_000)
    voxels = (60 * 60 * 12, 120 * 120 * 24, 240 * 240 * 48)
    samples = [f * n for f, n in zip(fractions, voxels, strict=True)]
    np.testing.assert_allclose(samples, [0.25 * voxels[0], 50_000, 50_000])
    ref, ref_affine = head_image((64, 64, 24), (3.0, 3.0, 5.0), rng=1)
    result = rigid_engine.register_rigid(ref, ref_affine, ref, ref_affine, max_samples=1000)
    recorded = result.parameters['sampling_fractions']
    assert recorded == pytest.approx([0.25, 1000 / (32 * 32 * 12), 1000 / (64 * 64 * 24)])


def test_builtin_refuses_bad_arrays():
    ref, affine = head_image((16, 16, 8), (6.0, 6.0, 12.0), noise=0)
    with pytest.raises(ValueError, match='moving image: image is all zero'):
        rigid_engine.register_rigid(ref, affine, np.zeros_like(ref), affine)
    with pytest.raises(ValueError, match='reference: expected a 3-D array'):
        rigid_engine.register_rigid(ref[..., None], affine, ref, affine)
    with pytest.raises(ValueError, match="initialisation must be 'identity', 'moments'"):
        rigid_engine.register_rigid(ref, affine, ref, affine, initialisation='best')
    with pytest.raises(ValueError, match='shrink_factors, smoothing_sigmas and sampling'):
        rigid_engine.register_rigid(ref, affine, ref, affine, shrink_factors=(2, 1),
                                    smoothing_sigmas=(1.0,))


# ---------------------------------------------------------------------------------------------
# Resampling with a FLIRT matrix
# ---------------------------------------------------------------------------------------------
def test_resample_whole_voxel_shift_is_exact():
    """A world shift of exactly one voxel per axis moves the array by one index, bit for bit.

    Reference is radiological, so world +x is array -i; trilinear weights are exactly 0/1.
    """
    rng = np.random.default_rng(0)
    data = rng.random((10, 12, 8)).astype(np.float32)
    affine = grid_affine(data.shape, (2.0, 2.0, 3.0))
    world = rigid((0, 0, 0), (2.0, 2.0, 3.0))
    mat = fm.world_to_fsl(world, in_shape=data.shape, in_affine=affine, ref_shape=data.shape,
                          ref_affine=affine)
    for interp in ('trilinear', 'nearestneighbour'):
        out = rigid_engine.resample_fsl(data, affine, data.shape, affine, mat, interp=interp)
        np.testing.assert_array_equal(out[:-1, 1:, 1:], data[1:, :-1, :-1])
        assert not out[-1].any()  # outside the input's field of view
    spline = rigid_engine.resample_fsl(data, affine, data.shape, affine, mat, interp='spline')
    np.testing.assert_allclose(spline[:-1, 1:, 1:], data[1:, :-1, :-1], atol=1e-5)


def test_nearest_neighbour_keeps_labels(tmp_path):
    """Label maps stay integer with the same label set after a 4° / 3 mm move (issue 4)."""
    labels = np.zeros((40, 40, 20), np.int16)
    labels[10:20, 12:22, 5:12] = 3
    labels[25:30, 20:28, 8:15] = 17
    affine = grid_affine(labels.shape, (1.0, 1.0, 2.0))
    world = rigid((0, 0, 4), (3.0, 0.0, 0.0))
    mat = fm.world_to_fsl(world, in_shape=labels.shape, in_affine=affine,
                          ref_shape=labels.shape, ref_affine=affine)
    in_file = save(tmp_path / 'labels.nii.gz', labels, affine)
    mat_file = fm.write_fsl_matrix(tmp_path / 'move.mat', mat)
    res = reg.ApplyTransform(in_file=in_file, reference=in_file, in_matrix_file=mat_file,
                             interp='nearestneighbour', engine='builtin').run(cwd=str(tmp_path))
    out = nb.load(res.outputs.out_file)
    assert out.get_data_dtype() == np.int16
    values = np.asanyarray(out.dataobj)
    assert set(np.unique(values)) == {0, 3, 17}
    # volume is preserved to within the partial-voxel boundary changes (~10 % for these boxes)
    assert np.count_nonzero(values == 3) == pytest.approx(700, rel=0.1)


# ---------------------------------------------------------------------------------------------
# The nipype interfaces, built-in engine
# ---------------------------------------------------------------------------------------------
def test_coregister_flair_onto_gre_across_grids(tmp_path, gre_reference):
    """FLAIR 1 mm iso onto GRE 1.5×1.5×3 mm, cross-modal (MI): 0.5 mm and 0.5° (issue 4).

    Also checks that the FLIRT-convention matrix file means what FLIRT's would: converted back
    with both images' geometry it gives the true world motion, and ApplyTransform with it
    reproduces Coregister's resampled output exactly.  Measured error ~0.15 mm, ~0.1°.
    """
    motion = rigid((3, -4, 2), (4, -5, 3))
    flair, flair_affine = head_image((150, 184, 120), (1.0, 1.0, 1.0), motion=motion,
                                     contrast='flair', rng=5, neurological=True)
    flair_file = save(tmp_path / 'flair.nii.gz', flair, flair_affine)
    gre_file = save(tmp_path / 'gre.nii.gz', *gre_reference)
    res = reg.Coregister(in_file=flair_file, reference=gre_file,
                         engine='builtin').run(cwd=str(tmp_path))
    mat = fm.read_fsl_matrix(res.outputs.out_matrix_file)
    world = fm.fsl_to_world(mat, in_shape=flair.shape, in_affine=flair_affine,
                            ref_shape=GRE_SHAPE, ref_affine=gre_reference[1])
    displacement, angle = registration_error(world, motion)
    assert displacement < 0.5
    assert angle < 0.5
    out = nb.load(res.outputs.out_file)
    assert out.shape == GRE_SHAPE and np.allclose(out.affine, gre_reference[1], atol=1e-4)
    report = json.loads(open(res.outputs.out_report).read())
    assert report['engine'] == 'builtin' and res.outputs.engine == 'builtin'
    assert report['cost'] == 'corratio' and report['dof'] == 6
    assert report['metric'] == 'MattesMutualInformation' and report['metric_value'] < 0
    assert report['parameters']['seed'] == 20190401
    # Aligned FLAIR explains most of the GRE variance through tissue classes (cost ≪ 1).
    assert report['correlation_ratio_cost'] < 0.5
    applied = reg.ApplyTransform(in_file=flair_file, reference=gre_file,
                                 in_matrix_file=res.outputs.out_matrix_file,
                                 engine='builtin').run(cwd=str(mkdir(tmp_path / 'apply')))
    np.testing.assert_array_equal(nb.load(applied.outputs.out_file).get_fdata(), out.get_fdata())


def test_correlation_ratio_cost_known_values():
    """0 for a function of the reference, 1 for independent noise (to sampling error ~1/√N)."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5, size=20000).astype(float)
    assert rigid_engine.correlation_ratio_cost(x, x**2 + 1) == pytest.approx(0.0, abs=1e-12)
    noise = rng.random(20000) + 1.0
    assert rigid_engine.correlation_ratio_cost(x, noise, bins=4) == pytest.approx(1.0, abs=0.01)


def test_concatenate_and_invert_interfaces(tmp_path):
    """A→B then B→A composes to the identity (float64 round-off)."""
    a_to_b = fm.write_fsl_matrix(tmp_path / 'ab.mat', rigid((1, 2, 3), (4, 5, 6)))
    inverse = fm.write_fsl_matrix(tmp_path / 'ba.mat', np.linalg.inv(fm.read_fsl_matrix(a_to_b)))
    both = reg.ConcatenateTransforms(in_a_to_b=a_to_b, in_b_to_c=inverse)
    out = both.run(cwd=str(mkdir(tmp_path / 'cat'))).outputs.out_matrix_file
    composed = fm.read_fsl_matrix(out)
    np.testing.assert_allclose(composed, np.eye(4), atol=1e-8)  # 10-digit text files


def test_estimate_mem_gb():
    """64 B per moving voxel + 48 B per reference voxel + 0.2 GB; floor 0.25 GB."""
    flair, gre = (256, 256, 176), (256, 256, 64)
    expected = (64 * 256 * 256 * 176 + 48 * 256 * 256 * 64) / 1024**3 + 0.2
    assert reg.estimate_mem_gb(flair, gre) == pytest.approx(expected, rel=1e-12)
    assert reg.estimate_mem_gb((10, 10, 10)) == 0.25


# ---------------------------------------------------------------------------------------------
# FSL FLIRT engine: command line, dispatch, and a fake flirt
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_pair(tmp_path):
    data, affine = head_image((24, 24, 12), (8.0, 8.0, 12.0), noise=0)
    return (save(tmp_path / 'moving.nii.gz', data, affine),
            save(tmp_path / 'reference.nii.gz', data, affine))


def test_flirt_command_line(small_pair, tmp_path):
    """The paper's FLIRT call: 6 dof, correlation ratio; checked without FSL installed."""
    moving, reference = small_pair
    node = reg.flirt_interface(moving, reference, out_file=tmp_path / 'out.nii.gz',
                               out_matrix_file=tmp_path / 'out.mat')
    assert node.cmdline == (f'flirt -in {moving} -ref {reference} -out {tmp_path}/out.nii.gz '
                            f'-omat {tmp_path}/out.mat -cost corratio -dof 6 -interp trilinear')
    mi = reg.flirt_interface(moving, reference, out_file='o.nii.gz', out_matrix_file='o.mat',
                             cost='mutualinfo', ref_weight=reference)
    assert '-cost mutualinfo' in mi.cmdline and f'-refweight {reference}' in mi.cmdline


def test_engine_flirt_without_flirt_fails_clearly(small_pair, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    moving, reference = small_pair
    with pytest.raises(ValueError, match="'flirt' was requested but no 'flirt' executable"):
        resolve_engine('flirt')
    assert resolve_engine('auto') == 'builtin'
    with pytest.raises(ValueError, match="must be 'auto', 'flirt' or 'builtin'"):
        resolve_engine('ants')


FAKE_FLIRT = '''#!{python}
"""Stand-in for FSL flirt: writes a known matrix and the reference image."""
import sys
import nibabel as nb
args = sys.argv[1:]
opt = {{args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith('-')}}
ref = nb.load(opt['-ref'])
nb.save(nb.Nifti1Image(ref.get_fdata() * 2, ref.affine), opt['-out'])
if '-applyxfm' in args:
    open(opt['-omat'], 'w').write(open(opt['-init']).read())
else:
    open(opt['-omat'], 'w').write('{matrix}')
with open(sys.argv[0] + '.log', 'a') as log:
    log.write(' '.join(args) + '\\n')
'''


@pytest.fixture
def fake_flirt(tmp_path, monkeypatch):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    script = bindir / 'flirt'
    matrix = '1  0  0  2.5  \n0  1  0  -1  \n0  0  1  0  \n0  0  0  1  \n'
    script.write_text(FAKE_FLIRT.format(python=sys.executable, matrix=matrix.replace('\n', '\\n')))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{bindir}{os.pathsep}{os.environ["PATH"]}')
    return script


def test_auto_dispatches_to_flirt_when_on_path(small_pair, tmp_path, fake_flirt):
    """With a (fake) flirt on PATH, 'auto' resolves to it, and the node runs it through nipype
    and keeps its outputs."""
    moving, reference = small_pair
    engine = resolve_engine('auto')
    assert engine == 'flirt'
    res = reg.Coregister(in_file=moving, reference=reference, engine=engine).run(
        cwd=str(mkdir(tmp_path / 'co')))
    assert res.outputs.engine == 'flirt'
    np.testing.assert_array_equal(fm.read_fsl_matrix(res.outputs.out_matrix_file),
                                  [[1, 0, 0, 2.5], [0, 1, 0, -1], [0, 0, 1, 0], [0, 0, 0, 1]])
    ref_data = nb.load(reference).get_fdata()
    np.testing.assert_allclose(nb.load(res.outputs.out_file).get_fdata(), 2 * ref_data,
                               rtol=1e-6)
    report = json.loads(open(res.outputs.out_report).read())
    assert report['engine'] == 'flirt' and '-cost corratio -dof 6' in report['command']
    # FSL x runs along world -x here, so the FLIRT shift (2.5, -1, 0) is world (-2.5, -1, 0).
    assert report['translation_mm'] == pytest.approx([-2.5, -1.0, 0.0], abs=1e-9)
    applied = reg.ApplyTransform(in_file=moving, reference=reference,
                                 in_matrix_file=res.outputs.out_matrix_file, engine=engine,
                                 interp='nearestneighbour').run(cwd=str(mkdir(tmp_path / 'ap')))
    assert applied.outputs.engine == 'flirt'
    calls = open(f'{fake_flirt}.log').read().splitlines()
    assert calls[1].endswith('-applyxfm -init ' + res.outputs.out_matrix_file
                             + ' -interp nearestneighbour')


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_name_the_file(tmp_path, small_pair):
    moving, reference = small_pair
    with pytest.raises(Exception, match='no_such_image.nii.gz'):
        reg.Coregister(in_file=str(tmp_path / 'no_such_image.nii.gz'), reference=reference)
    four_d = save(tmp_path / 'four_d.nii.gz', np.ones((8, 8, 8, 3), np.float32), np.eye(4))
    with pytest.raises(ImageError, match='four_d.nii.gz: expected a 3-D image'):
        reg.Coregister(in_file=four_d, reference=reference,
                       engine='builtin').run(cwd=str(tmp_path))
    singular_img = nb.Nifti1Image(np.ones((8, 8, 8), np.float32), None)
    singular_img.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=2)  # qform stays unset
    singular = str(tmp_path / 'singular.nii.gz')
    nb.save(singular_img, singular)
    with pytest.raises(ImageError, match='singular.nii.gz: singular affine'):
        reg.ApplyTransform(in_file=moving, reference=singular,
                           in_matrix_file=fm.write_fsl_matrix(tmp_path / 'i.mat', np.eye(4)),
                           engine='builtin').run(cwd=str(tmp_path))
    bad_matrix = tmp_path / 'bad.mat'
    bad_matrix.write_text('1 0 0\n')
    with pytest.raises(ValueError, match='bad.mat: expected a 4x4 matrix'):
        reg.ApplyTransform(in_file=moving, reference=reference, in_matrix_file=str(bad_matrix),
                           engine='builtin').run(cwd=str(tmp_path))
    with pytest.raises(ValueError, match='dof=12 needs FSL FLIRT'):
        reg.Coregister(in_file=moving, reference=reference, engine='builtin',
                       dof=12).run(cwd=str(tmp_path))
