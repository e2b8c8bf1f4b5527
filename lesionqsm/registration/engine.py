"""Which engine registers, and the built-in engine's whole job on arrays."""

import shutil

import numpy as np

from . import fsl_matrix, rigid

#: Engines that can run; ``'auto'`` resolves to one of them.
ENGINES = ('flirt', 'builtin')


def resolve_engine(engine):
    """Which engine runs: ``'flirt'`` or ``'builtin'``.

    Parameters
    ----------
    engine : {'auto', 'flirt', 'builtin'}
        ``'auto'`` picks FLIRT when a ``flirt`` executable is on ``PATH``.

    Raises
    ------
    ValueError
        ``engine='flirt'`` while no ``flirt`` is on ``PATH``, or an unknown engine.
    """
    if engine not in ('auto', *ENGINES):
        raise ValueError(f"registration engine must be 'auto', 'flirt' or 'builtin', "
                         f'got {engine!r}')
    found = shutil.which('flirt')
    if engine == 'flirt' and found is None:
        raise ValueError("registration engine 'flirt' was requested but no 'flirt' executable "
                         "is on PATH; install FSL (and set FSLDIR) or use engine 'builtin' or "
                         "'auto'")
    if engine == 'auto':
        return 'flirt' if found else 'builtin'
    return engine


def grid_geometry(in_shape, in_affine, ref_shape, ref_affine, *, in_zooms=None,
                  ref_zooms=None):
    """The keyword arguments of the FSL-matrix conversions for one pair of grids.

    ``in_zooms``/``ref_zooms`` are the voxel sizes as FSL reads them (the header's pixdim,
    ``header.get_zooms()[:3]``); default: the affine's column norms.
    """
    def zooms(affine, given):
        if given is not None:
            return tuple(float(z) for z in given[:3])
        return tuple(float(z) for z in np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0))

    return dict(in_shape=tuple(in_shape[:3]), in_affine=np.asarray(in_affine, float),
                ref_shape=tuple(ref_shape[:3]), ref_affine=np.asarray(ref_affine, float),
                in_zooms=zooms(in_affine, in_zooms), ref_zooms=zooms(ref_affine, ref_zooms))


def register_builtin(reference, reference_affine, moving, moving_affine, *, geometry=None,
                     reference_mask=None, interp='trilinear', seed=20190401, n_threads=1):
    """Rigid registration of ``moving`` to ``reference`` by the SimpleITK engine.

    Parameters
    ----------
    reference, moving : float ndarray, 3-D
        Images on their own grids.
    reference_affine, moving_affine : (4, 4) array_like
        Voxel-to-world (RAS mm) affines.
    geometry : dict, optional
        :func:`grid_geometry` of the pair (default: from the affines).
    reference_mask : bool ndarray, optional
        Restrict the metric to this mask on the reference grid.
    interp : {'trilinear', 'nearestneighbour', 'spline'}
        Interpolation of the resampled image.
    seed, n_threads : int
        Metric sampling seed; ITK threads (1 gives bit-identical results run to run).

    Returns
    -------
    fsl_mat : (4, 4) ndarray
        FLIRT-convention matrix, moving to reference, as written to text (10 significant
        digits), so resampling with the written file reproduces ``resampled`` exactly.
    resampled : float32 ndarray
        ``moving`` on the reference grid.
    report : dict
        Metric, its final value, iterations and stop condition.
    """
    if geometry is None:
        geometry = grid_geometry(moving.shape, moving_affine, reference.shape, reference_affine)
    result = rigid.register_rigid(reference, reference_affine, moving, moving_affine,
                                  reference_mask=reference_mask, seed=seed, n_threads=n_threads)
    text = fsl_matrix.format_fsl_matrix(fsl_matrix.world_to_fsl(result.world, **geometry))
    fsl_mat = np.array([[float(v) for v in line.split()] for line in text.splitlines()])
    resampled = rigid.resample_fsl(moving, moving_affine, reference.shape[:3], reference_affine,
                                   fsl_mat, interp=interp, in_zooms=geometry['in_zooms'],
                                   ref_zooms=geometry['ref_zooms'])
    report = {'metric': result.metric, 'metric_value': result.metric_value,
              'iterations_per_level': result.iterations,
              'stop_condition': result.stop_condition, 'parameters': result.parameters,
              'note': 'correlation ratio is not available in SimpleITK; Mattes mutual '
                      'information was optimised and the final correlation ratio cost is '
                      'reported'}
    return fsl_mat, resampled, report


def registration_summary(fsl_mat, reference, resampled, *, geometry, reference_mask=None):
    """What any engine's result means: world matrix, rotation, translation, final cost.

    Parameters
    ----------
    fsl_mat : (4, 4) array_like
        FLIRT-convention matrix, moving to reference.
    reference, resampled : float ndarray, 3-D
        The reference image and the moving image resampled onto it.
    geometry : dict
        :func:`grid_geometry` of the pair.
    reference_mask : bool ndarray, optional

    Returns
    -------
    dict
        ``fsl_matrix``, ``world_matrix_moving_to_reference_ras``, ``rotation_deg``,
        ``translation_mm`` and ``correlation_ratio_cost`` (FLIRT's cost, 0 = perfect).
    """
    world = fsl_matrix.fsl_to_world(np.asarray(fsl_mat, float), **geometry)
    return {
        'fsl_matrix': np.asarray(fsl_mat, float).tolist(),
        'world_matrix_moving_to_reference_ras': world.tolist(),
        'rotation_deg': fsl_matrix.rotation_angle_deg(world),
        'translation_mm': [float(v) for v in world[:3, 3]],
        'correlation_ratio_cost': rigid.correlation_ratio_cost(
            np.asarray(reference, np.float32), np.asarray(resampled, np.float32),
            mask=reference_mask),
    }
