"""Deep grey nuclei relative to white matter, reconstructed against synth truth (shared by the
session and field-of-view tests)."""

import nibabel as nb
import numpy as np

#: Labels of the synth ``desc-tissue_dseg``.
NUCLEI = {'caudate': 7, 'putamen': 8, 'pallidum': 9, 'thalamus': 10}
WHITE_MATTER = 5


def nuclei_contrasts(anat, truth_dir, prefix):
    """Measured and true nuclei-minus-white-matter χ (ppb) inside the chain's brain mask.

    Parameters
    ----------
    anat : Path
        The visit's derivatives folder (``*_Chimap.nii.gz``, ``*_desc-brain_mask.nii.gz``).
    truth_dir : Path
        The visit's ground-truth folder (``*_Chimap.nii.gz``, ``*_desc-tissue_dseg.nii.gz``).
    prefix : str
        ``sub-<label>_ses-<label>``.

    Returns
    -------
    measured, expected : list of float
        One value per nucleus of :data:`NUCLEI`.
    """
    chi = nb.load(anat / f'{prefix}_Chimap.nii.gz').get_fdata()
    mask = nb.load(anat / f'{prefix}_desc-brain_mask.nii.gz').get_fdata() > 0
    truth = nb.load(truth_dir / f'{prefix}_Chimap.nii.gz').get_fdata()
    tissue = nb.load(truth_dir / f'{prefix}_desc-tissue_dseg.nii.gz').get_fdata()
    wm = (tissue == WHITE_MATTER) & mask
    measured, expected = [], []
    for label in NUCLEI.values():
        roi = (tissue == label) & mask
        measured.append(1000 * (chi[roi].mean() - chi[wm].mean()))
        expected.append(1000 * (truth[roi].mean() - truth[wm].mean()))
    return measured, expected


def slope_and_order(measured, expected):
    """Regression slope of measured on true contrasts, and whether the nuclei keep their
    order."""
    return (float(np.polyfit(expected, measured, 1)[0]),
            np.argsort(measured).tolist() == np.argsort(expected).tolist())
