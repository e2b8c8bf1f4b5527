"""Tiny hand-made BIDS trees (a few voxels per image) for the input-discovery tests."""

import json
from pathlib import Path

import nibabel as nb
import numpy as np

SHAPE = (4, 4, 3)


def write_nifti(path, data=None, *, shape=SHAPE, affine=None, dtype=np.float32):
    """Save a small NIfTI (ones by default) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.ones(shape, dtype=dtype)
    affine = np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine
    nb.save(nb.Nifti1Image(np.asarray(data, dtype=dtype), affine), str(path))
    return path


def write_json(path, payload):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def write_tsv(path, header, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['\t'.join(header)] + ['\t'.join(str(v) for v in row) for row in rows]
    path.write_text('\n'.join(lines) + '\n')
    return path


class TinyBIDS:
    """Builder of a small raw BIDS dataset with optional lesion annotations."""

    def __init__(self, root):
        self.root = Path(root)
        write_json(self.root / 'dataset_description.json',
                   {'Name': 'tiny', 'BIDSVersion': '1.10.0'})
        self.rng = np.random.default_rng(0)

    def anat_dir(self, sub, ses):
        base = self.root / f'sub-{sub}'
        return (base / f'ses-{ses}' if ses is not None else base) / 'anat'

    def prefix(self, sub, ses):
        return f'sub-{sub}' + (f'_ses-{ses}' if ses is not None else '')

    def megre(self, sub, ses, *, n_echoes=3, te0=0.004, dte=0.005, phase=True, echo_pad=1,
              field_strength=3.0, shape=SHAPE, affine=None, units='rad', suffix='MEGRE',
              sidecars=True, phase_data=None):
        """Write magnitude (+ phase) echoes; returns {'mag': [...], 'phase': [...]}."""
        out = {'mag': [], 'phase': []}
        parts = ['mag', 'phase'] if phase else ['mag']
        for i in range(1, n_echoes + 1):
            echo = str(i).zfill(echo_pad)
            for part in parts:
                stem = f'{self.prefix(sub, ses)}_echo-{echo}_part-{part}_{suffix}'
                if suffix != 'MEGRE':
                    stem = f'{self.prefix(sub, ses)}_part-{part}_{suffix}'
                if part == 'mag':
                    data = 1.0 + self.rng.random(shape)
                elif phase_data is not None:
                    data = phase_data
                else:
                    data = self.rng.uniform(-np.pi, np.pi, shape)
                path = write_nifti(self.anat_dir(sub, ses) / f'{stem}.nii.gz', data,
                                   shape=shape, affine=affine)
                if sidecars:
                    meta = {'EchoTime': round(te0 + (i - 1) * dte, 6)}
                    if field_strength is not None:
                        meta['MagneticFieldStrength'] = field_strength
                    if part == 'phase' and units is not None:
                        meta['Units'] = units
                    write_json(path.with_name(f'{stem}.json'), meta)
                out[part].append(path)
        return out

    def anat(self, sub, ses, suffix, *, ce=None, shape=SHAPE, affine=None):
        entity = f'_ce-{ce}' if ce else ''
        return write_nifti(self.anat_dir(sub, ses) / f'{self.prefix(sub, ses)}{entity}_'
                           f'{suffix}.nii.gz', shape=shape, affine=affine)

    def sessions_tsv(self, sub, rows):
        return write_tsv(self.root / f'sub-{sub}' / f'sub-{sub}_sessions.tsv',
                         ['session_id', 'acq_time'], rows)

    @property
    def lesions_dir(self):
        return self.root / 'derivatives' / 'lesions'

    def lesions_tsv(self, sub, rows, header=('lesion_id', 'detected_session', 'rim',
                                             'enhancement')):
        write_json(self.lesions_dir / 'dataset_description.json',
                   {'Name': 'lesions', 'BIDSVersion': '1.10.0', 'DatasetType': 'derivative'})
        return write_tsv(self.lesions_dir / f'sub-{sub}' / f'sub-{sub}_lesions.tsv', header,
                         rows)

    def dseg(self, sub, ses, labels, *, shape=SHAPE, affine=None):
        """Label map with ``labels`` placed in distinct voxels along the first axis."""
        data = np.zeros(shape, dtype=np.int16)
        for i, label in enumerate(labels):
            data.flat[i * 5] = label
        path = (self.lesions_dir / f'sub-{sub}' / f'ses-{ses}' / 'anat'
                / f'{self.prefix(sub, ses)}_space-FLAIR_desc-lesions_dseg.nii.gz')
        return write_nifti(path, data, shape=shape, affine=affine, dtype=np.int16)


def standard_subject(bids, sub='01'):
    """Two visits (ses-02 acquired BEFORE ses-01), 3 echoes each, FLAIR, T1w, T1w+Gd, lesions."""
    for ses in ('01', '02'):
        bids.megre(sub, ses)
        bids.anat(sub, ses, 'FLAIR')
        bids.anat(sub, ses, 'T1w')
        bids.anat(sub, ses, 'T1w', ce='gadolinium')
    bids.sessions_tsv(sub, [('ses-01', '2020-07-01T10:00:00'), ('ses-02', '2020-01-01T09:00:00')])
    bids.lesions_tsv(sub, [(1, 'ses-02', 'positive', 'shell'), (2, '01', 'negative', 'nodular')])
    bids.dseg(sub, '02', [1])
    bids.dseg(sub, '01', [1, 2])
