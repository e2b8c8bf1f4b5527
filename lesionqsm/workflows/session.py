"""One visit's QSM: multi-echo GRE echoes to a referenced χ map (ppm)."""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.masks import BETBrainMask, UserBrainMask
from ..interfaces.qsm import (
    BrainMask,
    CSFMask,
    DipoleInversion,
    MultiEchoFit,
    PrepareEchoes,
    R2Star,
    RemoveBackground,
    Unwrap,
)
from ..options import options_as_dict
from ..qsm.pipeline import QSMOptions

SESSION_OUTPUTS = [
    'magnitude', 'signal', 'echo_times', 'field', 'noise_std', 'unwrapped_field',
    'brain_mask', 'r2star', 'csf_mask', 'reference', 'reference_mask', 'local_field',
    'local_mask', 'reliable_mask', 'chi', 'chi_metadata',
]


def init_session_qsm_wf(*, echo_times, field_strength, phase_units='rad', mem_gb=0.5,
                        omp_nthreads=1, qsm_options=None, brain_mask_file=None,
                        brain_mask_method='auto', name='session_qsm_wf'):
    """Reconstruct one visit's χ map (ppm) from its multi-echo GRE.

    The nodes are the steps of :func:`lesionqsm.qsm.reconstruct_session`, in the same order
    and with the same options: echoes read and scaled, brain mask, complex multi-echo fit,
    unwrapping, R2*, CSF reference search, background removal and the dipole
    inversion (MEDI+0 referenced to the ventricular CSF; plain MEDI referenced to the whole
    brain when no CSF is found).

    Workflow Graph
        .. workflow::

            from lesionqsm.workflows.session import init_session_qsm_wf
            wf = init_session_qsm_wf(echo_times=[0.005, 0.010], field_strength=3.0)

    Parameters
    ----------
    echo_times : list of float
        Echo times in s, in the order of ``mag_files``.
    field_strength : float
        B0 in T.
    phase_units : {'rad', 'arbitrary'}
        Units of the phase images (sidecar ``Units``).
    mem_gb : float
        Size of one 3-D float32 volume times a safety factor, GB; nodes scale it.
    omp_nthreads : int
        Threads for the FFT-heavy nodes.
    qsm_options : QSMOptions or dict, optional
        The chain's options (a flat dict is checked by :meth:`QSMOptions.from_mapping`).
    brain_mask_file : str, optional
        A brain mask on any grid (``--derivatives``), used instead of the automatic one.
    brain_mask_method : {'auto', 'bet'}
        Without ``brain_mask_file``: the built-in mask from the magnitude, or FSL BET.

    Inputs
    ------
    mag_files, phase_files : list of str
        One 3-D NIfTI per echo.

    Outputs
    -------
    chi : χ in ppm, referenced to the mean over ``reference_mask``
    magnitude : root-sum-of-squares magnitude (the registration target)
    field, noise_std, unwrapped_field, local_field : rad per echo spacing
    r2star : 1/s;  brain_mask, csf_mask (empty when none was found), local_mask,
    reliable_mask (χ neither eroded nor extrapolated), reference_mask : binary;
    reference : the reference region's name
    chi_metadata : dict for the Chimap sidecar
    """
    if not isinstance(qsm_options, QSMOptions):
        qsm_options = QSMOptions.from_mapping(qsm_options)
    n_echoes = len(echo_times)

    def step(interface, node_name, options, **kwargs):
        return pe.Node(interface(options=options_as_dict(options)), name=node_name, **kwargs)

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=['mag_files', 'phase_files']),
                        name='inputnode')
    outputnode = pe.Node(niu.IdentityInterface(fields=SESSION_OUTPUTS), name='outputnode')

    prepare = step(PrepareEchoes, 'prepare_echoes', qsm_options.echoes,
                   mem_gb=6 * mem_gb * n_echoes)
    prepare.inputs.echo_times = list(echo_times)
    prepare.inputs.phase_units = phase_units
    if brain_mask_file is not None:
        brain_mask = step(UserBrainMask, 'brain_mask', qsm_options.mask, mem_gb=2 * mem_gb)
        brain_mask.inputs.in_mask = str(brain_mask_file)
    else:
        interface = BETBrainMask if brain_mask_method == 'bet' else BrainMask
        brain_mask = step(interface, 'brain_mask', qsm_options.mask, mem_gb=2 * mem_gb)
    fit_echoes = pe.Node(MultiEchoFit(), name='fit_echoes', mem_gb=4 * mem_gb * n_echoes)
    unwrap = step(Unwrap, 'unwrap', qsm_options.unwrap, mem_gb=4 * mem_gb)
    r2star = step(R2Star, 'r2star', qsm_options.r2star, mem_gb=3 * mem_gb * n_echoes)
    csf_mask = step(CSFMask, 'csf_mask', qsm_options.csf, mem_gb=2 * mem_gb)
    remove_background = step(RemoveBackground, 'remove_background', qsm_options.background,
                             mem_gb=16 * mem_gb, n_procs=omp_nthreads)
    invert_dipole = step(DipoleInversion, 'invert_dipole', qsm_options.inversion,
                         mem_gb=24 * mem_gb, n_procs=omp_nthreads)
    invert_dipole.inputs.field_strength = field_strength
    invert_dipole.inputs.chain_options = qsm_options.as_flat_dict()
    # the earlier steps' decisions, in chain order, for the sidecar
    decisions = pe.Node(niu.Merge(6), name='gather_decisions', run_without_submitting=True)

    workflow.connect([
        (inputnode, prepare, [('mag_files', 'mag_files'), ('phase_files', 'phase_files')]),
        (prepare, brain_mask, [('out_magnitude', 'in_magnitude')]),
        (prepare, fit_echoes, [('out_signal', 'in_signal'), ('echo_times', 'echo_times')]),
        (brain_mask, fit_echoes, [('out_mask', 'in_mask')]),
        (fit_echoes, unwrap, [('out_field', 'in_field')]),
        (prepare, unwrap, [('out_magnitude', 'in_magnitude')]),
        (brain_mask, unwrap, [('out_mask', 'in_mask')]),
        (prepare, r2star, [('out_signal', 'in_signal'), ('echo_times', 'echo_times')]),
        (brain_mask, r2star, [('out_mask', 'in_mask')]),
        (r2star, csf_mask, [('out_r2star', 'in_r2star')]),
        (brain_mask, csf_mask, [('out_mask', 'in_mask')]),
        (unwrap, remove_background, [('out_field', 'in_field')]),
        (brain_mask, remove_background, [('out_mask', 'in_mask')]),
        (fit_echoes, remove_background, [('out_noise_std', 'in_noise_std')]),
        (remove_background, invert_dipole, [('out_field', 'in_field'), ('out_mask', 'in_mask'),
                                            ('out_reliable_mask', 'in_reliable_mask'),
                                            ('out_smv_radius', 'in_smv_radius'),
                                            ('inversion_smv', 'inversion_smv')]),
        (prepare, invert_dipole, [('out_magnitude', 'in_magnitude')]),
        (fit_echoes, invert_dipole, [('out_noise_std', 'in_noise_std'),
                                     ('delta_te', 'delta_te')]),
        (csf_mask, invert_dipole, [('out_mask', 'in_csf_mask'), ('reference', 'reference')]),
        (prepare, decisions, [('decisions', 'in1')]),
        (brain_mask, decisions, [('decisions', 'in2')]),
        (unwrap, decisions, [('decisions', 'in3')]),
        (r2star, decisions, [('decisions', 'in4')]),
        (csf_mask, decisions, [('decisions', 'in5')]),
        (remove_background, decisions, [('decisions', 'in6')]),
        (decisions, invert_dipole, [('out', 'prior_decisions')]),
        (prepare, outputnode, [('out_magnitude', 'magnitude'), ('out_signal', 'signal'),
                               ('echo_times', 'echo_times')]),
        (fit_echoes, outputnode, [('out_field', 'field'), ('out_noise_std', 'noise_std')]),
        (unwrap, outputnode, [('out_field', 'unwrapped_field')]),
        (brain_mask, outputnode, [('out_mask', 'brain_mask')]),
        (r2star, outputnode, [('out_r2star', 'r2star')]),
        (csf_mask, outputnode, [('out_mask', 'csf_mask'), ('reference', 'reference')]),
        (remove_background, outputnode, [('out_field', 'local_field'),
                                         ('out_mask', 'local_mask')]),
        (invert_dipole, outputnode, [('out_chi', 'chi'), ('metadata', 'chi_metadata'),
                                     ('out_reference_mask', 'reference_mask'),
                                     ('out_reliable_mask', 'reliable_mask')]),
    ])  # fmt:skip
    return workflow
