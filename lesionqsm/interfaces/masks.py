"""Brain masks made elsewhere: a user's mask from ``--derivatives``, or FSL BET's.

Both end in :func:`lesionqsm.qsm.masking.make_brain_mask` (the same plausibility checks and
sidecar record as the automatic mask); they differ in where the mask comes from:

- :class:`UserBrainMask`: a ``*_desc-brain_mask.nii.gz`` on any grid, resampled to the GRE grid
  through the two images' world coordinates (trilinear, then ``>= 0.5``: nearest neighbour
  would shift the edge by up to half a voxel of the coarser grid);
- :class:`BETBrainMask`: ``bet`` run on the root-sum-of-squares magnitude through
  :class:`nipype.interfaces.fsl.BET` (``--brain-mask bet``; needs FSL on PATH).
"""

import re
import shutil
from pathlib import Path

import numpy as np
from nipype.interfaces import fsl
from nipype.interfaces.base import File, traits
from scipy import ndimage

from ..bids.images import load_image
from ..qsm.geometry import voxel_sizes
from ..qsm.masking import MaskOptions, make_brain_mask
from .qsm import _BrainMaskOutputSpec, _StepInputSpec, _StepInterface

#: Default BET fractional intensity threshold (FSL's default).
BET_FRACTION = 0.5


def bet_available():
    """Whether FSL's ``bet`` is on PATH."""
    return shutil.which('bet') is not None


def find_brain_mask(derivatives_dir, subject, session):
    """The user's brain mask of one visit in a derivatives folder, or None.

    Looks for ``sub-<subject>[/ses-<session>]/anat/sub-<subject>[_ses-<session>]*
    _desc-brain_mask.nii[.gz]`` without a ``space-`` entity (a template-space mask is not on
    the visit's scanner grid); a file without the session entity serves every visit.

    Parameters
    ----------
    derivatives_dir : str or Path
    subject, session : str
        Labels without ``sub-``/``ses-``.

    Returns
    -------
    Path or None

    Raises
    ------
    ValueError
        Several files match the visit (the message names them).
    """
    root = Path(derivatives_dir) / f'sub-{subject}'
    if not root.is_dir():
        return None
    pattern = re.compile(rf'^sub-{re.escape(subject)}(_ses-(?P<ses>[A-Za-z0-9]+))?'
                         r'(_(?!space-)[a-z]+-[A-Za-z0-9]+)*_desc-brain_mask\.nii(\.gz)?$')
    by_session, general = [], []
    for path in sorted(root.rglob('*_desc-brain_mask.nii*')):
        match = pattern.match(path.name)
        if not match or 'space-' in path.name:
            continue
        if match.group('ses') == session:
            by_session.append(path)
        elif match.group('ses') is None:
            general.append(path)
    found = by_session or general
    if len(found) > 1:
        raise ValueError(f'sub-{subject} ses-{session}: {len(found)} brain masks in '
                         f'{derivatives_dir}: {", ".join(str(p) for p in found)}; keep one')
    return found[0] if found else None


def resample_mask(mask_img, reference_img):
    """A mask on another grid, on ``reference_img``'s grid (world coordinates).

    Parameters
    ----------
    mask_img : nibabel image, 3-D
        Any grid; voxels > 0 are inside.
    reference_img : nibabel image
        The target grid (its first 3 dimensions).

    Returns
    -------
    bool ndarray, shape ``reference_img.shape[:3]``
        Same grid: the mask as is.  Else trilinear interpolation of the 0/1 mask at each
        target voxel's centre, ``>= 0.5`` (the outer half voxel of the mask's field of view
        takes its edge voxel's value); outside the mask's field of view: False.
    """
    data = (np.asanyarray(mask_img.dataobj) > 0)
    shape = reference_img.shape[:3]
    if data.shape == shape and np.allclose(mask_img.affine, reference_img.affine, atol=1e-4):
        return data
    to_mask = np.linalg.inv(mask_img.affine) @ reference_img.affine
    coords = np.indices(shape, dtype=np.float64).reshape(3, -1)
    coords = to_mask[:3, :3] @ coords + to_mask[:3, 3:4]
    # inside the mask's field of view: within half a voxel of its outer voxel centres
    inside = np.all((coords >= -0.5) & (coords <= np.reshape(data.shape, (3, 1)) - 0.5), axis=0)
    values = ndimage.map_coordinates(data.astype(np.float32), coords, order=1, mode='nearest')
    return ((values >= 0.5) & inside).reshape(shape)


def bet_interface(in_file, out_file, *, frac=BET_FRACTION):
    """The :class:`nipype.interfaces.fsl.BET` call of :class:`BETBrainMask` (mask only)."""
    return fsl.BET(in_file=str(in_file), out_file=str(out_file), mask=True, no_output=True,
                   frac=float(frac), output_type='NIFTI_GZ')


class _UserBrainMaskInputSpec(_StepInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude (the GRE grid)')
    in_mask = File(exists=True, mandatory=True, desc="the user's brain mask, any grid")


class UserBrainMask(_StepInterface):
    """A user's brain mask resampled to the GRE grid, then
    :func:`lesionqsm.qsm.masking.make_brain_mask` (its checks and sidecar record)."""

    input_spec = _UserBrainMaskInputSpec
    output_spec = _BrainMaskOutputSpec
    options_class = MaskOptions

    def _run_interface(self, runtime):
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        mask_img = load_image(self.inputs.in_mask, ndim=3)
        mask = resample_mask(mask_img, mag_img)
        result = make_brain_mask(mag_img.get_fdata(dtype=np.float32), voxel_sizes(mag_img.affine),
                                 self._options(), user_mask=mask, source='user',
                                 source_file=self.inputs.in_mask)
        self._save_mask(result, mag_img, runtime)
        return runtime


class _BETBrainMaskInputSpec(_StepInputSpec):
    in_magnitude = File(exists=True, mandatory=True, desc='3-D magnitude (the GRE grid)')
    frac = traits.Float(BET_FRACTION, usedefault=True, desc='BET fractional intensity threshold')


class BETBrainMask(_StepInterface):
    """FSL BET on the magnitude, then :func:`lesionqsm.qsm.masking.make_brain_mask`."""

    input_spec = _BETBrainMaskInputSpec
    output_spec = _BrainMaskOutputSpec
    options_class = MaskOptions

    def _run_interface(self, runtime):
        mag_img = load_image(self.inputs.in_magnitude, ndim=3)
        node = bet_interface(self.inputs.in_magnitude, Path(runtime.cwd) / 'bet.nii.gz',
                             frac=self.inputs.frac)
        try:
            bet_result = node.run(cwd=runtime.cwd)
        except Exception as exc:  # nipype wraps the tool's stderr into varied exception types
            raise RuntimeError(f'{self.inputs.in_magnitude}: FSL bet failed: {exc}') from exc
        mask_file = bet_result.outputs.mask_file
        mask = resample_mask(load_image(mask_file, ndim=3), mag_img)
        result = make_brain_mask(mag_img.get_fdata(dtype=np.float32), voxel_sizes(mag_img.affine),
                                 self._options(), user_mask=mask, source='bet')
        result.decisions['bet_command'] = node.cmdline
        self._save_mask(result, mag_img, runtime)
        return runtime
