"""nipype interfaces for the QSM chain of one visit; each wraps one :mod:`lesionqsm.qsm` step.

Every interface loads its NIfTI inputs (errors name the file), rebuilds the step's options
object from its ``options`` input, calls the one step function, saves the outputs on the input
grid and returns the step's decisions for the sidecar.  No interface decides anything itself:
:func:`lesionqsm.qsm.reconstruct_session` calls the same functions, in the same order.

Each carries an ``algorithm_version`` input: bumping :data:`ALGORITHM_VERSION` makes nipype
rerun the node even when its inputs are unchanged, so cached results never outlive the code.
"""

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..bids.images import check_same_grid, load_image, load_mask_on_grid, save_like
from ..bids.visit import read_echoes
from ..options import options_from_mapping
from ..qsm import provenance
from ..qsm.csf import CSFOptions, find_reference_region
from ..qsm.echoes import EchoOptions, prepare_echoes
from ..qsm.geometry import b0_direction, voxel_sizes
from ..qsm.inversion import InversionOptions, invert_dipole
from ..qsm.local_field import BackgroundOptions, remove_background
from ..qsm.masking import MaskOptions, make_brain_mask
from ..qsm.multiecho import fit_multiecho_complex
from ..qsm.pipeline import ALGORITHM_VERSION
from ..qsm.plausibility import check_chi
from ..qsm.r2star import R2StarOptions, estimate_r2star
from ..qsm.unwrap import UnwrapOptions, unwrap_field


def estimate_mem_gb(shape, n_echoes=1, *, copies=8):
    """Memory in GB for a node holding ``copies`` float32 volumes of ``shape`` × ``n_echoes``."""
    n_voxels = float(np.prod(shape[:3]))
    return max(0.1, copies * n_voxels * max(1, n_echoes) * 4 / 1024**3)


class _StepInputSpec(BaseInterfaceInputSpec):
    options = traits.Dict(desc="the step's options (its options class, as a dict)")
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True,
                                   desc='changes when the algorithm changes; reruns caches')


class _StepOutputSpec(TraitedSpec):
    decisions = traits.Dict(desc='what the step did, for the sidecar')


class _StepInterface(SimpleInterface):
    """A one-step interface: ``options_class`` is the step's options dataclass."""

    options_class = None

    def _options(self):
        given = self.inputs.options if isdefined(self.inputs.options) else {}
        return options_from_mapping(self.options_class, given)

    def _save_mask(self, result, mag_img, runtime):
        """Outputs of a brain-mask step (:class:`lesionqsm.qsm.masking.BrainMaskResult`)."""
        self._results['out_mask'] = save_like(result.mask, mag_img, runtime.cwd,
                                              'brain_mask.nii', dtype=np.uint8)
        self._results['decisions'] = provenance.step_record(result.decisions, result.warnings)


def _on_grid(path, reference_img, reference_path):
    """float32 data of a 3-D image that must share ``reference_img``'s grid."""
    img = load_image(path, ndim=3)
    check_same_grid(img, path, reference_img, reference_path)
    return img.get_fdata(dtype=np.float32)


def _echoes(img):
    """The echoes of a complex signal image as (X, Y, Z, E), also for one echo."""
    return np.asanyarray(img.dataobj).reshape(img.shape[:3] + (-1,))


def _grid(img):
    return voxel_sizes(img.affine), b0_direction(img.affine)


def _ref3d(img):
    """A 3-D float32 image on the grid of ``img`` (3-D or 4-D), for saving maps."""
    return nb.Nifti1Image(np.zeros(img.shape[:3], np.float32), img.affine, img.header)


# --------------------------------------------------------------------------------------------
class _PrepareEchoesInputSpec(_StepInputSpec):
    mag_files = InputMultiObject(File(exists=True), mandatory=True, desc='magnitude per echo')
    phase_files = InputMultiObject(File(exists=True), mandatory=True, desc='phase per echo')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s')
    phase_units = traits.Enum('rad', 'arbitrary', usedefault=True,
                              desc="phase sidecar Units: 'rad' or scanner integers")


class _PrepareEchoesOutputSpec(_StepOutputSpec):
    out_signal = File(exists=True, desc='4-D complex64 echoes in TE order, scaled')
    out_magnitude = File(exists=True, desc='root-sum-of-squares magnitude over echoes')
    echo_times = traits.List(traits.Float, desc='echo times in s, ascending')


class PrepareEchoes(_StepInterface):
    """Read the echoes; :func:`lesionqsm.qsm.echoes.prepare_echoes`."""

    input_spec = _PrepareEchoesInputSpec
    output_spec = _PrepareEchoesOutputSpec
    options_class = EchoOptions

    def _run_interface(self, runtime):
        signal, ref_img, warnings, scalings = read_echoes(
            self.inputs.mag_files, self.inputs.phase_files, self.inputs.phase_units)
        echoes = prepare_echoes(signal, self.inputs.echo_times, self._options(),
                                phase_scaling=scalings)
        cwd = runtime.cwd
        self._results['out_signal'] = save_like(echoes.signal, ref_img, cwd, 'signal.nii',
                                                dtype=np.complex64)
        self._results['out_magnitude'] = save_like(echoes.magnitude, ref_img, cwd,
                                                   'magnitude.nii')
        self._results['echo_times'] = echoes.echo_times.tolist()
        self._results['decisions'] = provenance.step_record(echoes.decisions,
                                                            warnings + echoes.warnings)
        return runtime


# --------------------------------------------------------------------------------------------
class _BrainMaskInputSpec(_StepInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude')
    in_mask = File(exists=True, desc='user-supplied mask on the same grid (used as given)')


class _BrainMaskOutputSpec(_StepOutputSpec):
    out_mask = File(exists=True, desc='binary mask, uint8')


class BrainMask(_StepInterface):
    """Brain mask; :func:`lesionqsm.qsm.masking.make_brain_mask`."""

    input_spec = _BrainMaskInputSpec
    output_spec = _BrainMaskOutputSpec
    options_class = MaskOptions

    def _run_interface(self, runtime):
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        user_mask = None
        if isdefined(self.inputs.in_mask):
            user_mask = load_mask_on_grid(self.inputs.in_mask, mag_img, self.inputs.in_magnitude)
        result = make_brain_mask(mag_img.get_fdata(dtype=np.float32), _grid(mag_img)[0],
                                 self._options(), user_mask=user_mask)
        self._save_mask(result, mag_img, runtime)
        return runtime


# --------------------------------------------------------------------------------------------
class _MultiEchoFitInputSpec(_StepInputSpec):
    in_signal = File(exists=True, mandatory=True, desc='4-D complex echoes')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s, ascending')


class _MultiEchoFitOutputSpec(TraitedSpec):
    out_field = File(exists=True, desc='frequency in rad per echo spacing (may still wrap)')
    out_noise_std = File(exists=True, desc='std of the field by error propagation, rad per ΔTE')
    delta_te = traits.Float(desc='echo spacing ΔTE in s that defines the rad unit')


class MultiEchoFit(_StepInterface):
    """Complex multi-echo fit; :func:`lesionqsm.qsm.multiecho.fit_multiecho_complex`."""

    input_spec = _MultiEchoFitInputSpec
    output_spec = _MultiEchoFitOutputSpec

    def _run_interface(self, runtime):
        signal_img = load_image(self.inputs.in_signal, ndim=(3, 4))  # 3-D: one echo
        ref = _ref3d(signal_img)
        mask = load_mask_on_grid(self.inputs.in_mask, ref, self.inputs.in_signal)
        fit = fit_multiecho_complex(_echoes(signal_img),
                                    np.asarray(self.inputs.echo_times), mask=mask)
        cwd = runtime.cwd
        self._results['out_field'] = save_like(fit.field_rad, ref, cwd, 'field_rad.nii')
        self._results['out_noise_std'] = save_like(fit.noise_std, ref, cwd, 'noise_std.nii')
        self._results['delta_te'] = float(fit.delta_te)
        return runtime


# --------------------------------------------------------------------------------------------
class _UnwrapInputSpec(_StepInputSpec):
    in_field = File(exists=True, mandatory=True, desc='wrapped field, rad per ΔTE')
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude guiding the unwrapper')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')


class _UnwrapOutputSpec(_StepOutputSpec):
    out_field = File(exists=True, desc='unwrapped field, rad per ΔTE')


class Unwrap(_StepInterface):
    """Spatial phase unwrapping; :func:`lesionqsm.qsm.unwrap.unwrap_field`."""

    input_spec = _UnwrapInputSpec
    output_spec = _UnwrapOutputSpec
    options_class = UnwrapOptions

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        magnitude = _on_grid(self.inputs.in_magnitude, field_img, self.inputs.in_field)
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, self.inputs.in_field)
        unwrapped, decisions = unwrap_field(field_img.get_fdata(dtype=np.float32), magnitude,
                                            mask, _grid(field_img)[0], self._options())
        self._results['out_field'] = save_like(unwrapped, field_img, runtime.cwd,
                                               'field_unwrapped.nii')
        self._results['decisions'] = provenance.step_record(decisions)
        return runtime


# --------------------------------------------------------------------------------------------
class _R2StarInputSpec(_StepInputSpec):
    in_signal = File(exists=True, mandatory=True, desc='4-D complex echoes')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s, ascending')


class _R2StarOutputSpec(_StepOutputSpec):
    out_r2star = File(exists=True, desc='R2* in 1/s')


class R2Star(_StepInterface):
    """R2* map; :func:`lesionqsm.qsm.r2star.estimate_r2star`."""

    input_spec = _R2StarInputSpec
    output_spec = _R2StarOutputSpec
    options_class = R2StarOptions

    def _run_interface(self, runtime):
        signal_img = load_image(self.inputs.in_signal, ndim=(3, 4))  # 3-D: one echo
        ref = _ref3d(signal_img)
        mask = load_mask_on_grid(self.inputs.in_mask, ref, self.inputs.in_signal)
        r2s, decisions, warnings = estimate_r2star(np.abs(_echoes(signal_img)),
                                                   self.inputs.echo_times, mask,
                                                   self._options())
        self._results['out_r2star'] = save_like(r2s, ref, runtime.cwd, 'r2star.nii')
        self._results['decisions'] = provenance.step_record(decisions, warnings)
        return runtime


# --------------------------------------------------------------------------------------------
class _CSFMaskInputSpec(_StepInputSpec):
    in_r2star = File(exists=True, mandatory=True, desc='R2* in 1/s')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')


class _CSFMaskOutputSpec(_StepOutputSpec):
    out_mask = File(exists=True, desc='ventricular CSF mask (empty if none was found)')
    reference = traits.Str(desc="'ventricular_csf' or 'whole_brain'")


class CSFMask(_StepInterface):
    """Zero-reference region; :func:`lesionqsm.qsm.csf.find_reference_region`."""

    input_spec = _CSFMaskInputSpec
    output_spec = _CSFMaskOutputSpec
    options_class = CSFOptions

    def _run_interface(self, runtime):
        r2s_img = load_image(self.inputs.in_r2star, ndim=3, finite=False)  # NaN: one echo
        mask = load_mask_on_grid(self.inputs.in_mask, r2s_img, self.inputs.in_r2star)
        result = find_reference_region(r2s_img.get_fdata(dtype=np.float32), mask,
                                       _grid(r2s_img)[0], self._options())
        self._results['out_mask'] = save_like(result.mask, r2s_img, runtime.cwd,
                                              'csf_mask.nii', dtype=np.uint8)
        self._results['reference'] = result.reference
        self._results['decisions'] = provenance.csf_record(result)
        return runtime


# --------------------------------------------------------------------------------------------
class _BackgroundInputSpec(_StepInputSpec):
    in_field = File(exists=True, mandatory=True, desc='unwrapped total field, rad per ΔTE')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    in_noise_std = File(exists=True, mandatory=True, desc='field noise std (PDF weights)')


class _BackgroundOutputSpec(_StepOutputSpec):
    out_field = File(exists=True, desc='local field, rad per ΔTE')
    out_mask = File(exists=True, desc='where the local field is defined')
    out_reliable_mask = File(exists=True, desc='brain voxels no step eroded or extrapolated')
    out_smv_radius = File(exists=True, desc='per-voxel SMV radius (mm) the inversion must '
                                            'model; 0 everywhere when there is none')
    inversion_smv = traits.Dict(desc='the SMV the inversion must model: smv_radius_mm (None, '
                                     "mm, or 'per_voxel': out_smv_radius), merit and "
                                     'outside_scale (the sources outside the mask it fits)')


class RemoveBackground(_StepInterface):
    """Background field removal; :func:`lesionqsm.qsm.local_field.remove_background`."""

    input_spec = _BackgroundInputSpec
    output_spec = _BackgroundOutputSpec
    options_class = BackgroundOptions

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, self.inputs.in_field)
        noise_std = _on_grid(self.inputs.in_noise_std, field_img, self.inputs.in_field)
        voxel_size, b0_dir = _grid(field_img)
        local = remove_background(field_img.get_fdata(dtype=np.float32), mask, voxel_size,
                                  b0_dir=b0_dir, noise_std=noise_std, options=self._options())
        cwd = runtime.cwd
        self._results['out_field'] = save_like(local.field, field_img, cwd,
                                               'local_field_rad.nii')
        self._results['out_mask'] = save_like(local.mask, field_img, cwd, 'local_mask.nii',
                                              dtype=np.uint8)
        self._results['out_reliable_mask'] = save_like(local.reliable_mask, field_img, cwd,
                                                       'reliable_mask.nii', dtype=np.uint8)
        radius = local.inversion_smv.get('smv_radius_mm')
        per_voxel = np.ndim(radius) == 3
        radius_map = radius if per_voxel else np.zeros(local.mask.shape, dtype=np.float32)
        self._results['out_smv_radius'] = save_like(radius_map, field_img, cwd,
                                                    'smv_radius_mm.nii')
        self._results['inversion_smv'] = {
            'smv_radius_mm': 'per_voxel' if per_voxel else radius,
            'merit': bool(local.inversion_smv.get('merit', False)),
            'outside_scale': local.inversion_smv.get('outside_scale')}
        self._results['decisions'] = provenance.step_record(local.decisions)
        return runtime


# --------------------------------------------------------------------------------------------
class _DipoleInversionInputSpec(_StepInputSpec):
    in_field = File(exists=True, mandatory=True, desc='local field, rad per ΔTE')
    in_mask = File(exists=True, mandatory=True, desc='where the local field is defined')
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude (edge mask)')
    in_noise_std = File(exists=True, mandatory=True, desc='field noise std, rad per ΔTE')
    in_csf_mask = File(exists=True, mandatory=True, desc='the CSF step’s region')
    reference = traits.Enum('ventricular_csf', 'whole_brain', mandatory=True,
                            desc='what the CSF step found')
    inversion_smv = traits.Dict(desc="the background step's SMV (RemoveBackground)")
    in_smv_radius = File(exists=True, desc='per-voxel SMV radius, mm (RemoveBackground)')
    in_reliable_mask = File(exists=True, desc="the background step's reliable voxels")
    delta_te = traits.Float(mandatory=True, desc='echo spacing ΔTE in s')
    field_strength = traits.Float(mandatory=True, desc='B0 in T')
    prior_decisions = traits.List(traits.Dict, desc='the earlier steps’ decisions (sidecar)')
    chain_options = traits.Dict(desc='every option of the chain, flat (sidecar)')


class _DipoleInversionOutputSpec(TraitedSpec):
    out_chi = File(exists=True, desc='susceptibility in ppm, reference mean = 0')
    out_reference_mask = File(exists=True, desc='the zero-reference region used')
    out_reliable_mask = File(exists=True, desc='voxels whose χ no step eroded or '
                                               'extrapolated (desc-reliable_mask)')
    metadata = traits.Dict(desc='sidecar entries for the Chimap')


class DipoleInversion(_StepInterface):
    """Dipole inversion; :func:`lesionqsm.qsm.inversion.invert_dipole`."""

    input_spec = _DipoleInversionInputSpec
    output_spec = _DipoleInversionOutputSpec
    options_class = InversionOptions

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        path = self.inputs.in_field
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, path)
        csf_mask = load_mask_on_grid(self.inputs.in_csf_mask, field_img, path)
        magnitude = _on_grid(self.inputs.in_magnitude, field_img, path)
        noise_std = _on_grid(self.inputs.in_noise_std, field_img, path)
        voxel_size, b0_dir = _grid(field_img)
        background_smv = dict(self.inputs.inversion_smv) \
            if isdefined(self.inputs.inversion_smv) else {}
        if background_smv.get('smv_radius_mm') == 'per_voxel':
            background_smv['smv_radius_mm'] = _on_grid(self.inputs.in_smv_radius, field_img,
                                                       path)
        chi = invert_dipole(
            field_img.get_fdata(dtype=np.float32), mask, magnitude, voxel_size, b0_dir=b0_dir,
            noise_std=noise_std,
            csf_mask=csf_mask, reference=self.inputs.reference,
            field_strength=self.inputs.field_strength, delta_te=self.inputs.delta_te,
            background_smv=background_smv, options=self._options())
        chi.decisions.update(check_chi(chi.chi_ppm, chi.mask))  # fails an implausible χ map
        cwd = runtime.cwd
        self._results['out_chi'] = save_like(chi.chi_ppm, field_img, cwd, 'chi_ppm.nii')
        self._results['out_reference_mask'] = save_like(chi.reference_mask, field_img, cwd,
                                                        'reference_mask.nii', dtype=np.uint8)
        reliable = chi.mask
        if isdefined(self.inputs.in_reliable_mask):
            reliable = reliable & load_mask_on_grid(self.inputs.in_reliable_mask, field_img, path)
        self._results['out_reliable_mask'] = save_like(reliable, field_img, cwd,
                                                       'reliable_mask.nii', dtype=np.uint8)
        prior = list(self.inputs.prior_decisions) if isdefined(self.inputs.prior_decisions) \
            else []
        options = self.inputs.chain_options if isdefined(self.inputs.chain_options) else {}
        self._results['metadata'] = provenance.chimap_metadata(
            [*prior, provenance.step_record(chi.decisions, chi.warnings)], options,
            algorithm_version=self.inputs.algorithm_version)
        return runtime
