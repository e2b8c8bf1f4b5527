"""Every annotated lesion measured at every visit from its detection on: one table row each."""

from dataclasses import dataclass

import numpy as np

from ..options import option
from .age import lesion_age_years
from .regions import lesion_excess_statistics


@dataclass(frozen=True)
class LesionOptions:
    """How lesions are measured (the ``lesions`` section of ``--config``)."""

    estimator: str = option('partial_volume',
                            doc="chi_rel_ppb: partial-volume corrected excess, or the plain ROI "
                                "mean (the paper's hand-drawn ROI analysis)",
                            choices=('partial_volume', 'roi_mean'))
    dilation_mm: float = option(2.0, doc='neighbourhood of the partial-volume estimate, mm',
                                low=0.0)
    nawm_inner_mm: float = option(1.0, doc='NAWM shell inner distance from the lesion, mm',
                                  low=0.0)
    nawm_outer_mm: float = option(5.0, doc='NAWM shell outer distance from the lesion, mm',
                                  low=0.0, low_open=True)

    def check(self):
        """The shell must have a thickness."""
        if self.nawm_inner_mm >= self.nawm_outer_mm:
            raise ValueError(f'nawm_inner_mm ({self.nawm_inner_mm}) must be below nawm_outer_mm '
                             f'({self.nawm_outer_mm})')


#: Fraction above which a voxel belongs to a lesion's support (and is never NAWM).
SUPPORT_FRACTION = 0.01


@dataclass
class SubjectMaps:
    """One subject's maps on the baseline GRE grid, and its FLAIR lesion volumes.

    Attributes
    ----------
    chi : dict
        session -> χ (ppm) on the baseline grid, for the visits that have QSM.
    fractions : dict
        session -> {lesion id: partial-volume fraction} of the lesions drawn at that visit.
    volumes : dict
        session -> {lesion id: FLAIR volume in mm³} for the visits with a label map.
    brain : bool ndarray
        Baseline brain mask.
    csf : bool ndarray or None
        Baseline ventricular CSF (kept out of the NAWM).
    veins : bool ndarray or None
        Central-vein voxels, dropped from ROIs and NAWM.
    voxel_size : tuple of 3 float
        mm.
    reliable : bool ndarray or None
        Baseline voxels whose χ no step eroded or extrapolated (``desc-reliable_mask``); None
        when unknown.
    """

    chi: dict
    fractions: dict
    volumes: dict
    brain: np.ndarray
    csf: np.ndarray | None
    veins: np.ndarray | None
    voxel_size: tuple
    reliable: np.ndarray | None = None


def measure_subject(participant_id, lesions, visit_times, maps, options=LesionOptions(), *,
                    source='lesions.tsv'):
    """The lesion × visit table of one subject.

    Parameters
    ----------
    participant_id : str
        ``sub-<label>``.
    lesions : list of dict
        Annotation rows: ``lesion_id``, ``detected_session`` (label without ``ses-``),
        ``rim``, ``enhancement``.
    visit_times : dict
        session label -> acquisition datetime, every visit of the subject.
    maps : SubjectMaps
    options : LesionOptions
    source : str
        Where the annotations came from (for messages).

    Returns
    -------
    list of dict
        One row per lesion and visit at or after its detection (columns of the lesion table's
        data dictionary); ``status`` says why a value is missing.

    Raises
    ------
    ValueError
        A lesion detected at a visit the subject does not have, or an id that is not an
        integer (both name ``source``).

    Notes
    -----
    As in the paper, the ROI drawn at detection is overlaid on every later visit.  Every
    lesion's support at any visit, the CSF and the veins are kept out of every NAWM shell.
    """
    exclude = np.zeros_like(maps.brain)
    for extra in (maps.csf, maps.veins):
        if extra is not None:
            exclude |= extra
    for by_id in maps.fractions.values():
        for fraction in by_id.values():
            exclude |= fraction > SUPPORT_FRACTION
    rows = []
    for lesion in lesions:
        rows += _measure_lesion(participant_id, lesion, visit_times, maps, exclude, options,
                                source)
    return rows


def _measure_lesion(participant_id, lesion, visit_times, maps, exclude, options, source):
    lesion_id = str(lesion['lesion_id'])
    detected = str(lesion['detected_session']).removeprefix('ses-')
    if detected not in visit_times:
        raise ValueError(f'{source}: lesion {lesion_id} was detected at ses-{detected}, which '
                         f'is not a visit of {participant_id}')
    try:
        label = int(float(lesion_id))
    except ValueError as exc:
        raise ValueError(f'{source}: lesion_id {lesion_id!r} is not the integer used in the '
                         'label maps') from exc
    fraction, others = None, None
    status_roi = 'ok'
    if detected not in maps.fractions:
        status_roi = f'no lesion label map at the detection visit ses-{detected}'
    elif label not in maps.fractions[detected] or not maps.fractions[detected][label].any():
        status_roi = f'lesion {label} absent from the label map of ses-{detected}'
    else:
        fraction = maps.fractions[detected][label]
        others = np.zeros_like(maps.brain)
        for by_id in maps.fractions.values():
            for other_id, other in by_id.items():
                if other_id != label:
                    others |= other > SUPPORT_FRACTION
        others &= fraction < 0.5
    reliable = 'n/a'
    if fraction is not None and maps.reliable is not None:
        reaches_out = np.any((fraction > SUPPORT_FRACTION) & ~maps.reliable)
        reliable = 'false' if reaches_out else 'true'
    baseline_volume = maps.volumes.get(detected, {}).get(label, np.nan)
    rows = []
    for session, time in visit_times.items():
        age = lesion_age_years(time, visit_times[detected])
        if age < 0:
            continue  # the lesion did not exist yet
        status = status_roi
        stats = {'chi_lesion_ppb': np.nan, 'chi_nawm_ppb': np.nan, 'chi_rel_ppb': np.nan,
                 'chi_rel_roi_mean_ppb': np.nan, 'n_voxels': 0}
        if session not in maps.chi:
            status = 'no QSM at this visit' if status == 'ok' else status
        elif fraction is not None:
            stats = lesion_excess_statistics(
                maps.chi[session], fraction, exclude=exclude, brain_mask=maps.brain,
                voxel_size=maps.voxel_size, others=others, dilation_mm=options.dilation_mm,
                inner_mm=options.nawm_inner_mm, outer_mm=options.nawm_outer_mm,
                vein_mask=maps.veins)
            if options.estimator == 'roi_mean':
                stats['chi_rel_ppb'] = stats['chi_rel_roi_mean_ppb']
                stats['chi_lesion_ppb'] = stats['chi_nawm_ppb'] + stats['chi_rel_ppb']
        if session in maps.volumes:
            volume = maps.volumes[session].get(label, 0.0)
        else:
            volume = np.nan
            if status == 'ok':
                status = 'no FLAIR lesion map at this visit'
        rows.append({
            'participant_id': participant_id,
            'lesion_id': lesion_id,
            'session_id': f'ses-{session}',
            'acq_time': time.isoformat(),
            'detected_session': f'ses-{detected}',
            'lesion_age_years': age,
            'rim': lesion.get('rim', 'n/a') or 'n/a',
            'enhancement': lesion.get('enhancement', 'n/a') or 'n/a',
            'chi_lesion_ppb': stats['chi_lesion_ppb'],
            'chi_nawm_ppb': stats['chi_nawm_ppb'],
            'chi_rel_ppb': stats['chi_rel_ppb'],
            'chi_rel_roi_mean_ppb': stats['chi_rel_roi_mean_ppb'],
            'volume_mm3': volume,
            'baseline_volume_mm3': baseline_volume,
            'volume_change_mm3': volume - baseline_volume,
            'n_voxels': stats['n_voxels'],
            'chi_reliable': reliable if session in maps.chi else 'n/a',
            'status': status,
        })
    return rows


def unreliable_rows(table):
    """The rows of a lesion table whose χ was measured outside the reliable voxels.

    Parameters
    ----------
    table : pandas.DataFrame
        A lesion table as read back from TSV: ``chi_reliable`` is bool when the column holds
        only true/false, text when it also holds n/a, and absent in tables of earlier versions.

    Returns
    -------
    pandas.DataFrame
        The rows with ``chi_reliable`` false (none without the column).
    """
    if 'chi_reliable' not in table.columns:
        return table.iloc[:0]
    return table[table['chi_reliable'].astype(str).str.lower() == 'false']
