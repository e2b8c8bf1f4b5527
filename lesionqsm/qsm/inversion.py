"""The dipole-inversion step: local field → χ (ppm), and the one place the zero reference is
decided.

MEDI+0's CSF term (λ_CSF) pulls the CSF towards a uniform value; it is only meaningful on
ventricular CSF.  When no CSF was found (small or cropped field of view, no ventricles), the
reference is the whole brain and MEDI+0 runs without its CSF term (plain MEDI): passing the
whole brain as "CSF" would pull every voxel towards the brain mean and halve every contrast.
"""

from dataclasses import dataclass, field

import numpy as np

from ..options import option
from . import medi, tkd

ALGORITHM_NAMES = {'medi+0': 'MEDI+0', 'medi': 'MEDI', 'tkd': 'TKD'}

#: CG relative tolerance of each Gauss-Newton step of MEDI (see ``InversionOptions.cg_tol``).
CG_TOL = 0.03


@dataclass(frozen=True)
class InversionOptions:
    """Dipole inversion (defaults: the paper's MEDI+0, the MEDI toolbox's settings except
    ``cg_tol``)."""

    inversion: str = option('medi+0', doc='dipole inversion', choices=tuple(ALGORITHM_NAMES))
    lambda_: float = option(1000.0, doc='data-fidelity weight λ (field in rad per ΔTE)',
                            low=0.0, low_open=True)
    lambda_csf: float = option(100.0, doc='CSF uniformity weight λ_CSF (MEDI+0)', low=0.0)
    max_gn_iter: int = option(10, doc='Gauss-Newton iterations, at most', low=1)
    gn_tol: float = option(0.1, doc='stop when ||dχ||/||χ|| is below this', low=0.0,
                           low_open=True)
    cg_max_iter: int = option(100, doc='CG iterations per Gauss-Newton step, at most', low=1)
    # The toolbox's 0.01 is what its unpreconditioned CG asks for, not what it reaches: on a
    # 256 x 256 x 48 visit it stops at its 100-step cap with relative residuals of 0.02-0.17.
    # With the k-space preconditioner, 0.03 lands as close to the toolbox's answer as 0.01
    # does (rms 4.8 against 4.9 ppb), in 26 % fewer CG steps (benchmarks/bench_cg_tolerance.py).
    cg_tol: float = option(CG_TOL, doc='CG relative tolerance (the MEDI toolbox asks for '
                                       '0.01)', low=0.0, high=1.0, low_open=True,
                           high_open=True)
    edge_fraction: float = option(0.9, doc='fraction of mask voxels counted as edges',
                                  low=0.0, high=1.0, low_open=True)
    smv_radius_mm: float = option(0.0, doc='SMV radius inside MEDI, mm (0: off), only with '
                                           'background pdf or lbv (the background methods '
                                           'that end in MEDI set their own)', low=0.0)
    merit: bool = option(False, doc='model-error (MERIT) reweighting inside MEDI (on with '
                                    'background medi_toolbox)')
    tkd_threshold: float = option(0.19, doc='TKD k-space threshold', low=0.0, high=1.0,
                                  low_open=True, high_open=True)


@dataclass
class Susceptibility:
    """The result of the dipole inversion.

    Attributes
    ----------
    chi_ppm : float32 ndarray, shape (X, Y, Z)
        χ in ppm, mean 0 over ``reference_mask``, 0 outside ``mask``.
    mask : bool ndarray
        Where χ is defined (the local-field mask, eroded further by MEDI's SMV when on).
    reference : str
        ``'ventricular_csf'`` or ``'whole_brain'``.
    reference_mask : bool ndarray
        The zero-reference region actually used.
    decisions : dict
        Algorithm, parameters, reference and solver report, for the sidecar.
    warnings : list of str
    """

    chi_ppm: np.ndarray
    mask: np.ndarray
    reference: str
    reference_mask: np.ndarray
    decisions: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def choose_reference(csf_mask, reference, local_mask):
    """The zero-reference region inside the local-field mask.

    Parameters
    ----------
    csf_mask : bool ndarray
        The CSF step's region (the whole brain when it found no CSF).
    reference : {'ventricular_csf', 'whole_brain'}
        What the CSF step found.
    local_mask : bool ndarray
        Where the local field is defined.

    Returns
    -------
    reference : str
    reference_mask : bool ndarray
    warnings : list of str
    """
    warnings = []
    if reference == 'ventricular_csf':
        inside = np.asarray(csf_mask, dtype=bool) & local_mask
        if inside.any():
            return 'ventricular_csf', inside, warnings
        warnings.append('no CSF voxel is left inside the local-field mask: the whole brain is '
                        'the zero reference')
    return 'whole_brain', np.asarray(local_mask, dtype=bool).copy(), warnings


def invert_dipole(local_field, local_mask, magnitude, voxel_size, *, b0_dir, noise_std,
                  csf_mask, reference, field_strength, delta_te, background_smv=None,
                  options=InversionOptions()):
    """The dipole-inversion step.

    Parameters
    ----------
    local_field : float ndarray, shape (X, Y, Z)
        Local field, radians per ``delta_te``.
    local_mask : bool ndarray, shape (X, Y, Z)
        Where the local field is defined.
    magnitude : float ndarray, shape (X, Y, Z)
        Magnitude (MEDI's edge mask).
    voxel_size : tuple of 3 float
        mm.
    b0_dir : tuple of 3 float
        Unit B0 vector in array axes.
    noise_std : float ndarray, shape (X, Y, Z)
        Field noise, radians per ΔTE (MEDI's data weights).
    csf_mask : bool ndarray, shape (X, Y, Z)
        The CSF step's region.
    reference : {'ventricular_csf', 'whole_brain'}
        What the CSF step found.
    field_strength : float
        B0 in T.
    delta_te : float
        Echo spacing in s (the unit of the field).
    background_smv : dict, optional
        The SMV the background step prescribes (:attr:`lesionqsm.qsm.local_field.LocalField.
        inversion_smv`): ``smv_radius_mm`` (a radius in mm or a per-voxel radius map),
        ``merit`` and ``outside_scale`` (MEDI also fits sources outside the mask, scaled by
        it).  It replaces ``options.smv_radius_mm``; ``merit`` is on if either asks.
    options : InversionOptions

    Returns
    -------
    Susceptibility

    Raises
    ------
    ValueError
        ``options.smv_radius_mm`` set while the background step prescribes its own SMV.
    """
    local_mask = np.asarray(local_mask, dtype=bool)
    reference, reference_mask, warnings = choose_reference(csf_mask, reference, local_mask)
    parameters = {'field_strength_T': float(field_strength), 'delta_te_s': float(delta_te)}
    if options.inversion == 'tkd':
        chi = tkd.tkd(local_field, local_mask, voxel_size, b0_dir=b0_dir,
                      field_strength=field_strength, delta_te=delta_te,
                      threshold=options.tkd_threshold)
        offset = np.float32(np.mean(chi[reference_mask], dtype=np.float64))
        chi_mask = local_mask
        chi = chi - offset
        parameters['tkd_threshold'] = options.tkd_threshold
        info = {}
    else:
        smv_radius, merit = options.smv_radius_mm or None, options.merit
        if background_smv and background_smv.get('smv_radius_mm') is not None:
            if smv_radius is not None:
                raise ValueError('qsm.smv_radius_mm is set, but the background method already '
                                 'ends in an SMV inside MEDI: set one or the other')
            smv_radius = background_smv['smv_radius_mm']
            merit = merit or bool(background_smv.get('merit', False))
        solver_options = dict(
            lambda_=options.lambda_, max_gn_iter=options.max_gn_iter, gn_tol=options.gn_tol,
            cg_max_iter=options.cg_max_iter, cg_tol=options.cg_tol,
            edge_fraction=options.edge_fraction, smv_radius_mm=smv_radius, merit=merit)
        if background_smv and background_smv.get('outside_scale'):
            solver_options['outside_scale'] = float(background_smv['outside_scale'])
        # λ_CSF and the CSF mean as zero only with a real CSF region; else plain MEDI
        csf = reference_mask if reference == 'ventricular_csf' else None
        if options.inversion == 'medi+0' and csf is not None:
            chi, info = medi.medi_plus_zero(
                local_field, local_mask, magnitude, voxel_size, b0_dir=b0_dir,
                noise_std=noise_std, csf_mask=csf, field_strength=field_strength,
                delta_te=delta_te, lambda_csf=options.lambda_csf, **solver_options)
            parameters['lambda_csf'] = options.lambda_csf
        else:
            if options.inversion == 'medi+0':
                warnings.append('MEDI+0 ran without its CSF term (no ventricular CSF): plain '
                                'MEDI, whole-brain mean as the zero reference')
            chi, info = medi.medi(
                local_field, local_mask, magnitude, voxel_size, b0_dir=b0_dir,
                noise_std=noise_std, csf_mask=csf, field_strength=field_strength,
                delta_te=delta_te, **solver_options)
        parameters.update(solver_options)
        if np.ndim(smv_radius) == 3:
            parameters['smv_radius_mm'] = 'edge-aware, per voxel (background step)'
        chi_mask = np.asarray(info.get('mask', local_mask), dtype=bool)
    chi = np.where(chi_mask, chi, 0).astype(np.float32)
    decisions = {
        'Algorithm': ALGORITHM_NAMES[options.inversion],
        'CSFTerm': bool(options.inversion == 'medi+0' and reference == 'ventricular_csf'),
        'AlgorithmParameters': parameters,
        'ReferenceRegion': reference,
        # wall times stay out of the sidecar: the same inputs give the same file
        'SolverReport': _jsonable({k: v for k, v in info.items()
                                   if k != 'mask' and not k.startswith('time_')}),
    }
    return Susceptibility(chi_ppm=chi, mask=chi_mask, reference=reference,
                          reference_mask=reference_mask & chi_mask, decisions=decisions,
                          warnings=warnings)


def _jsonable(value):
    """The JSON-serialisable part of a solver's report (large arrays summarised)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no infinity
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f'array{value.shape}'
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
