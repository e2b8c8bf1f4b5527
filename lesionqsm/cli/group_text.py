"""Words of the group outputs: JSON data dictionaries of the tables and the Results sentences."""

_TERM_UNITS = {'baseline_volume_mm3': 'mm^3', 'volume_change_mm3': 'mm^3', 'edss': 'EDSS point',
               'age': 'year', 'disease_duration': 'year', 'treatment_duration': 'year'}
_SE = ("lme4's standard error: square root of the diagonal of sigma^2 (X' A^-1 X)^-1 at the "
       'REML estimates')
_DF = {'satterthwaite': 'Satterthwaite degrees of freedom (as lmerTest computes them)',
       'wald': 'Infinite: Wald z test (normal reference), chosen by inference = wald'}
_STAT = {'satterthwaite': 't = estimate / se', 'wald': 'Wald z = estimate / se'}
_P = {'satterthwaite': 'Two-sided p of t with df degrees of freedom',
      'wald': 'Two-sided p of the Wald z (normal reference)'}


def coefficient_dictionary(fit, unit):
    """Data dictionary of a coefficient table."""
    levels = {}
    for name in fit.names:
        base = name.split(':')[0]
        per = f' per {_TERM_UNITS[base]}' if base in _TERM_UNITS else ''
        levels[name] = f'{unit}{per}'
    factors = '; '.join(f'{col}: reference {lv[0]}' for col, lv in fit.factor_levels.items())
    inference = fit.inference
    return {
        'term': {'Description': 'Fixed effect. age_polyK: degree-K orthogonal polynomial of '
                 'lesion age (R poly(), coefficients in the summary JSON); rim_<group>: '
                 f'{fit.other_rim} relative to {fit.reference_rim} lesions; X:rim_<group>: its '
                 'difference between groups; <column><level>: a level of a categorical '
                 'covariate relative to its reference level (R treatment contrasts'
                 + (f'; {factors}' if factors else '') + '); other terms: numeric covariates '
                 '(linear).', 'Levels': levels},
        'estimate': {'Description': 'REML estimate (units per term in term.Levels)'},
        'se': {'Description': _SE},
        'df': {'Description': _DF[inference]},
        'statistic': {'Description': _STAT[inference]},
        'p_value': {'Description': _P[inference]},
        'ci_low': {'Description': 'Lower 95% confidence limit, estimate - q se, q the 97.5% '
                                  'quantile of t(df) (normal for Wald)'},
        'ci_high': {'Description': 'Upper 95% confidence limit, estimate + q se'},
    }


def means_dictionary(fit, unit, what):
    """Data dictionary of a fitted-means table."""
    return {
        'age_years': {'Description': 'Lesion age (time since first enhancement)',
                      'Units': 'year'},
        'rim': {'Description': 'Rim group, or the difference between groups',
                'Levels': {'positive': 'rim+ lesions', 'negative': 'rim- lesions',
                           'difference': f'{fit.other_rim} minus {fit.reference_rim} group'}},
        'n_lesions': {'Description': 'Lesions with a visit whose lesion age is nearest to '
                                     'age_years among the table ages'},
        'estimate': {'Description': f'Model-fitted population mean {what} at the covariate '
                                    'means (categorical covariates: at the proportion of each '
                                    'level)', 'Units': unit},
        'se': {'Description': 'Standard error of the fitted mean (lme4 fixed-effect '
                              'covariance)', 'Units': unit},
        'df': {'Description': _DF[fit.inference]},
        'ci_low': {'Description': 'Lower 95% confidence limit', 'Units': unit},
        'ci_high': {'Description': 'Upper 95% confidence limit', 'Units': unit},
        'p_value': {'Description': _P[fit.inference] + ', of the group difference '
                                                       '(difference rows only)'},
        'extrapolated': {'Description': 'True if age_years is outside the observed lesion ages'},
    }


LRT_DICTIONARY = {
    'test': {'Description': 'Group of fixed effects tested (dropped in the reduced model)'},
    'terms': {'Description': 'Comma-separated fixed effects dropped'},
    'df': {'Description': 'Degrees of freedom (number of terms dropped)'},
    'loglik_full': {'Description': 'Maximum-likelihood (ML refit) log-likelihood, full model'},
    'loglik_reduced': {'Description': 'ML log-likelihood of the reduced model'},
    'statistic': {'Description': 'Likelihood-ratio statistic 2 (loglik_full - loglik_reduced)'},
    'p_value': {'Description': 'Chi-squared p with df degrees of freedom'},
    'optimum_checked': {'Description': 'True if both ML optima passed the optimality check '
                                       '(gradient and boundary conditions)'},
}


def results_text(chi, lrt, volume, variant):
    """A few sentences in the style of the paper's Results."""
    s = chi.summary()
    coef = chi.coefficient_table().set_index('term')
    rim = coef.loc[f'rim_{chi.other_rim}']
    sign = {'positive': 'rim+', 'negative': 'rim-'}
    df = '' if chi.inference == 'wald' else f", df = {rim['df']:.1f}"
    lines = [
        f"{s['n_patients']} patients with {s['n_lesions']} lesions "
        f"({s['n_lesions_by_rim']['positive']} rim+, {s['n_lesions_by_rim']['negative']} rim-), "
        f"{s['n_observations']} lesion visits; degree-{chi.degree} orthogonal polynomial in "
        f"lesion age on {len(chi.age_points)} time points"
        + (' (singular fit: a variance component is 0).' if chi.singular else '.'),
        f'Effect of lesion group on the intercept ({sign[chi.other_rim]} relative to '
        f"{sign[chi.reference_rim]}): estimate = {rim['estimate']:.2f} ppb, "
        f"SE = {rim['se']:.2f}{df}, P = {rim['p_value']:.3g}.",
    ]
    for _, row in lrt.iterrows():
        lines.append(f"LRT {row['test']} ({row['df']} df): chi2 = {row['statistic']:.2f}, "
                     f"P = {row['p_value']:.3g}.")
    if volume is not None:
        t = volume.fitted_means([0.0]).set_index('rim')
        lines.append(f"Fitted volume at enhancement: rim+ {t.loc['positive', 'estimate']:.1f} "
                     f"mm3, rim- {t.loc['negative', 'estimate']:.1f} mm3 "
                     f"(difference P = {t.loc['difference', 'p_value']:.3g}).")
    if variant is not None:
        c = variant.coefficient_table().set_index('term').loc['volume_change_mm3']
        lines.append(f"Volume change as covariate: {c['estimate']:.4f} ppb per mm3 "
                     f"(SE {c['se']:.4f}, P = {c['p_value']:.3g}).")
    return lines
