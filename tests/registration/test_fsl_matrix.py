"""FSL FLIRT matrix convention: known cases and round trips (lesionqsm.interfaces.fsl_matrix)."""

import numpy as np
import pytest

from lesionqsm.registration import fsl_matrix as fm


def _rotation(axis, angle_deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.radians(angle_deg)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _affine(zooms, rotation=None, origin=(0, 0, 0), *, flip_x=False):
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(zooms)
    if flip_x:
        affine[:3, 0] *= -1
    affine[:3, 3] = origin
    return affine


def _rigid(axis, angle_deg, translation):
    mat = np.eye(4)
    mat[:3, :3] = _rotation(axis, angle_deg)
    mat[:3, 3] = translation
    return mat


GEOMETRIES = {
    'las_radiological': ((64, 60, 30), _affine((1.5, 1.5, 3.0), origin=(96, -90, -45),
                                              flip_x=True)),
    'ras_neurological': ((64, 60, 30), _affine((1.5, 1.5, 3.0), origin=(-96, -90, -45))),
    'oblique_neurological': ((50, 70, 40), _affine((1.0, 1.2, 2.0), _rotation((1, 2, 3), 17),
                                                  (-60, -80, -30))),
    'oblique_radiological': ((50, 70, 40), _affine((1.0, 1.0, 1.0), _rotation((0, 1, 0), -9),
                                                  (70, -80, -30), flip_x=True)),
}


def _geometry(in_key, ref_key):
    (in_shape, in_affine), (ref_shape, ref_affine) = GEOMETRIES[in_key], GEOMETRIES[ref_key]
    return dict(in_shape=in_shape, in_affine=in_affine, ref_shape=ref_shape,
                ref_affine=ref_affine)


def test_scaled_voxel_affine_flips_x_for_positive_determinant():
    """FSL's flip: voxel 0 of a neurological image sits at x = (n-1)·dx; exact arithmetic."""
    shape, affine = GEOMETRIES['ras_neurological']
    v = fm.fsl_scaled_voxel_affine(shape, affine)
    assert np.linalg.det(affine[:3, :3]) > 0  # neurological (RAS-like) storage
    np.testing.assert_allclose(v @ [0, 0, 0, 1], [63 * 1.5, 0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(v @ [63, 2, 3, 1], [0, 3.0, 9.0, 1], atol=1e-12)
    shape, affine = GEOMETRIES['las_radiological']
    assert np.linalg.det(affine[:3, :3]) < 0  # radiological storage
    np.testing.assert_allclose(fm.fsl_scaled_voxel_affine(shape, affine),
                               np.diag([1.5, 1.5, 3.0, 1.0]), atol=1e-12)


@pytest.mark.parametrize('key', sorted(GEOMETRIES))
def test_identity_for_the_same_image(key):
    """An image registered to itself has the identity FLIRT matrix (float64 round-off only)."""
    geometry = _geometry(key, key)
    np.testing.assert_allclose(fm.world_to_fsl(np.eye(4), **geometry), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(fm.fsl_to_world(np.eye(4), **geometry), np.eye(4), atol=1e-12)


@pytest.mark.parametrize('key', ['las_radiological', 'ras_neurological'])
def test_pure_world_translation(key):
    """On an axis-aligned grid, FSL's scaled-voxel x runs along world -x whatever the storage.

    So a world shift (tx, ty, tz) is the FLIRT translation (-tx, ty, tz) with no rotation, for
    both determinant signs (the x flip is exactly what makes them agree).
    """
    geometry = _geometry(key, key)
    world = _rigid((0, 0, 1), 0, (4.0, -2.5, 6.0))
    expected = _rigid((0, 0, 1), 0, (-4.0, -2.5, 6.0))
    np.testing.assert_allclose(fm.world_to_fsl(world, **geometry), expected, atol=1e-12)


def test_oblique_and_flipped_known_case():
    """A 20° oblique neurological input onto a radiological 1 mm reference.

    The expected matrix was computed with fslpy 3.29.1
    (``fsl.transform.flirt.toFlirt(W, src, ref, 'world', 'world')``), an independent
    implementation; fslpy read the affines from float32 NIfTI headers, hence atol 1e-6 mm.
    """
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    in_affine = np.array([[1.5 * c, -1.5 * s, 0, -80], [1.5 * s, 1.5 * c, 0, -95],
                          [0, 0, 3, -40], [0, 0, 0, 1]])
    ref_affine = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -110], [0, 0, 1, -70], [0, 0, 0, 1]])
    world = _rigid((0, 0, 1), 0, (2, -3, 4))
    expected = np.array([[0.939692656199, 0.342020153999, 0.0, 79.199043989182],
                         [-0.342020153999, 0.939692656199, 0.0, 44.320904552937],
                         [0.0, 0.0, 1.0, 34.0],
                         [0.0, 0.0, 0.0, 1.0]])
    got = fm.world_to_fsl(world, in_shape=(64, 60, 30), in_affine=in_affine,
                          ref_shape=(50, 70, 40), ref_affine=ref_affine)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_voxel_mapping_agrees_with_pointwise_world_geometry():
    """The FLIRT matrix sends each input voxel where the world matrix puts it (1e-9 vox)."""
    geometry = _geometry('oblique_neurological', 'las_radiological')
    world = _rigid((1, -1, 2), 4.0, (3.0, -1.0, 2.0))
    mat = fm.world_to_fsl(world, **geometry)
    vox = fm.fsl_to_voxel(mat, **geometry)
    rng = np.random.default_rng(3)
    for ijk in rng.uniform(0, 40, size=(5, 3)):
        point = geometry['in_affine'] @ [*ijk, 1]
        expected = np.linalg.solve(geometry['ref_affine'], world @ point)
        np.testing.assert_allclose(vox @ [*ijk, 1], expected, atol=1e-9)


@pytest.mark.parametrize('in_key,ref_key', [('oblique_neurological', 'las_radiological'),
                                            ('ras_neurological', 'oblique_radiological'),
                                            ('oblique_radiological', 'oblique_neurological')])
def test_round_trips(in_key, ref_key):
    """world -> FSL -> world and voxel -> FSL -> voxel are exact up to float64 round-off."""
    geometry = _geometry(in_key, ref_key)
    world = _rigid((3, 1, -2), 5.0, (4.0, -5.0, 3.0))
    mat = fm.world_to_fsl(world, **geometry)
    np.testing.assert_allclose(fm.fsl_to_world(mat, **geometry), world, atol=1e-10)
    vox = fm.fsl_to_voxel(mat, **geometry)
    np.testing.assert_allclose(fm.voxel_to_fsl(vox, **geometry), mat, atol=1e-10)
    # A rigid world matrix between grids with pixdim = column norms stays rigid in FSL space.
    np.testing.assert_allclose(mat[:3, :3] @ mat[:3, :3].T, np.eye(3), atol=1e-12)


def test_compose_and_invert_match_world_algebra():
    """compose_fsl(A→B, B→C) and the inverse matrix are the world compositions, to 1e-10 mm."""
    a_b = _geometry('oblique_neurological', 'las_radiological')
    b_c = _geometry('las_radiological', 'oblique_radiological')
    a_c = _geometry('oblique_neurological', 'oblique_radiological')
    w_ab = _rigid((1, 0, 1), 3.0, (1.0, 2.0, -3.0))
    w_bc = _rigid((0, 1, 1), -4.0, (-2.0, 0.5, 4.0))
    m_ab = fm.world_to_fsl(w_ab, **a_b)
    m_bc = fm.world_to_fsl(w_bc, **b_c)
    np.testing.assert_allclose(fm.compose_fsl(m_ab, m_bc), fm.world_to_fsl(w_bc @ w_ab, **a_c),
                               atol=1e-10)
    b_a = _geometry('las_radiological', 'oblique_neurological')
    np.testing.assert_allclose(np.linalg.inv(m_ab), fm.world_to_fsl(np.linalg.inv(w_ab), **b_a),
                               atol=1e-10)


def test_matrix_file_round_trip_and_format(tmp_path):
    """FLIRT's layout: 4 lines of 4 values followed by two spaces; 10 digits survive."""
    mat = fm.world_to_fsl(_rigid((1, 2, 3), 4.0, (1.25, -3.5, 2.0)),
                          **_geometry('oblique_neurological', 'las_radiological'))
    path = fm.write_fsl_matrix(tmp_path / 'a.mat', mat)
    lines = open(path).read().splitlines()
    assert len(lines) == 4 and all(line.endswith('  ') for line in lines)
    assert lines[3] == '0  0  0  1  '
    np.testing.assert_allclose(fm.read_fsl_matrix(path), mat, rtol=1e-9, atol=1e-9)


def test_matrix_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match='missing.mat: matrix file not found'):
        fm.read_fsl_matrix(tmp_path / 'missing.mat')
    bad = tmp_path / 'short.mat'
    bad.write_text('1 0 0 0\n0 1 0 0\n0 0 1 0\n')
    with pytest.raises(ValueError, match=r'short.mat: expected a 4x4 matrix'):
        fm.read_fsl_matrix(bad)
    singular = tmp_path / 'singular.mat'
    singular.write_text('0 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    with pytest.raises(ValueError, match='singular.mat: .*singular'):
        fm.read_fsl_matrix(singular)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match='singular'):
        fm.fsl_scaled_voxel_affine((4, 4, 4), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match='voxel sizes'):
        fm.fsl_scaled_voxel_affine((4, 4, 4), np.eye(4), zooms=(1.0, -1.0, 1.0))


def test_displacement_and_angle_helpers():
    """A 90° turn about z moves (10, 0, 0) by 10·√2 mm; the angle is read back as 90°."""
    turn = _rigid((0, 0, 1), 90.0, (0, 0, 0))
    assert fm.rotation_angle_deg(turn) == pytest.approx(90.0, abs=1e-9)
    assert fm.max_displacement_mm(turn, np.eye(4), [[10.0, 0, 0], [0, 0, 5.0]]) == \
        pytest.approx(10 * np.sqrt(2), rel=1e-12)
