"""Population trajectories of lesion susceptibility and volume against lesion age.

The susceptibility curves are the model-fitted means of Zhang et al. (AJNR 2019;40:987, the
Table), relative to normal-appearing white matter, joined by monotone cubic (PCHIP)
interpolation and held constant beyond the last tabulated age.  Volumes start at the paper's
fitted values at enhancement (1042.45 mm³ rim+, 322.34 mm³ rim−) and shrink towards a
chronic plateau; the paper gives the start and the decline but not the curve, so the
shrinkage law here (exponential to 55 % of the initial volume, time constant 1 year) is ours.
"""

import numpy as np
from scipy.interpolate import PchipInterpolator

#: Lesion ages (years) of the paper's Table.
TABLE_AGES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0])
#: Fitted mean χ (ppb, lesion − NAWM) of the paper's Table, by rim group.
TABLE_MEAN_PPB = {
    'positive': np.array([13.51, 23.40, 25.69, 28.99, 27.33, 26.17, 21.45, 22.02, 13.42]),
    'negative': np.array([7.77, 24.39, 24.22, 26.25, 16.66, 18.29, 12.50, 12.00, 5.90]),
}
#: Fitted lesion volume at enhancement (mm³), by rim group (paper, Results).
INITIAL_VOLUME_MM3 = {'positive': 1042.45, 'negative': 322.34}
#: Chronic volume as a fraction of the volume at enhancement (our choice, see module doc).
CHRONIC_VOLUME_FRACTION = 0.55
#: Time constant of the volume decline, years (our choice).
VOLUME_TIME_CONSTANT_Y = 1.0

_INTERPOLANTS = {rim: PchipInterpolator(TABLE_AGES, means) for rim, means in
                 TABLE_MEAN_PPB.items()}


def _check_rim(rim):
    if rim not in TABLE_MEAN_PPB:
        raise ValueError(f"rim must be 'positive' or 'negative', got {rim!r}")


def mean_susceptibility_ppb(age_years, rim):
    """Population mean lesion χ relative to NAWM at a lesion age.

    Parameters
    ----------
    age_years : float or array_like
        Lesion age in years since first enhancement (>= 0).
    rim : {'positive', 'negative'}
        Rim group.

    Returns
    -------
    ndarray
        χ_lesion − χ_NAWM in ppb (parts per billion).
    """
    _check_rim(rim)
    age = np.clip(np.asarray(age_years, dtype=float), TABLE_AGES[0], TABLE_AGES[-1])
    return _INTERPOLANTS[rim](age)


def mean_volume_mm3(age_years, rim):
    """Population mean lesion volume (mm³) at a lesion age, for a rim group."""
    _check_rim(rim)
    age = np.maximum(np.asarray(age_years, dtype=float), 0.0)
    v0 = INITIAL_VOLUME_MM3[rim]
    f = CHRONIC_VOLUME_FRACTION
    return v0 * (f + (1.0 - f) * np.exp(-age / VOLUME_TIME_CONSTANT_Y))
