"""One subject's longitudinal processing: QSM per visit, registration to baseline, lesion table."""

import numpy as np
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..bids_templates import spatial_reference
from ..interfaces.lesions import LesionFractions, LesionStatistics
from ..interfaces.qsm import estimate_mem_gb
from ..interfaces.registration import (
    ApplyTransform,
    ConcatenateTransforms,
    Coregister,
    IdentityTransform,
)
from ..lesions import LesionOptions
from ..options import options_as_dict, options_from_mapping
from ..qsm import QSMOptions
from ..qsm.medi import FFT_THREADS_MIN_SIZE
from ..registration import resolve_engine
from .outputs import init_ds_lesion_table_wf, init_ds_session_wf
from .session import init_session_qsm_wf


def _label(session):
    return f'ses_{session.session_id}'


def init_subject_wf(subject_data, *, output_dir, lesions_file=None, registration='auto',
                    qsm_options=None, lesion_options=None, omp_nthreads=1, brain_masks=None,
                    brain_mask_method='auto', name=None):
    """Process every visit of one subject and measure each annotated lesion at each visit.

    The baseline is the first visit (by ``acq_time``) with multi-echo GRE phase.  Each later
    visit's GRE magnitude is registered to the baseline's (6 dof, correlation ratio) and each
    visit's FLAIR to its own GRE magnitude; lesion label maps are carried from their FLAIR to
    the baseline GRE grid (nearest neighbour) and every χ map is resampled there (trilinear).

    Workflow Graph
        .. workflow::
            :graph2use: orig

            # needs a dataset: see tests/workflows/test_subject.py

    Parameters
    ----------
    subject_data : lesionqsm.bids.layout.SubjectData
        Discovered inputs, sessions ordered by acq_time.
    output_dir : str
        BIDS derivatives folder.
    lesions_file : str, optional
        The subject's checked ``lesions.tsv`` (``SubjectData.lesions_tsv``); without it the
        run is QSM-only.
    registration : {'auto', 'flirt', 'builtin'}
        Registration engine, resolved here once (FLIRT when on PATH for 'auto'): every
        registration node gets the same engine as an input.
    qsm_options : dict, optional
        The QSM chain's options (:class:`lesionqsm.qsm.QSMOptions`, or a flat dict).
    lesion_options : LesionOptions or dict, optional
        How lesions are measured (:class:`lesionqsm.lesions.LesionOptions`).
    omp_nthreads : int
        Threads for FFT-heavy nodes.
    brain_masks : dict, optional
        session label -> a brain mask file (``--derivatives``) used instead of the automatic
        mask of that visit.
    brain_mask_method : {'auto', 'bet'}
        How the other visits' brain masks are made (``--brain-mask``).
    name : str, optional
        Workflow name; ``sub_<label>_wf`` by default.

    Returns
    -------
    workflow : nipype Workflow
    """
    subject = subject_data.subject
    engine = resolve_engine(registration)
    if not isinstance(qsm_options, QSMOptions):
        qsm_options = QSMOptions.from_mapping(qsm_options)
    if not isinstance(lesion_options, LesionOptions):
        lesion_options = options_from_mapping(LesionOptions, lesion_options, section='lesions')
    workflow = pe.Workflow(name=name or f'sub_{subject}_wf')
    qsm_sessions = [s for s in subject_data.sessions if s.megre is not None and s.megre.has_phase]
    if not qsm_sessions:
        raise ValueError(f'sub-{subject}: no visit has multi-echo GRE with phase data')
    baseline = qsm_sessions[0]

    session_nodes = {}
    for session in qsm_sessions:
        megre = session.megre
        shape = _image_shape(megre.mag_files[0])
        mem_gb = estimate_mem_gb(shape, copies=1)
        # MEDI's FFTs only thread on large grids: a small visit's nodes claim one core
        threads = omp_nthreads if np.prod(shape) >= FFT_THREADS_MIN_SIZE else 1
        qsm_wf = init_session_qsm_wf(
            echo_times=list(megre.echo_times), field_strength=megre.field_strength,
            phase_units=megre.phase_units, mem_gb=mem_gb, omp_nthreads=threads,
            qsm_options=qsm_options, brain_mask_method=brain_mask_method,
            brain_mask_file=(brain_masks or {}).get(session.session_id),
            name=f'{_label(session)}_qsm_wf')
        qsm_wf.inputs.inputnode.mag_files = list(megre.mag_files)
        qsm_wf.inputs.inputnode.phase_files = list(megre.phase_files)
        ds_wf = init_ds_session_wf(output_dir=output_dir, source_file=megre.mag_files[0],
                                   baseline_reference=spatial_reference(subject,
                                                                        baseline.session_id),
                                   registration_engine=engine,
                                   name=f'{_label(session)}_ds_wf')
        workflow.connect([
            (qsm_wf, ds_wf, [('outputnode.chi', 'inputnode.chi'),
                             ('outputnode.chi_metadata', 'inputnode.chi_metadata'),
                             ('outputnode.r2star', 'inputnode.r2star'),
                             ('outputnode.brain_mask', 'inputnode.brain_mask'),
                             ('outputnode.csf_mask', 'inputnode.csf_mask'),
                             ('outputnode.reliable_mask', 'inputnode.reliable_mask')]),
        ])  # fmt:skip
        session_nodes[session.session_id] = (qsm_wf, ds_wf, mem_gb)

    base_qsm_wf = session_nodes[baseline.session_id][0]
    to_baseline = {}
    for session in qsm_sessions:
        qsm_wf, ds_wf, mem_gb = session_nodes[session.session_id]
        if session is baseline:
            xfm = pe.Node(IdentityTransform(), name=f'{_label(session)}_identity_xfm')
            workflow.connect(qsm_wf, 'outputnode.magnitude', xfm, 'reference')
        else:
            xfm = pe.Node(Coregister(dof=6, cost='corratio', engine=engine),
                          name=f'{_label(session)}_gre_to_baseline', mem_gb=6 * mem_gb)
            workflow.connect([
                (qsm_wf, xfm, [('outputnode.magnitude', 'in_file')]),
                (base_qsm_wf, xfm, [('outputnode.magnitude', 'reference')]),
            ])  # fmt:skip
        to_baseline[session.session_id] = xfm
        chi_to_base = pe.Node(ApplyTransform(interp='trilinear', engine=engine),
                              name=f'{_label(session)}_chi_to_baseline', mem_gb=4 * mem_gb)
        workflow.connect([
            (qsm_wf, chi_to_base, [('outputnode.chi', 'in_file')]),
            (base_qsm_wf, chi_to_base, [('outputnode.magnitude', 'reference')]),
            (xfm, chi_to_base, [('out_matrix_file', 'in_matrix_file')]),
            (xfm, ds_wf, [('out_matrix_file', 'inputnode.xfm_to_baseline')]),
            (chi_to_base, ds_wf, [('out_file', 'inputnode.chi_baseline')]),
        ])  # fmt:skip
        session_nodes[session.session_id] += (chi_to_base,)

    if (lesions_file is None or subject_data.lesions is None or not len(subject_data.lesions)
            or any(s.acq_time is None for s in subject_data.sessions)):
        return workflow

    sessions = list(subject_data.sessions)
    n_sessions = len(sessions)
    merge_chi = pe.Node(niu.Merge(n_sessions), name='merge_chi', run_without_submitting=True)
    merge_fractions = pe.Node(niu.Merge(n_sessions), name='merge_fractions',
                              run_without_submitting=True)
    base_mem = session_nodes[baseline.session_id][2]
    for index, session in enumerate(sessions, start=1):
        port = f'in{index}'
        if session.session_id in session_nodes:
            workflow.connect(session_nodes[session.session_id][3], 'out_file', merge_chi, port)
        else:
            setattr(merge_chi.inputs, port, '')
        if session.lesion_dseg is None or session.flair is None:
            setattr(merge_fractions.inputs, port, '')
            continue
        flair_xfm = pe.Node(Coregister(dof=6, cost='mutualinfo', engine=engine),
                            name=f'{_label(session)}_flair_to_gre', mem_gb=6 * base_mem)
        flair_xfm.inputs.in_file = session.flair
        roi_to_base = pe.Node(LesionFractions(in_dseg=str(session.lesion_dseg)),
                              name=f'{_label(session)}_lesions_to_baseline',
                              mem_gb=2 * base_mem + _image_gb(session.flair))
        workflow.connect(base_qsm_wf, 'outputnode.magnitude', roi_to_base, 'reference')
        if session.session_id in session_nodes:
            # FLAIR -> this visit's GRE -> baseline GRE
            concat = pe.Node(ConcatenateTransforms(), name=f'{_label(session)}_flair_to_baseline')
            workflow.connect([
                (session_nodes[session.session_id][0], flair_xfm,
                 [('outputnode.magnitude', 'reference')]),
                (flair_xfm, concat, [('out_matrix_file', 'in_a_to_b')]),
                (to_baseline[session.session_id], concat, [('out_matrix_file', 'in_b_to_c')]),
                (concat, roi_to_base, [('out_matrix_file', 'in_matrix_file')]),
            ])  # fmt:skip
        else:
            # a visit without GRE: its FLAIR goes straight to the baseline GRE
            workflow.connect([
                (base_qsm_wf, flair_xfm, [('outputnode.magnitude', 'reference')]),
                (flair_xfm, roi_to_base, [('out_matrix_file', 'in_matrix_file')]),
            ])  # fmt:skip
        workflow.connect(roi_to_base, 'out_fractions', merge_fractions, port)

    lesion_stats = pe.Node(
        LesionStatistics(
            participant_id=f'sub-{subject}',
            session_ids=[f'ses-{s.session_id}' for s in sessions],
            acq_times=[s.acq_time.isoformat() for s in sessions],
            flair_dseg_files=[str(s.lesion_dseg) if s.lesion_dseg else '' for s in sessions],
            lesions=_lesion_rows(subject_data.lesions), lesions_tsv=str(lesions_file),
            options=options_as_dict(lesion_options)),
        name='lesion_statistics', mem_gb=(n_sessions + 4) * base_mem)
    ds_table_wf = init_ds_lesion_table_wf(output_dir=output_dir, subject=subject)
    workflow.connect([
        (merge_chi, lesion_stats, [('out', 'chi_files')]),
        (merge_fractions, lesion_stats, [('out', 'fraction_files')]),
        (base_qsm_wf, lesion_stats, [('outputnode.brain_mask', 'brain_mask'),
                                     ('outputnode.csf_mask', 'csf_mask'),
                                     ('outputnode.reliable_mask', 'reliable_mask')]),
        (lesion_stats, ds_table_wf, [('out_table', 'inputnode.table'),
                                     ('out_dictionary', 'inputnode.dictionary')]),
    ])  # fmt:skip
    return workflow


def _image_gb(path):
    """Memory (GB) of one float32 copy of an image."""
    return 4 * float(np.prod(_image_shape(path))) / 1024**3


def _image_shape(path):
    import nibabel as nb

    return nb.load(str(path)).shape[:3]


def _lesion_rows(lesions):
    """Annotation rows as plain dicts (a hashable nipype input)."""
    columns = ['lesion_id', 'detected_session', 'rim', 'enhancement']
    return [{c: str(row[c]) if c in row else 'n/a' for c in columns}
            for _, row in lesions.iterrows()]
