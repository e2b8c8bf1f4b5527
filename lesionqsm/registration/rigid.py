"""Built-in rigid registration (SimpleITK) and resampling with FSL FLIRT matrices.

The engine used when FSL's ``flirt`` is not installed.  Its result is returned as a FLIRT matrix
(:mod:`lesionqsm.registration.fsl_matrix`) so that everything downstream sees the same format and
meaning whichever engine ran.  No nipype here; images come in as arrays plus affines.

Coordinates: nibabel affines are RAS+ mm; ITK's physical space is LPS mm.  Images are handed to
SimpleITK with their geometry set explicitly from the nibabel affine (no ITK NIfTI reader, so
qform/sform choices are nibabel's), and the ITK transform (reference LPS point to moving LPS
point) is turned back into the RAS world matrix ``W`` (moving RAS to reference RAS).
"""

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import fsl_matrix

#: Bump when the built-in engine's numerical behaviour changes (reruns nipype caches).
ENGINE_VERSION = '2'

_LPS = np.diag([-1.0, -1.0, 1.0])
_ORDERS = {'nearestneighbour': 0, 'trilinear': 1, 'spline': 3}


@dataclass
class RigidResult:
    """Outcome of :func:`register_rigid`.

    Attributes
    ----------
    world : (4, 4) ndarray
        ``x_ref_world = world @ x_moving_world`` (RAS mm), a rigid matrix.
    metric : str
        Name of the similarity metric that was optimised.
    metric_value : float
        Its final value at the finest level (Mattes MI is negated by ITK: lower is better).
    iterations : list of int
        Optimiser iterations per resolution level.
    stop_condition : str
        The optimiser's description of why it stopped.
    parameters : dict
        Settings used (shrink factors, smoothing, bins, sampling, seed, initialisation).
    """

    world: np.ndarray
    metric: str
    metric_value: float
    iterations: list = field(default_factory=list)
    stop_condition: str = ''
    parameters: dict = field(default_factory=dict)


def _check_volume(data, affine, name):
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f'{name}: expected a 3-D array, got shape {data.shape}')
    if min(data.shape) < 2:
        raise ValueError(f'{name}: every axis needs >= 2 voxels, got shape {data.shape}')
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f'{name}: singular or malformed affine')
    if not np.any(data != 0):
        raise ValueError(f'{name}: image is all zero; nothing to register')
    return data, affine


def to_sitk(data, affine):
    """A SimpleITK image with ``data``'s voxels and the geometry of a nibabel (RAS) affine.

    Parameters
    ----------
    data : (I, J, K) array_like
        Voxel values indexed like nibabel's ``get_fdata()``.
    affine : (4, 4) array_like
        Voxel-to-world RAS+ affine in mm.

    Returns
    -------
    SimpleITK.Image
        float32; index (i, j, k) of the ITK image is voxel ``data[i, j, k]`` and its physical
        point is ``diag(-1, -1, 1) @ affine @ [i, j, k, 1]`` (LPS).
    """
    affine = np.asarray(affine, dtype=np.float64)
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.float32).T))
    image.SetSpacing(tuple(float(z) for z in zooms))
    image.SetOrigin(tuple(float(v) for v in _LPS @ affine[:3, 3]))
    direction = _LPS @ affine[:3, :3] / zooms
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def _itk_to_world(transform):
    """RAS world matrix ``W`` (moving to reference) of an ITK reference-to-moving LPS transform."""
    rot = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    center = np.asarray(transform.GetCenter(), dtype=np.float64)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    ref_to_moving = np.eye(4)
    ref_to_moving[:3, :3] = _LPS @ rot @ _LPS
    ref_to_moving[:3, 3] = _LPS @ (translation + center - rot @ center)
    return np.linalg.inv(ref_to_moving)


#: Most metric samples per resolution level (see :func:`register_rigid`).
MAX_SAMPLES = 50_000


def _capped_fractions(shape, shrink_factors, fractions, max_samples):
    """Per level, the sampling fraction of the reference grid shrunk by that level's factor,
    lowered so that no level draws more than ``max_samples`` samples."""
    capped = []
    for shrink, fraction in zip(shrink_factors, fractions, strict=True):
        voxels = float(np.prod([-(-int(n) // int(shrink)) for n in shape]))
        capped.append(min(float(fraction), max_samples / voxels))
    return tuple(capped)


def register_rigid(reference, reference_affine, moving, moving_affine, *,
                   metric='mattes', bins=32, shrink_factors=(4, 2, 1),
                   smoothing_sigmas=(2.0, 1.0, 0.0), sampling_fractions=(0.25, 0.25, 0.1),
                   max_samples=MAX_SAMPLES, seed=20190401,
                   max_iterations=200, initialisation='moments', reference_mask=None,
                   n_threads=1):
    """Rigid (6 dof) registration of ``moving`` onto ``reference``.

    Multi-resolution Mattes mutual information with a regular-step gradient descent on an
    Euler (3 angles + translation) transform.

    Parameters
    ----------
    reference, moving : (I, J, K) array_like
        Voxel intensities (any units; MI needs no common scale, so modalities may differ).
    reference_affine, moving_affine : (4, 4) array_like
        Their voxel-to-world RAS+ affines, mm.  Grids may differ (e.g. 1 mm iso FLAIR onto a
        1.5×1.5×3 mm GRE).
    metric : {'mattes'}, optional
        Similarity metric; only Mattes mutual information is offered (see Notes).
    bins : int, optional
        Histogram bins of the MI estimate.
    shrink_factors : tuple of int, optional
        Down-sampling per resolution level, coarse to fine.
    smoothing_sigmas : tuple of float, optional
        Gaussian smoothing per level in voxels of the level's input.
    sampling_fractions : tuple of float, optional
        Per level, the fraction of reference voxels sampled at random for the metric, in
        (0, 1].  10 % at full resolution halves the run time of 25 % at no loss of accuracy on
        the benchmark phantom (``benchmarks/bench_registration.py``).
    max_samples : int, optional
        At most this many samples per level, whatever the fraction: the cost of an
        iteration grows with the samples, the accuracy of a 6-parameter fit does not beyond a
        few ten thousand.  On a 240 × 240 × 48 GRE subject (two follow-ups onto the baseline,
        three FLAIRs onto the GRE), the largest displacement errors against the synthetic
        truth were 0.28-0.87 mm with 276,000 samples at full resolution and 0.27-0.86 mm with
        50,000, in 2.2 times less CPU (``benchmarks/bench_registration.py --synth``).
    seed : int, optional
        Seed of that sampling.
    max_iterations : int, optional
        Optimiser iterations per level.
    initialisation : {'moments', 'identity', 'geometry'}, optional
        Start by matching the intensity centres of mass, from the scanner coordinates as they
        are (rotating about the reference grid centre), or by matching the grid centres.
    reference_mask : (I, J, K) bool array_like, optional
        Evaluate the metric only inside this mask on the reference grid.
    n_threads : int, optional
        ITK threads (set as SimpleITK's global default for the duration of the call, then
        restored).  With one thread, a fixed seed gives bit-identical results run to run; with
        more, ITK's parallel sums change order and results differ by ~1e-12 mm.

    Returns
    -------
    RigidResult
        ``result.world`` maps moving RAS mm to reference RAS mm.

    Raises
    ------
    ValueError
        Non-3-D or all-zero arrays, singular affines, inconsistent level settings, bad options.

    Notes
    -----
    FLIRT's default cost, the correlation ratio, has no SimpleITK implementation; this engine
    optimises MI for either requested cost and callers can report the final correlation ratio
    with :func:`correlation_ratio_cost` so both engines' reports carry the same number.
    """
    reference, reference_affine = _check_volume(reference, reference_affine, 'reference')
    moving, moving_affine = _check_volume(moving, moving_affine, 'moving image')
    if metric != 'mattes':
        raise ValueError(f"metric must be 'mattes', got {metric!r}")
    if initialisation not in ('identity', 'moments', 'geometry'):
        raise ValueError("initialisation must be 'identity', 'moments' or 'geometry', got "
                         f'{initialisation!r}')
    n_levels = len(shrink_factors)
    if not n_levels or len(smoothing_sigmas) != n_levels or len(sampling_fractions) != n_levels:
        raise ValueError('shrink_factors, smoothing_sigmas and sampling_fractions need one entry '
                         f'per level, got {shrink_factors}, {smoothing_sigmas} and '
                         f'{sampling_fractions}')
    if not all(0 < f <= 1 for f in sampling_fractions):
        raise ValueError(f'sampling_fractions must be in (0, 1], got {sampling_fractions}')
    previous_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(n_threads))
    try:
        return _register(reference, reference_affine, moving, moving_affine, bins=bins,
                         shrink_factors=shrink_factors, smoothing_sigmas=smoothing_sigmas,
                         sampling_fractions=_capped_fractions(
                             reference.shape, shrink_factors, sampling_fractions, max_samples),
                         seed=seed,
                         max_iterations=max_iterations, initialisation=initialisation,
                         reference_mask=reference_mask, n_threads=n_threads)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous_threads)


def _register(reference, reference_affine, moving, moving_affine, *, bins, shrink_factors,
              smoothing_sigmas, sampling_fractions, seed, max_iterations, initialisation,
              reference_mask, n_threads):
    fixed_img = to_sitk(reference, reference_affine)
    moving_img = to_sitk(moving, moving_affine)
    if initialisation == 'identity':
        transform = sitk.Euler3DTransform()
        centre = [(n - 1) / 2.0 for n in fixed_img.GetSize()]
        transform.SetCenter(fixed_img.TransformContinuousIndexToPhysicalPoint(centre))
    else:
        init_mode = (sitk.CenteredTransformInitializerFilter.MOMENTS
                     if initialisation == 'moments'
                     else sitk.CenteredTransformInitializerFilter.GEOMETRY)
        transform = sitk.CenteredTransformInitializer(fixed_img, moving_img,
                                                      sitk.Euler3DTransform(), init_mode)
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(int(n_threads))
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(bins))
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentagePerLevel([float(f) for f in sampling_fractions],
                                               int(seed))
    if reference_mask is not None:
        mask = np.asarray(reference_mask)
        if mask.shape != reference.shape:
            raise ValueError(f'reference_mask shape {mask.shape} differs from the reference '
                             f'shape {reference.shape}')
        mask_img = sitk.Cast(to_sitk(mask > 0, reference_affine), sitk.sitkUInt8)
        method.SetMetricFixedMask(mask_img)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=int(max_iterations),
        relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    method.SetSmoothingSigmasPerLevel([float(s) for s in smoothing_sigmas])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)
    iterations = []
    method.AddCommand(sitk.sitkMultiResolutionIterationEvent, lambda: iterations.append(0))
    method.AddCommand(sitk.sitkIterationEvent,
                      lambda: iterations.__setitem__(-1, iterations[-1] + 1)
                      if iterations else None)
    method.Execute(fixed_img, moving_img)
    parameters = {
        'transform': 'Euler3D (rigid, 6 dof)',
        'metric': 'MattesMutualInformation',
        'bins': int(bins),
        'shrink_factors': [int(s) for s in shrink_factors],
        'smoothing_sigmas_voxels': [float(s) for s in smoothing_sigmas],
        'sampling': 'random',
        'sampling_fractions': [float(f) for f in sampling_fractions],
        'seed': int(seed),
        'optimizer': 'RegularStepGradientDescent',
        'learning_rate': 1.0, 'min_step': 1e-4, 'relaxation_factor': 0.7,
        'max_iterations_per_level': int(max_iterations),
        'initialisation': initialisation,
        'n_threads': int(n_threads),
        'simpleitk_version': sitk.Version.VersionString(),
        'engine_version': ENGINE_VERSION,
    }
    return RigidResult(
        world=_itk_to_world(transform), metric='MattesMutualInformation',
        metric_value=float(method.GetMetricValue()), iterations=iterations,
        stop_condition=method.GetOptimizerStopConditionDescription(), parameters=parameters)


def resample_fsl(data, in_affine, ref_shape, ref_affine, fsl_mat, *, interp='trilinear',
                 in_zooms=None, ref_zooms=None):
    """Resample an image onto a reference grid through a FLIRT matrix (as ``flirt -applyxfm``).

    Parameters
    ----------
    data : (I, J, K) array_like
        Input (moving) voxels.
    in_affine, ref_affine : (4, 4) array_like
        Voxel-to-world affines of the input and the reference.
    ref_shape : tuple of int
        Reference grid shape (first three axes used).
    fsl_mat : (4, 4) array_like
        FLIRT matrix, input scaled-voxel mm to reference scaled-voxel mm.
    interp : {'trilinear', 'nearestneighbour', 'spline'}, optional
        Interpolation; nearest neighbour keeps the input dtype (label maps stay integer),
        the others return float32.  Outside the input field of view values are 0.
    in_zooms, ref_zooms : tuple of 3 float, optional
        ``pixdim`` voxel sizes (default: affine column norms).

    Returns
    -------
    ndarray, shape ``ref_shape[:3]``
    """
    if interp not in _ORDERS:
        raise ValueError(f'interp must be one of {sorted(_ORDERS)}, got {interp!r}')
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f'expected a 3-D image, got shape {data.shape}')
    ref_shape = tuple(int(n) for n in ref_shape[:3])
    vox = fsl_matrix.fsl_to_voxel(fsl_mat, in_shape=data.shape, in_affine=in_affine,
                                  ref_shape=ref_shape, ref_affine=ref_affine,
                                  in_zooms=in_zooms, ref_zooms=ref_zooms)
    ref_to_in = np.linalg.inv(vox)
    order = _ORDERS[interp]
    if order == 0:
        # Round the sampling position ourselves so that integer labels are copied, not cast.
        grid = np.indices(ref_shape, dtype=np.float64).reshape(3, -1)
        coords = ref_to_in[:3, :3] @ grid + ref_to_in[:3, 3:4]
        index = np.floor(coords + 0.5).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(data.shape)[:, None]), axis=0)
        out = np.zeros(grid.shape[1], dtype=data.dtype)
        out[inside] = data[tuple(index[:, inside])]
        return out.reshape(ref_shape)
    source = data.astype(np.float32, copy=False)
    return ndimage.affine_transform(source, ref_to_in[:3, :3], offset=ref_to_in[:3, 3],
                                    output_shape=ref_shape, output=np.float32, order=order,
                                    mode='constant', cval=0.0, prefilter=order > 1)


def correlation_ratio_cost(reference, moving, *, mask=None, bins=64):
    """FLIRT's correlation-ratio cost between two images on the same grid.

    ``cost = Σ_k n_k Var(moving | reference ∈ bin k) / (N Var(moving))``: 0 when the moving
    intensity is a function of the reference intensity, 1 when it tells nothing about it.

    Parameters
    ----------
    reference, moving : ndarray, same shape
        Intensities; the reference is binned into ``bins`` equal-width bins.
    mask : bool ndarray, optional
        Voxels to use (default: where either image is non-zero).
    bins : int, optional

    Returns
    -------
    float
        Dimensionless cost in [0, 1]; NaN when fewer than two voxels or a constant image.
    """
    reference = np.asarray(reference, dtype=np.float64)
    moving = np.asarray(moving, dtype=np.float64)
    if reference.shape != moving.shape:
        raise ValueError(f'shapes differ: {reference.shape} vs {moving.shape}')
    if mask is None:
        mask = (reference != 0) | (moving != 0)
    x, y = reference[mask], moving[mask]
    if x.size < 2 or np.ptp(x) == 0 or np.var(y) == 0:
        return float('nan')
    labels = np.minimum(((x - x.min()) / np.ptp(x) * bins).astype(np.int64), bins - 1)
    counts = np.bincount(labels, minlength=bins).astype(np.float64)
    sums = np.bincount(labels, weights=y, minlength=bins)
    sq_sums = np.bincount(labels, weights=y * y, minlength=bins)
    filled = counts > 0
    within = np.sum(sq_sums[filled] - sums[filled] ** 2 / counts[filled])
    return float(within / (y.size * np.var(y)))
