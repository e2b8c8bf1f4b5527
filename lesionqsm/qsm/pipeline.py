"""The whole QSM chain of one visit, from complex echoes to χ (ppm), in one call.

:func:`reconstruct_session` strings together the same step functions, with the same options
objects, as the participant workflow (:func:`lesionqsm.workflows.session.init_session_qsm_wf`),
and nothing else: a test holds the two to the same χ map.
"""

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ..options import OptionError, options_as_dict, options_from_mapping
from . import provenance
from .csf import CSFOptions, find_reference_region
from .echoes import EchoOptions, prepare_echoes
from .geometry import b0_direction, voxel_sizes
from .inversion import InversionOptions, invert_dipole
from .local_field import BackgroundOptions, remove_background
from .masking import MaskOptions, make_brain_mask
from .multiecho import fit_multiecho_complex
from .plausibility import check_chi
from .r2star import R2StarOptions, estimate_r2star
from .unwrap import UnwrapOptions, unwrap_field

#: Version of the chain's numerical behaviour, recorded in every Chimap sidecar; bump it when
#: any step's results change (the workflow's nodes then rerun instead of using their cache).
ALGORITHM_VERSION = '8'

#: The steps' options classes, in chain order, by attribute of :class:`QSMOptions`.
STEP_OPTIONS = {
    'echoes': EchoOptions,
    'mask': MaskOptions,
    'unwrap': UnwrapOptions,
    'r2star': R2StarOptions,
    'csf': CSFOptions,
    'background': BackgroundOptions,
    'inversion': InversionOptions,
}


#: Background methods whose SMV step runs inside the dipole inversion.
SMV_BACKGROUNDS = ('pdf_edge_smv', 'medi_toolbox')


@dataclass(frozen=True)
class QSMOptions:
    """Every option of the QSM chain, one options object per step.

    The ``qsm`` section of ``--config`` is flat (``{"lambda_": 1000, "background": "pdf"}``):
    each key belongs to exactly one step (:meth:`from_mapping`).
    """

    echoes: EchoOptions = field(default_factory=EchoOptions)
    mask: MaskOptions = field(default_factory=MaskOptions)
    unwrap: UnwrapOptions = field(default_factory=UnwrapOptions)
    r2star: R2StarOptions = field(default_factory=R2StarOptions)
    csf: CSFOptions = field(default_factory=CSFOptions)
    background: BackgroundOptions = field(default_factory=BackgroundOptions)
    inversion: InversionOptions = field(default_factory=InversionOptions)

    @classmethod
    def from_mapping(cls, mapping=None, *, section='qsm', **overrides):
        """Build from a flat mapping of option names (a ``--config`` section), checked.

        ``overrides`` (command-line flags; ``None`` = not given) take precedence.

        Raises
        ------
        OptionError
            An unknown key (the known ones are listed), a wrong type or a value out of range.
        """
        mapping = dict(mapping or {})
        mapping.update({k: v for k, v in overrides.items() if v is not None})
        owners = {f.name: step for step, klass in STEP_OPTIONS.items()
                  for f in dataclasses.fields(klass)}
        unknown = sorted(set(mapping) - set(owners))
        if unknown:
            raise OptionError(f'{section}.{unknown[0]}',
                              f'unknown option; known: {", ".join(sorted(owners))}')
        steps = {step: options_from_mapping(
                     klass, {k: v for k, v in mapping.items() if owners[k] == step},
                     section=section)
                 for step, klass in STEP_OPTIONS.items()}
        if (steps['inversion'].smv_radius_mm
                and steps['background'].background in SMV_BACKGROUNDS):
            raise OptionError(f'{section}.smv_radius_mm',
                              f"background {steps['background'].background!r} already ends in "
                              'an SMV inside MEDI; smv_radius_mm applies with pdf, lbv or '
                              'vsharp only')
        if (mapping.get('outside_source_scale') and steps['background'].background
                != 'pdf_edge_smv'):
            raise OptionError(f'{section}.outside_source_scale',
                              'the sources outside the mask are fitted after the pdf_edge_smv '
                              f"background step only, not {steps['background'].background!r}")
        return cls(**steps)

    def as_flat_dict(self):
        """Every option by its flat name (the sidecar's record of what was used)."""
        flat = {}
        for step in STEP_OPTIONS:
            flat.update(options_as_dict(getattr(self, step)))
        return flat


@dataclass
class SessionReconstruction:
    """Every intermediate map of one visit's reconstruction (spatial shape of the input).

    Attributes
    ----------
    magnitude : float32 ndarray
        Root-sum-of-squares magnitude over echoes, divided by the 99th percentile of the
        input's (``decisions['magnitude_scale']``).
    field_rad, noise_std : float32 ndarray
        Multi-echo fit frequency (wrapped to [-π, π)) and its standard deviation, radians
        per ``delta_te``.
    unwrapped_field_rad : float32 ndarray
        Spatially unwrapped total field, radians per ``delta_te`` (0 outside the brain).
    brain_mask : bool ndarray
    r2star : float32 ndarray
        R2* in 1/s inside the brain mask.
    csf_mask : bool ndarray
        The zero-reference region used: ventricular CSF, or the whole brain.
    reference : str
        ``'ventricular_csf'`` or ``'whole_brain'``.
    local_field_rad : float32 ndarray
        Background-removed field, radians per ``delta_te``.
    local_mask : bool ndarray
        Where χ is defined.
    reliable_mask : bool ndarray
        Brain-mask voxels that no step eroded or extrapolated.
    chi_ppm : float32 ndarray
        Susceptibility in ppm, mean 0 over ``csf_mask``, 0 outside ``local_mask``.
    delta_te : float
        Echo spacing (s) of the radian unit.
    metadata : dict
        What every step did (methods used, reference region, thresholds) and every option:
        the Chimap sidecar the workflow writes for the same visit.
    warnings : list of str
        Every guess or fallback of the steps (``metadata['Warnings']``).
    timings : dict
        Wall time per step in s.
    """

    magnitude: np.ndarray
    field_rad: np.ndarray
    noise_std: np.ndarray
    unwrapped_field_rad: np.ndarray
    brain_mask: np.ndarray
    r2star: np.ndarray
    csf_mask: np.ndarray
    reference: str
    local_field_rad: np.ndarray
    local_mask: np.ndarray
    reliable_mask: np.ndarray
    chi_ppm: np.ndarray
    delta_te: float
    metadata: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def reconstruct_session(complex_echoes, echo_times, *, field_strength, affine, options=None,
                        brain_mask=None, phase_scaling=None):
    """Reconstruct one visit: echoes → mask → fit → unwrap → R2* → CSF → background → χ.

    Parameters
    ----------
    complex_echoes : complex ndarray, shape (X, Y, Z, E)
        Complex GRE echoes ``magnitude · exp(i phase)``, phase in radians, any magnitude
        scale (:func:`lesionqsm.qsm.echoes.complex_echoes` builds it from magnitude and
        phase; :func:`lesionqsm.qsm.load_visit` from a BIDS dataset).
    echo_times : sequence of E float
        Echo times in s.
    field_strength : float
        B0 in tesla.
    affine : (4, 4) array_like
        Voxel-to-world affine of the echoes: voxel size and B0 direction come from it.
    options : QSMOptions or dict, optional
        A :class:`QSMOptions`, or a flat dict as the ``qsm`` section of ``--config``
        (default: the paper's settings).
    brain_mask : bool ndarray, shape (X, Y, Z), optional
        A brain mask to use as given instead of the automatic one.
    phase_scaling : sequence of E dict, optional
        How each echo's phase was mapped to radians (from
        :func:`lesionqsm.bids.visit.read_echoes`), recorded in the decisions.

    Returns
    -------
    SessionReconstruction

    Raises
    ------
    ValueError
        Inputs of the wrong shape or type, a non-positive field strength, or an option that
        does not exist or is out of range (:class:`lesionqsm.options.OptionError`).
    """
    if not isinstance(options, QSMOptions):
        options = QSMOptions.from_mapping(options)
    if not np.isfinite(field_strength) or field_strength <= 0:
        raise ValueError(f'field_strength must be a positive number of tesla, got '
                         f'{field_strength!r}')
    if np.asarray(affine).shape != (4, 4):
        raise ValueError(f'affine must be 4×4, got shape {np.asarray(affine).shape}')
    voxel_size = voxel_sizes(affine)
    b0_dir = b0_direction(affine)
    timings, records = {}, []
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        timings[f'{name}_s'] = now - clock
        clock = now

    echoes = prepare_echoes(complex_echoes, echo_times, options.echoes,
                            phase_scaling=phase_scaling)
    records.append(provenance.step_record(echoes.decisions, echoes.warnings))
    lap('prepare')
    mask = make_brain_mask(echoes.magnitude, voxel_size, options.mask, user_mask=brain_mask)
    records.append(provenance.step_record(mask.decisions, mask.warnings))
    lap('brain_mask')
    fit = fit_multiecho_complex(echoes.signal, echoes.echo_times, mask=mask.mask)
    lap('multiecho_fit')
    unwrapped, unwrap_decisions = unwrap_field(fit.field_rad, echoes.magnitude, mask.mask,
                                               voxel_size, options.unwrap)
    records.append(provenance.step_record(unwrap_decisions))
    lap('unwrap')
    r2s, r2s_decisions, r2s_warnings = estimate_r2star(np.abs(echoes.signal),
                                                       echoes.echo_times, mask.mask,
                                                       options.r2star)
    records.append(provenance.step_record(r2s_decisions, r2s_warnings))
    lap('r2star')
    csf = find_reference_region(r2s, mask.mask, voxel_size, options.csf)
    records.append(provenance.csf_record(csf))
    lap('csf_mask')
    local = remove_background(unwrapped, mask.mask, voxel_size, b0_dir=b0_dir,
                              noise_std=fit.noise_std, options=options.background)
    records.append(provenance.step_record(local.decisions))
    lap('background')
    chi = invert_dipole(local.field, local.mask, echoes.magnitude, voxel_size, b0_dir=b0_dir,
                        noise_std=fit.noise_std, csf_mask=csf.mask, reference=csf.reference,
                        field_strength=field_strength, delta_te=fit.delta_te,
                        background_smv=local.inversion_smv, options=options.inversion)
    chi.decisions.update(check_chi(chi.chi_ppm, chi.mask))  # fails an implausible χ map
    records.append(provenance.step_record(chi.decisions, chi.warnings))
    lap('inversion')
    metadata = provenance.chimap_metadata(records, options.as_flat_dict(),
                                          algorithm_version=ALGORITHM_VERSION)
    timings['total_s'] = float(sum(timings.values()))
    return SessionReconstruction(
        magnitude=echoes.magnitude, field_rad=fit.field_rad, noise_std=fit.noise_std,
        unwrapped_field_rad=unwrapped, brain_mask=mask.mask, r2star=r2s,
        csf_mask=chi.reference_mask, reference=chi.reference, local_field_rad=local.field,
        local_mask=chi.mask, reliable_mask=local.reliable_mask & chi.mask, chi_ppm=chi.chi_ppm,
        delta_te=float(fit.delta_te),
        metadata=metadata, warnings=metadata['Warnings'], timings=timings)
