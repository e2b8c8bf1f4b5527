"""The whole QSM chain of one visit, from complex echoes to χ (ppm, CSF = 0), in one call."""

import time
from dataclasses import dataclass, field

import numpy as np

from . import background as background_removal
from . import csf, masking, medi, multiecho, r2star, tkd, unwrap
from .geometry import b0_direction, voxel_sizes

BACKGROUND_METHODS = ('pdf', 'lbv')
INVERSION_METHODS = ('medi+0', 'medi', 'tkd')
UNWRAPPING_METHODS = ('region_growing', 'laplacian')


@dataclass
class SessionReconstruction:
    """Every intermediate map of one visit's reconstruction (spatial shape of the input).

    Attributes
    ----------
    magnitude : float32 ndarray
        Root-sum-of-squares magnitude over echoes, divided by its 99th percentile in the head
        (``parameters['magnitude_scale']`` is the divisor).
    field_rad : float32 ndarray
        Multi-echo fit frequency, radians per ``delta_te``, wrapped to [-π, π).
    field_hz : float32 ndarray
        The same frequency in Hz.
    phase0 : float32 ndarray
        Fitted phase at the first echo, radians.
    noise_std : float32 ndarray
        Standard deviation of ``field_rad``, radians per ``delta_te``.
    fit_residual : float32 ndarray
        Relative residual of the multi-echo fit.
    unwrapped_field_rad : float32 ndarray
        Spatially unwrapped total field, radians per ``delta_te`` (0 outside the brain).
    brain_mask : bool ndarray
        Brain mask (user-supplied or from the magnitude).
    r2star : float32 ndarray
        R2* in 1/s inside the brain mask.
    csf_mask : bool ndarray
        Zero-reference region: ventricular CSF, or the whole brain (see ``reference``).
    reference : str
        ``'ventricular_csf'`` or ``'whole_brain'``.
    reference_message : str
        How the reference region was found.
    local_field_rad : float32 ndarray
        Background-removed field, radians per ``delta_te``.
    local_mask : bool ndarray
        Mask the local field and χ are defined on (the brain mask, eroded for LBV).
    chi_ppm : float32 ndarray
        Susceptibility in ppm, mean 0 over the reference region, 0 outside ``local_mask``.
    delta_te : float
        Echo spacing (s) of the radian unit, ``echo_times[1] - echo_times[0]``.
    voxel_size : tuple of 3 float
        mm, from the affine.
    b0_dir : ndarray, shape (3,)
        Unit B0 vector in array axes, from the affine.
    inversion_info : dict
        What the dipole inversion reported (iterations, costs, timings).
    parameters : dict
        Every choice made, for provenance (methods, thresholds, scale, echo times).
    timings : dict
        Wall time per stage in s.
    """

    magnitude: np.ndarray
    field_rad: np.ndarray
    field_hz: np.ndarray
    phase0: np.ndarray
    noise_std: np.ndarray
    fit_residual: np.ndarray
    unwrapped_field_rad: np.ndarray
    brain_mask: np.ndarray
    r2star: np.ndarray
    csf_mask: np.ndarray
    reference: str
    reference_message: str
    local_field_rad: np.ndarray
    local_mask: np.ndarray
    chi_ppm: np.ndarray
    delta_te: float
    voxel_size: tuple
    b0_dir: np.ndarray
    inversion_info: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def _validate(complex_echoes, echo_times, field_strength, affine, phase_sign, background,
              inversion, unwrapping, brain_mask):
    signal = np.asarray(complex_echoes)
    if signal.ndim != 4:
        raise ValueError('complex_echoes must be 4-D (X, Y, Z, echoes), got shape '
                         f'{signal.shape}')
    if not np.iscomplexobj(signal):
        raise ValueError('complex_echoes must be complex (magnitude · exp(i phase)), got '
                         f'dtype {signal.dtype}')
    te = np.asarray(echo_times, dtype=float).ravel()
    if te.size != signal.shape[-1]:
        raise ValueError(f'{te.size} echo times were given for {signal.shape[-1]} echoes')
    if not field_strength or field_strength <= 0:
        raise ValueError(f'field_strength must be a positive number of tesla, got '
                         f'{field_strength!r}')
    if np.asarray(affine).shape != (4, 4):
        raise ValueError(f'affine must be 4×4, got shape {np.asarray(affine).shape}')
    if phase_sign not in (1, -1):
        raise ValueError(f'phase_sign must be 1 or -1, got {phase_sign!r}')
    for name, value, allowed in (('background', background, BACKGROUND_METHODS),
                                 ('inversion', inversion, INVERSION_METHODS),
                                 ('unwrapping', unwrapping, UNWRAPPING_METHODS)):
        if value not in allowed:
            raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
    if brain_mask is not None:
        brain_mask = np.asarray(brain_mask, dtype=bool)
        if brain_mask.shape != signal.shape[:3]:
            raise ValueError(f'brain_mask shape {brain_mask.shape} differs from the echoes '
                             f'{signal.shape[:3]}')
        if not brain_mask.any():
            raise ValueError('the supplied brain_mask is empty')
    return signal, te, brain_mask


def _evenly_spaced(te):
    spacing = np.diff(te)
    return te.size >= 3 and np.ptp(spacing) <= 1e-3 * spacing.mean()


def reconstruct_session(complex_echoes, echo_times, *, field_strength, affine, phase_sign=1,
                        brain_mask=None, background='pdf', inversion='medi+0',
                        medi_options=None, unwrapping='region_growing', csf_options=None,
                        mask_options=None, background_options=None, tkd_threshold=0.19):
    """Reconstruct one visit: multi-echo fit → unwrap → mask → R2* → CSF → background → χ.

    Parameters
    ----------
    complex_echoes : complex ndarray, shape (X, Y, Z, E)
        Complex GRE echoes ``magnitude · exp(i phase)``, phase in radians, any magnitude
        scale.
    echo_times : sequence of E float
        Echo times in s, strictly increasing (uneven spacing allowed; R2* then uses the
        log-linear fit instead of ARLO).
    field_strength : float
        B0 in tesla.
    affine : (4, 4) array_like
        Voxel-to-world affine of the echoes: voxel size and B0 direction come from it.
    phase_sign : {1, -1}, optional
        -1 for scanners that store the conjugate phase (the echoes are conjugated first), so
        that a paramagnetic source comes out positive (:mod:`lesionqsm.qsm.constants`).
    brain_mask : bool ndarray, shape (X, Y, Z), optional
        User-supplied brain mask, used as given; default
        :func:`lesionqsm.qsm.masking.brain_mask_from_magnitude`.
    background : {'pdf', 'lbv'}, optional
        Background field removal.
    inversion : {'medi+0', 'medi', 'tkd'}, optional
        Dipole inversion.
    medi_options : dict, optional
        Keyword options of :func:`lesionqsm.qsm.medi.medi_plus_zero` (``lambda_``,
        ``lambda_csf``, ``max_gn_iter``, ``smv_radius_mm``, ``merit``, ...).
    unwrapping : {'region_growing', 'laplacian'}, optional
        Spatial unwrapping of the fitted field.
    csf_options : dict, optional
        Keyword options of :func:`lesionqsm.qsm.csf.ventricular_csf_mask`.
    mask_options : dict, optional
        Keyword options of :func:`lesionqsm.qsm.masking.brain_mask_from_magnitude`.
    background_options : dict, optional
        Keyword options of :func:`lesionqsm.qsm.background.pdf` or ``lbv`` (``tol``,
        ``max_iter``, ...).
    tkd_threshold : float, optional
        k-space threshold for ``inversion='tkd'``.

    Returns
    -------
    SessionReconstruction

    Raises
    ------
    ValueError
        On inputs of the wrong shape or type, an unknown method, a non-positive field strength
        or a wrong ``phase_sign`` (before any work is done).

    Notes
    -----
    The echoes are divided by the 99th percentile of their root-sum-of-squares magnitude
    before anything else, so no step sees the arbitrary scale of the images (the MEDI
    toolbox's PDF tolerance depends on it).  With ``inversion='tkd'`` the χ map is
    referenced by subtracting its mean over the reference region.
    """
    signal, te, brain_mask = _validate(complex_echoes, echo_times, field_strength, affine,
                                       phase_sign, background, inversion, unwrapping,
                                       brain_mask)
    timings = {}
    clock = time.perf_counter()
    voxel_size = voxel_sizes(affine)
    b0_dir = b0_direction(affine)
    signal = signal.astype(np.complex64, copy=True)
    if phase_sign == -1:
        np.conjugate(signal, out=signal)
    rss = np.sqrt(np.sum(signal.real**2 + signal.imag**2, axis=-1))
    scale = float(np.percentile(rss, 99))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError('the echoes are zero (or nearly everywhere): nothing to reconstruct')
    signal /= np.float32(scale)
    rss /= np.float32(scale)
    timings['prepare_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    user_mask = brain_mask is not None
    if not user_mask:
        brain_mask = masking.brain_mask_from_magnitude(rss, voxel_size, **(mask_options or {}))
    timings['brain_mask_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    fit = multiecho.fit_multiecho_complex(signal, te, mask=brain_mask)
    timings['multiecho_fit_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    if unwrapping == 'region_growing':
        unwrapped = unwrap.unwrap_region_growing(fit.field_rad, rss, mask=brain_mask)
    else:
        unwrapped = unwrap.unwrap_laplacian(fit.field_rad, voxel_size)
    unwrapped = np.where(brain_mask, unwrapped, 0).astype(np.float32)
    timings['unwrap_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    magnitude = np.abs(signal)
    if _evenly_spaced(te):
        r2s_method = 'arlo'
        r2s = r2star.r2star_arlo(magnitude, te, mask=brain_mask)
    else:
        r2s_method = 'loglinear'
        r2s = r2star.r2star_loglinear(magnitude, te, mask=brain_mask)
    del magnitude
    timings['r2star_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    csf_result = csf.ventricular_csf_mask(r2s, brain_mask, voxel_size, **(csf_options or {}))
    timings['csf_mask_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    bg_options = dict(background_options or {})
    if background == 'pdf':
        local, background_info = background_removal.pdf(
            unwrapped, brain_mask, voxel_size, b0_dir=b0_dir, noise_std=fit.noise_std,
            return_info=True, **bg_options)
        local_mask = brain_mask
    else:
        local, local_mask, background_info = background_removal.lbv(
            unwrapped, brain_mask, voxel_size, return_mask=True, return_info=True,
            **bg_options)
    timings['background_s'] = time.perf_counter() - clock

    clock = time.perf_counter()
    csf_mask = csf_result.mask & local_mask
    reference = csf_result.reference
    message = csf_result.message
    if reference == 'ventricular_csf' and not csf_mask.any():
        reference, csf_mask = 'whole_brain', local_mask.copy()
        message += '; no CSF voxel is left in the background-removal mask: whole-brain reference'
    csf_for_inversion = csf_mask if reference == 'ventricular_csf' else None
    options = dict(medi_options or {})
    if inversion == 'tkd':
        chi = tkd.tkd(local, local_mask, voxel_size, b0_dir=b0_dir,
                      field_strength=field_strength, delta_te=fit.delta_te,
                      threshold=tkd_threshold)
        ref_mean = float(np.mean(chi[csf_mask], dtype=np.float64))
        chi = np.where(local_mask, chi - np.float32(ref_mean), 0).astype(np.float32)
        inversion_info = {'reference': reference, 'threshold': tkd_threshold}
        chi_mask = local_mask
    else:
        solver = medi.medi_plus_zero if inversion == 'medi+0' else medi.medi
        chi, inversion_info = solver(local, local_mask, rss, voxel_size, b0_dir=b0_dir,
                                     noise_std=fit.noise_std, csf_mask=csf_for_inversion,
                                     field_strength=field_strength, delta_te=fit.delta_te,
                                     **options)
        chi_mask = np.asarray(inversion_info.get('mask', local_mask), dtype=bool)
    timings['inversion_s'] = time.perf_counter() - clock
    timings['total_s'] = float(sum(timings.values()))

    parameters = {
        'echo_times_s': te.tolist(),
        'delta_te_s': fit.delta_te,
        'field_strength_T': float(field_strength),
        'voxel_size_mm': list(voxel_size),
        'b0_dir': [float(v) for v in b0_dir],
        'phase_sign': int(phase_sign),
        'magnitude_scale': scale,
        'noise_sigma': fit.noise_sigma * scale,
        'brain_mask': 'user' if user_mask else 'magnitude',
        'mask_options': dict(mask_options or {}),
        'unwrapping': unwrapping,
        'r2star': r2s_method,
        'csf_options': dict(csf_options or {}),
        'reference': reference,
        'background': background,
        'background_options': bg_options,
        'background_info': background_info,
        'inversion': inversion,
        'medi_options': options,
    }
    return SessionReconstruction(
        magnitude=rss.astype(np.float32), field_rad=fit.field_rad, field_hz=fit.field_hz,
        phase0=fit.phase0, noise_std=fit.noise_std, fit_residual=fit.residual,
        unwrapped_field_rad=unwrapped, brain_mask=brain_mask, r2star=r2s, csf_mask=csf_mask,
        reference=reference, reference_message=message, local_field_rad=local,
        local_mask=chi_mask, chi_ppm=chi, delta_te=fit.delta_te, voxel_size=voxel_size,
        b0_dir=b0_dir, inversion_info=inversion_info, parameters=parameters, timings=timings)
