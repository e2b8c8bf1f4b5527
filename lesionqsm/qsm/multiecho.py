"""Multi-echo GRE field fit: frequency, initial phase and field noise from complex echoes.

The frequency unit is MEDI's: radians accrued over one echo spacing ΔTE (``delta_te``), which
is what MEDI's λ = 1000 is tuned to.  Sign convention: :mod:`lesionqsm.qsm.constants` (a
positive field makes the phase grow with echo time).
"""

from dataclasses import dataclass

import numpy as np

#: Voxels fitted per block, bounds the memory of the vectorised fit (~16 complex64 copies).
_BLOCK_VOXELS = 1 << 19


@dataclass
class MultiEchoFit:
    """Result of a multi-echo field fit; every map has the spatial shape of the input.

    Attributes
    ----------
    field_rad : float32 ndarray
        Frequency in radians per ``delta_te``, wrapped to [-π, π) as fitted (it may still need
        spatial unwrapping).
    field_hz : float32 ndarray
        The same frequency in Hz, ``field_rad / (2π delta_te)``.
    phase0 : float32 ndarray
        Phase at the first echo time, radians in [-π, π) (MEDI's ``p0``).
    noise_std : float32 ndarray
        Standard deviation of ``field_rad`` by error propagation, radians per ``delta_te``; 0
        where the fit is undetermined (no signal, outside the mask).
    delta_te : float
        Echo spacing in s that defines the radian unit: ``echo_times[1] - echo_times[0]``
        (one echo: its echo time, the phase being accrued from TE = 0).
    residual : float32 ndarray
        Relative residual ``Σ|S - Ŝ|² / Σ|S|²`` (dimensionless; model error such as
        fat, motion or flow shows here).
    noise_sigma : float
        Noise standard deviation of one real channel of the complex signal, in signal units
        (estimated from the pooled residuals unless given).
    """

    field_rad: np.ndarray
    field_hz: np.ndarray
    phase0: np.ndarray
    noise_std: np.ndarray
    delta_te: float
    residual: np.ndarray
    noise_sigma: float


def _check_echo_times(echo_times, n_echoes):
    te = np.asarray(echo_times, dtype=float).ravel()
    if te.size != n_echoes:
        raise ValueError(f'{te.size} echo times were given for {n_echoes} echoes')
    if n_echoes < 1:
        raise ValueError('a field fit needs at least 1 echo, got 0')
    if np.any(np.diff(te) <= 0):
        raise ValueError(f'echo times must increase strictly, got {te.tolist()} s')
    return te


def _check_mask(mask, shape):
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f'mask shape {mask.shape} differs from the image shape {shape}')
    return mask


def _pooled_sigma(sum_sq_res, dof, fit_voxels):
    """Noise σ of one real channel from residual sums of squares with ``dof`` degrees each.

    The median over voxels divided by the median of χ²_dof is robust to the minority of
    voxels with model error (vessels, edges, flow).
    """
    from scipy import stats  # here: importing scipy.stats takes ~1 s, and every command
    # (a rerun that runs no node included) imports this module to read the options

    values = sum_sq_res[fit_voxels]
    values = values[np.isfinite(values) & (values > 0)]
    if dof < 1 or values.size == 0:
        return float('nan')
    return float(np.sqrt(np.median(values) / stats.chi2.median(dof)))


def fit_multiecho_complex(signal, echo_times, *, mask=None, max_iter=30, tol=1e-4,
                          noise_sigma=None):
    """Magnitude-weighted nonlinear fit of the complex multi-echo signal (MEDI's Fit_ppm_complex).

    Model per voxel, echo ``n``: ``S_n = |S_n| exp(i (φ0 + ω τ_n))`` with
    ``τ_n = (TE_n - TE_1) / ΔTE`` and ``ΔTE = TE_2 - TE_1``.  Gauss-Newton on (φ0, ω),
    initialised from the first two echoes (and the third, as MEDI, to unwrap the start).

    Parameters
    ----------
    signal : complex ndarray, shape (X, Y, Z, E)
        Complex echoes (magnitude · exp(i phase)), phase in the lesionqsm sign convention.
    echo_times : sequence of E float
        Echo times in s, strictly increasing; uneven spacing is allowed (see Notes).
    mask : bool ndarray, shape (X, Y, Z), optional
        Fit only these voxels (outputs are 0 elsewhere) and estimate the noise from them.
        Default: every voxel, the noise from the bright ones (see Notes).
    max_iter : int, optional
        Maximum Gauss-Newton iterations (MEDI: 30).
    tol : float, optional
        Stop when ``||dω|| < tol · ||ω||`` over the fitted voxels (MEDI: 1e-4).
    noise_sigma : float, optional
        Known noise σ of one real channel, in signal units; estimated if omitted.

    Returns
    -------
    MultiEchoFit
        ``field_rad`` wrapped to [-π, π), radians per ``delta_te``.

    Raises
    ------
    ValueError
        If the signal is not 4-D, the echo times do not match or do not increase, or the mask
        shape differs from the image.

    Notes
    -----
    Uneven spacing: the unit stays radians per ``TE_2 - TE_1``; the later echoes enter
    through their true ``τ_n``, so the fit uses every echo at its real time.  The final
    wrap of ω to [-π, π) is MEDI's; with uneven echoes the unwrapper's 2π steps are then
    steps of one ``TE_2 - TE_1`` cycle.

    Noise: MEDI returns ``sqrt((AᵀWA)⁻¹₂₂)`` for unit noise, which scales with
    1/magnitude and so depends on the arbitrary scale of the images.  Here it is multiplied
    by the noise σ of the signal, estimated from the pooled residual sums of squares
    (``E - 2`` degrees of freedom per voxel, median over the mask, or over voxels brighter
    than 20 % of the 99th percentile of the first echo when no mask is given), so
    ``noise_std`` is the standard deviation of ω in radians per ΔTE whatever the scale.
    With two echoes there is no residual: σ is taken from the background instead
    (Rayleigh mean of the voxels darker than 5 % of the 99th percentile); pass
    ``noise_sigma`` when it is known.

    References
    ----------
    .. [1] Liu T et al. MEDI toolbox, ``Fit_ppm_complex.m``; de Rochefort L et al.
       MRM 2010;63:194 (error propagation of the field).
    """
    signal = np.asarray(signal)
    if signal.ndim != 4:
        raise ValueError(f'signal must be 4-D (X, Y, Z, echoes), got shape {signal.shape}')
    n_echoes = signal.shape[-1]
    te = _check_echo_times(echo_times, n_echoes)
    shape = signal.shape[:3]
    mask = _check_mask(mask, shape)
    if n_echoes == 1:
        return _single_echo(signal[..., 0], float(te[0]), mask, noise_sigma)
    delta_te = float(te[1] - te[0])
    tau = ((te - te[0]) / delta_te).astype(np.float32)

    index = np.flatnonzero(mask)
    out_field = np.zeros(index.size, np.float32)
    out_phase0 = np.zeros(index.size, np.float32)
    out_unit_std = np.zeros(index.size, np.float32)
    out_relres = np.zeros(index.size, np.float32)
    out_ssr = np.zeros(index.size, np.float32)
    flat = signal.reshape(-1, n_echoes)
    for start in range(0, index.size, _BLOCK_VOXELS):
        sel = index[start:start + _BLOCK_VOXELS]
        block = flat[sel].astype(np.complex64)
        p1, p0, unit_std, relres, ssr = _fit_block(block, tau, max_iter=max_iter, tol=tol)
        stop = start + sel.size
        out_field[start:stop] = p1
        out_phase0[start:stop] = p0
        out_unit_std[start:stop] = unit_std
        out_relres[start:stop] = relres
        out_ssr[start:stop] = ssr

    if noise_sigma is None:
        first = np.abs(flat[index, 0])
        p99 = np.percentile(first, 99) if first.size else 0.0
        bright = first > 0.2 * p99 if mask.all() else np.ones(index.size, bool)
        noise_sigma = _pooled_sigma(out_ssr, n_echoes - 2, bright)
        if not np.isfinite(noise_sigma):
            noise_sigma = _background_sigma(np.abs(signal[..., 0]))
    noise_sigma = float(noise_sigma)

    def _to_volume(values):
        volume = np.zeros(shape, np.float32)
        volume.reshape(-1)[index] = values
        return volume

    field_rad = _to_volume(out_field)
    return MultiEchoFit(
        field_rad=field_rad,
        field_hz=(field_rad / np.float32(2 * np.pi * delta_te)).astype(np.float32),
        phase0=_to_volume(out_phase0),
        noise_std=_to_volume(out_unit_std * np.float32(noise_sigma)),
        delta_te=delta_te,
        residual=_to_volume(out_relres),
        noise_sigma=noise_sigma,
    )


def _single_echo(signal, echo_time, mask, noise_sigma):
    """One echo: the field is its phase, radians per ``echo_time`` (φ0 taken as 0).

    The receive-phase offset φ0 cannot be separated from the field with one echo; its smooth
    part is removed with the background field, the rest stays in χ.  The noise is
    ``σ / |S|`` (the phase noise of one complex sample), σ from the image background.
    """
    magnitude = np.abs(signal).astype(np.float32)
    if noise_sigma is None:
        noise_sigma = _background_sigma(magnitude)
    if not np.isfinite(noise_sigma):  # no background: 1 % of the bright signal (SNR 100)
        noise_sigma = 0.01 * float(np.percentile(magnitude[mask], 99)) if mask.any() else 1.0
    noise_sigma = float(noise_sigma)
    field = np.where(mask, np.angle(signal), 0).astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        std = np.where(mask & (magnitude > 0), np.float32(noise_sigma) / magnitude, 0)
    std = np.nan_to_num(std.astype(np.float32), nan=0.0, posinf=0.0)
    zeros = np.zeros(signal.shape, np.float32)
    return MultiEchoFit(field_rad=field,
                        field_hz=(field / np.float32(2 * np.pi * echo_time)).astype(np.float32),
                        phase0=zeros, noise_std=std, delta_te=echo_time, residual=zeros.copy(),
                        noise_sigma=noise_sigma)


def _background_sigma(first_magnitude):
    """σ of one real channel from the Rayleigh-distributed magnitude of dark voxels."""
    values = first_magnitude[np.isfinite(first_magnitude)]
    if values.size == 0:
        return float('nan')
    dark = values[values < 0.05 * np.percentile(values, 99)]
    if dark.size < 10:
        return float('nan')
    return float(np.mean(dark) / np.sqrt(np.pi / 2))


def _wrap(x):
    return (x + np.pi) % (2 * np.pi) - np.pi


def _fit_block(block, tau, *, max_iter, tol):
    """Gauss-Newton fit of (φ0, ω) for a (V, E) complex64 block; MEDI's iteration."""
    n_echoes = tau.size
    mag = np.abs(block)
    mag2 = mag * mag
    phase = np.angle(block[:, :min(3, n_echoes)])
    # Initial frequency from the first two echoes, then unwrap echo 3 against it (MEDI).
    c = _wrap(phase[:, 1] - phase[:, 0])
    if n_echoes >= 3:
        pred = phase[:, 0] + c * tau[2]
        phase3 = phase[:, 2] + 2 * np.pi * np.round((pred - phase[:, 2]) / (2 * np.pi))
        phase_u = np.stack([phase[:, 0], phase[:, 0] + c, phase3], axis=1)
        design = np.stack([np.ones(3), tau[:3]], axis=1)
    else:
        phase_u = np.stack([phase[:, 0], phase[:, 0] + c], axis=1)
        design = np.stack([np.ones(2), tau[:2]], axis=1)
    coef = phase_u @ np.linalg.pinv(design).T.astype(np.float32)   # (V, 2) least squares
    p0 = np.ascontiguousarray(coef[:, 0], dtype=np.float32)
    p1 = np.ascontiguousarray(coef[:, 1], dtype=np.float32)

    # Normal matrix of the magnitude-weighted problem (constant: MEDI's a11, a12, a22).
    a11 = mag2.sum(axis=1)
    a12 = mag2 @ tau
    a22 = mag2 @ (tau * tau)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide='ignore', invalid='ignore'):
        ai11 = np.where(det > 0, a22 / det, 0).astype(np.float32)
        ai12 = np.where(det > 0, -a12 / det, 0).astype(np.float32)
        ai22 = np.where(det > 0, a11 / det, 0).astype(np.float32)
    p1_norm = float(np.linalg.norm(p1))
    # Re(conj(i Ŝ) (S - Ŝ)) = |S|·Im(S · exp(-i φ̂)) = |S|·(Im S cos φ̂ - Re S sin φ̂),
    # with Ŝ = |S| exp(i φ̂): real float32 arithmetic, no complex exponential.
    mag_re = mag * block.real
    mag_im = mag * block.imag
    for _ in range(max_iter):
        model_phase = p0[:, None] + p1[:, None] * tau[None, :]
        projected = mag_im * np.cos(model_phase) - mag_re * np.sin(model_phase)
        pr1 = projected.sum(axis=1)
        pr2 = projected @ tau
        dp0 = ai11 * pr1 + ai12 * pr2
        dp1 = ai12 * pr1 + ai22 * pr2
        p0 += dp0
        p1 += dp1
        if np.linalg.norm(dp1) <= tol * max(p1_norm, float(np.linalg.norm(p1)), 1e-12):
            break
    model = mag * np.exp(1j * (p0[:, None] + p1[:, None] * tau[None, :])).astype(np.complex64)
    residual = block - model
    ssr = np.sum(residual.real**2 + residual.imag**2, axis=1)
    total = mag2.sum(axis=1)
    with np.errstate(divide='ignore', invalid='ignore'):
        relres = np.where(total > 0, ssr / total, 0)
    return (_wrap(p1).astype(np.float32), _wrap(p0).astype(np.float32),
            np.sqrt(ai22).astype(np.float32), relres.astype(np.float32),
            ssr.astype(np.float32))
