"""Lesions, pure: ROIs carried between grids, NAWM shells, lesion measures and lesion age."""

from .age import lesion_age_years, parse_acq_time
from .fractions import lesion_fractions, partial_volume_fraction
from .measures import LesionOptions, SubjectMaps, measure_subject
from .regions import label_volumes_mm3, lesion_excess_statistics, nawm_shell

__all__ = [
    'LesionOptions',
    'SubjectMaps',
    'label_volumes_mm3',
    'lesion_age_years',
    'lesion_excess_statistics',
    'lesion_fractions',
    'measure_subject',
    'nawm_shell',
    'parse_acq_time',
    'partial_volume_fraction',
]
