"""Simulated lesion tables (participant-level schema) from the trajectory model.

χ_rel of lesion l of patient i at lesion age t:

    χ = m_rim(t) + Σ_c β_c (c_il − mean(c)) + u_i + v_il + ε,

with m_rim the paper's fitted curves (:func:`lesionqsm.synth.trajectory.mean_susceptibility_ppb`),
covariates centred on their mean over the table's rows (so m_rim is the population mean at the
covariate means, which is what the model's fitted-means table estimates), u_i ~ N(0,
sd_patient²), v_il ~ N(0, sd_lesion²) and ε ~ N(0, sd_residual²), all in ppb.
"""

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from .trajectory import TABLE_AGES, mean_susceptibility_ppb, mean_volume_mm3

__all__ = ['simulate_lesion_table', 'write_group_inputs', 'DEFAULT_BETA']

#: Covariate effects on χ_rel (ppb per unit): per mm³ of baseline volume, per EDSS point, per
#: year of patient age, disease duration and treatment duration.
DEFAULT_BETA = {'baseline_volume_mm3': 0.004, 'edss': 1.0, 'age': 0.1,
                'disease_duration': 0.3, 'treatment_duration': -0.2}
LESION_COLUMNS = ['participant_id', 'lesion_id', 'session_id', 'acq_time', 'detected_session',
                  'lesion_age_years', 'rim', 'enhancement', 'chi_lesion_ppb', 'chi_nawm_ppb',
                  'chi_rel_ppb', 'volume_mm3', 'baseline_volume_mm3', 'volume_change_mm3',
                  'n_voxels', 'status']


def simulate_lesion_table(*, n_patients, n_lesions, visits_per_lesion, rng, sd_patient=3.0,
                          sd_lesion=4.0, sd_residual=3.0, rim_fraction=0.5, n_rim_positive=None,
                          schedule=TABLE_AGES, age_jitter_years=0.0, beta=None,
                          sd_volume_log=0.4, voxel_volume_mm3=1.0):
    """Draw a cohort's lesion × visit table, its participants.tsv and the truth behind them.

    Parameters
    ----------
    n_patients : int
        Number of patients (each gets at least one lesion).
    n_lesions : int
        Number of lesions (>= n_patients), spread at random over patients.
    visits_per_lesion : int
        Visits per lesion: the detection visit (age 0) and ``visits_per_lesion - 1`` later
        ages drawn without replacement from ``schedule`` (so <= len(schedule)).
    rng : numpy.random.Generator
        Random source.
    sd_patient, sd_lesion, sd_residual : float
        Standard deviations of the patient and lesion random intercepts and the residual, ppb.
    rim_fraction : float
        Probability that a lesion is rim+ (ignored if ``n_rim_positive`` is given).
    n_rim_positive : int, optional
        Exact number of rim+ lesions.
    schedule : sequence of float
        Candidate lesion ages of follow-up visits, years (default: the paper's Table ages).
    age_jitter_years : float
        SD of a normal jitter added to follow-up ages (years, truncated at > 0).
    beta : dict, optional
        Covariate effects, ppb per unit (default :data:`DEFAULT_BETA`).
    sd_volume_log : float
        Log-normal spread of the baseline volume around the paper's value per rim group.
    voxel_volume_mm3 : float
        Voxel volume used for ``n_voxels``.

    Returns
    -------
    lesions : DataFrame
        One row per lesion × visit, in the participant-level column schema.
    participants : DataFrame
        participant_id, age, sex, edss, disease_duration, treatment_duration.
    truth : dict
        ``beta`` (ppb per unit), ``covariate_means`` (row means the covariates are centred on),
        ``sd_patient``/``sd_lesion``/``sd_residual`` (ppb), and ``mean_ppb(age, rim)``, the
        true population curve.

    Raises
    ------
    ValueError
        For fewer lesions than patients or more visits than the schedule allows.
    """
    schedule = np.asarray(schedule, dtype=float)
    followups = np.unique(schedule[schedule > 0])
    if n_patients < 1 or n_lesions < n_patients:
        raise ValueError(f'need n_lesions >= n_patients >= 1, got {n_lesions} lesions and '
                         f'{n_patients} patients')
    if not 1 <= visits_per_lesion <= followups.size + 1:
        raise ValueError(f'visits_per_lesion must be 1..{followups.size + 1} for this schedule, '
                         f'got {visits_per_lesion}')
    beta = dict(DEFAULT_BETA if beta is None else beta)
    pids = [f'sub-{k + 1:03d}' for k in range(n_patients)]
    age = rng.normal(36.3, 6.4, n_patients).clip(18, 70)
    duration = rng.gamma(2.25, 4.8 / 2.25, n_patients).clip(0.1, None)
    participants = pd.DataFrame({
        'participant_id': pids, 'age': age.round(1),
        'sex': rng.choice(['F', 'M'], n_patients, p=[15 / 19, 4 / 19]),
        'edss': (rng.gamma(1.0, 1.4, n_patients) * 2).round().clip(0, 9) / 2,
        'disease_duration': duration.round(2),
        'treatment_duration': (duration * rng.uniform(0.2, 1.0, n_patients)).round(2),
    })
    owner = np.concatenate([np.arange(n_patients),
                            rng.integers(0, n_patients, n_lesions - n_patients)])
    owner.sort()
    if n_rim_positive is None:
        rim_pos = rng.random(n_lesions) < rim_fraction
    else:
        rim_pos = np.zeros(n_lesions, bool)
        rim_pos[rng.choice(n_lesions, n_rim_positive, replace=False)] = True
    u = rng.normal(0, sd_patient, n_patients)
    first = np.searchsorted(owner, owner)  # owner is sorted: index of the patient's 1st lesion
    rows = []
    for k in range(n_lesions):
        i = owner[k]
        rim = 'positive' if rim_pos[k] else 'negative'
        ages = np.concatenate([[0.0], np.sort(rng.choice(followups, visits_per_lesion - 1,
                                                          replace=False))])
        if age_jitter_years > 0:
            ages[1:] = np.abs(ages[1:] + rng.normal(0, age_jitter_years, ages.size - 1))
        v0 = mean_volume_mm3(0.0, rim) * np.exp(rng.normal(0, sd_volume_log))
        detect = datetime(2010, 1, 1) + timedelta(days=float(rng.uniform(0, 3 * 365)))
        v_lesion = rng.normal(0, sd_lesion)
        enhancement = 'shell' if rng.random() < 0.72 else 'nodular'
        for t in ages:
            vol = v0 * mean_volume_mm3(t, rim) / mean_volume_mm3(0.0, rim) * np.exp(
                rng.normal(0, 0.1))
            rows.append({'participant_id': pids[i], 'lesion_id': str(k - first[k] + 1),
                         'acq_time': detect + timedelta(days=float(t) * 365.25),
                         'detect': detect, 'lesion_age_years': float(t), 'rim': rim,
                         'enhancement': enhancement, 'volume_mm3': vol,
                         'baseline_volume_mm3': v0, 'u': u[i], 'v': v_lesion})
    df = pd.DataFrame(rows).merge(participants, on='participant_id')
    means = {c: float(df[c].mean()) for c in beta}
    fixed = sum(b * (df[c] - means[c]) for c, b in beta.items())
    curve = np.where(df['rim'] == 'positive',
                     mean_susceptibility_ppb(df['lesion_age_years'], 'positive'),
                     mean_susceptibility_ppb(df['lesion_age_years'], 'negative'))
    df['chi_rel_ppb'] = curve + fixed + df['u'] + df['v'] + rng.normal(0, sd_residual, len(df))
    df['chi_nawm_ppb'] = rng.normal(-4.0, 1.5, len(df))
    df['chi_lesion_ppb'] = df['chi_rel_ppb'] + df['chi_nawm_ppb']
    df['volume_change_mm3'] = df['volume_mm3'] - df['baseline_volume_mm3']
    df['n_voxels'] = np.maximum(np.round(df['volume_mm3'] / voxel_volume_mm3), 1).astype(int)
    df['status'] = 'ok'
    sessions = {}
    for pid, dates in df.groupby('participant_id')['acq_time']:
        for n, d in enumerate(sorted(dates.unique())):
            sessions[(pid, d)] = f'ses-{n + 1:02d}'
    df['session_id'] = [sessions[(p, d)] for p, d in zip(df['participant_id'], df['acq_time'],
                                                         strict=True)]
    df['detected_session'] = [sessions[(p, d)] for p, d in zip(df['participant_id'],
                                                               df['detect'], strict=True)]
    df['acq_time'] = df['acq_time'].dt.strftime('%Y-%m-%dT%H:%M:%S')
    lesions = df[LESION_COLUMNS].reset_index(drop=True)
    truth = {'beta': beta, 'covariate_means': means, 'sd_patient': sd_patient,
             'sd_lesion': sd_lesion, 'sd_residual': sd_residual,
             'mean_ppb': mean_susceptibility_ppb}
    return lesions, participants, truth


def write_group_inputs(root, lesions, participants):
    """Write simulated tables where the group level reads them.

    Parameters
    ----------
    root : pathlib.Path
        Gets ``bids/participants.tsv`` and ``out/sub-<label>/sub-<label>_lesions.tsv``.
    lesions, participants : pandas.DataFrame
        As returned by :func:`simulate_lesion_table`.
    """
    (root / 'bids').mkdir(parents=True)
    participants.to_csv(root / 'bids' / 'participants.tsv', sep='\t', index=False,
                        na_rep='n/a')
    for pid, rows in lesions.groupby('participant_id'):
        (root / 'out' / pid).mkdir(parents=True)
        rows.to_csv(root / 'out' / pid / f'{pid}_lesions.tsv', sep='\t', index=False,
                    na_rep='n/a')
