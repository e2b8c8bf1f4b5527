"""Physical constants and the sign convention shared by every QSM step.

Sign convention (used everywhere in lesionqsm): a paramagnetic source (χ > 0) raises the
local field along B0, so the phase of its voxels grows with echo time::

    phase(TE) = phase0 + GAMMA_RAD * B0 * (δB / B0) * TE,      δB / B0 = IFFT(D · FFT(χ))

with χ and δB/B0 in ppm (×1e-6).  Scanners that store the conjugate phase are handled by the
``phase_sign=-1`` parameter of :func:`lesionqsm.qsm.pipeline.reconstruct_session`.
"""

import math

#: Proton gyromagnetic ratio over 2π, in Hz per tesla.
GAMMA_HZ = 42.577478e6
#: Proton gyromagnetic ratio, in rad s⁻¹ T⁻¹.
GAMMA_RAD = 2.0 * math.pi * GAMMA_HZ


def ppm_to_radians(field_ppm, *, field_strength, delta_te):
    """Convert a field in ppm of B0 to phase accrued over one echo spacing, in radians.

    Parameters
    ----------
    field_ppm : float or ndarray
        Field perturbation δB/B0 in ppm.
    field_strength : float
        B0 in tesla.
    delta_te : float
        Echo spacing ΔTE in seconds.

    Returns
    -------
    float or ndarray
        Phase in radians per ΔTE (MEDI's unit for the local field).
    """
    return field_ppm * 1e-6 * GAMMA_RAD * field_strength * delta_te


def radians_to_ppm(field_rad, *, field_strength, delta_te):
    """Inverse of :func:`ppm_to_radians`: radians per ΔTE to ppm of B0."""
    return field_rad / (1e-6 * GAMMA_RAD * field_strength * delta_te)
