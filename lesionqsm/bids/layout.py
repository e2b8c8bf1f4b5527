"""Discovery and validation of one subject's inputs in a BIDS dataset.

:func:`collect_subject` gathers, for every visit, the multi-echo GRE (magnitude and phase per
echo, echo times, field strength, phase units), FLAIR, T1w and gadolinium T1w, and the lesion
annotations, and checks them before any computation starts. Errors name the file and the
problem (:class:`InputError`).

Layouts accepted besides the DESIGN.md input contract: zero-padded echo labels (``echo-01``);
metadata inherited from top-level JSON files (pybids applies the inheritance principle); a
magnitude-only MEGRE (the visit gets the problem ``'no phase data'`` and ``has_phase=False``);
MEGRE magnitude without a ``part`` entity; a one-echo MEGRE (the single-echo chain: the visit
gets a note saying what it lacks); a single-echo GRE stored as ``part-mag``/``part-phase``
``T1w`` (used only with ``allow_single_echo=True``, else the visit is refused with a clear
message); echoes whose ``echo-<index>`` disagrees with ``EchoTime`` (used in ``EchoTime`` order,
with a note; two echoes with one echo time are refused, both files named); phase in radians or
in any scanner convention :func:`lesionqsm.qsm.echoes.phase_scaling` recognises (each echo
checked at discovery); a dataset without session folders (``session_id=None``); several runs of
one image (the last run is used and reported).
"""

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from lesionqsm.bids_templates import ENTITY_ORDER

from . import lesions as lesions_mod
from .images import check_same_grid, image_header, load_image
from .labels import is_label, natural_key, parse_bids_name, strip_prefix
from .metadata import (
    check_phase_range,
    echo_number,
    echo_time_s,
    field_strength_t,
    phase_units,
)
from .problems import (
    KIND_LESION_TABLE,
    KIND_SUBJECT,
    InputError,
    Problem,
    note,
)
from .readers import read_sidecar, read_tsv
from .sessions import order_sessions, session_acq_times

__all__ = ['InputError', 'MEGREData', 'Problem', 'SessionData', 'SubjectData',
           'collect_participants', 'collect_subject']

NIFTI_EXTENSIONS = ['.nii', '.nii.gz']
#: Relative difference above which two echoes' B0 values disagree.
FIELD_STRENGTH_RTOL = 0.01
#: Tolerance on magnitude vs phase EchoTime, in s.
ECHO_TIME_ATOL_S = 1e-6


@dataclass
class MEGREData:
    """One visit's gradient-echo acquisition.

    Attributes
    ----------
    mag_files, phase_files : list of str
        Paths in increasing echo time (``phase_files`` is empty without phase).
    echo_times : list of float
        Echo times in s, strictly increasing, one per echo.
    field_strength : float
        B0 in T.
    phase_units : {'rad', 'arbitrary'} or None
        None without phase. ``'rad'``: declared (or found) in radians, never rescaled;
        ``'arbitrary'``: each echo's scale is decided from its values by
        :func:`lesionqsm.qsm.echoes.phase_scaling`, as at discovery.
    has_phase : bool
    single_echo : bool
        True for a single-echo GRE (``part-*_T1w`` or a one-echo MEGRE).
    field_strength_source : str
        ``'MagneticFieldStrength'``, ``'ImagingFrequency'`` or ``'override'``.
    metadata : dict
        First magnitude echo's sidecar (inherited keys merged), for provenance.
    """

    mag_files: list
    phase_files: list
    echo_times: list
    field_strength: float
    phase_units: str | None
    has_phase: bool
    single_echo: bool = False
    field_strength_source: str = 'MagneticFieldStrength'
    metadata: dict = field(default_factory=dict)

    @property
    def n_echoes(self):
        """Number of echoes."""
        return len(self.mag_files)

    @property
    def delta_te(self):
        """Median echo spacing in s (None for a single echo)."""
        if len(self.echo_times) < 2:
            return None
        return float(np.median(np.diff(self.echo_times)))


@dataclass
class SessionData:
    """One visit: its date, its images and what was found wrong with them.

    ``errors`` (:class:`Problem`, kind ``visit``) are fatal for this visit's QSM (``megre`` is
    then None); they are only filled when :func:`collect_subject` runs with ``strict=False``
    (else they are raised). ``problems`` are notes (for instance no phase data).
    """

    session_id: str | None
    acq_time: datetime | None
    megre: MEGREData | None = None
    flair: str | None = None
    t1w: str | None = None
    t1w_gd: str | None = None
    lesion_dseg: str | None = None
    problems: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def has_qsm_input(self):
        """True if this visit has GRE magnitude and phase usable for QSM."""
        return self.megre is not None and self.megre.has_phase


@dataclass
class SubjectData:
    """One subject's visits (first visit first) and lesion annotations.

    ``lesions`` is None for a QSM-only run (no annotations) and when ``lesion_errors`` is not
    empty (annotations present but unusable: the lesion table is then not produced, the QSM is).
    ``problems`` holds the subject's notes and per-lesion findings (:class:`Problem`, each
    with its subject and session); ``lesion_errors`` the ``lesion-table`` problems.
    """

    subject: str
    sessions: list
    lesions: object = None
    problems: list = field(default_factory=list)
    lesion_errors: list = field(default_factory=list)
    lesions_tsv: str | None = None

    @property
    def all_problems(self):
        """Every finding: notes, lesion problems, lesion errors and visit errors."""
        return (list(self.problems) + list(self.lesion_errors)
                + [e for s in self.sessions for e in s.errors])

    @property
    def baseline(self):
        """The first visit with QSM input (GRE magnitude and phase), or None."""
        return next((s for s in self.sessions if s.has_qsm_input), None)

    def session(self, session_id):
        """The :class:`SessionData` of ``session_id`` (with or without ``ses-``)."""
        wanted = None if session_id is None else strip_prefix(session_id, 'ses-')
        for ses in self.sessions:
            if ses.session_id == wanted:
                return ses
        raise KeyError(f'sub-{self.subject} has no session {session_id!r}')


def _check_bids_dir(bids_dir):
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise InputError(f'{bids_dir}: BIDS directory not found', kind=KIND_SUBJECT,
                         file=bids_dir)
    description = bids_dir / 'dataset_description.json'
    if not description.is_file():
        raise InputError(f'{bids_dir}: not a BIDS dataset (no dataset_description.json)',
                         kind=KIND_SUBJECT, file=description)
    read_sidecar(description, kind=KIND_SUBJECT)
    return bids_dir


def collect_participants(bids_dir, participant_label=None):
    """Subject labels to process.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS raw dataset root.
    participant_label : str or list of str, optional
        Labels with or without ``sub-``; all subjects with a folder when omitted.

    Returns
    -------
    list of str
        Labels without ``sub-``, in natural order. Folders whose label is not a BIDS label
        (letters and digits) are listed too: :func:`collect_subject` refuses them, so that
        they are reported as failed subjects rather than silently left out.

    Raises
    ------
    InputError
        ``bids_dir`` is not a BIDS dataset, it has no subject, a requested label is not a
        BIDS label, or a requested label has no ``sub-<label>`` folder (the message names the
        label).
    """
    bids_dir = _check_bids_dir(bids_dir)
    available = sorted((p.name[4:] for p in bids_dir.glob('sub-*') if p.is_dir()),
                       key=natural_key)
    if not available:
        raise InputError(f'{bids_dir}: no sub-<label> folders', kind=KIND_SUBJECT,
                         file=bids_dir)
    if participant_label is None:
        return available
    if isinstance(participant_label, str):
        participant_label = [participant_label]
    requested = list(dict.fromkeys(strip_prefix(lab, 'sub-') for lab in participant_label))
    invalid = [lab for lab in requested if not is_label(lab)]
    if invalid:
        raise InputError(f'--participant-label: {", ".join(map(repr, invalid))} is not a BIDS '
                         'label (letters and digits only)', kind=KIND_SUBJECT,
                         key='--participant-label', expected='[0-9a-zA-Z]+')
    missing = [lab for lab in requested if lab not in available]
    if missing:
        raise InputError(f'{bids_dir}: participant label(s) {", ".join(missing)} not found '
                         f'(available: {", ".join(available)})', kind=KIND_SUBJECT,
                         file=bids_dir, key='--participant-label')
    return requested


def _subject_layout(bids_dir, subject):
    """A pybids layout indexing only ``sub-<subject>`` (fast on large datasets)."""
    import bids
    from bids.layout.index import BIDSLayoutIndexer

    ignore = [re.compile(rf'^/sub-(?!{re.escape(subject)}(/|$))'),
              re.compile(r'^/(derivatives|code|sourcedata|stimuli)(/|$)'),
              re.compile(r'/\.')]
    _check_sidecars(bids_dir, subject)
    try:
        return bids.BIDSLayout(str(bids_dir), validate=False,
                               indexer=BIDSLayoutIndexer(ignore=ignore))
    except Exception as exc:  # pybids raises several types (its messages are unclear)
        raise InputError(f'{bids_dir} (sub-{subject}): the dataset could not be indexed: '
                         f'{exc}', kind=KIND_SUBJECT, file=bids_dir) from exc


def _check_sidecars(bids_dir, subject):
    """Read every JSON sidecar pybids will read for this subject, with size and depth limits.

    Raises
    ------
    InputError
        With one problem per bad sidecar (kind ``subject``: pybids cannot index the subject
        while one of them is unreadable, and inherited metadata may concern every visit).
    """
    candidates = sorted(Path(bids_dir).glob('*.json'))
    candidates += sorted(p for p in (Path(bids_dir) / f'sub-{subject}').rglob('*.json')
                         if not any(part.startswith('.') for part in p.parts[-4:]))
    problems = []
    for path in candidates:
        try:
            read_sidecar(path, kind=KIND_SUBJECT)
        except InputError as exc:
            problems.append(exc.problem)
    if problems:
        raise InputError.from_problems(problems)


def _pick_last_run(files, what, problems):
    """Group images by (acq, rec, run); keep the last group, reporting the choice."""
    groups = {}
    for f in files:
        key = tuple(str(f.entities.get(k, ''))
                    for k in ('acquisition', 'reconstruction', 'run'))
        groups.setdefault(key, []).append(f)
    keys = sorted(groups, key=lambda k: [natural_key(v) for v in k])
    if len(keys) > 1:
        chosen = keys[-1]
        problems.append(note(f'several {what} acquisitions ({len(keys)}); using '
                             f'{Path(groups[chosen][0].path).name} and its echoes',
                             file=groups[chosen][0].path, key='run'))
    return groups[keys[-1]] if keys else []


def _metadata(layout, path):
    try:
        return layout.get_metadata(path)
    except Exception as exc:  # pybids wraps JSON errors in several types
        raise InputError(f'{path}: its JSON sidecar could not be read ({exc})',
                         file=path) from exc


def _check_output_entities(path):
    """Entities of a source file that name our outputs must be BIDS labels.

    Raises
    ------
    InputError
        Naming the file and the entity.
    """
    entities, _, _ = parse_bids_name(path)
    for key, value in entities.items():
        if key in ENTITY_ORDER and not is_label(value):
            raise InputError(f'{path}: entity {key}-{value!r} is not a BIDS label (letters '
                             'and digits only); it would name the outputs', file=path, key=key,
                             expected='[0-9a-zA-Z]+')


def _by_echo(files, kind):
    """``{echo number: path}`` with duplicate echoes (echo-1 and echo-01) refused."""
    by_echo = {}
    for f in files:
        label = f.entities.get('echo')
        if label is None:
            if len(files) > 1:
                raise InputError(f'{f.path}: {len(files)} {kind} files but this one has no '
                                 'echo-<index> entity', file=f.path, key='echo')
            number = 1
        else:
            number = echo_number(label, path=f.path)
        if number in by_echo:
            raise InputError(f'{by_echo[number]} and {f.path} are both {kind} echo {number}',
                             file=f.path, key='echo', expected='one file per echo')
        by_echo[number] = f.path
    return dict(sorted(by_echo.items()))


def _order_echoes(echoes, phases, problems):
    """Echo files in echo-time order, refusing duplicate echo times, noting what was found.

    Parameters
    ----------
    echoes : list of (float, int, str)
        ``(EchoTime in s, echo number, magnitude path)`` in echo-number order.
    phases : dict
        ``{echo number: phase path}`` (empty without phase).
    problems : list
        Notes are appended: echoes renumbered, uneven spacing, one echo (two echoes are
        the log-linear R2* and the two-echo fit: the sidecar says so, no note).

    Returns
    -------
    mag_files, phase_files : list of str
        In increasing echo time.
    echo_times : list of float
        Increasing, in s.

    Raises
    ------
    InputError
        Two echoes share an echo time (to 1 µs): both files are named.
    """
    ordered = sorted(echoes, key=lambda e: e[0])
    for (te_a, _, mag_a), (te_b, _, mag_b) in zip(ordered[:-1], ordered[1:], strict=True):
        if te_b - te_a <= ECHO_TIME_ATOL_S:
            raise InputError(f'{mag_a} and {mag_b}: both have EchoTime {te_a:g} s; duplicate '
                             'echo times cannot be fitted (remove the repeated echo or correct '
                             'its EchoTime)', file=mag_b, key='EchoTime',
                             expected='a different echo time for every echo')
    first = ordered[0][2]
    in_ms = ', '.join(f'{te * 1000:.4g}' for te, _, _ in ordered)
    if ordered != echoes:
        listed = ', '.join(f'echo-{n}: {te * 1000:.4g} ms' for te, n, _ in echoes)
        problems.append(note(f'{first}: the echo numbers do not follow EchoTime ({listed}); '
                             'the echoes are used in EchoTime order', file=first,
                             key='EchoTime'))
    spacing = np.diff([te for te, _, _ in ordered])
    if len(ordered) == 1:
        problems.append(note(f'{first}: 1 echo (TE {in_ms} ms): the field is the phase at that '
                             'echo time (no multi-echo fit), there is no R2* (the R2* map is '
                             'NaN) and the whole brain is the zero reference of chi',
                             file=first, key='echo'))
    elif len(ordered) > 2 and float(np.ptp(spacing)) > 1e-3 * float(spacing.mean()):
        problems.append(note(f'{first}: uneven echo spacing (TE {in_ms} ms): the field fit '
                             'uses every echo at its own time; R2* by the log-linear fit',
                             file=first, key='EchoTime'))
    mag_files = [mag for _, _, mag in ordered]
    phase_files = [phases[n] for _, n, _ in ordered if n in phases]
    return mag_files, phase_files, [te for te, _, _ in ordered]


def _gather_gre(layout, files, *, field_strength_override, allow_single_echo, check_data,
                problems):
    """Build and check one visit's :class:`MEGREData` (None without any GRE)."""
    megre = [f for f in files if f.entities.get('suffix') == 'MEGRE']
    single = False
    if not megre:
        megre = [f for f in files if f.entities.get('suffix') == 'T1w'
                 and f.entities.get('part') in ('mag', 'phase')]
        single = bool(megre)
    if not megre:
        return None
    megre = _pick_last_run(megre, 'GRE', problems)
    parts = {}
    for f in megre:
        parts.setdefault(f.entities.get('part') or 'mag', []).append(f)
    for other in sorted(set(parts) - {'mag', 'phase'}):
        problems.append(note(f'part-{other} GRE images are not used (only magnitude and phase '
                             f'are): {Path(parts[other][0].path).name}',
                             file=parts[other][0].path))
    if 'mag' not in parts:
        raise InputError(f'{parts["phase"][0].path}: GRE phase without magnitude images (the '
                         'fit and the registration need the magnitude)',
                         file=parts['phase'][0].path, key='part', expected='part-mag images')
    mags = _by_echo(parts['mag'], 'magnitude')
    phases = _by_echo(parts.get('phase', []), 'phase')
    if phases and set(phases) != set(mags):
        lacking_phase = sorted(set(mags) - set(phases))
        lacking_mag = sorted(set(phases) - set(mags))
        if lacking_phase:
            raise InputError(f'{mags[lacking_phase[0]]}: magnitude echo {lacking_phase[0]} has '
                             'no phase image', file=mags[lacking_phase[0]], key='part',
                             expected='a phase image for every magnitude echo')
        raise InputError(f'{phases[lacking_mag[0]]}: phase echo {lacking_mag[0]} has no '
                         'magnitude image', file=phases[lacking_mag[0]], key='part',
                         expected='a magnitude image for every phase echo')
    mag_files, phase_files = list(mags.values()), list(phases.values())
    _check_output_entities(mag_files[0])

    if len(mag_files) < 2 and single and not allow_single_echo:
        raise InputError(f'{mag_files[0]}: only 1 echo, stored as part-mag/part-phase T1w; a '
                         'single-echo GRE is read from a T1w only with allow_single_echo (store '
                         'it as MEGRE)', file=mag_files[0], key='echo',
                         expected='a MEGRE, or allow_single_echo')

    echoes, b0s = [], []
    meta0 = None
    for number, mag in mags.items():
        meta = _metadata(layout, mag)
        meta0 = meta if meta0 is None else meta0
        te = echo_time_s(meta, path=mag)
        if number in phases:
            phase = phases[number]
            te_phase = echo_time_s(_metadata(layout, phase), path=phase)
            if abs(te_phase - te) > ECHO_TIME_ATOL_S:
                raise InputError(f'{mag} and {phase}: EchoTime differs between magnitude and '
                                 f'phase ({te:g} s vs {te_phase:g} s)', file=phase,
                                 key='EchoTime', expected=f'{te:g} s, as the magnitude')
        echoes.append((te, number, mag))
        b0s.append((field_strength_t(meta, path=mag, override=field_strength_override), mag))
    mag_files, phase_files, echo_times = _order_echoes(echoes, phases, problems)
    if len(mag_files) == 1 and str(meta0.get('MRAcquisitionType', '')).upper() == '2D':
        problems.append(note(f'{mag_files[0]}: one echo of a 2-D acquisition: a phase offset '
                             'that differs between slices cannot be told from the field (it '
                             'takes two echoes); chi may show stripes across slices',
                             file=mag_files[0], key='MRAcquisitionType'))
    mags = dict(zip(range(1, len(mag_files) + 1), mag_files, strict=True))
    phases = dict(zip(range(1, len(phase_files) + 1), phase_files, strict=True))
    (b0, source), _ = b0s[0]
    for (other, _), path in b0s[1:]:
        if abs(other - b0) > FIELD_STRENGTH_RTOL * b0:
            raise InputError(f'{mag_files[0]} and {path}: field strength differs between echoes '
                             f'({b0:g} T vs {other:g} T)', file=path,
                             key='MagneticFieldStrength', expected=f'{b0:g} T, as echo 1')
    first = mag_files[0]
    if source == 'ImagingFrequency':
        problems.append(note(f'{first}: MagneticFieldStrength missing; B0 = {b0:.4f} T from '
                             'ImagingFrequency', file=first, key='MagneticFieldStrength'))
    elif source == 'override':
        problems.append(note(f'{first}: no field strength in the metadata; using the override '
                             f'{b0:g} T', file=first, key='MagneticFieldStrength'))
    elif field_strength_override is not None and abs(field_strength_override - b0) > 0.01 * b0:
        problems.append(note(f'{first}: MagneticFieldStrength {b0:g} T is used; the override '
                             f'{field_strength_override:g} T only applies to data without one',
                             file=first, key='MagneticFieldStrength'))

    units = None
    if phase_files:
        declared = {phase_units(_metadata(layout, p), path=p) for p in phase_files}
        if len(declared) > 1:
            raise InputError(f'{phase_files[0]}: phase Units differ between echoes '
                             f'({", ".join(sorted(str(u) for u in declared))})',
                             file=phase_files[0], key='Units',
                             expected='the same Units for every echo')
        units = declared.pop()

    headers = {path: image_header(path) for path in mag_files + phase_files}
    for path in mag_files[1:]:
        check_same_grid(headers[first], first, headers[path], path,
                        what='(two echoes of one GRE) are')
    for number, phase in phases.items():
        check_same_grid(headers[mags[number]], mags[number], headers[phase], phase,
                        what='(magnitude and phase of one echo) are')

    if check_data:
        conventions, messages = set(), {}
        for path in mag_files + phase_files:
            data = np.asanyarray(load_image(path, finite=False).dataobj)
            if not np.any(data):
                raise InputError(f'{path}: every voxel is zero', file=path,
                                 expected='a non-empty image')
            if path in phase_files:
                scaling, message = check_phase_range(data, units, path=path)
                conventions.add(scaling.convention)
                if message:
                    messages.setdefault(scaling.convention, []).append((path, message))
        for found in messages.values():  # one note per convention, naming its first echo
            path, message = found[0]
            more = f' (and {len(found) - 1} more echoes alike)' if len(found) > 1 else ''
            problems.append(note(message + more, file=path, key='Units'))
        if len(conventions) > 1:
            problems.append(note(f'{phase_files[0]}: the phase echoes of this visit have '
                                 f'different ranges ({", ".join(sorted(conventions))}); each '
                                 'echo is scaled by its own', file=phase_files[0], key='Units'))
        if phase_files and units is None:
            units = 'rad' if conventions == {'rad'} else 'arbitrary'
    elif phase_files and units is None:
        raise InputError(f'{phase_files[0]}: phase Units missing from the JSON sidecar '
                         '("rad" or "arbitrary")', file=phase_files[0], key='Units',
                         expected='"rad" or "arbitrary"')

    if not phase_files:
        problems.append(note(f'no phase data ({Path(first).name} has magnitude only): no QSM '
                             'for this visit', file=first, key='part'))
    return MEGREData(mag_files=[str(p) for p in mag_files],
                     phase_files=[str(p) for p in phase_files], echo_times=echo_times,
                     field_strength=b0, phase_units=units, has_phase=bool(phase_files),
                     single_echo=single or len(mag_files) == 1, field_strength_source=source,
                     metadata=dict(meta0))


def _pick_anat(files, suffix, problems, *, ce):
    """One anatomical image: no ``part``; ``ce`` absent (ce=False) or present (ce=True)."""
    chosen = [f for f in files if f.entities.get('suffix') == suffix
              and f.entities.get('part') is None
              and (f.entities.get('ceagent') is not None) == ce]
    if not chosen:
        return None
    chosen = _pick_last_run(chosen, suffix + (' (contrast-enhanced)' if ce else ''), problems)
    path = chosen[0].path
    try:
        image_header(path)
    except InputError as exc:
        problems.append(note(f'{exc}; not used', file=path))
        return None
    return str(path)


def collect_subject(bids_dir, subject, *, session_label=None, lesions_dir=None,
                    field_strength_override=None, allow_single_echo=False, check_data=True,
                    strict=True, layout=None):
    """Gather and check one subject's inputs, visits ordered by ``acq_time``.

    Parameters
    ----------
    bids_dir : str or Path
        BIDS raw dataset root.
    subject : str
        Label with or without ``sub-``.
    session_label : str or list of str, optional
        Restrict to these visits (with or without ``ses-``); lesions detected at other visits
        are then dropped and reported.
    lesions_dir : str or Path, optional
        Lesion annotation derivative; default ``<bids_dir>/derivatives/lesions`` when it
        exists (else a QSM-only run).
    field_strength_override : float, optional
        B0 in T for GRE data whose metadata has neither ``MagneticFieldStrength`` nor
        ``ImagingFrequency``.
    allow_single_echo : bool, optional
        Accept a single-echo GRE stored as ``part-mag``/``part-phase`` ``T1w`` (a one-echo
        MEGRE is always accepted).
    check_data : bool, optional
        Read every GRE image once: catches truncated files, all-zero volumes, and phase values
        that no phase convention explains (each echo by
        :func:`lesionqsm.qsm.echoes.phase_scaling`, which also infers missing ``Units``).
        Costs one read of the echoes; set False to check headers only (then phase ``Units``
        are required).
    strict : bool, optional
        Raise the first visit error (default). With False, a visit whose GRE is unusable gets
        ``megre=None`` and the message in its ``errors``, and the other visits go on.
    layout : bids.BIDSLayout, optional
        A layout already indexing ``bids_dir`` (else one indexing only this subject is built).

    Returns
    -------
    SubjectData

    Raises
    ------
    InputError
        Unknown subject or session label, a dataset pybids cannot index, or (``strict``) any
        visit error. Lesion annotation errors never raise: see ``SubjectData.lesion_errors``.
    """
    bids_dir = _check_bids_dir(bids_dir)
    subject = strip_prefix(subject, 'sub-')
    subject_dir = bids_dir / f'sub-{subject}'
    if not is_label(subject):
        raise InputError(f'{subject_dir}: subject label {subject!r} is not a BIDS label '
                         '(letters and digits only); rename the folder', kind=KIND_SUBJECT,
                         file=subject_dir, key='sub', expected='[0-9a-zA-Z]+', subject=subject)
    if not subject_dir.is_dir():
        raise InputError(f'{subject_dir}: participant {subject} not found in {bids_dir}',
                         kind=KIND_SUBJECT, file=subject_dir, subject=subject)
    try:
        layout = layout or _subject_layout(bids_dir, subject)
    except InputError as exc:
        raise _for_subject(exc, subject) from None
    files = layout.get(subject=subject, extension=NIFTI_EXTENSIONS)

    session_ids = sorted({f.entities.get('session') for f in files}
                         | {p.name[4:] for p in subject_dir.glob('ses-*') if p.is_dir()},
                         key=lambda s: natural_key(s or ''))
    if None in session_ids and len(session_ids) > 1:
        session_ids.remove(None)
    session_ids = session_ids or [None]
    if session_label is not None:
        wanted = [session_label] if isinstance(session_label, str) else list(session_label)
        wanted = [strip_prefix(s, 'ses-') for s in wanted]
        unknown = [s for s in wanted if s not in session_ids]
        if unknown:
            raise InputError(f'{subject_dir}: session label(s) {", ".join(unknown)} not found '
                             f'(available: {", ".join(str(s) for s in session_ids)})',
                             kind=KIND_SUBJECT, file=subject_dir, key='--session-label',
                             subject=subject)
    all_session_ids = list(session_ids)
    if session_label is not None:
        session_ids = [s for s in session_ids if s in wanted]

    acq_times, problems = session_acq_times(subject_dir, session_ids)
    sessions_tsv = subject_dir / f'sub-{subject}_sessions.tsv'
    ordered, order_problems = order_sessions(acq_times, source=str(sessions_tsv))
    problems = [p.located(subject=subject) for p in problems + order_problems]

    sessions = []
    for ses in ordered:
        ses_files = [f for f in files if f.entities.get('session') == ses]
        data = SessionData(session_id=ses, acq_time=acq_times[ses])
        try:
            if ses is not None and not is_label(ses):
                raise InputError(f'{subject_dir / f"ses-{ses}"}: session label {ses!r} is not a '
                                 'BIDS label (letters and digits only); rename the folder',
                                 file=subject_dir / f'ses-{ses}', key='ses',
                                 expected='[0-9a-zA-Z]+')
            data.megre = _gather_gre(layout, ses_files,
                                     field_strength_override=field_strength_override,
                                     allow_single_echo=allow_single_echo, check_data=check_data,
                                     problems=data.problems)
        except InputError as exc:
            if strict:
                raise _for_subject(exc, subject, ses) from None
            data.errors.extend(p.located(subject=subject, session=ses) for p in exc.problems)
        if data.megre is None and not data.errors:
            data.problems.append(note('no GRE (MEGRE) images: no QSM for this visit',
                                      file=subject_dir if ses is None
                                      else subject_dir / f'ses-{ses}'))
        data.flair = _pick_anat(ses_files, 'FLAIR', data.problems, ce=False)
        data.t1w = _pick_anat(ses_files, 'T1w', data.problems, ce=False)
        data.t1w_gd = _pick_anat(ses_files, 'T1w', data.problems, ce=True)
        label = f'ses-{ses}' if ses is not None else f'sub-{subject}'
        data.problems = [replace(p, message=f'{label}: {p.message}', subject=subject,
                                 session=ses) for p in data.problems]
        problems += data.problems
        sessions.append(data)

    result = SubjectData(subject=subject, sessions=sessions, problems=problems)
    _collect_lesions(result, bids_dir, lesions_dir, all_session_ids)
    return result


def _for_subject(error, subject, session=None):
    """``error`` with every problem located in ``subject`` (and ``session``)."""
    located = InputError.from_problems(p.located(subject=subject, session=session)
                                       for p in error.problems)
    return located


def _collect_lesions(result, bids_dir, lesions_dir, all_session_ids):
    """Fill ``lesions``, ``lesion_errors`` and each visit's ``lesion_dseg``.

    ``KIND_LESION_TABLE`` problems already in ``result.problems`` (from the sessions table)
    move to ``lesion_errors``.
    """
    if lesions_dir is None:
        default = bids_dir / 'derivatives' / 'lesions'
        if not default.is_dir():
            return
        lesions_dir = default
    lesions_dir = Path(lesions_dir)
    subject = result.subject
    errors = result.lesion_errors

    def error(message, file, **fields):
        errors.append(Problem(kind=KIND_LESION_TABLE, message=message, file=str(file),
                              subject=subject, **fields))

    errors += [p for p in result.problems if p.kind == KIND_LESION_TABLE]
    result.problems = [p for p in result.problems if p.kind != KIND_LESION_TABLE]
    tsv = lesions_mod.lesions_tsv_path(lesions_dir, subject)
    maps = lesions_mod.find_lesion_maps(lesions_dir, subject)
    if not tsv.exists():
        if maps:
            error(f'{tsv}: not found, but {lesions_dir} has lesion label maps for sub-{subject}',
                  tsv, expected='a lesions.tsv beside the label maps')
        return
    result.lesions_tsv = str(tsv)
    try:
        table = lesions_mod.read_lesions_tsv(tsv)
    except InputError as exc:
        errors.extend(p.located(subject=subject) for p in exc.problems)
        return
    session_ids = [s.session_id for s in result.sessions]
    session_maps = {}
    for ses, paths in maps.items():
        if len(paths) > 1:
            error(f'{paths[0]} and {paths[1]}: several lesion label maps for ses-{ses}',
                  paths[1], session=ses, expected='one label map per visit')
        else:
            session_maps[ses] = paths[0]
    flairs = {s.session_id: s.flair for s in result.sessions}
    table, lesion_problems, map_errors = lesions_mod.check_lesions(
        table, tsv_path=tsv, session_maps=session_maps, session_flairs=flairs,
        session_ids=session_ids, all_session_ids=all_session_ids)
    errors += [p.located(subject=subject) for p in map_errors]
    result.problems += [p.located(subject=subject) for p in lesion_problems]
    undated = [f'ses-{s.session_id}' for s in result.sessions if s.acq_time is None]
    if undated and len(table):
        error(f'{tsv}: lesion ages need the acq_time of every visit; missing for '
              f'{", ".join(undated)}', tsv, key='acq_time',
              expected='an acq_time for every visit in sessions.tsv')
    if errors:
        return
    for ses in result.sessions:
        if ses.session_id in session_maps:
            ses.lesion_dseg = str(session_maps[ses.session_id])
    result.lesions = table


def check_participants_table(bids_dir):
    """Problems of ``participants.tsv`` (notes: the participant level does not need it).

    Checked: readable, not ragged, a ``participant_id`` column, each id a ``sub-<label>``
    listed once. The group level reads the covariates and refuses what it cannot use.

    Returns
    -------
    list of Problem
        Notes naming the file, the line and the id; empty without a ``participants.tsv``.
    """
    path = Path(bids_dir) / 'participants.tsv'
    if not path.is_file():
        return []
    try:
        table = read_tsv(path, kind=KIND_SUBJECT)
    except InputError as exc:
        return [note(exc.problem.message, file=path)]
    if 'participant_id' not in table.columns:
        return [note(f'{path}: no participant_id column', file=path, key='participant_id')]
    problems, seen = [], {}
    for line, value in enumerate(table['participant_id'], start=2):
        label = strip_prefix(value, 'sub-')
        if not value.strip().startswith('sub-') or not is_label(label):
            problems.append(note(f'{path}: line {line}: participant_id {value[:40]!r} is not '
                                 'sub-<label> (letters and digits)', file=path,
                                 key='participant_id'))
        elif label in seen:
            problems.append(note(f'{path}: line {line}: participant_id {value} is listed again '
                                 f'(first on line {seen[label]})', file=path,
                                 key='participant_id', subject=label))
        else:
            seen[label] = line
    return problems
