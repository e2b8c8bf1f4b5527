"""Lesion age: years since the visit at which the lesion first enhanced."""

from datetime import datetime

DAYS_PER_YEAR = 365.25


def parse_acq_time(text, where='acq_time'):
    """An ISO 8601 ``acq_time`` (``Z`` allowed) as a datetime; ValueError names ``where``."""
    try:
        return datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError as exc:
        raise ValueError(f'{where}: unparsable acq_time {text!r}') from exc


def lesion_age_years(visit_time, detection_time):
    """(visit − detection) / 365.25 days, in years (negative before detection)."""
    return (visit_time - detection_time).total_seconds() / 86400.0 / DAYS_PER_YEAR
