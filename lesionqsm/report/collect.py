"""Read what a run wrote for one subject: maps, masks, transforms, sidecars, tables, logs.

Nothing here runs or imports the workflow: the report is built from the derivatives dataset
alone (and, where given, the raw BIDS dataset for the GRE magnitude and the FLAIR), so it can be
made again at any time, for any finished or failed run.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from ..bids.sessions import natural_key, order_sessions, session_acq_times
from ..bids_templates import OUTPUTS
from .logs import LogRecord, crash_reports, read_run_log

__all__ = ['Visit', 'SubjectRun', 'collect_subject', 'parse_bids_name', 'raw_dataset_dir']

_NIFTI_EXT = ('.nii.gz', '.nii')
#: A progress line of :class:`lesionqsm.cli.progress.ProgressReporter` ('[5/122 00:05] ...').
_PROGRESS = re.compile(r'^\[\d+(?:/\d+)? [\d:]+\] ')


def parse_bids_name(name):
    """Entities, suffix and extension of a BIDS file name.

    Returns
    -------
    entities : dict
        ``{'sub': '01', 'ses': '02', 'desc': 'brain', ...}`` (``from`` keeps its name).
    suffix, extension : str
        e.g. ``'mask'`` and ``'.nii.gz'``; ``extension`` is everything from the first dot.
    """
    stem, dot, rest = name.partition('.')
    extension = dot + rest
    parts = stem.split('_')
    entities = {}
    for part in parts[:-1]:
        key, _, value = part.partition('-')
        entities[key] = value
    return entities, parts[-1], extension


def _output_kind(entities, suffix, extension):
    """The :data:`lesionqsm.bids_templates.OUTPUTS` key a derivative file is, or None."""
    for kind, spec in OUTPUTS.items():
        if spec.level != 'session' or spec.suffix != suffix:
            continue
        if extension != spec.extension and not (spec.extension in _NIFTI_EXT
                                                and extension in _NIFTI_EXT):
            continue
        wanted = {'desc': spec.desc, 'space': spec.space, 'from': spec.from_, 'to': spec.to,
                  'mode': spec.mode}
        if all(entities.get(k) == v for k, v in wanted.items()):
            return kind
    return None


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class Visit:
    """One visit of a subject as found on disk.

    ``files`` maps an output kind of :data:`lesionqsm.bids_templates.OUTPUTS` (``chimap``,
    ``chimap_baseline``, ``r2starmap``, ``brain_mask``, ``csf_mask``, ``xfm_gre_to_baseline``,
    ``xfm_flair_to_gre``, ...) to its path; ``sidecars`` the same kinds to their JSON content.
    """

    session: str
    acq_time: datetime | None = None
    files: dict = field(default_factory=dict)
    sidecars: dict = field(default_factory=dict)
    magnitude: Path | None = None  # raw echo-1 GRE magnitude (BIDS dataset)
    flair: Path | None = None  # raw FLAIR (BIDS dataset)
    lesion_dseg: Path | None = None  # lesion label map on this visit's FLAIR
    expected: bool = False  # the raw dataset has multi-echo GRE phase for this visit
    errors: list = field(default_factory=list)  # why the visit failed, from the logs
    crashes: list = field(default_factory=list)  # CrashReport of this visit's nodes

    @property
    def label(self):
        return f'ses-{self.session}'

    @property
    def has_qsm(self):
        return 'chimap' in self.files

    @property
    def failed(self):
        """No χ map although one was expected, or a node of this visit crashed."""
        return (self.expected and not self.has_qsm) or bool(self.crashes)


@dataclass
class SubjectRun:
    """Everything the participant level left on disk for one subject."""

    subject: str
    output_dir: Path
    bids_dir: Path | None
    lesions_dir: Path | None
    visits: list
    lesion_table: pd.DataFrame | None
    lesion_table_path: Path | None
    annotations: pd.DataFrame | None
    log_file: Path | None
    log_records: list  # LogRecord of this subject (WARNING and above)
    subject_errors: list  # subject-level failure causes from the log's final summary
    sidecar_warnings: list  # (file name, text)
    problems: list  # what the report itself could not find (missing files)

    @property
    def label(self):
        return f'sub-{self.subject}'

    @property
    def baseline(self):
        """The first visit with a χ map (the registration target)."""
        return next((v for v in self.visits if v.has_qsm), None)

    def visit(self, session):
        return next((v for v in self.visits if v.session == session), None)


def raw_dataset_dir(output_dir):
    """The raw dataset recorded in ``dataset_description.json`` (``DatasetLinks.raw``)."""
    desc = _read_json(Path(output_dir) / 'dataset_description.json')
    link = (desc.get('DatasetLinks') or {}).get('raw')
    if not link:
        return None
    path = Path(link)
    path = path if path.is_absolute() else (Path(output_dir) / path)
    return path.resolve() if path.is_dir() else None


def _raw_visit_files(bids_dir, subject, session):
    """Echo-1 magnitude, FLAIR and whether phase exists for one raw visit."""
    anat = Path(bids_dir) / f'sub-{subject}' / f'ses-{session}' / 'anat'
    if not anat.is_dir():
        return None, None, False
    magnitude = flair = None
    has_phase = False
    for path in sorted(anat.iterdir()):
        entities, suffix, extension = parse_bids_name(path.name)
        if extension not in _NIFTI_EXT:
            continue
        if suffix == 'MEGRE' and entities.get('part') == 'phase':
            has_phase = True
        if suffix == 'MEGRE' and entities.get('echo') == '1' and entities.get('part') == 'mag':
            magnitude = path
        if suffix == 'FLAIR' and flair is None:
            flair = path
    return magnitude, flair, has_phase


def _lesion_dsegs(lesions_dir, subject):
    """``{session: dseg path}`` of the subject's lesion label maps."""
    found = {}
    base = Path(lesions_dir) / f'sub-{subject}'
    for path in sorted(base.glob('ses-*/anat/*_dseg.nii*')):
        entities, _, _ = parse_bids_name(path.name)
        if 'ses' in entities:
            found.setdefault(entities['ses'], path)
    return found


def _read_tsv(path):
    try:
        return pd.read_csv(path, sep='\t', na_values=['n/a'], keep_default_na=False,
                           dtype={'participant_id': str, 'lesion_id': str,
                                  'session_id': str, 'detected_session': str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def _sidecar_warnings(subject_dir):
    """Every warning recorded in the subject's JSON sidecars: ``[(file name, text)]``."""
    found = []
    for path in sorted(Path(subject_dir).rglob('*.json')):
        meta = _read_json(path)
        if not isinstance(meta, dict):
            continue
        for key, value in meta.items():
            if 'warning' not in key.lower():
                continue
            values = value if isinstance(value, list) else [value]
            found.extend((path.name, str(v)) for v in values if v)
    return found


def collect_subject(output_dir, subject, *, bids_dir=None, lesions_dir=None):
    """Gather the run's outputs for one subject.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives dataset written by the participant level.
    subject : str
        Label, with or without ``sub-``.
    bids_dir : str or Path, optional
        The raw dataset (default: ``DatasetLinks.raw`` of ``dataset_description.json``); gives
        the GRE magnitude, the FLAIR, the visit dates and which visits were expected.
    lesions_dir : str or Path, optional
        Lesion annotations (default ``bids_dir/derivatives/lesions``).

    Returns
    -------
    SubjectRun
    """
    output_dir = Path(output_dir)
    subject = str(subject).removeprefix('sub-')
    bids_dir = Path(bids_dir) if bids_dir is not None else raw_dataset_dir(output_dir)
    if lesions_dir is None and bids_dir is not None:
        candidate = bids_dir / 'derivatives' / 'lesions'
        lesions_dir = candidate if candidate.is_dir() else None
    lesions_dir = Path(lesions_dir) if lesions_dir is not None else None
    subject_dir = output_dir / f'sub-{subject}'
    problems = []

    visits = {}

    def visit(session):
        return visits.setdefault(session, Visit(session=session))

    for path in sorted(subject_dir.glob('ses-*/*/*')):
        entities, suffix, extension = parse_bids_name(path.name)
        if entities.get('sub') != subject or 'ses' not in entities:
            continue
        if extension == '.json':
            continue
        kind = _output_kind(entities, suffix, extension)
        if kind is None:
            continue
        current = visit(entities['ses'])
        current.files.setdefault(kind, path)
        sidecar = path.with_name(path.name.split('.')[0] + '.json')
        if sidecar.exists():
            current.sidecars.setdefault(kind, _read_json(sidecar))

    if bids_dir is not None and (bids_dir / f'sub-{subject}').is_dir():
        for ses_dir in sorted((bids_dir / f'sub-{subject}').glob('ses-*')):
            if ses_dir.is_dir():
                session = ses_dir.name.removeprefix('ses-')
                magnitude, flair, has_phase = _raw_visit_files(bids_dir, subject, session)
                current = visit(session)
                current.magnitude, current.flair, current.expected = magnitude, flair, has_phase
    elif bids_dir is not None:
        problems.append(f'{bids_dir}: no sub-{subject} in the raw dataset')
    else:
        problems.append('raw dataset not found (no DatasetLinks.raw): the magnitude, FLAIR and '
                        'visit dates come from the derivatives only')

    table_path = subject_dir / f'sub-{subject}_lesions.tsv'
    table = _read_tsv(table_path) if table_path.exists() else None
    if table is not None and 'session_id' in table.columns:
        for ses in table['session_id'].dropna().unique():
            visit(str(ses).removeprefix('ses-'))

    annotations = None
    if lesions_dir is not None:
        for session, path in _lesion_dsegs(lesions_dir, subject).items():
            visit(session).lesion_dseg = path
        tsv = lesions_dir / f'sub-{subject}' / f'sub-{subject}_lesions.tsv'
        annotations = _read_tsv(tsv) if tsv.exists() else None

    # visit order: acq_time from the raw sessions.tsv, else from the lesion table, else label
    times = {}
    if bids_dir is not None and (bids_dir / f'sub-{subject}').is_dir():
        times, _ = session_acq_times(bids_dir / f'sub-{subject}', sorted(visits))
    if table is not None and {'session_id', 'acq_time'} <= set(table.columns):
        for _, row in table[['session_id', 'acq_time']].drop_duplicates().iterrows():
            ses = str(row['session_id']).removeprefix('ses-')
            if times.get(ses) is None and isinstance(row['acq_time'], str):
                try:
                    times[ses] = datetime.fromisoformat(row['acq_time'])
                except ValueError:
                    pass
    for ses in visits:
        visits[ses].acq_time = times.get(ses)
    if visits and all(times.get(s) is not None for s in visits):
        ordered, _ = order_sessions({s: times[s] for s in visits})
    else:
        ordered = sorted(visits, key=natural_key)

    log_file, records, subject_errors = read_run_log(output_dir, 'participant', subject)
    crashes = crash_reports(output_dir, subject, since=log_file)
    for record in records:
        # lesionqsm's own errors name the cause; nipype's repeat the crash file's traceback
        if (record.level in ('ERROR', 'CRITICAL') and record.session in visits
                and record.name.startswith('lesionqsm') and not _PROGRESS.match(record.message)):
            visits[record.session].errors.append(record.message.splitlines()[0])
    for crash in crashes:
        if crash.session in visits:
            visits[crash.session].crashes.append(crash)
    return SubjectRun(
        subject=subject, output_dir=output_dir, bids_dir=bids_dir, lesions_dir=lesions_dir,
        visits=[visits[s] for s in ordered], lesion_table=table,
        lesion_table_path=table_path if table is not None else None, annotations=annotations,
        log_file=log_file, log_records=records, subject_errors=subject_errors,
        sidecar_warnings=_sidecar_warnings(subject_dir), problems=problems)


def subject_labels(output_dir):
    """Labels of every subject with a folder in the derivatives dataset."""
    return sorted((p.name.removeprefix('sub-') for p in Path(output_dir).glob('sub-*')
                   if p.is_dir()), key=natural_key)


__all__ += ['subject_labels', 'LogRecord']
