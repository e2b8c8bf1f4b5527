"""Presets and the generator of the synthetic longitudinal MS cohort (a BIDS dataset).

:func:`generate_cohort` draws patients, visits, head motion and lesions from a seed, simulates
every visit with :mod:`lesionqsm.synth.forward`, and writes raw data, lesion annotations and the
ground truth with :mod:`lesionqsm.synth.bids_writer`.

Ground truth (``derivatives/groundtruth/sub-XX/sub-XX_lesions.tsv``), measured on the fine
simulation grid of each visit (isotropic, ``fine_voxel_mm``; the head moved, grid fixed):

- ``chi_lesion_ppm``: mean χ (ppm, CSF = 0) over the fine voxels whose centre lies in the
  lesion's extent *at detection* (the region its detection-visit ROI covers).  This is what the
  paper measures: ROIs drawn at detection are overlaid on every later QSM, so a lesion that
  shrinks is measured over its original extent.  The simulated lesion tissue is set so that
  this mean follows the paper's trajectory (the current, smaller lesion carries the χ offset
  times detection volume / current volume);
- ``chi_lesion_current_ppm``: mean χ over the lesion's extent at this visit;
- ``chi_nawm_ppm``: mean χ over fine voxels that are white matter (not grey matter, CSF, deep
  nuclei, vein), outside every lesion of the patient at any visit (each at its largest), and at a
  Euclidean distance d from the lesion's detection extent (centre to centre) with
  1 mm < d <= 5 mm;
- ``chi_rel_ppb`` = 1000 (chi_lesion_ppm − chi_nawm_ppm);
- ``volume_mm3``: the lesion's voxel count in that visit's FLAIR label map times the FLAIR voxel
  volume (what an ROI on the written annotation measures).
"""

import dataclasses
import datetime as dt
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from lesionqsm.synth import bids_writer as bw
from lesionqsm.synth import forward as fw
from lesionqsm.synth import lesions as les
from lesionqsm.synth import phantom as ph
from lesionqsm.synth import trajectory


@dataclasses.dataclass(frozen=True)
class Preset:
    """Size and acquisition parameters of a synthetic cohort.

    Lengths in mm, times in s unless named otherwise; ``snr`` is the noise-free echo-1
    magnitude of normal-appearing white matter divided by the noise standard deviation of each
    real channel; ``snr_anat`` the same for FLAIR and T1w (white matter signal / σ).
    """

    name: str
    n_subjects: int
    n_lesions: int
    n_rim_positive: int
    n_nodular: int
    visits: tuple
    gre_shape: tuple
    gre_voxel_mm: tuple
    gre_centre_mm: tuple
    fine_voxel_mm: float
    n_echoes: int
    flair_shape: tuple
    flair_voxel_mm: float
    te1_s: float = 0.0045
    delta_te_s: float = 0.0048
    snr: float = 60.0
    snr_anat: float = 40.0
    phase_units: str = 'rad'
    field_strength: float = 3.0
    interval_years: tuple = (0.6, 1.4)
    max_span_years: float = 6.1
    max_lesions_per_subject: int = 3
    motion_rotation_sd_deg: float = 2.0
    motion_translation_sd_mm: float = 2.5
    volume_scale: float = 1.0

    @property
    def echo_times(self):
        return tuple(round(self.te1_s + i * self.delta_te_s, 7) for i in range(self.n_echoes))


PRESETS = {
    'tiny': Preset(name='tiny', n_subjects=2, n_lesions=4, n_rim_positive=2, n_nodular=1,
                   visits=(3, 3), gre_shape=(64, 72, 24), gre_voxel_mm=(3.0, 3.0, 3.0),
                   gre_centre_mm=(0.0, -5.0, 10.0), fine_voxel_mm=1.5, n_echoes=5,
                   flair_shape=(84, 104, 90), flair_voxel_mm=2.0),
    'demo': Preset(name='demo', n_subjects=4, n_lesions=10, n_rim_positive=5, n_nodular=3,
                   visits=(3, 4), gre_shape=(112, 112, 44), gre_voxel_mm=(2.0, 2.0, 3.0),
                   gre_centre_mm=(0.0, -5.0, 8.0), fine_voxel_mm=1.0, n_echoes=10,
                   flair_shape=(176, 216, 180), flair_voxel_mm=1.0),
    'paper': Preset(name='paper', n_subjects=19, n_lesions=32, n_rim_positive=16, n_nodular=9,
                    visits=(3, 7), gre_shape=(240, 240, 48), gre_voxel_mm=(1.0, 1.0, 3.0),
                    gre_centre_mm=(0.0, -5.0, 8.0), fine_voxel_mm=1.0, n_echoes=10,
                    flair_shape=(176, 216, 180), flair_voxel_mm=1.0),
}

#: Largest anatomical scaling of a head, and the motion margin (mm) of the fine grid.
_MAX_HEAD_SCALE = 1.06
_FINE_MARGIN_MM = 12.0
_BASE_DATE = dt.datetime(2011, 1, 3, 8, 0)


def resolve_preset(preset, **overrides):
    """A :class:`Preset` by name with fields overridden; ValueError names unknown ones."""
    if isinstance(preset, Preset):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f'unknown preset {preset!r}; choose one of {sorted(PRESETS)}')
    fields = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f'unknown preset option(s) {unknown}; known: {sorted(fields)}')
    overrides = {k: v for k, v in overrides.items() if v is not None}
    p = dataclasses.replace(base, **overrides)
    if p.phase_units not in ('rad', 'arbitrary'):
        raise ValueError(f"phase_units must be 'rad' or 'arbitrary', got {p.phase_units!r}")
    if p.snr <= 0 or p.snr_anat <= 0:
        raise ValueError(f'SNR must be positive, got snr={p.snr}, snr_anat={p.snr_anat}')
    if not 0 <= p.n_rim_positive <= p.n_lesions or not 0 <= p.n_nodular <= p.n_lesions:
        raise ValueError('n_rim_positive and n_nodular must lie between 0 and n_lesions')
    if not p.n_subjects <= p.n_lesions <= p.n_subjects * p.max_lesions_per_subject:
        raise ValueError(f'n_lesions={p.n_lesions} must be between n_subjects='
                         f'{p.n_subjects} and {p.max_lesions_per_subject} per subject')
    if p.visits[0] < 3 or p.visits[1] < p.visits[0]:
        raise ValueError(f'visits must be (min, max) with min >= 3, got {p.visits}')
    return p


# ----------------------------------------------------------------------------- cohort design
@dataclasses.dataclass
class Subject:
    label: str
    index: int
    age: float
    sex: str
    edss: float
    disease_duration: float
    treatment_duration: float
    acq_times: list
    motions: list
    motion_params: list
    flair_centres: list
    head: ph.HeadPhantom
    lesions: list
    patient_offset_ppb: float
    residuals_ppb: dict


def _visit_times(p, rng):
    n = int(rng.integers(p.visits[0], p.visits[1] + 1))
    gaps = rng.uniform(*p.interval_years, size=n - 1)
    span = gaps.sum()
    if span > p.max_span_years:
        gaps *= p.max_span_years / span
    if span < 1.1:
        gaps *= 1.1 / span
    start = _BASE_DATE + dt.timedelta(days=int(rng.integers(0, 700)))
    days = np.concatenate([[0.0], np.cumsum(gaps) * 365.25])
    times = []
    for d in days:
        day = start + dt.timedelta(days=int(round(d)))
        minutes = int(rng.integers(0, 9 * 60))
        times.append(day.replace(hour=8) + dt.timedelta(minutes=minutes))
    return times


def _years(t, t0):
    return (t - t0).total_seconds() / 86400.0 / 365.25


def design_cohort(p, seed):
    """Draw patients, visits, motion, anatomy and lesions (no images).

    Returns
    -------
    list of Subject
    """
    rng = np.random.default_rng([seed, 0])
    counts = np.ones(p.n_subjects, dtype=int)
    for _ in range(p.n_lesions - p.n_subjects):
        open_ = np.flatnonzero(counts < p.max_lesions_per_subject)
        counts[rng.choice(open_)] += 1
    rims = np.array(['positive'] * p.n_rim_positive
                    + ['negative'] * (p.n_lesions - p.n_rim_positive))
    rng.shuffle(rims)
    enh = np.array(['nodular'] * p.n_nodular + ['shell'] * (p.n_lesions - p.n_nodular))
    rng.shuffle(enh)
    gre_z = (p.gre_centre_mm[2] - p.gre_shape[2] * p.gre_voxel_mm[2] / 2,
             p.gre_centre_mm[2] + p.gre_shape[2] * p.gre_voxel_mm[2] / 2)
    z_range = (max(gre_z[0] + 15.0, -20.0), min(gre_z[1] - 15.0, 42.0))
    subjects = []
    k = 0
    for i in range(p.n_subjects):
        srng = np.random.default_rng([seed, 1, i])
        times = _visit_times(p, srng)
        motions, params, centres = [], [], []
        for v in range(len(times)):
            if v == 0:
                rot, tra = np.zeros(3), np.zeros(3)
            else:
                sd_r, sd_t = p.motion_rotation_sd_deg, p.motion_translation_sd_mm
                rot = np.clip(srng.normal(0, sd_r, 3), -2.5 * sd_r, 2.5 * sd_r)
                tra = np.clip(srng.normal(0, sd_t, 3), -2.5 * sd_t, 2.5 * sd_t)
            motions.append(fw.rigid_matrix(rot, tra))
            params.append((rot, tra))
            centres.append(np.array([0.0, -5.0, -3.0]) + srng.uniform(-4, 4, 3))
        scale = tuple(np.clip(srng.normal(1.0, 0.025, 3), 2 - _MAX_HEAD_SCALE, _MAX_HEAD_SCALE))
        head = ph.make_head(scale=scale, ventricle_scale=float(srng.uniform(0.9, 1.3)))
        disease = float(max(0.3, srng.normal(4.8, 3.2)))
        edss = float(np.clip(np.round(abs(srng.normal(1.4, 1.7)) * 2) / 2, 0, 6.5))
        subject_lesions = []
        for j in range(counts[i]):
            feasible = [d for d in range(len(times) - 2)
                        if _years(times[-1], times[d]) >= 1.0]
            weights = 0.5 ** np.arange(len(feasible))
            d = int(srng.choice(feasible, p=weights / weights.sum()))
            subject_lesions.append(les.draw_lesion(
                srng, lesion_id=j + 1, rim=str(rims[k]), enhancement=str(enh[k]),
                detected_visit=d, volume_scale=p.volume_scale))
            k += 1
        les.place_lesions(head, subject_lesions, srng, z_range=z_range)
        residuals = {(lesion.lesion_id, v): float(srng.normal(0, les.SD_RESIDUAL_PPB))
                     for lesion in subject_lesions for v in range(len(times))}
        subjects.append(Subject(
            label=f'{i + 1:02d}', index=i,
            age=float(np.round(np.clip(srng.normal(36.3, 6.4), 20, 60), 1)),
            sex='F' if srng.uniform() < 15 / 19 else 'M', edss=edss,
            disease_duration=round(disease, 1),
            treatment_duration=round(float(np.clip(srng.normal(3.5, 3.0), 0, disease)), 1),
            acq_times=times, motions=motions, motion_params=params, flair_centres=centres,
            head=head, lesions=subject_lesions,
            patient_offset_ppb=float(srng.normal(0, les.SD_PATIENT_PPB)),
            residuals_ppb=residuals))
    return subjects


def lesion_ages(subject, visit):
    """{lesion_id: age in years} of the lesions present (detected) at a visit."""
    t = subject.acq_times[visit]
    return {lesion.lesion_id: _years(t, subject.acq_times[lesion.detected_visit])
            for lesion in subject.lesions if lesion.detected_visit <= visit}


def target_offset_ppb(subject, lesion, visit, age):
    """Model lesion-mean χ offset (ppb) from the white matter it replaced, at one visit."""
    return float(trajectory.mean_susceptibility_ppb(age, lesion.rim)
                 + subject.patient_offset_ppb + lesion.offset_ppb
                 + les.EDSS_EFFECT_PPB * (subject.edss - les.EDSS_CENTRE)
                 + subject.residuals_ppb[(lesion.lesion_id, visit)])


# ----------------------------------------------------------------------------- one visit
def _tissue_maps(labels, ids, depth, x, y, z, offsets):
    """χ (ppm, CSF = 0), R2* (1/s), PD, T1 and T2 (ms) maps from labels and lesion offsets."""
    chi = ph.property_table(0)[labels]
    wm = labels == ph.LABEL['wm']
    chi[wm] += ph.wm_chi_modulation(x[wm], y[wm], z[wm])
    r2s = ph.property_table(1)[labels]
    pd = ph.property_table(2)[labels]
    t1 = ph.property_table(3)[labels]
    t2 = ph.property_table(4)[labels]
    in_lesion = ids > 0
    if in_lesion.any():
        core = np.zeros(int(ids.max()) + 1, np.float32)
        rim = np.zeros_like(core)
        for lesion_id, (c, r) in offsets.items():
            core[lesion_id], rim[lesion_id] = c, r
        lid = ids[in_lesion]
        delta = np.where(depth[in_lesion] < les.RIM_WIDTH_MM, rim[lid], core[lid])
        chi[in_lesion] += delta / 1000.0
        r2s[in_lesion] = les.lesion_r2star(delta)
        pd[in_lesion] = les.LESION_PD
        t1[in_lesion] = les.LESION_T1_MS
        t2[in_lesion] = les.LESION_T2_MS
    return chi, r2s, pd, t1, t2


def _detection_extent(lesion, grid, motion):
    """A block of the fine grid around a lesion and its extent at detection within it."""
    block = ph.shape_block(grid, motion, lesion.centre, lesion.extent(0.0) + 8.0)
    x, y, z = ph.head_coordinates(grid, motion, block)
    return block, lesion.rho(x, y, z) <= lesion.radius_scale(0.0)


def simulate_gre(p, subject, visit, fine, rng):
    """Simulate one visit's GRE and the fine-grid truth.

    Returns
    -------
    dict
        ``mag`` (float32, GRE grid × echoes, file units), ``phase`` (rad, wrapped),
        ``chi_gre`` (ppm), ``r2s_gre`` (1/s), ``tissue_gre`` (majority label), ``rows`` (truth
        per lesion, without FLAIR volume), ``noise`` (metadata).
    """
    motion = subject.motions[visit]
    ages = lesion_ages(subject, visit)
    grid = fine.grid
    labels = ph.paint_labels(subject.head, grid, motion)
    ids, depth, ever = les.paint_lesions(subject.lesions, grid, motion, ages)
    x, y, z = ph.head_coordinates(grid, motion)
    offsets, rows = {}, []
    for lesion in subject.lesions:
        if lesion.lesion_id not in ages:
            continue
        inside = ids == lesion.lesion_id
        n = int(inside.sum())
        rim_fraction = (float(np.count_nonzero(depth[inside] < les.RIM_WIDTH_MM)) / max(n, 1)
                        if lesion.rim == 'positive' else 0.0)
        age = ages[lesion.lesion_id]
        target = target_offset_ppb(subject, lesion, visit, age)
        block, detection = _detection_extent(lesion, grid, motion)
        n_detection = int(np.count_nonzero(detection))
        # the detection-extent mean follows the trajectory: concentrate the offset in what
        # remains of the lesion (its extent never grows past the one at detection)
        concentration = n_detection / max(n, 1)
        offsets[lesion.lesion_id] = les.lesion_offsets(target * concentration,
                                                       lesion.rim_contrast_ppb, rim_fraction)
        rows.append({'lesion_id': lesion.lesion_id, 'age': age, 'lesion': lesion,
                     'target': target, 'n_fine': n, 'rim_fraction': rim_fraction,
                     'block': block, 'detection': detection})
    chi, r2s, pd, t1, _ = _tissue_maps(labels, ids, depth, x, y, z, offsets)
    del x, y, z
    wm = labels == ph.LABEL['wm']
    for row in rows:
        block, detection = row.pop('block'), row.pop('detection')
        current = ids[block] == row['lesion_id']
        dist = ndimage.distance_transform_edt(~detection, sampling=grid.voxel_size)
        shell = (dist > 1.0) & (dist <= 5.0) & wm[block] & ~ever[block]
        row['chi_lesion_ppm'] = float(np.mean(chi[block][detection], dtype=np.float64))
        row['chi_lesion_current_ppm'] = float(np.mean(chi[block][current], dtype=np.float64))
        row['chi_nawm_ppm'] = float(np.mean(chi[block][shell], dtype=np.float64))
    field = fw.field_ppm(chi, fine)
    m0 = fw.spoiled_gre_m0(pd, t1, tr_ms=fw.GRE_TR_MS, flip_deg=fw.GRE_FLIP_DEG)
    clean = fw.gre_echoes(m0, r2s, field, fine, p.echo_times, field_strength=p.field_strength)
    pure_nawm = fine.to_gre((wm & ~ever).astype(np.float32)) > 0.999
    reference = float(np.mean(np.abs(clean[..., 0][pure_nawm])))
    sigma = reference / p.snr
    phi0 = fw.smooth_phase_offset(fine.gre.shape, rng)
    noisy = clean * np.exp(1j * phi0)[..., None] + fw.complex_noise(clean.shape, sigma, rng)
    scale = 1000.0 / reference
    tissue = np.zeros(fine.gre.shape, np.uint8)
    best = np.zeros(fine.gre.shape, np.float32)
    for label in np.unique(labels):
        frac = fine.to_gre((labels == label).astype(np.float32))
        better = frac > best
        tissue[better], best[better] = label, frac[better]
    return {
        'mag': np.abs(noisy) * np.float32(scale), 'phase': fw.wrap_phase(np.angle(noisy)),
        'chi_gre': fine.to_gre(chi, fill=ph.CHI_AIR_PPM), 'r2s_gre': fine.to_gre(r2s),
        'tissue_gre': tissue, 'rows': rows,
        'noise': {'SNR': p.snr, 'NoiseSigma': sigma * scale,
                  'ReferenceSignal': 1000.0,
                  'Definition': 'SNR = mean noise-free echo-1 magnitude over GRE voxels made '
                                'only of normal-appearing white matter / NoiseSigma, the '
                                'standard deviation of each of the real and imaginary noise '
                                'channels; magnitude files are scaled so that this reference '
                                'is 1000.'},
    }


def simulate_anat(p, subject, visit, rng):
    """FLAIR, T1w, T1w+Gd and the lesion label map on this visit's FLAIR grid."""
    grid = fw.axial_grid(p.flair_shape, (p.flair_voxel_mm,) * 3, subject.flair_centres[visit])
    motion = subject.motions[visit]
    ages = lesion_ages(subject, visit)
    labels = ph.paint_labels(subject.head, grid, motion)
    ids, depth, _ = les.paint_lesions(subject.lesions, grid, motion, ages)
    pd = ph.property_table(2)[labels]
    t1 = ph.property_table(3)[labels]
    t2 = ph.property_table(4)[labels]
    lesion = ids > 0
    pd[lesion], t1[lesion], t2[lesion] = les.LESION_PD, les.LESION_T1_MS, les.LESION_T2_MS
    t1_gd = t1.copy()
    blood = np.isin(labels, [ph.LABEL['vein'], ph.LABEL['sinus']])
    t1_gd[blood] = ph.T1_BLOOD_GD_MS
    for item in subject.lesions:
        if item.detected_visit != visit:
            continue
        enhancing = ids == item.lesion_id
        if item.enhancement == 'shell':
            enhancing &= depth < les.RIM_WIDTH_MM
        t1_gd[enhancing] = les.ENHANCING_T1_MS
    wm = (labels == ph.LABEL['wm']) & ~lesion
    images = {
        'FLAIR': fw.flair_signal(pd, t1, t2),
        'T1w': fw.spoiled_gre_m0(pd, t1, tr_ms=fw.T1W_TR_MS, flip_deg=fw.T1W_FLIP_DEG),
        'ce-gadolinium_T1w': fw.spoiled_gre_m0(pd, t1_gd, tr_ms=fw.T1W_TR_MS,
                                               flip_deg=fw.T1W_FLIP_DEG),
    }
    out = {}
    for name, clean in images.items():
        reference = float(np.mean(clean[wm]))
        sigma = reference / p.snr_anat
        noisy = np.abs(clean + fw.complex_noise(clean.shape, sigma, rng))
        out[name] = noisy * np.float32(1000.0 / reference)
    voxel_volume = float(p.flair_voxel_mm**3)
    volumes = {int(k): float(n) * voxel_volume
               for k, n in zip(*np.unique(ids[lesion], return_counts=True), strict=True)}
    return grid, out, ids, volumes


# ----------------------------------------------------------------------------- writing
def _fmt_time(t):
    return t.strftime('%Y-%m-%dT%H:%M:%S')


def _write_subject(root, p, subject, fine, seed, log):
    sub = subject.label
    gt = root / 'derivatives' / 'groundtruth'
    ann = root / 'derivatives' / 'lesions'
    sessions = [f'{v + 1:02d}' for v in range(len(subject.acq_times))]
    bw.write_tsv(root / f'sub-{sub}' / f'sub-{sub}_sessions.tsv', ['session_id', 'acq_time'],
                 [{'session_id': f'ses-{s}', 'acq_time': _fmt_time(t)}
                  for s, t in zip(sessions, subject.acq_times, strict=True)])
    bw.write_tsv(ann / f'sub-{sub}' / f'sub-{sub}_lesions.tsv',
                 ['lesion_id', 'detected_session', 'rim', 'enhancement'],
                 [{'lesion_id': x.lesion_id,
                   'detected_session': f'ses-{sessions[x.detected_visit]}', 'rim': x.rim,
                   'enhancement': x.enhancement} for x in subject.lesions])
    bw.write_json(ann / f'sub-{sub}' / f'sub-{sub}_lesions.json', bw.ANNOTATION_JSON)
    truth_rows = []
    for v, ses in enumerate(sessions):
        t0 = time.perf_counter()
        vrng = np.random.default_rng([seed, 2, subject.index, v])
        gre = simulate_gre(p, subject, v, fine, vrng)
        grid, anat, ids, volumes = simulate_anat(p, subject, v, vrng)
        prefix = bw.raw_prefix(sub, ses)
        adir = bw.anat_dir(root, sub, ses)
        common = {'MagneticFieldStrength': p.field_strength, 'MRAcquisitionType': '3D',
                  'Manufacturer': 'lesionqsm-synth', 'RepetitionTime': fw.GRE_TR_MS / 1000,
                  'FlipAngle': fw.GRE_FLIP_DEG}
        for e, te in enumerate(p.echo_times):
            stem = adir / f'{prefix}_echo-{e + 1}_part-mag_MEGRE'
            bw.write_nifti(f'{stem}.nii.gz', gre['mag'][..., e], fine.gre.affine,
                           dtype=np.int16)
            bw.write_json(f'{stem}.json', {**common, 'EchoTime': te})
            stem = adir / f'{prefix}_echo-{e + 1}_part-phase_MEGRE'
            if p.phase_units == 'rad':
                bw.write_nifti(f'{stem}.nii.gz', gre['phase'][..., e], fine.gre.affine,
                               dtype=np.float32)
            else:
                bw.write_nifti(f'{stem}.nii.gz', fw.phase_to_arbitrary(gre['phase'][..., e]),
                               fine.gre.affine, dtype=np.int16)
            bw.write_json(f'{stem}.json', {**common, 'EchoTime': te, 'Units': p.phase_units})
        anat_meta = {
            'FLAIR': {'RepetitionTime': fw.FLAIR_TR_MS / 1000, 'EchoTime': fw.FLAIR_TE_MS / 1000},
            'T1w': {'RepetitionTime': fw.T1W_TR_MS / 1000, 'FlipAngle': fw.T1W_FLIP_DEG},
            'ce-gadolinium_T1w': {'RepetitionTime': fw.T1W_TR_MS / 1000,
                                  'FlipAngle': fw.T1W_FLIP_DEG,
                                  'ContrastBolusIngredient': 'GADOLINIUM'},
        }
        for name, data in anat.items():
            bw.write_nifti(adir / f'{prefix}_{name}.nii.gz', data, grid.affine, dtype=np.int16)
            bw.write_json(adir / f'{prefix}_{name}.json',
                          {'MagneticFieldStrength': p.field_strength, 'MRAcquisitionType': '3D',
                           'Manufacturer': 'lesionqsm-synth', **anat_meta[name]})
        # annotations: lesion label map on this visit's FLAIR grid
        ann_dir = bw.anat_dir(ann, sub, ses)
        dseg = ann_dir / f'{prefix}_space-FLAIR_dseg'
        bw.write_nifti(f'{dseg}.nii.gz', ids, grid.affine, dtype=np.int16)
        present = [x for x in subject.lesions if x.detected_visit <= v]
        bw.write_tsv(f'{dseg}.tsv', ['index', 'name'],
                     [{'index': x.lesion_id, 'name': f'lesion-{x.lesion_id}'} for x in present])
        bw.write_json(f'{dseg}.json', {
            'Description': 'MS lesion label map: integer lesion_id per voxel (0 = no lesion), '
                           'on the FLAIR grid of this session.',
            'Sources': [f'bids:raw:sub-{sub}/ses-{ses}/anat/{prefix}_FLAIR.nii.gz'],
            'SpatialReference': f'bids:raw:sub-{sub}/ses-{ses}/anat/{prefix}_FLAIR.nii.gz'})
        # ground truth
        gdir = bw.anat_dir(gt, sub, ses)
        bw.write_nifti(gdir / f'{prefix}_Chimap.nii.gz', gre['chi_gre'], fine.gre.affine,
                       dtype=np.float32)
        bw.write_json(gdir / f'{prefix}_Chimap.json', {
            'Units': 'ppm', 'SkullStripped': False,
            'Description': 'True susceptibility relative to CSF, mean over the fine simulation '
                           'voxels of each GRE voxel (air = 9.4 ppm).',
            'Sources': [f'bids:raw:sub-{sub}/ses-{ses}/anat/'
                        f'{prefix}_echo-1_part-mag_MEGRE.nii.gz']})
        bw.write_nifti(gdir / f'{prefix}_R2starmap.nii.gz', gre['r2s_gre'], fine.gre.affine,
                       dtype=np.float32)
        bw.write_json(gdir / f'{prefix}_R2starmap.json', {
            'Units': '1/s', 'SkullStripped': False,
            'Description': 'True R2*, mean over the fine voxels of each GRE '
                                           'voxel (the decay of a mixed voxel is not exactly '
                                           'mono-exponential).'})
        tissue = gdir / f'{prefix}_desc-tissue_dseg'
        bw.write_nifti(f'{tissue}.nii.gz', gre['tissue_gre'], fine.gre.affine, dtype=np.uint8)
        bw.write_tsv(f'{tissue}.tsv', ['index', 'name'],
                     [{'index': i, 'name': n} for i, n in enumerate(ph.TISSUES)])
        rot, tra = subject.motion_params[v]
        bw.write_json(gt / f'sub-{sub}' / f'ses-{ses}' / f'{prefix}_motion.json', {
            'Description': 'Rigid head motion: maps baseline-head world coordinates (mm, '
                           'scanner RAS+) to this session\'s head world coordinates; B0 and '
                           'the scanner frame are fixed.  Matrix = [R t; 0 1], R = Rz Ry Rx.',
            'Matrix': [[round(float(a), 10) for a in r] for r in subject.motions[v]],
            'RotationDegrees': [round(float(a), 6) for a in rot],
            'TranslationMm': [round(float(a), 6) for a in tra]})
        bw.write_json(gt / f'sub-{sub}' / f'ses-{ses}' / f'{prefix}_noise.json', {
            **gre['noise'], 'SNRAnatomical': p.snr_anat,
            'AnatomicalDefinition': 'FLAIR/T1w: mean noise-free white-matter signal / noise '
                                    'sigma; files scaled so that this mean is 1000.'})
        for row in gre['rows']:
            lesion = row['lesion']
            truth_rows.append({
                'lesion_id': lesion.lesion_id, 'session_id': f'ses-{ses}',
                'acq_time': _fmt_time(subject.acq_times[v]),
                'lesion_age_years': row['age'], 'rim': lesion.rim,
                'enhancement': lesion.enhancement, 'location': lesion.location,
                'chi_lesion_ppm': row['chi_lesion_ppm'],
                'chi_lesion_current_ppm': row['chi_lesion_current_ppm'],
                'chi_nawm_ppm': row['chi_nawm_ppm'],
                'chi_rel_ppb': 1000.0 * (row['chi_lesion_ppm'] - row['chi_nawm_ppm']),
                'chi_rel_model_ppb': row['target'],
                'volume_mm3': volumes.get(lesion.lesion_id, 0.0),
                'volume_model_mm3': lesion.model_volume_mm3(row['age']),
                'n_voxels_fine': row['n_fine'], 'rim_fraction': row['rim_fraction']})
        log(f'sub-{sub} ses-{ses}: {time.perf_counter() - t0:.1f} s')
    columns = list(bw.GROUNDTRUTH_JSON)
    bw.write_tsv(gt / f'sub-{sub}' / f'sub-{sub}_lesions.tsv', columns, truth_rows,
                 float_format='.8g')
    bw.write_json(gt / f'sub-{sub}' / f'sub-{sub}_lesions.json', bw.GROUNDTRUTH_JSON)


def fine_grid_for(p):
    """The fine simulation grid of a preset (covers any moved head of the cohort)."""
    gre = fw.axial_grid(p.gre_shape, p.gre_voxel_mm, p.gre_centre_mm)
    centre = np.array([0.0, -5.0, -5.0])
    half = np.array([75.0, 95.0, 85.0]) * _MAX_HEAD_SCALE + _FINE_MARGIN_MM
    return fw.FineGrid(gre, p.fine_voxel_mm, (centre - half, centre + half))


def generate_cohort(out_dir, *, preset='demo', seed=0, log=None, **overrides):
    """Generate the synthetic longitudinal MS cohort as a BIDS dataset.

    Parameters
    ----------
    out_dir : str or Path
        Root of the BIDS dataset to write (created if missing).
    preset : {'tiny', 'demo', 'paper'} or Preset
        Size of the cohort (see :data:`PRESETS`).
    seed : int
        Seed of every random draw: the same seed and options give byte-identical files.
    log : callable, optional
        Called with a progress message per visit.
    **overrides
        Fields of :class:`Preset` to change, e.g. ``snr=40``, ``phase_units='arbitrary'``,
        ``n_subjects=1``.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        Unknown preset or option, or inconsistent options (the message names them).
    """
    p = resolve_preset(preset, **overrides)
    log = log or (lambda message: None)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    subjects = design_cohort(p, int(seed))
    fine = fine_grid_for(p)
    bw.write_raw_dataset_files(root, preset_name=p.name, seed=seed)
    bw.write_tsv(root / 'participants.tsv',
                 ['participant_id', 'age', 'sex', 'edss', 'disease_duration',
                  'treatment_duration'],
                 [{'participant_id': f'sub-{s.label}', 'age': s.age, 'sex': s.sex,
                   'edss': s.edss, 'disease_duration': s.disease_duration,
                   'treatment_duration': s.treatment_duration} for s in subjects],
                 float_format='.1f')
    bw.write_json(root / 'participants.json', bw.PARTICIPANTS_JSON)
    bw.write_json(root / 'sessions.json', bw.SESSIONS_JSON)
    bw.write_derivative_description(
        root / 'derivatives' / 'lesions', name='Lesion annotations',
        description='New gadolinium-enhancing MS lesions and their label maps on FLAIR.')
    bw.write_derivative_description(
        root / 'derivatives' / 'groundtruth', name='Simulation ground truth',
        description='True susceptibility, R2*, tissue labels, lesion statistics and head '
                    'motion of the synthetic cohort.')
    bw.atomic_write_text(root / 'derivatives' / 'groundtruth' / '.bidsignore',
                         'simulation.json\n*_motion.json\n*_noise.json\n')
    bw.write_json(root / 'derivatives' / 'groundtruth' / 'simulation.json', {
        'Preset': dataclasses.asdict(p), 'Seed': int(seed),
        'EchoTimes': list(p.echo_times),
        'FineGrid': {'Shape': list(fine.grid.shape), 'VoxelSizeMm': p.fine_voxel_mm},
        'LesionModel': {
            'Trajectory': 'lesionqsm.synth.trajectory (Zhang et al. AJNR 2019, Table)',
            'SDPatientPpb': les.SD_PATIENT_PPB, 'SDLesionPpb': les.SD_LESION_PPB,
            'SDResidualPpb': les.SD_RESIDUAL_PPB, 'EDSSEffectPpbPerPoint': les.EDSS_EFFECT_PPB,
            'EDSSCentre': les.EDSS_CENTRE, 'SDLogVolume': les.SD_LOG_VOLUME,
            'RimContrastPpb': les.RIM_CONTRAST_PPB, 'RimWidthMm': les.RIM_WIDTH_MM},
        'Sequences': {'GRE': {'RepetitionTimeMs': fw.GRE_TR_MS, 'FlipAngle': fw.GRE_FLIP_DEG},
                      'FLAIR': {'RepetitionTimeMs': fw.FLAIR_TR_MS, 'EchoTimeMs': fw.FLAIR_TE_MS},
                      'T1w': {'RepetitionTimeMs': fw.T1W_TR_MS, 'FlipAngle': fw.T1W_FLIP_DEG}},
    })
    for subject in subjects:
        _write_subject(root, p, subject, fine, int(seed), log)
    return root
