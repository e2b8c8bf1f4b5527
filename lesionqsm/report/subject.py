"""The per-subject HTML report: ``OUTPUT_DIR/sub-<label>.html`` and its figures.

Built from what the participant level wrote (maps, masks, transforms, sidecars, the lesion
table, the log and crash files) and, for the GRE magnitude and the FLAIR, the raw dataset.
Figures go to ``OUTPUT_DIR/sub-<label>/figures/`` (SVG), as in fMRIPrep.
"""

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..bids.images import atomic_write_bytes, atomic_write_text
from ..lesions.fractions import partial_volume_fraction
from ..lesions.measures import unreliable_rows
from ..lesions.regions import nawm_shell
from . import images, slices
from .collect import collect_subject
from .figure_cache import FigureCache
from .figures import lesion_trajectory_figure
from .render import render

__all__ = ['write_subject_report', 'LESION_SHELL_MM']

LOGGER = logging.getLogger('lesionqsm.report')

#: NAWM shell drawn around each lesion (mm), the pipeline's defaults (lesions.nawm_*_mm).
LESION_SHELL_MM = (1.0, 5.0)
_TABLE_COLUMNS = ('lesion_id', 'session_id', 'acq_time', 'lesion_age_years', 'rim',
                  'enhancement', 'chi_rel_ppb', 'chi_lesion_ppb', 'chi_nawm_ppb',
                  'chi_rel_roi_mean_ppb', 'volume_mm3', 'volume_change_mm3', 'n_voxels',
                  'chi_reliable', 'status')


@dataclass
class Figure:
    """A figure of the report: its path relative to the HTML file, and its caption."""

    src: str
    caption: str
    alt: str = ''


@dataclass
class VisitSection:
    label: str
    acq_time: str
    status: str  # 'ok', 'failed', 'no QSM'
    is_baseline: bool
    figures: list = field(default_factory=list)
    parameters: list = field(default_factory=list)  # (name, value)
    registration: list = field(default_factory=list)  # (name, value)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class LesionSection:
    lesion_id: str
    rim: str
    detected: str
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _save_svg(fig, path):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format='svg', metadata={'Date': None})
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


class _FigureWriter:
    """Names, writes and lists the figures of one report (paths relative to the HTML)."""

    def __init__(self, output_dir, subject):
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / f'sub-{subject}' / 'figures'
        self.subject = subject

    def __call__(self, fig, name, caption, alt=''):
        self.folder.mkdir(parents=True, exist_ok=True)  # not for a subject without figures
        path = self.folder / f'sub-{self.subject}_{name}.svg'
        _save_svg(fig, path)
        return Figure(src=path.relative_to(self.output_dir).as_posix(), caption=caption,
                      alt=alt or caption)


def _format(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, dict):
        return ', '.join(f'{k} = {_format(v)}' for k, v in value.items())
    if isinstance(value, list):
        return ', '.join(_format(v) for v in value)
    return str(value)


def _parameters(sidecar):
    """(name, value) rows of a χ sidecar: algorithm, reference region, every parameter."""
    rows = []
    for key in ('Algorithm', 'QSMAlgorithm', 'ReferenceRegion', 'AlgorithmVersion'):
        if key in sidecar:
            rows.append((key, _format(sidecar[key])))
    seen = {name for name, _ in rows}
    for group in ('AlgorithmParameters', 'QSMParameters', 'Options', 'Decisions'):
        for key, value in (sidecar.get(group) or {}).items():
            small = not isinstance(value, dict) and not (isinstance(value, list)
                                                         and len(value) > 6)
            if key not in seen and small:  # a short value, shown once
                seen.add(key)
                rows.append((key, _format(value)))
    return rows


def _visit_figures(run, visit, baseline, write, cache):
    """The figures of one visit with a χ map, and notes on what could not be drawn."""
    figs, notes = [], []
    label = visit.label
    chi = images.load(visit.files['chimap'])
    brain = images.load(visit.files['brain_mask']).data > 0.5 \
        if 'brain_mask' in visit.files else chi.data != 0
    chi_ras, zooms = slices.to_ras(chi.data, chi.affine)
    brain_ras, _ = slices.to_ras(brain, chi.affine)
    centre = slices.centre_of(brain_ras)
    window = slices.CHI_WINDOW_PPM
    figs.append(write(
        slices.planes_figure(chi_ras, zooms, vmin=window[0], vmax=window[1],
                             label='χ (ppm)', centre=centre),
        f'{label}_desc-chi_Chimap',
        f'{label}: susceptibility χ in three planes through the brain\'s centre, fixed '
        f'window {window[0]:g} to {window[1]:g} ppm (the same for every visit and subject).'))
    r2s = images.load(visit.files['r2starmap']) if 'r2starmap' in visit.files else None
    if r2s is not None and np.isfinite(r2s.data).any():
        r2s_ras, _ = slices.to_ras(r2s.data, r2s.affine)
        top = float(np.percentile(r2s_ras[brain_ras], 99)) if brain_ras.any() else 50.0
        figs.append(write(
            slices.planes_figure(r2s_ras, zooms, vmin=0.0, vmax=max(top, 1.0), cmap='inferno',
                                 label='R2* (1/s)', centre=centre),
            f'{label}_desc-r2star_R2starmap',
            f'{label}: R2* (1/s), window 0 to the 99th percentile in the brain.'))
    elif r2s is not None:
        notes.append('the R2* map is NaN (one echo: no decay to fit)')
    else:
        notes.append('no R2* map was written')

    magnitude, source = _magnitude(visit, chi)
    cache[visit.session] = magnitude
    contours = [(brain_ras, '#ff3b30', 'brain mask')]
    if 'csf_mask' in visit.files:
        csf_ras, _ = slices.to_ras(images.load(visit.files['csf_mask']).data > 0.5, chi.affine)
        contours.append((csf_ras, '#00e5ff', 'CSF reference'))
    else:
        notes.append('no CSF mask was written')
    if magnitude is not None:
        mag_ras, _ = slices.to_ras(magnitude.data, chi.affine)
        figs.append(write(
            slices.contour_mosaic(mag_ras, zooms, contours),
            f'{label}_desc-masks_mask',
            f'{label}: brain mask (red) and CSF reference region of χ (cyan) on the {source}. '
            'A mask that cuts into the brain or leaks outside it, or a CSF region outside the '
            'ventricles, shows here first.'))
    if baseline is not None and visit is not baseline:
        figs.extend(_registration_figures(run, visit, baseline, chi, write, cache, notes))
    figs.extend(_flair_figures(run, visit, baseline, chi, magnitude, write, notes))
    return figs, notes


def _brain(visit, chi):
    """The visit's brain mask (bool), or where χ is non-zero if none was written."""
    if 'brain_mask' in visit.files:
        return images.load(visit.files['brain_mask']).data > 0.5
    return chi.data != 0


def _magnitude(visit, chi):
    """The visit's GRE magnitude on the χ grid (raw echo 1, else R2*) and its description."""
    if visit.magnitude is not None:
        mag = images.load(visit.magnitude)
        if images.same_grid(mag, chi):
            return mag, 'GRE magnitude (echo 1)'
    if 'r2starmap' in visit.files:
        return images.load(visit.files['r2starmap']), 'R2* map (no GRE magnitude found)'
    return None, ''


def _registration_figures(run, visit, baseline, chi, write, cache, notes):
    """Follow-up GRE resampled with the written transform, over the baseline's edges."""
    base_chi = images.load(baseline.files['chimap'])
    base_mag = cache.get(baseline.session) or _magnitude(baseline, base_chi)[0]
    if 'xfm_gre_to_baseline' not in visit.files:
        notes.append('no GRE-to-baseline transform was written: registration not shown')
        return []
    world = images.world_from_xfm(visit.files['xfm_gre_to_baseline'], chi, base_chi)
    moving = cache.get(visit.session)
    what = 'GRE magnitude'
    if moving is None:
        moving, what = chi, 'χ map'
    resampled = images.resample(moving, base_chi, world=world)
    ref = base_mag.data if base_mag is not None else base_chi.data
    brain = _brain(baseline, base_chi)
    edges = slices.edge_mask(ref, brain)
    moving_ras, zooms = slices.to_ras(resampled, base_chi.affine)
    edges_ras, _ = slices.to_ras(edges, base_chi.affine)
    centre = slices.centre_of(slices.to_ras(brain, base_chi.affine)[0])
    return [write(
        slices.edges_figure(moving_ras, edges_ras, zooms, centre=centre,
                            moving_label=f'{visit.label} {what}',
                            edges_label=f'{baseline.label} edges'),
        f'{visit.label}_desc-gretobaseline_reg',
        f'{visit.label} {what} resampled onto the baseline ({baseline.label}) GRE grid with the '
        f'written transform (from-GRE_to-baseline), edges of the baseline image in red: the '
        f'edges should follow the anatomy (ventricles, brain outline).')]


def _flair_world_to_gre(visit, flair, chi):
    """FLAIR -> this visit's GRE world matrix: the written transform, or scanner coordinates."""
    if 'xfm_flair_to_gre' in visit.files:
        return images.world_from_xfm(visit.files['xfm_flair_to_gre'], flair, chi), True
    return np.eye(4), False


def _flair_figures(run, visit, baseline, chi, magnitude, write, notes):
    """FLAIR over its GRE, and FLAIR after both transforms over the baseline."""
    if visit.flair is None:
        return []
    flair = images.load(visit.flair)
    world, written = _flair_world_to_gre(visit, flair, chi)
    how = 'the written FLAIR-to-GRE transform' if written else \
        'scanner coordinates (no FLAIR-to-GRE transform was written by this run)'
    figs = []
    ref = magnitude.data if magnitude is not None else chi.data
    on_gre = images.resample(flair, chi, world=world)
    ras, zooms = slices.to_ras(on_gre, chi.affine)
    brain = _brain(visit, chi)
    edges, _ = slices.to_ras(slices.edge_mask(ref, brain), chi.affine)
    centre = slices.centre_of(slices.to_ras(brain, chi.affine)[0])
    figs.append(write(
        slices.edges_figure(ras, edges, zooms, centre=centre, moving_label='FLAIR',
                            edges_label=f'{visit.label} GRE edges'),
        f'{visit.label}_desc-flairtogre_reg',
        f'{visit.label} FLAIR on its GRE grid by {how}; GRE magnitude edges in red.'))
    if not written:
        notes.append('FLAIR placed on the GRE grid by scanner coordinates: the run wrote no '
                     'FLAIR-to-GRE transform')
    if baseline is not None and visit is not baseline \
            and 'xfm_gre_to_baseline' in visit.files:
        base_chi = images.load(baseline.files['chimap'])
        to_base = images.world_from_xfm(visit.files['xfm_gre_to_baseline'], chi, base_chi)
        on_base = images.resample(flair, base_chi, world=to_base @ world)
        base_mag = _magnitude(baseline, base_chi)[0]
        ref = base_mag.data if base_mag is not None else base_chi.data
        ras, zooms = slices.to_ras(on_base, base_chi.affine)
        base_brain = _brain(baseline, base_chi)
        edges, _ = slices.to_ras(slices.edge_mask(ref, base_brain), base_chi.affine)
        centre = slices.centre_of(slices.to_ras(base_brain, base_chi.affine)[0])
        figs.append(write(
            slices.edges_figure(ras, edges, zooms, centre=centre, moving_label='FLAIR',
                                edges_label=f'{baseline.label} GRE edges'),
            f'{visit.label}_desc-flairtobaseline_reg',
            f'{visit.label} FLAIR after both transforms (FLAIR to GRE by {how}, then GRE to '
            f'baseline) on the baseline GRE grid; baseline edges in red. Lesion ROIs drawn on '
            f'this FLAIR reach the baseline grid this way.'))
    return figs


def _lesion_rows(run):
    """Lesions (id, rim, detected session) from the lesion table, else the annotations."""
    source = run.lesion_table if run.lesion_table is not None else run.annotations
    if source is None or 'lesion_id' not in source.columns:
        return []
    seen = {}
    for _, row in source.iterrows():
        lid = str(row['lesion_id'])
        if lid not in seen:
            seen[lid] = (str(row.get('rim', 'n/a')),
                         str(row.get('detected_session', 'n/a')).removeprefix('ses-'))
    return [(lid, rim, det) for lid, (rim, det) in seen.items()]


def _lesion_rois(run, lesions, baseline):
    """Each lesion's ROI (fraction >= 0.5) on the baseline GRE grid, and how it got there."""
    base_chi = images.load(baseline.files['chimap'])
    rois, how = {}, {}
    loaded = {}
    for lid, _, detected in lesions:
        visit = run.visit(detected)
        if visit is None or visit.lesion_dseg is None:
            continue
        if detected not in loaded:
            loaded[detected] = images.load(visit.lesion_dseg)
        dseg = loaded[detected]
        try:
            label = int(float(lid))
        except ValueError:
            continue
        mask = np.rint(dseg.data) == label
        world, method = np.eye(4), 'scanner coordinates'
        if visit.has_qsm:
            chi = images.load(visit.files['chimap'])
            flair_world, written = np.eye(4), False
            if 'xfm_flair_to_gre' in visit.files:
                flair_world, written = _flair_world_to_gre(visit, dseg, chi)
            if 'xfm_gre_to_baseline' in visit.files:
                world = images.world_from_xfm(visit.files['xfm_gre_to_baseline'], chi,
                                              base_chi) @ flair_world
                method = ('FLAIR-to-GRE and GRE-to-baseline transforms' if written else
                          'scanner coordinates to the GRE, then the GRE-to-baseline transform')
        fraction = partial_volume_fraction(mask, dseg.affine, base_chi.shape, base_chi.affine,
                                           world=world)
        rois[lid] = fraction >= 0.5
        how[lid] = method
    return base_chi, rois, how


def _lesion_sections(run, baseline, write):
    lesions = _lesion_rows(run)
    if not lesions:
        return []
    sections = {lid: LesionSection(lesion_id=lid, rim=rim, detected=f'ses-{det}')
                for lid, rim, det in lesions}
    if baseline is not None:
        base_chi, rois, how = _lesion_rois(run, lesions, baseline)
        brain = images.load(baseline.files['brain_mask']).data > 0.5 \
            if 'brain_mask' in baseline.files else base_chi.data != 0
        csf = images.load(baseline.files['csf_mask']).data > 0.5 \
            if 'csf_mask' in baseline.files else np.zeros(brain.shape, bool)
        every = np.zeros(brain.shape, bool)
        for roi in rois.values():
            every |= roi
        chis = {}
        for visit in run.visits:
            path = visit.files.get('chimap_baseline')
            if path is None and visit is baseline:
                path = visit.files.get('chimap')
            chis[visit.label] = (slices.to_ras(images.load(path).data, base_chi.affine)[0]
                                 if path is not None else None)
        inner, outer = LESION_SHELL_MM
        for lid, roi in rois.items():
            if not roi.any():
                sections[lid].notes.append('the ROI has no baseline GRE voxel at least half '
                                           'inside the lesion')
                continue
            shell = nawm_shell(roi, exclude=every | csf, brain_mask=brain,
                               voxel_size=base_chi.zooms, inner_mm=inner, outer_mm=outer)
            roi_ras, zooms = slices.to_ras(roi, base_chi.affine)
            shell_ras, _ = slices.to_ras(shell, base_chi.affine)
            panels = list(chis.items())
            sections[lid].figures.append(write(
                slices.lesion_strip_figure(panels, roi_ras, shell_ras, zooms,
                                           slices.centre_of(roi_ras)),
                f'desc-lesion{_safe(lid)}_Chimap',
                f'Lesion {lid}: ROI as drawn at detection ({sections[lid].detected}, yellow; '
                f'placed on the baseline grid by {how[lid]}) and its NAWM shell '
                f'({inner:g}-{outer:g} mm, cyan) over χ of every visit in baseline space, '
                f'axial slice through the lesion centre, window '
                f'{slices.CHI_WINDOW_PPM[0]:g} to {slices.CHI_WINDOW_PPM[1]:g} ppm.'))
        for lid, _, det in lesions:
            if lid not in rois:
                sections[lid].notes.append(f'no lesion label map of ses-{det} (the detection '
                                           'visit) was found: ROI not shown')
    table = run.lesion_table
    if table is not None and 'lesion_age_years' in table.columns:
        for lid, section in sections.items():
            rows = table[table['lesion_id'].astype(str) == lid]
            if rows.empty:
                continue
            section.figures.append(write(
                lesion_trajectory_figure(rows, title=f'Lesion {lid} ({section.rim} rim)'),
                f'desc-lesion{_safe(lid)}_trajectory',
                f'Lesion {lid}: χ relative to NAWM (ppb) and FLAIR volume (mm³) at each visit '
                'against lesion age, from the lesion table.'))
    return list(sections.values())


def _safe(text):
    return ''.join(c for c in str(text) if c.isalnum()) or 'x'


def _warnings(run):
    """Every warning of the run about this subject: sidecars, the log, the report's findings."""
    found = []
    for name, text in run.sidecar_warnings:
        found.append(('sidecar', name, text))
    for visit in run.visits:
        meta = visit.sidecars.get('chimap', {})
        region = str(meta.get('ReferenceRegion', ''))
        if region.replace(' ', '_').lower() == 'whole_brain':
            found.append(('sidecar', visit.label,
                          'χ is referenced to the whole brain: no ventricular CSF was found'))
    for visit in run.visits:
        meta = visit.sidecars.get('xfm_gre_to_baseline', {})
        engine = next((str(meta[k]) for k in ('Engine', 'RegistrationEngine') if k in meta), '')
        if engine and 'flirt' not in engine.lower():
            found.append(('sidecar', visit.label, f'registered with {engine}, not FSL FLIRT'))
    if run.lesion_table is not None:
        flagged = unreliable_rows(run.lesion_table)
        for lesion_id, rows in flagged.groupby('lesion_id', sort=False):
            found.append(('lesion table', f'lesion {lesion_id}',
                          f'lesion {lesion_id} reaches voxels whose χ was eroded or '
                          f'extrapolated (outside desc-reliable_mask) at '
                          f"{', '.join(map(str, rows['session_id']))}: treat its χ with "
                          'caution'))
    for record in run.log_records:
        if record.level == 'WARNING':
            found.append(('log', record.time, record.message.splitlines()[0]))
    for problem in run.problems:
        found.append(('report', '', problem))
    unique, seen = [], set()
    for item in found:
        if item[2] not in seen:
            seen.add(item[2])
            unique.append(item)
    return unique


def _table(run):
    table = run.lesion_table
    if table is None:
        return [], []
    columns = [c for c in _TABLE_COLUMNS if c in table.columns]
    rows = []
    for _, row in table.iterrows():
        rows.append([('n/a' if (isinstance(v, float) and not np.isfinite(v)) else
                      (f'{v:.2f}' if isinstance(v, float) else str(v)))
                     for v in (row[c] for c in columns)])
    return columns, rows


def write_subject_report(output_dir, subject, *, bids_dir=None, lesions_dir=None,
                         figure_cache=None):
    """Write ``OUTPUT_DIR/sub-<label>.html`` and its figures from the run's outputs.

    Parameters
    ----------
    output_dir : str or Path
        The participant level's derivatives dataset.
    subject : str
        Subject label, with or without ``sub-``.
    bids_dir : str or Path, optional
        Raw dataset (default: ``DatasetLinks.raw`` of the derivatives' description): the GRE
        magnitude, FLAIR, visit dates and which visits were expected.
    lesions_dir : str or Path, optional
        Lesion annotations (default ``bids_dir/derivatives/lesions``): the lesion ROIs.
    figure_cache : str or Path, optional
        A file (outside the derivatives, e.g. in the work directory) where the figures drawn
        are recorded; when none of the files they are drawn from changed since, they are
        reused instead of drawn again (:mod:`lesionqsm.report.figure_cache`).

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    output_dir = Path(output_dir).absolute()
    run = collect_subject(output_dir, subject, bids_dir=bids_dir, lesions_dir=lesions_dir)
    write = _FigureWriter(output_dir, run.subject)
    baseline = run.baseline
    reuse = FigureCache(figure_cache, run, write.folder) if figure_cache else None
    stored = reuse.load() if reuse is not None else None
    drawn, complete = {}, True  # visit label -> (figures, notes); every figure drawn
    cache = {}
    sections = []
    for visit in run.visits:
        status = 'ok' if visit.has_qsm and not visit.failed else (
            'failed' if visit.failed else 'no QSM')
        section = VisitSection(
            label=visit.label, is_baseline=visit is baseline, status=status,
            acq_time=visit.acq_time.isoformat() if visit.acq_time else 'unknown')
        if visit.has_qsm:
            if stored is not None:
                section.figures, section.notes = stored['visits'].get(visit.label, ([], []))
            else:
                try:
                    section.figures, section.notes = _visit_figures(run, visit, baseline,
                                                                    write, cache)
                except (OSError, ValueError) as exc:  # a damaged file: say so, keep the report
                    section.notes.append(f'figures not drawn: {exc}')
                    complete = False
                drawn[visit.label] = (list(section.figures), list(section.notes))
            section.parameters = _parameters(visit.sidecars.get('chimap', {}))
            xfm_meta = visit.sidecars.get('xfm_gre_to_baseline', {})
            section.registration = [(k, _format(v)) for k, v in xfm_meta.items()
                                    if k != 'Description']
        elif not visit.expected:
            section.notes.append('no multi-echo GRE phase data for this visit: no χ map '
                                 '(its FLAIR lesion map may still be used)')
        errors = list(dict.fromkeys(visit.errors))
        errors += [f'{c.step}: {c.message} (crash file: logs/crash/{c.path.name})'
                   for c in visit.crashes]
        if status == 'failed' and not errors:
            errors = [f for f in run.subject_errors if visit.label in f] or \
                ['no χ map was written and the log names no cause (was the run interrupted?)']
        section.errors = errors
        sections.append(section)
    if stored is not None:
        lesions = stored['lesions']
    else:
        try:
            lesions = _lesion_sections(run, baseline, write)
        except (OSError, ValueError) as exc:
            lesions, complete = [], False
            LOGGER.warning('sub-%s report: lesion figures not drawn: %s', run.subject, exc)
        if reuse is not None and complete:
            reuse.save(drawn, lesions)
    columns, rows = _table(run)
    html = render('subject.html', run=run, visits=sections, lesions=lesions,
                  warnings=_warnings(run), table_columns=columns, table_rows=rows,
                  subject_errors=run.subject_errors, version=__version__,
                  log_file=(run.log_file.relative_to(output_dir).as_posix()
                            if run.log_file else None),
                  table_file=(run.lesion_table_path.relative_to(output_dir).as_posix()
                              if run.lesion_table_path else None),
                  baseline=baseline.label if baseline else None)
    path = output_dir / f'sub-{run.subject}.html'
    atomic_write_text(path, html)
    return path
