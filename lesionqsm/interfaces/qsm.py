"""nipype interfaces for the QSM chain of one visit; each wraps one :mod:`lesionqsm.qsm` step.

Every interface loads NIfTI with errors that name the file, calls one pure function, and saves
its outputs on the input grid (same affine and header).  Each carries an ``algorithm_version``
input: bumping :data:`ALGORITHM_VERSION` makes nipype rerun the node even when its inputs are
unchanged, so cached results never outlive the code that made them.
"""

import json
import logging
from pathlib import Path

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

from ..bids.images import ImageError, check_same_grid, load_image, load_mask_on_grid, save_like
from ..qsm import background, csf, masking, medi, multiecho, r2star, tkd, unwrap
from ..qsm.geometry import b0_direction

#: Bump when the numerical behaviour of any QSM step changes (invalidates nipype caches).
ALGORITHM_VERSION = '2'

LOGGER = logging.getLogger('nipype.interface')


def estimate_mem_gb(shape, n_echoes=1, *, copies=8):
    """Memory in GB for a node holding ``copies`` float32 volumes of ``shape`` × ``n_echoes``."""
    n_voxels = float(np.prod(shape[:3]))
    return max(0.1, copies * n_voxels * max(1, n_echoes) * 4 / 1024**3)


class _VersionedInputSpec(BaseInterfaceInputSpec):
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True,
                                   desc='changes when the algorithm changes; reruns caches')


# --------------------------------------------------------------------------------------------
# Gather echoes
# --------------------------------------------------------------------------------------------
class _GatherEchoesInputSpec(_VersionedInputSpec):
    mag_files = InputMultiObject(File(exists=True), mandatory=True, desc='magnitude per echo')
    phase_files = InputMultiObject(File(exists=True), mandatory=True, desc='phase per echo')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s')
    phase_units = traits.Enum('rad', 'arbitrary', usedefault=True,
                              desc="phase sidecar Units: 'rad' or scanner integers")
    phase_sign = traits.Enum(1, -1, usedefault=True,
                             desc='-1 for scanners that store the conjugate phase')


class _GatherEchoesOutputSpec(TraitedSpec):
    out_magnitude = File(exists=True, desc='4-D magnitude, echoes along the last axis')
    out_phase = File(exists=True, desc='4-D phase in radians in [-pi, pi), sign-corrected')
    out_mean_magnitude = File(exists=True, desc='root-sum-of-squares magnitude over echoes')
    echo_times = traits.List(traits.Float, desc='echo times in s, ascending')
    warnings = traits.List(traits.Str, desc='non-fatal problems found in the inputs')


def phase_to_radians(phase, units, path='phase'):
    """Scale a phase volume to radians in [-π, π).

    Parameters
    ----------
    phase : ndarray
        Phase as stored.
    units : {'rad', 'arbitrary'}
        Sidecar ``Units``.  Scanner integers are mapped linearly from their stored range
        (``[-4096, 4095]`` when the data fit in it, the data range otherwise) onto [-π, π).
    path : str
        File name used in messages.

    Returns
    -------
    phase_rad : float32 ndarray
    warnings : list of str
    """
    phase = np.asarray(phase, dtype=np.float64)
    warnings = []
    if units == 'arbitrary':
        low, high = float(phase.min()), float(phase.max())
        if high <= low:
            raise ImageError(f'{path}: phase is constant ({low}); it cannot be rescaled')
        if low >= -4096 and high <= 4096:
            low, high = (-4096.0, 4096.0) if low < 0 else (0.0, 4096.0)
        phase = (phase - low) / (high - low) * 2 * np.pi - np.pi
    elif np.nanmax(np.abs(phase)) > np.pi + 1e-3:
        warnings.append(f'{path}: Units is rad but values reach {np.nanmax(np.abs(phase)):.2f};'
                        ' wrapped to [-pi, pi)')
    wrapped = np.angle(np.exp(1j * phase)).astype(np.float32)
    return wrapped, warnings


class GatherEchoes(SimpleInterface):
    """Check one visit's echoes and stack them into 4-D magnitude and radian phase images."""

    input_spec = _GatherEchoesInputSpec
    output_spec = _GatherEchoesOutputSpec

    def _run_interface(self, runtime):
        mags, phases = list(self.inputs.mag_files), list(self.inputs.phase_files)
        tes = list(self.inputs.echo_times)
        if not (len(mags) == len(phases) == len(tes)):
            raise ImageError(f'{mags[0]}: {len(mags)} magnitude, {len(phases)} phase files and '
                             f'{len(tes)} echo times do not match')
        if len(tes) < 2:
            raise ImageError(f'{mags[0]}: only one echo; the multi-echo field fit needs >= 2')
        order = np.argsort(tes)
        ref_img = load_image(mags[order[0]], ndim=3)
        mag_data, phase_data, warnings = [], [], []
        for index in order:
            mag_img = load_image(mags[index], ndim=3)
            phase_img = load_image(phases[index], ndim=3)
            check_same_grid(mag_img, mags[index], ref_img, mags[order[0]])
            check_same_grid(phase_img, phases[index], mag_img, mags[index])
            mag = np.abs(mag_img.get_fdata(dtype=np.float32))
            phase, msgs = phase_to_radians(np.asanyarray(phase_img.dataobj),
                                           self.inputs.phase_units, phases[index])
            mag_data.append(mag)
            phase_data.append(self.inputs.phase_sign * phase)
            warnings.extend(msgs)
        magnitude = np.stack(mag_data, axis=-1)
        if not np.any(magnitude > 0):
            raise ImageError(f'{mags[order[0]]}: every magnitude voxel is zero')
        for msg in warnings:
            LOGGER.warning(msg)
        cwd = runtime.cwd
        self._results['out_magnitude'] = save_like(magnitude, ref_img, cwd, 'magnitude.nii')
        self._results['out_phase'] = save_like(np.stack(phase_data, axis=-1), ref_img, cwd,
                                               'phase.nii')
        rss = np.sqrt(np.sum(magnitude.astype(np.float64) ** 2, axis=-1))
        self._results['out_mean_magnitude'] = save_like(rss, ref_img, cwd, 'magnitude_rss.nii')
        self._results['echo_times'] = [float(tes[i]) for i in order]
        self._results['warnings'] = warnings
        return runtime


def _load_complex(magnitude_file, phase_file):
    mag_img = load_image(magnitude_file, ndim=4)
    phase_img = load_image(phase_file, ndim=4)
    check_same_grid(mag_img, magnitude_file, phase_img, phase_file)
    mag = mag_img.get_fdata(dtype=np.float32)
    phase = phase_img.get_fdata(dtype=np.float32)
    return mag_img, (mag * np.exp(1j * phase)).astype(np.complex64)


def _grid_of(img):
    return tuple(float(v) for v in img.header.get_zooms()[:3]), b0_direction(img.affine)


# --------------------------------------------------------------------------------------------
# Brain mask
# --------------------------------------------------------------------------------------------
class _BrainMaskInputSpec(_VersionedInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude (e.g. RSS of echoes)')
    in_mask = File(exists=True, desc='user-supplied mask on the same grid (used as given)')


class _MaskOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc='binary mask, uint8')


class BrainMask(SimpleInterface):
    """Brain mask from the magnitude (:func:`lesionqsm.qsm.masking.brain_mask_from_magnitude`)."""

    input_spec = _BrainMaskInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime):
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        if isdefined(self.inputs.in_mask):
            mask = load_mask_on_grid(self.inputs.in_mask, mag_img, self.inputs.in_magnitude)
        else:
            voxel_size, _ = _grid_of(mag_img)
            mask = masking.brain_mask_from_magnitude(mag_img.get_fdata(dtype=np.float32),
                                                     voxel_size)
        if not mask.any():
            raise ImageError(f'{self.inputs.in_magnitude}: the brain mask is empty')
        self._results['out_mask'] = save_like(mask, mag_img, runtime.cwd, 'brain_mask.nii',
                                              dtype=np.uint8)
        return runtime


# --------------------------------------------------------------------------------------------
# Multi-echo fit
# --------------------------------------------------------------------------------------------
class _MultiEchoFitInputSpec(_VersionedInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='4-D magnitude')
    in_phase = File(exists=True, mandatory=True, desc='4-D phase in radians')
    in_mask = File(exists=True, desc='restrict the fit to this mask')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s')


class _MultiEchoFitOutputSpec(TraitedSpec):
    out_field = File(exists=True, desc='frequency in rad per echo spacing (may still wrap)')
    out_field_hz = File(exists=True, desc='frequency in Hz')
    out_noise_std = File(exists=True, desc='std of the field by error propagation, rad per ΔTE')
    out_phase0 = File(exists=True, desc='initial phase in rad')
    delta_te = traits.Float(desc='echo spacing ΔTE in s that defines the rad unit')


class MultiEchoFit(SimpleInterface):
    """Nonlinear complex fit of field and noise.

    The work is :func:`lesionqsm.qsm.multiecho.fit_multiecho_complex`.
    """

    input_spec = _MultiEchoFitInputSpec
    output_spec = _MultiEchoFitOutputSpec

    def _run_interface(self, runtime):
        mag_img, signal = _load_complex(self.inputs.in_magnitude, self.inputs.in_phase)
        mask = None
        if isdefined(self.inputs.in_mask):
            ref = nb.Nifti1Image(np.zeros(mag_img.shape[:3], np.uint8), mag_img.affine)
            mask = load_mask_on_grid(self.inputs.in_mask, ref, self.inputs.in_magnitude)
        fit = multiecho.fit_multiecho_complex(signal, np.asarray(self.inputs.echo_times),
                                              mask=mask)
        ref3d = nb.Nifti1Image(np.zeros(mag_img.shape[:3], np.float32), mag_img.affine,
                               mag_img.header)
        cwd = runtime.cwd
        self._results['out_field'] = save_like(fit.field_rad, ref3d, cwd, 'field_rad.nii')
        self._results['out_field_hz'] = save_like(fit.field_hz, ref3d, cwd, 'field_hz.nii')
        self._results['out_noise_std'] = save_like(fit.noise_std, ref3d, cwd, 'noise_std.nii')
        self._results['out_phase0'] = save_like(fit.phase0, ref3d, cwd, 'phase0.nii')
        self._results['delta_te'] = float(fit.delta_te)
        return runtime


# --------------------------------------------------------------------------------------------
# Unwrapping
# --------------------------------------------------------------------------------------------
class _UnwrapInputSpec(_VersionedInputSpec):
    in_field = File(exists=True, mandatory=True, desc='wrapped field, rad per ΔTE')
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude guiding the unwrapper')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    method = traits.Enum('region_growing', 'laplacian', usedefault=True, desc='unwrapper')


class _UnwrapOutputSpec(TraitedSpec):
    out_field = File(exists=True, desc='unwrapped field, rad per ΔTE')


class Unwrap(SimpleInterface):
    """Spatial phase unwrapping (:mod:`lesionqsm.qsm.unwrap`)."""

    input_spec = _UnwrapInputSpec
    output_spec = _UnwrapOutputSpec

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        check_same_grid(field_img, self.inputs.in_field, mag_img, self.inputs.in_magnitude)
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, self.inputs.in_field)
        field = field_img.get_fdata(dtype=np.float32)
        voxel_size, _ = _grid_of(field_img)
        if self.inputs.method == 'laplacian':
            unwrapped = unwrap.unwrap_laplacian(field, voxel_size)
        else:
            unwrapped = unwrap.unwrap_region_growing(field, mag_img.get_fdata(dtype=np.float32),
                                                     mask=mask)
        unwrapped = np.where(mask, unwrapped, 0.0)
        self._results['out_field'] = save_like(unwrapped, field_img, runtime.cwd,
                                               'field_unwrapped.nii')
        return runtime


# --------------------------------------------------------------------------------------------
# R2*
# --------------------------------------------------------------------------------------------
class _R2StarInputSpec(_VersionedInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='4-D magnitude')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    echo_times = traits.List(traits.Float, mandatory=True, desc='echo times in s')
    method = traits.Enum('arlo', 'loglinear', usedefault=True,
                         desc='R2* estimator (log-linear whenever the echoes are uneven)')


class _R2StarOutputSpec(TraitedSpec):
    out_r2star = File(exists=True, desc='R2* in 1/s')


class R2Star(SimpleInterface):
    """R2* map from the multi-echo magnitude (:mod:`lesionqsm.qsm.r2star`)."""

    input_spec = _R2StarInputSpec
    output_spec = _R2StarOutputSpec

    def _run_interface(self, runtime):
        mag_img = load_image(self.inputs.in_magnitude, ndim=4)
        ref3d = nb.Nifti1Image(np.zeros(mag_img.shape[:3], np.float32), mag_img.affine,
                               mag_img.header)
        mask = load_mask_on_grid(self.inputs.in_mask, ref3d, self.inputs.in_magnitude)
        magnitude = mag_img.get_fdata(dtype=np.float32)
        echo_times = np.asarray(self.inputs.echo_times)
        spacing = np.diff(echo_times)
        even = np.allclose(spacing, spacing[0], rtol=1e-3)
        # ARLO needs evenly spaced echoes; log-linear least squares takes any
        if self.inputs.method == 'arlo' and even:
            r2s = r2star.r2star_arlo(magnitude, echo_times, mask=mask)
        else:
            r2s = r2star.r2star_loglinear(magnitude, echo_times, mask=mask)
        self._results['out_r2star'] = save_like(np.where(mask, r2s, 0.0), ref3d, runtime.cwd,
                                                'r2star.nii')
        return runtime


# --------------------------------------------------------------------------------------------
# CSF mask
# --------------------------------------------------------------------------------------------
class _CSFMaskInputSpec(_VersionedInputSpec):
    in_r2star = File(exists=True, mandatory=True, desc='R2* in 1/s')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    r2star_threshold = traits.Float(5.0, usedefault=True, desc='CSF has R2* below this, 1/s')
    sphere_radius_mm = traits.Float(30.0, usedefault=True, desc='search sphere radius, mm')
    erosion_mm = traits.Float(10.0, usedefault=True, desc='brain mask erosion, mm')


class _CSFMaskOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc='ventricular CSF mask (whole brain if none found)')
    reference = traits.Str(desc="'ventricular_csf' or 'whole_brain'")
    message = traits.Str(desc='how the reference region was found')


class CSFMask(SimpleInterface):
    """Ventricular CSF mask by MEDI+0's rule (:func:`lesionqsm.qsm.csf.ventricular_csf_mask`)."""

    input_spec = _CSFMaskInputSpec
    output_spec = _CSFMaskOutputSpec

    def _run_interface(self, runtime):
        r2s_img = load_image(self.inputs.in_r2star, ndim=3)
        mask = load_mask_on_grid(self.inputs.in_mask, r2s_img, self.inputs.in_r2star)
        voxel_size, _ = _grid_of(r2s_img)
        result = csf.ventricular_csf_mask(
            r2s_img.get_fdata(dtype=np.float32), mask, voxel_size,
            r2star_threshold=self.inputs.r2star_threshold,
            sphere_radius_mm=self.inputs.sphere_radius_mm, erosion_mm=self.inputs.erosion_mm)
        if result.reference != 'ventricular_csf':
            LOGGER.warning('%s: %s', self.inputs.in_r2star, result.message)
        self._results['out_mask'] = save_like(result.mask, r2s_img, runtime.cwd,
                                              'csf_mask.nii', dtype=np.uint8)
        self._results['reference'] = result.reference
        self._results['message'] = result.message
        return runtime


# --------------------------------------------------------------------------------------------
# Background field removal
# --------------------------------------------------------------------------------------------
class _BackgroundInputSpec(_VersionedInputSpec):
    in_field = File(exists=True, mandatory=True, desc='unwrapped total field, rad per ΔTE')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    in_noise_std = File(exists=True, desc='field noise std (PDF weights)')
    method = traits.Enum('pdf', 'lbv', usedefault=True, desc='background removal method')


class _BackgroundOutputSpec(TraitedSpec):
    out_field = File(exists=True, desc='local field, rad per ΔTE')


class RemoveBackground(SimpleInterface):
    """Background field removal by PDF or LBV (:mod:`lesionqsm.qsm.background`)."""

    input_spec = _BackgroundInputSpec
    output_spec = _BackgroundOutputSpec

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, self.inputs.in_field)
        field = field_img.get_fdata(dtype=np.float32)
        voxel_size, b0_dir = _grid_of(field_img)
        if self.inputs.method == 'pdf':
            noise_std = None
            if isdefined(self.inputs.in_noise_std):
                noise_img = load_image(self.inputs.in_noise_std, ndim=3)
                check_same_grid(noise_img, self.inputs.in_noise_std, field_img,
                                self.inputs.in_field)
                noise_std = noise_img.get_fdata(dtype=np.float32)
            local = background.pdf(field, mask, voxel_size, b0_dir=b0_dir, noise_std=noise_std)
        else:
            local = background.lbv(field, mask, voxel_size)
        self._results['out_field'] = save_like(local, field_img, runtime.cwd,
                                               'local_field_rad.nii')
        return runtime


# --------------------------------------------------------------------------------------------
# Dipole inversion
# --------------------------------------------------------------------------------------------
class _DipoleInversionInputSpec(_VersionedInputSpec):
    in_field = File(exists=True, mandatory=True, desc='local field, rad per ΔTE')
    in_mask = File(exists=True, mandatory=True, desc='brain mask')
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude (edge mask, weights)')
    in_noise_std = File(exists=True, mandatory=True, desc='field noise std, rad per ΔTE')
    in_csf_mask = File(exists=True, desc='CSF mask for the zero reference')
    delta_te = traits.Float(mandatory=True, desc='echo spacing ΔTE in s')
    field_strength = traits.Float(mandatory=True, desc='B0 in T')
    algorithm = traits.Enum('medi+0', 'medi', 'tkd', usedefault=True, desc='inversion')
    lambda_ = traits.Float(1000.0, usedefault=True, desc='data-fidelity weight')
    lambda_csf = traits.Float(100.0, usedefault=True, desc='CSF uniformity weight (MEDI+0)')
    max_gn_iter = traits.Int(10, usedefault=True, desc='Gauss-Newton iterations, at most')
    gn_tol = traits.Float(0.1, usedefault=True, desc='stop when ||dx||/||x|| is below this')
    cg_max_iter = traits.Int(100, usedefault=True, desc='CG iterations per Gauss-Newton step')
    cg_tol = traits.Float(0.01, usedefault=True, desc='CG relative tolerance')
    edge_fraction = traits.Float(0.9, usedefault=True, desc='fraction of mask voxels as edges')
    smv_radius_mm = traits.Float(0.0, usedefault=True, desc='SMV radius in mm, 0 = off')
    merit = traits.Bool(False, usedefault=True, desc='model-error (MERIT) reweighting')
    tkd_threshold = traits.Float(0.19, usedefault=True, desc='TKD k-space threshold')
    reference = traits.Str('ventricular_csf', usedefault=True,
                           desc='reference region found by the CSF step (for the sidecar)')


class _DipoleInversionOutputSpec(TraitedSpec):
    out_chi = File(exists=True, desc='susceptibility in ppm, reference mean = 0')
    out_report = File(exists=True, desc='JSON: algorithm, parameters, iterations, reference')
    metadata = traits.Dict(desc='sidecar entries for the Chimap')


class DipoleInversion(SimpleInterface):
    """MEDI+0 (default), MEDI or TKD dipole inversion (:mod:`lesionqsm.qsm.medi`)."""

    input_spec = _DipoleInversionInputSpec
    output_spec = _DipoleInversionOutputSpec

    def _run_interface(self, runtime):
        field_img = load_image(self.inputs.in_field, ndim=3)
        mask = load_mask_on_grid(self.inputs.in_mask, field_img, self.inputs.in_field)
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        check_same_grid(mag_img, self.inputs.in_magnitude, field_img, self.inputs.in_field)
        noise_img = load_image(self.inputs.in_noise_std, ndim=3)
        check_same_grid(noise_img, self.inputs.in_noise_std, field_img, self.inputs.in_field)
        csf_mask = None
        if isdefined(self.inputs.in_csf_mask):
            csf_mask = load_mask_on_grid(self.inputs.in_csf_mask, field_img, self.inputs.in_field)
        field = field_img.get_fdata(dtype=np.float32)
        voxel_size, b0_dir = _grid_of(field_img)
        algorithm = self.inputs.algorithm
        parameters = {'field_strength_T': self.inputs.field_strength,
                      'delta_te_s': self.inputs.delta_te}
        if algorithm == 'tkd':
            chi = tkd.tkd(field, mask, voxel_size, b0_dir=b0_dir,
                          field_strength=self.inputs.field_strength,
                          delta_te=self.inputs.delta_te, threshold=self.inputs.tkd_threshold)
            ref_mask = csf_mask if csf_mask is not None and csf_mask.any() else mask
            chi = np.where(mask, chi - chi[ref_mask].mean(), 0.0)
            info = {'reference': self.inputs.reference}
            parameters['tkd_threshold'] = self.inputs.tkd_threshold
        else:
            options = dict(
                lambda_=self.inputs.lambda_, max_gn_iter=self.inputs.max_gn_iter,
                gn_tol=self.inputs.gn_tol, cg_max_iter=self.inputs.cg_max_iter,
                cg_tol=self.inputs.cg_tol, edge_fraction=self.inputs.edge_fraction,
                smv_radius_mm=self.inputs.smv_radius_mm or None, merit=self.inputs.merit)
            common = dict(b0_dir=b0_dir, noise_std=noise_img.get_fdata(dtype=np.float32),
                          field_strength=self.inputs.field_strength,
                          delta_te=self.inputs.delta_te)
            magnitude = mag_img.get_fdata(dtype=np.float32)
            if algorithm == 'medi+0':
                chi, info = medi.medi_plus_zero(field, mask, magnitude, voxel_size,
                                                csf_mask=csf_mask,
                                                lambda_csf=self.inputs.lambda_csf,
                                                **common, **options)
                parameters['lambda_csf'] = self.inputs.lambda_csf
            else:
                chi, info = medi.medi(field, mask, magnitude, voxel_size, **common, **options)
            parameters.update({k: v for k, v in options.items()})
        # the solver says 'csf' or 'whole_brain'; the CSF step names which CSF it found
        solver_reference = info.get('reference', 'csf') if isinstance(info, dict) else 'csf'
        reference = 'whole_brain' if solver_reference == 'whole_brain' \
            else self.inputs.reference
        metadata = {
            'Units': 'ppm',
            'Algorithm': {'medi+0': 'MEDI+0', 'medi': 'MEDI', 'tkd': 'TKD'}[algorithm],
            'AlgorithmParameters': parameters,
            'ReferenceRegion': reference,
            'SusceptibilitySign': 'paramagnetic positive',
            'AlgorithmVersion': self.inputs.algorithm_version,
        }
        self._results['out_chi'] = save_like(np.where(mask, chi, 0.0), field_img, runtime.cwd,
                                             'chi_ppm.nii')
        report = Path(runtime.cwd) / 'inversion_report.json'
        report.write_text(json.dumps({'metadata': metadata, 'info': _jsonable(info)}, indent=2))
        self._results['out_report'] = str(report)
        self._results['metadata'] = metadata
        return runtime


def _jsonable(value):
    """Keep the JSON-serialisable part of a solver's info dictionary."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f'array{value.shape}'
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
