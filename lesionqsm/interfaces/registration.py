"""nipype interfaces for rigid coregistration and resampling: FSL FLIRT or built-in.

``Coregister`` runs ``flirt`` through :class:`nipype.interfaces.fsl.FLIRT` (6 dof, correlation
ratio, as in Zhang et al. 2019) or the SimpleITK engine of :mod:`lesionqsm.registration`; the
engine is chosen once, when the workflow is built
(:func:`lesionqsm.registration.resolve_engine`), and is an input of every node, so nipype's
cache knows which engine made a result.  Both write the same outputs with the same meaning:
the moving image resampled onto the reference grid, and a 4×4 text matrix in FLIRT's
convention (input scaled-voxel mm to reference scaled-voxel mm, see
:mod:`lesionqsm.registration.fsl_matrix`).  ``ApplyTransform`` resamples with such a matrix
(``flirt -applyxfm`` or the same convention in scipy); ``ConcatenateTransforms`` does
``convert_xfm``'s ``-concat``.

Memory: every node's need is given by :func:`estimate_mem_gb` from the image shapes.
"""

import json
from pathlib import Path

import numpy as np
from nipype.interfaces import fsl
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..bids.images import ImageError, atomic_write_text, check_same_grid, load_image, save_like
from ..registration import ENGINES, fsl_matrix, register_builtin, registration_summary, rigid
from ..registration.engine import grid_geometry

#: Bump when registration or resampling results change (reruns nipype caches).
ALGORITHM_VERSION = f'2+engine{rigid.ENGINE_VERSION}'

__all__ = [
    'ApplyTransform',
    'ConcatenateTransforms',
    'Coregister',
    'estimate_mem_gb',
    'flirt_interface',
]


def estimate_mem_gb(shape, ref_shape=None):
    """Memory in GB that one registration or resampling node needs.

    Parameters
    ----------
    shape : tuple of int
        Shape of the moving (input) image.
    ref_shape : tuple of int, optional
        Shape of the reference grid (default: ``shape``).

    Returns
    -------
    float
        At least 0.25 GB: 0.2 GB for the Python process with nipype, nibabel and SimpleITK
        loaded (0.17 GB measured), plus ~64 bytes per moving voxel (float32 arrays, the
        SimpleITK copy, smoothed pyramid levels, the gradient image) and ~48 bytes per
        reference voxel (copies, sampling grid, resampled output).  Measured peaks of a whole
        ``Coregister`` run: 0.22 GB for GRE 128×128×40 onto itself (estimate 0.27) and 0.32 GB
        for FLAIR 150×184×120 onto it (estimate 0.43).  FLIRT needs less than this.
    """
    ref_shape = shape if ref_shape is None else ref_shape
    n_moving = float(np.prod(shape[:3]))
    n_ref = float(np.prod(ref_shape[:3]))
    return max(0.25, (64 * n_moving + 48 * n_ref) / 1024**3 + 0.2)


def flirt_interface(in_file, reference, *, out_file, out_matrix_file, dof=6, cost='corratio',
                    interp='trilinear', ref_weight=None):
    """The :class:`nipype.interfaces.fsl.FLIRT` node that ``Coregister`` runs (FSL engine)."""
    node = fsl.FLIRT(in_file=str(in_file), reference=str(reference), out_file=str(out_file),
                     out_matrix_file=str(out_matrix_file), dof=int(dof), cost=cost,
                     interp=interp, output_type='NIFTI_GZ')
    if ref_weight is not None:
        node.inputs.ref_weight = str(ref_weight)
    return node


def _applyxfm_interface(in_file, reference, in_matrix_file, *, out_file, interp):
    return fsl.ApplyXFM(in_file=str(in_file), reference=str(reference),
                        in_matrix_file=str(in_matrix_file), apply_xfm=True,
                        out_file=str(out_file),
                        out_matrix_file=str(Path(out_file).parent / 'applied.mat'),
                        interp=interp, output_type='NIFTI_GZ')


def _zooms(img):
    return tuple(float(z) for z in img.header.get_zooms()[:3])


def _geometry(moving_img, reference_img):
    return grid_geometry(moving_img.shape, moving_img.affine, reference_img.shape,
                         reference_img.affine, in_zooms=_zooms(moving_img),
                         ref_zooms=_zooms(reference_img))


def _run_nipype(node, what, path):
    try:
        return node.run()
    except Exception as exc:  # nipype wraps the tool's stderr into varied exception types
        raise RuntimeError(f'{path}: {what} failed: {exc}') from exc


def _write_report(cwd, name, report):
    path = Path(cwd) / name
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=True) + '\n')
    return str(path)


# --------------------------------------------------------------------------------------------
# Coregister
# --------------------------------------------------------------------------------------------
class _CoregisterInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc='moving 3-D image')
    reference = File(exists=True, mandatory=True, desc='reference (fixed) 3-D image')
    reference_mask = File(exists=True, desc='restrict the cost to this mask on the reference grid '
                          '(FLIRT -refweight)')
    dof = traits.Enum(6, 7, 9, 12, usedefault=True,
                      desc='degrees of freedom; the built-in engine does 6 (rigid) only')
    cost = traits.Enum('corratio', 'mutualinfo', usedefault=True,
                       desc="FLIRT cost; the built-in engine optimises Mattes MI for both")
    engine = traits.Enum(*ENGINES, mandatory=True,
                         desc='engine, chosen when the workflow is built (resolve_engine)')
    interp = traits.Enum('trilinear', 'nearestneighbour', 'spline', usedefault=True,
                         desc='interpolation of the resampled output')
    seed = traits.Int(20190401, usedefault=True, desc='metric sampling seed (built-in engine)')
    n_threads = traits.Range(low=1, value=1, usedefault=True,
                             desc='ITK threads; 1 gives bit-identical results run to run')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True,
                                   desc='changes when the algorithm changes; reruns caches')


class _CoregisterOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc='moving image resampled onto the reference grid')
    out_matrix_file = File(exists=True, desc='4x4 FLIRT-convention matrix, moving to reference')
    out_report = File(exists=True, desc='JSON: engine, cost, final metric, parameters')
    engine = traits.Str(desc="engine that ran: 'flirt' or 'builtin'")


class Coregister(SimpleInterface):
    """Rigid registration of ``in_file`` to ``reference`` by FLIRT or the built-in engine.

    Memory: ``estimate_mem_gb(moving.shape, reference.shape)``; threads: ``n_threads``.
    """

    input_spec = _CoregisterInputSpec
    output_spec = _CoregisterOutputSpec

    def _run_interface(self, runtime):
        in_file, reference = self.inputs.in_file, self.inputs.reference
        moving_img = load_image(in_file, ndim=3)
        reference_img = load_image(reference, ndim=3)
        mask = None
        if isdefined(self.inputs.reference_mask):
            mask_img = load_image(self.inputs.reference_mask, ndim=3)
            check_same_grid(mask_img, self.inputs.reference_mask, reference_img, reference)
            mask = np.asanyarray(mask_img.dataobj) > 0
        engine = self.inputs.engine
        if engine == 'builtin' and self.inputs.dof != 6:
            raise ValueError(f'{in_file}: the built-in engine is rigid (dof=6); dof='
                             f'{self.inputs.dof} needs FSL FLIRT')
        cwd = Path(runtime.cwd)
        out_file = cwd / 'registered.nii.gz'
        out_matrix = cwd / 'moving_to_reference.mat'
        geometry = _geometry(moving_img, reference_img)
        report = {'engine': engine, 'algorithm_version': self.inputs.algorithm_version,
                  'in_file': str(in_file), 'reference': str(reference),
                  'dof': int(self.inputs.dof), 'cost': self.inputs.cost,
                  'interp': self.inputs.interp}
        if engine == 'flirt':
            node = flirt_interface(in_file, reference, out_file=out_file,
                                   out_matrix_file=out_matrix, dof=self.inputs.dof,
                                   cost=self.inputs.cost, interp=self.inputs.interp,
                                   ref_weight=self.inputs.reference_mask if mask is not None
                                   else None)
            report['command'] = node.cmdline
            _run_nipype(node, 'FLIRT', in_file)
            matrix = fsl_matrix.read_fsl_matrix(out_matrix)
            resampled = load_image(out_file, ndim=3).get_fdata(dtype=np.float32)
            report.update({'metric': f'FLIRT {self.inputs.cost}', 'metric_value': None})
        else:
            matrix, resampled, engine_report = register_builtin(
                reference_img.get_fdata(dtype=np.float32), reference_img.affine,
                moving_img.get_fdata(dtype=np.float32), moving_img.affine, geometry=geometry,
                reference_mask=mask, interp=self.inputs.interp, seed=self.inputs.seed,
                n_threads=self.inputs.n_threads)
            fsl_matrix.write_fsl_matrix(out_matrix, matrix)
            save_like(resampled, reference_img, cwd, out_file.name)
            report.update(engine_report)
        report.update(registration_summary(matrix, reference_img.get_fdata(dtype=np.float32),
                                           resampled, geometry=geometry, reference_mask=mask))
        self._results['out_file'] = str(out_file)
        self._results['out_matrix_file'] = str(out_matrix)
        self._results['out_report'] = _write_report(cwd, 'registration_report.json', report)
        self._results['engine'] = engine
        return runtime


def _resample(moving_img, reference_img, matrix, interp):
    """Resample a loaded image with a FLIRT matrix; nearest neighbour keeps the stored dtype."""
    geometry = _geometry(moving_img, reference_img)
    if interp == 'nearestneighbour':
        data = np.asanyarray(moving_img.dataobj)
        dtype = data.dtype
    else:
        data = moving_img.get_fdata(dtype=np.float32)
        dtype = np.float32
    out = rigid.resample_fsl(data, moving_img.affine, reference_img.shape[:3],
                                    reference_img.affine, matrix, interp=interp,
                                    in_zooms=geometry['in_zooms'],
                                    ref_zooms=geometry['ref_zooms'])
    return out, dtype


# --------------------------------------------------------------------------------------------
# ApplyTransform
# --------------------------------------------------------------------------------------------
class _ApplyTransformInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc='3-D image to resample')
    reference = File(exists=True, mandatory=True, desc='image whose grid the output takes')
    in_matrix_file = File(exists=True, mandatory=True,
                          desc='4x4 FLIRT-convention matrix, in_file to reference')
    interp = traits.Enum('trilinear', 'nearestneighbour', 'spline', usedefault=True,
                         desc='nearestneighbour for label maps (keeps integer dtype)')
    engine = traits.Enum(*ENGINES, mandatory=True,
                         desc="'flirt' (flirt -applyxfm) or 'builtin' (scipy), chosen when the "
                              'workflow is built')
    algorithm_version = traits.Str(ALGORITHM_VERSION, usedefault=True,
                                   desc='changes when the algorithm changes; reruns caches')


class _ApplyTransformOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc='in_file on the reference grid')
    engine = traits.Str(desc="engine that ran: 'flirt' or 'builtin'")


class ApplyTransform(SimpleInterface):
    """Resample ``in_file`` onto ``reference`` through a FLIRT matrix (``flirt -applyxfm``).

    Outside the input's field of view the output is 0.  Memory:
    ``estimate_mem_gb(in_file.shape, reference.shape)``.
    """

    input_spec = _ApplyTransformInputSpec
    output_spec = _ApplyTransformOutputSpec

    def _run_interface(self, runtime):
        in_file = self.inputs.in_file
        moving_img = load_image(in_file, ndim=3)
        reference_img = load_image(self.inputs.reference, ndim=3)
        matrix = fsl_matrix.read_fsl_matrix(self.inputs.in_matrix_file)
        engine = self.inputs.engine
        out_file = Path(runtime.cwd) / 'resampled.nii.gz'
        if engine == 'flirt':
            node = _applyxfm_interface(in_file, self.inputs.reference,
                                       self.inputs.in_matrix_file, out_file=out_file,
                                       interp=self.inputs.interp)
            _run_nipype(node, 'flirt -applyxfm', in_file)
        else:
            try:
                data, dtype = _resample(moving_img, reference_img, matrix, self.inputs.interp)
            except ValueError as exc:
                raise ImageError(f'{in_file}: {exc}') from exc
            save_like(data, reference_img, runtime.cwd, out_file.name, dtype=dtype)
        self._results['out_file'] = str(out_file)
        self._results['engine'] = engine
        return runtime


# --------------------------------------------------------------------------------------------
# Matrix algebra
# --------------------------------------------------------------------------------------------
class _ConcatenateInputSpec(BaseInterfaceInputSpec):
    in_a_to_b = File(exists=True, mandatory=True, desc='FLIRT matrix A to B')
    in_b_to_c = File(exists=True, mandatory=True, desc='FLIRT matrix B to C')


class _MatrixOutputSpec(TraitedSpec):
    out_matrix_file = File(exists=True, desc='4x4 FLIRT-convention matrix')


class ConcatenateTransforms(SimpleInterface):
    """A→C from A→B and B→C (``convert_xfm -concat``); see :func:`fsl_matrix.compose_fsl`."""

    input_spec = _ConcatenateInputSpec
    output_spec = _MatrixOutputSpec

    def _run_interface(self, runtime):
        composed = fsl_matrix.compose_fsl(fsl_matrix.read_fsl_matrix(self.inputs.in_a_to_b),
                                          fsl_matrix.read_fsl_matrix(self.inputs.in_b_to_c))
        self._results['out_matrix_file'] = fsl_matrix.write_fsl_matrix(
            Path(runtime.cwd) / 'a_to_c.mat', composed)
        return runtime


class _IdentityTransformInputSpec(BaseInterfaceInputSpec):
    reference = File(exists=True, mandatory=True, desc='image the identity transform maps to')


class _IdentityTransformOutputSpec(TraitedSpec):
    out_matrix_file = File(exists=True, desc='4x4 identity in FSL convention')


class IdentityTransform(SimpleInterface):
    """Write the identity FSL matrix (the baseline visit's transform to itself)."""

    input_spec = _IdentityTransformInputSpec
    output_spec = _IdentityTransformOutputSpec

    def _run_interface(self, runtime):
        load_image(self.inputs.reference, ndim=3)  # the reference must be a readable image
        self._results['out_matrix_file'] = fsl_matrix.write_fsl_matrix(
            Path(runtime.cwd) / 'identity.mat', np.eye(4))
        return runtime
