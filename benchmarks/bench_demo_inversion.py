"""How much of the demo's lesion error the inversion makes alone: MEDI+0 on the true local field.

Run, after a demo run that kept its folder::

    .venv/bin/python benchmarks/bench_demo_accuracy.py --keep DIR
    .venv/bin/python benchmarks/bench_demo_inversion.py DIR [--lambdas 1000 3000 10000]

For every subject's baseline visit it takes the chain's own inputs of the dipole inversion
(mask, magnitude, noise, ventricular CSF mask: nipype's cache in ``DIR/work``) and replaces the
local field by the true one, the field of the ground-truth χ inside the chain's mask (no noise,
no background left).  Plain MEDI+0 (no SMV, no outside sources) inverts it at each λ.  Per
lesion it prints the contrast, ppb: the mean over the lesion's ROI (the chain's own, fraction
> 0.5) minus the mean over the true white matter 1-5 mm around it, for the truth, for the
chain's map and for each λ.  What the true field still loses is the regularisation's, at the
demo's voxel size.
"""

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi

from lesionqsm.interfaces.lesions import read_fractions
from lesionqsm.lesions.measures import SUPPORT_FRACTION
from lesionqsm.qsm import medi
from lesionqsm.qsm.constants import ppm_to_radians
from lesionqsm.qsm.dipole import forward_field
from lesionqsm.qsm.geometry import b0_direction, voxel_sizes

#: Label of white matter in the synth cohort's ``desc-tissue_dseg``.
WHITE_MATTER = 5


def _load(path):
    return np.asanyarray(nib.load(str(path)).dataobj)


def lesion_rois(fractions_file, reference_img, reference_file):
    """{lesion id: ROI} from the chain's lesion fractions (fraction > 0.5), and where any lesion
    has support (kept out of every white-matter shell, as in the lesion stage)."""
    fractions = read_fractions(fractions_file, reference_img, reference_file)
    rois = {lesion_id: f > 0.5 for lesion_id, f in fractions.items()}
    support = np.any([f > SUPPORT_FRACTION for f in fractions.values()], axis=0)
    return rois, support


def contrast_ppb(chi_ppm, roi, shell):
    """Mean χ over ``roi`` minus the mean over ``shell``, ppb (χ in ppm)."""
    return 1000.0 * (float(chi_ppm[roi].mean()) - float(chi_ppm[shell].mean()))


def baseline_visit(root, subject_wf, lambdas):
    """Rows (subject, lesion, voxels, truth, chain, λ...) for one subject's baseline visit."""
    from nipype.utils.filemanip import loadpkl

    qsm_wf = subject_wf / 'ses_01_qsm_wf'
    inputs = loadpkl(qsm_wf / 'invert_dipole' / '_inputs.pklz')
    subject = 'sub-' + subject_wf.name.split('_')[1]
    truth_dir = root / 'bids' / 'derivatives' / 'groundtruth' / subject / 'ses-01' / 'anat'
    field_img = nib.load(inputs['in_field'])
    voxel_size = voxel_sizes(field_img.affine)
    b0_dir = b0_direction(field_img.affine)
    mask = _load(inputs['in_mask']) > 0
    true_chi = _load(truth_dir / f'{subject}_ses-01_Chimap.nii.gz').astype(np.float32)
    tissue = _load(truth_dir / f'{subject}_ses-01_desc-tissue_dseg.nii.gz')
    true_field = ppm_to_radians(forward_field(np.where(mask, true_chi, 0), voxel_size,
                                              b0_dir=b0_dir),
                                field_strength=inputs['field_strength'],
                                delta_te=inputs['delta_te'])
    true_field = np.where(mask, true_field, 0).astype(np.float32)
    maps = {'truth': true_chi, 'chain': _load(qsm_wf / 'invert_dipole' / 'chi_ppm.nii')}
    magnitude = _load(inputs['in_magnitude'])
    noise_std = _load(inputs['in_noise_std'])
    csf_mask = _load(inputs['in_csf_mask']) > 0
    for lam in lambdas:
        maps[f'lambda {lam:g}'], _ = medi.medi_plus_zero(
            true_field, mask, magnitude, voxel_size, b0_dir=b0_dir, noise_std=noise_std,
            csf_mask=csf_mask, field_strength=inputs['field_strength'],
            delta_te=inputs['delta_te'], lambda_=lam)
    rois, any_lesion = lesion_rois(
        subject_wf / 'ses_01_lesions_to_baseline' / 'lesion_fractions.nii', field_img,
        inputs['in_field'])
    rows = []
    for lesion_id, roi in rois.items():
        distance = ndi.distance_transform_edt(~roi, sampling=voxel_size)
        shell = ((distance > 1) & (distance <= 5) & (tissue == WHITE_MATTER) & ~any_lesion
                 & mask)
        rows.append([subject, lesion_id, int(roi.sum())]
                    + [contrast_ppb(chi, roi, shell) for chi in maps.values()])
    return list(maps), rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', type=Path, help='folder kept by bench_demo_accuracy --keep')
    parser.add_argument('--lambdas', type=float, nargs='+', default=[1000.0, 3000.0, 10000.0])
    args = parser.parse_args(argv)
    subject_wfs = sorted((args.root / 'work' / 'lesionqsm_wf').glob('sub_*_wf'))
    if not subject_wfs:
        print(f'{args.root}/work: no participant-level work directory', file=sys.stderr)
        return 1
    names, rows = None, []
    for subject_wf in subject_wfs:
        names, subject_rows = baseline_visit(args.root, subject_wf, args.lambdas)
        rows += subject_rows
    print('lesion contrast (ROI - white matter 1-5 mm around), ppb, baseline visits')
    print('subject lesion voxels ' + ' '.join(f'{n:>12s}' for n in names))
    for subject, lesion_id, voxels, *values in rows:
        print(f'{subject:7s} {lesion_id:>6d} {voxels:6d} '
              + ' '.join(f'{v:12.2f}' for v in values))
    values = np.array([r[3:] for r in rows])
    print('mean error against the truth: ' + ', '.join(
        f'{n} {np.mean(values[:, k] - values[:, 0]):+.2f}' for k, n in enumerate(names)
        if k > 0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
