"""The paper's lesion-volume model: volume ~ poly(lesion age, 3) × rim + (1 | patient)."""

from .growth_curve import TABLE_AGES, fit_growth_curve

__all__ = ['fit_volume_model', 'volume_table']


def fit_volume_model(lesions, *, degree=3, lesion_effect=False, **kwargs):
    """Fit lesion FLAIR volume (mm³) on an orthogonal polynomial in lesion age by rim group.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows (participant-level schema); uses ``volume_mm3``.
    degree : int
        Polynomial degree (paper: 3).
    lesion_effect : bool
        Add a random intercept per lesion within patient.  The paper's model has the patient
        as its only random effect, which treats a lesion's visits as independent given the
        patient; with few patients its tests are then far too confident.
    **kwargs
        binning, bin_edges, basis, reference_rim, inference, min_patients, min_lesions, as in
        :func:`.growth_curve.fit_growth_curve`.

    Returns
    -------
    GrowthCurveFit
        With ``response='volume_mm3'`` and no covariates.

    Raises
    ------
    ModelError
        As :func:`.growth_curve.fit_growth_curve`.
    """
    return fit_growth_curve(lesions, None, response='volume_mm3', degree=degree, covariates=(),
                            lesion_effect=lesion_effect, **kwargs)


def volume_table(fit, ages=TABLE_AGES):
    """Fitted mean volume (mm³) per rim group and lesion age with 95 % CI and the rim difference.

    Same columns as :meth:`GrowthCurveFit.fitted_means`, estimates in mm³.
    """
    return fit.fitted_means(ages)
