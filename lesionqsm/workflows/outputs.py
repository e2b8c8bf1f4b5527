"""Derivatives writers: every file lesionqsm writes goes through ``DerivativesDataSink``.

Sink nodes always run (``overwrite=True``): they are cheap, and only a sink that runs can
notice that its file was deleted or altered since the last run. A sink whose file already
holds the right bytes leaves it untouched (:func:`lesionqsm.bids.images.atomic_target`).
:func:`expected_outputs` lists what a complete subject has, for the end-of-run check.
"""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.bids import DerivativesDataSink
from ..interfaces.lesions import LesionTableSink


def init_ds_session_wf(*, output_dir, source_file, baseline_reference,
                       registration_engine=None, name='ds_session_wf'):
    """Write one visit's QSM derivatives.

    Parameters
    ----------
    output_dir : str
        BIDS derivatives folder.
    source_file : str
        A raw file of the visit (first-echo magnitude) whose entities name the outputs.
    baseline_reference : str
        BIDS URI of the baseline visit's χ map: the ``SpatialReference`` of ``space-baseline``.
    registration_engine : {'flirt', 'builtin'}, optional
        The engine that made the transform, recorded in its sidecar.

    Inputs
    ------
    chi : χ (ppm) on the visit's GRE grid;  chi_metadata : its sidecar entries
    chi_baseline : χ (ppm) resampled onto the baseline visit's GRE grid
    r2star : R2* (1/s);  brain_mask, csf_mask, reliable_mask : binary masks
    xfm_to_baseline : FSL matrix from this visit's GRE to the baseline GRE
    """
    workflow = pe.Workflow(name=name)
    fields = ['chi', 'chi_metadata', 'chi_baseline', 'r2star', 'brain_mask', 'csf_mask',
              'reliable_mask', 'xfm_to_baseline']
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name='inputnode')

    def sink(node_name, **kwargs):
        # overwrite=True: a sink always reruns (cheaply, from its cached inputs), so that a
        # deleted or altered derivative is restored by running the same command again
        return pe.Node(DerivativesDataSink(base_directory=str(output_dir),
                                           source_file=str(source_file), **kwargs),
                       name=node_name, run_without_submitting=True, overwrite=True)

    ds_chi = sink('ds_chi', suffix='Chimap')
    ds_chi_baseline = sink('ds_chi_baseline', suffix='Chimap', space='baseline',
                           spatial_reference=baseline_reference)
    ds_r2star = sink('ds_r2star', suffix='R2starmap')
    ds_brain_mask = sink('ds_brain_mask', suffix='mask', desc='brain')
    ds_csf_mask = sink('ds_csf_mask', suffix='mask', desc='csf')
    ds_reliable_mask = sink('ds_reliable_mask', suffix='mask', desc='reliable')
    ds_xfm = sink('ds_xfm', suffix='xfm', extension='.mat', from_='GRE', to='baseline',
                  mode='image')
    if registration_engine is not None:
        ds_xfm.inputs.meta_dict = {'RegistrationEngine': registration_engine}
    workflow.connect([
        (inputnode, ds_chi, [('chi', 'in_file'), ('chi_metadata', 'meta_dict')]),
        (inputnode, ds_chi_baseline, [('chi_baseline', 'in_file'),
                                      ('chi_metadata', 'meta_dict')]),
        (inputnode, ds_r2star, [('r2star', 'in_file')]),
        (inputnode, ds_brain_mask, [('brain_mask', 'in_file')]),
        (inputnode, ds_csf_mask, [('csf_mask', 'in_file')]),
        (inputnode, ds_reliable_mask, [('reliable_mask', 'in_file')]),
        (inputnode, ds_xfm, [('xfm_to_baseline', 'in_file')]),
    ])  # fmt:skip
    return workflow


def init_ds_lesion_table_wf(*, output_dir, subject, name='ds_lesion_table_wf'):
    """Write the subject's lesion × visit table and its data dictionary."""
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=['table', 'dictionary']), name='inputnode')
    ds_table = pe.Node(LesionTableSink(output_dir=str(output_dir), subject=subject),
                       name='ds_table', run_without_submitting=True, overwrite=True)
    workflow.connect(inputnode, 'table', ds_table, 'in_table')
    workflow.connect(inputnode, 'dictionary', ds_table, 'in_dictionary')
    return workflow



def expected_outputs(output_dir, subject_data):
    """Every derivative file a complete run writes for one subject.

    Parameters
    ----------
    output_dir : str or Path
        BIDS derivatives folder.
    subject_data : lesionqsm.bids.layout.SubjectData
        The subject as discovered.

    Returns
    -------
    list of pathlib.Path
        Per visit with QSM input: the maps, masks and transform of :func:`init_ds_session_wf`
        with their JSON sidecars; the lesion table and its dictionary when the subject has
        followable lesions and dated visits (the conditions of ``init_subject_wf``).
    """
    from ..bids_templates import output_path

    subject = subject_data.subject
    names = ('chimap', 'chimap_baseline', 'r2starmap', 'brain_mask', 'csf_mask',
             'reliable_mask', 'xfm_gre_to_baseline')
    paths = []
    for session in subject_data.sessions:
        if not session.has_qsm_input:
            continue
        for name in names:
            path = output_path(output_dir, name, subject=subject, session=session.session_id)
            paths += [path, output_path(output_dir, name, subject=subject,
                                        session=session.session_id, extension='.json')]
    lesions = subject_data.lesions
    if (not subject_data.lesion_errors and subject_data.lesions_tsv and lesions is not None
            and len(lesions) and all(s.acq_time is not None for s in subject_data.sessions)):
        table = output_path(output_dir, 'lesion_table', subject=subject)
        paths += [table, table.with_suffix('.json')]
    return paths
