"""The paper's lesion-volume model: volume ~ poly(lesion age, 3) × rim + (1 | patient)."""

from .growth_curve import TABLE_AGES, fit_growth_curve

__all__ = ['fit_volume_model', 'volume_table']


def fit_volume_model(lesions, *, degree=3, binning='octiles', bin_edges=None, basis='distinct',
                     reference_rim='positive', min_patients=3, min_lesions=4):
    """Fit lesion FLAIR volume (mm³) on an orthogonal polynomial in lesion age by rim group.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows (participant-level schema); uses ``volume_mm3``.
    degree : int
        Polynomial degree (paper: 3).
    binning, bin_edges, basis, reference_rim, min_patients, min_lesions
        As in :func:`.growth_curve.fit_growth_curve`.

    Returns
    -------
    GrowthCurveFit
        With ``response='volume_mm3'``, no covariates and a random intercept per patient only
        (the paper: "patient was the random effect").

    Raises
    ------
    ModelError
        As :func:`.growth_curve.fit_growth_curve`.
    """
    return fit_growth_curve(lesions, None, response='volume_mm3', degree=degree, covariates=(),
                            binning=binning, bin_edges=bin_edges, basis=basis,
                            reference_rim=reference_rim, lesion_effect=False,
                            min_patients=min_patients, min_lesions=min_lesions)


def volume_table(fit, ages=TABLE_AGES):
    """Fitted mean volume (mm³) per rim group and lesion age with 95 % CI and the rim difference.

    Same columns as :meth:`GrowthCurveFit.fitted_means`, estimates in mm³.
    """
    return fit.fitted_means(ages)
