"""One visit's QSM: multi-echo GRE echoes to a CSF-referenced χ map (ppm)."""

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.qsm import (
    BrainMask,
    CSFMask,
    DipoleInversion,
    GatherEchoes,
    MultiEchoFit,
    R2Star,
    RemoveBackground,
    Unwrap,
)
from .defaults import QSM_DEFAULTS

SESSION_OUTPUTS = [
    'magnitude', 'magnitude_4d', 'echo_times', 'field', 'noise_std', 'unwrapped_field',
    'brain_mask', 'r2star', 'csf_mask', 'reference', 'local_field', 'chi', 'chi_metadata',
]


def init_session_qsm_wf(*, echo_times, field_strength, phase_units='rad', mem_gb=0.5,
                        omp_nthreads=1, qsm_options=None, name='session_qsm_wf'):
    """Reconstruct one visit's χ map (ppm, CSF = 0) from its multi-echo GRE.

    Echoes are stacked and checked, the brain is masked from the magnitude, the field and its
    noise are fitted from the complex echoes, unwrapped, the background field is removed (PDF
    or LBV), and MEDI+0 inverts the local field referenced to the ventricular CSF.

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
    qsm_options : dict, optional
        Overrides of :data:`QSM_DEFAULTS`.

    Inputs
    ------
    mag_files, phase_files : list of str
        One 3-D NIfTI per echo.
    brain_mask : str, optional
        User mask on the GRE grid (an empty string builds one from the magnitude).

    Outputs
    -------
    chi : χ in ppm, referenced to the mean over ``csf_mask`` (whole brain if none was found)
    magnitude : root-sum-of-squares magnitude (the registration target)
    field, noise_std, unwrapped_field, local_field : rad per echo spacing
    r2star : 1/s;  brain_mask, csf_mask : binary;  reference : the reference region's name
    chi_metadata : dict for the Chimap sidecar
    """
    options = {**QSM_DEFAULTS, **(qsm_options or {})}
    unknown = set(options) - set(QSM_DEFAULTS)
    if unknown:
        raise ValueError(f'unknown QSM options: {", ".join(sorted(unknown))}')
    n_echoes = len(echo_times)

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=['mag_files', 'phase_files']),
                        name='inputnode')
    outputnode = pe.Node(niu.IdentityInterface(fields=SESSION_OUTPUTS), name='outputnode')

    gather = pe.Node(GatherEchoes(echo_times=list(echo_times), phase_units=phase_units,
                                  phase_sign=options['phase_sign']),
                     name='gather_echoes', mem_gb=3 * mem_gb * n_echoes)
    brain_mask = pe.Node(BrainMask(), name='brain_mask', mem_gb=2 * mem_gb)
    fit_echoes = pe.Node(MultiEchoFit(), name='fit_echoes', mem_gb=4 * mem_gb * n_echoes)
    unwrap = pe.Node(Unwrap(method=options['unwrapping']), name='unwrap', mem_gb=4 * mem_gb)
    r2star = pe.Node(R2Star(method=options['r2star_method']), name='r2star',
                     mem_gb=2 * mem_gb * n_echoes)
    csf_mask = pe.Node(CSFMask(r2star_threshold=options['csf_r2star_threshold'],
                               sphere_radius_mm=options['csf_sphere_radius_mm'],
                               erosion_mm=options['csf_erosion_mm']),
                       name='csf_mask', mem_gb=2 * mem_gb)
    remove_background = pe.Node(RemoveBackground(method=options['background']),
                                name='remove_background', mem_gb=16 * mem_gb,
                                n_procs=omp_nthreads)
    invert_dipole = pe.Node(
        DipoleInversion(field_strength=field_strength, algorithm=options['inversion'],
                        lambda_=options['lambda_'], lambda_csf=options['lambda_csf'],
                        max_gn_iter=options['max_gn_iter'], gn_tol=options['gn_tol'],
                        cg_max_iter=options['cg_max_iter'], cg_tol=options['cg_tol'],
                        edge_fraction=options['edge_fraction'],
                        smv_radius_mm=options['smv_radius_mm'], merit=options['merit']),
        name='invert_dipole', mem_gb=24 * mem_gb, n_procs=omp_nthreads)

    workflow.connect([
        (inputnode, gather, [('mag_files', 'mag_files'), ('phase_files', 'phase_files')]),
        (gather, brain_mask, [('out_mean_magnitude', 'in_magnitude')]),
        (gather, fit_echoes, [('out_magnitude', 'in_magnitude'), ('out_phase', 'in_phase'),
                              ('echo_times', 'echo_times')]),
        (brain_mask, fit_echoes, [('out_mask', 'in_mask')]),
        (fit_echoes, unwrap, [('out_field', 'in_field')]),
        (gather, unwrap, [('out_mean_magnitude', 'in_magnitude')]),
        (brain_mask, unwrap, [('out_mask', 'in_mask')]),
        (gather, r2star, [('out_magnitude', 'in_magnitude'), ('echo_times', 'echo_times')]),
        (brain_mask, r2star, [('out_mask', 'in_mask')]),
        (r2star, csf_mask, [('out_r2star', 'in_r2star')]),
        (brain_mask, csf_mask, [('out_mask', 'in_mask')]),
        (unwrap, remove_background, [('out_field', 'in_field')]),
        (brain_mask, remove_background, [('out_mask', 'in_mask')]),
        (fit_echoes, remove_background, [('out_noise_std', 'in_noise_std')]),
        (remove_background, invert_dipole, [('out_field', 'in_field')]),
        (brain_mask, invert_dipole, [('out_mask', 'in_mask')]),
        (gather, invert_dipole, [('out_mean_magnitude', 'in_magnitude')]),
        (fit_echoes, invert_dipole, [('out_noise_std', 'in_noise_std'),
                                     ('delta_te', 'delta_te')]),
        (csf_mask, invert_dipole, [('out_mask', 'in_csf_mask'), ('reference', 'reference')]),
        (gather, outputnode, [('out_mean_magnitude', 'magnitude'),
                              ('out_magnitude', 'magnitude_4d'), ('echo_times', 'echo_times')]),
        (fit_echoes, outputnode, [('out_field', 'field'), ('out_noise_std', 'noise_std')]),
        (unwrap, outputnode, [('out_field', 'unwrapped_field')]),
        (brain_mask, outputnode, [('out_mask', 'brain_mask')]),
        (r2star, outputnode, [('out_r2star', 'r2star')]),
        (csf_mask, outputnode, [('out_mask', 'csf_mask'), ('reference', 'reference')]),
        (remove_background, outputnode, [('out_field', 'local_field')]),
        (invert_dipole, outputnode, [('out_chi', 'chi'), ('metadata', 'chi_metadata')]),
    ])  # fmt:skip
    return workflow
