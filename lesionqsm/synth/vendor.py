"""Variants of one synthetic visit as scanners and converters store them.

:func:`write_variant` copies the GRE of one visit of a synthetic cohort (phase in radians) into
a new single-visit subject of the same dataset, stored the way a vendor, a converter or an
acquisition would have left it: phase scaling conventions, one, two or unevenly spaced echoes,
echoes numbered out of TE order or sharing an echo time, a 2-D interleaved acquisition with a
phase offset per slice.  The truth of the source visit (χ, R2*, tissue labels) is copied into
``derivatives/groundtruth`` under the new subject, so the variant is checked against it.

Phase conventions (values as nibabel reads them, ``scl_slope``/``scl_inter`` applied):

========================  =====================================================================
``siemens-dcm2niix``      12-bit 0..4095 stored as uint16 with ``scl_slope = 2``,
                          ``scl_inter = -4096`` (dcm2niix): -4096..4094, ``Units`` arbitrary
``siemens-unsigned``      12-bit 0..4095 without scaling, ``Units`` arbitrary
``philips``               12-bit with Philips' rescale to milliradians (slope 2000π/4096,
                          intercept -1000π): -3141.6..3140.1, no ``Units``
``ge``                    radians × 1000 as int16: -3142..3142, no ``Units``
``float-unit``            float32 φ/π in [-1, 1), ``Units`` arbitrary (observed-span rescale)
``float-tiny``            float32 φ · 0.0037/π (±0.0037), ``Units`` arbitrary: refused
========================  =====================================================================

Examples
--------
>>> from lesionqsm.synth.vendor import write_variant  # doctest: +SKIP
>>> write_variant('bids', 'ge')  # doctest: +SKIP    # writes sub-ge/ses-01 from sub-01/ses-01
"""

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np

from . import bids_writer as bw


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of storing a visit's GRE.

    Attributes
    ----------
    description : str
    phase : str
        Phase storage (a key of :data:`PHASE_STORAGE`).
    echoes : tuple of int or None
        Source echoes kept (1-based), in the order they are numbered; None: all.
    duplicate_te : bool
        The second written echo gets the first one's ``EchoTime``.
    slice_offsets : bool
        2-D interleaved acquisition: a random phase offset per slice (the same for every echo).
    """

    description: str
    phase: str = 'rad'
    echoes: tuple | None = None
    duplicate_te: bool = False
    slice_offsets: bool = False


#: Phase storage: (dtype on disk, scl_slope, scl_inter, sidecar Units or None).
PHASE_STORAGE = {
    'rad': (np.float32, 1.0, 0.0, 'rad'),
    'siemens-dcm2niix': (np.uint16, 2.0, -4096.0, 'arbitrary'),
    'siemens-unsigned': (np.int16, 1.0, 0.0, 'arbitrary'),
    'philips': (np.uint16, 2000 * np.pi / 4096, -1000 * np.pi, None),
    'ge': (np.int16, 1.0, 0.0, None),
    'float-unit': (np.float32, 1.0, 0.0, 'arbitrary'),
    'float-tiny': (np.float32, 1.0, 0.0, 'arbitrary'),
}

VARIANTS = {
    'reference': Variant('the visit as generated: phase in radians, every echo, 3-D'),
    'siemens-dcm2niix': Variant('Siemens 12-bit phase with dcm2niix scaling',
                                phase='siemens-dcm2niix'),
    'siemens-unsigned': Variant('Siemens 12-bit phase 0..4095, unscaled',
                                phase='siemens-unsigned'),
    'philips': Variant('Philips phase rescaled to milliradians', phase='philips'),
    'ge': Variant('GE phase, radians x 1000', phase='ge'),
    'float-unit': Variant('float phase in [-1, 1)', phase='float-unit'),
    'float-tiny': Variant('float phase in +-0.0037 (arbitrary)', phase='float-tiny'),
    'echoes-1': Variant('one echo (source echo 3)', echoes=(3,)),
    'echoes-2': Variant('two echoes (source echoes 1 and 2)', echoes=(1, 2)),
    'echoes-uneven': Variant('three unevenly spaced echoes (source echoes 1, 2, 4)',
                             echoes=(1, 2, 4)),
    'echoes-reversed': Variant('every echo, numbered in decreasing echo time',
                               echoes=(5, 4, 3, 2, 1)),
    'echoes-duplicate-te': Variant('echo 2 labelled with the echo time of echo 1',
                                   duplicate_te=True),
    'slices-2d': Variant('2-D interleaved slices with a phase offset per slice',
                         slice_offsets=True),
}


def stored_phase(phase_rad, storage):
    """Radians in [-π, π) as a convention stores them (the raw values on disk).

    Parameters
    ----------
    phase_rad : float ndarray
        Wrapped phase, rad.
    storage : str
        A key of :data:`PHASE_STORAGE`.

    Returns
    -------
    ndarray
        Raw values, of the storage's dtype; nibabel returns ``raw · scl_slope + scl_inter``.
    """
    phi = np.asarray(phase_rad, dtype=np.float64)
    if storage in ('siemens-dcm2niix', 'siemens-unsigned', 'philips'):
        # 0 ↔ -π, 4096 ↔ +π on a 12-bit scale (+π wraps to 0)
        return (np.rint((phi + np.pi) / (2 * np.pi) * 4096) % 4096).astype(
            PHASE_STORAGE[storage][0])
    if storage == 'ge':
        return np.rint(phi * 1000).astype(np.int16)
    if storage == 'float-unit':
        return (phi / np.pi).astype(np.float32)
    if storage == 'float-tiny':
        return (phi * 0.0037 / np.pi).astype(np.float32)
    if storage == 'rad':
        return phi.astype(np.float32)
    raise ValueError(f'unknown phase storage {storage!r}; choose one of {sorted(PHASE_STORAGE)}')


def _write_scaled(path, raw, affine, slope, inter):
    """A NIfTI whose header carries ``scl_slope``/``scl_inter`` as a converter writes them."""
    img = nb.Nifti1Image(raw, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units('mm', 'sec')
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header['scl_slope'] = slope
    img.header['scl_inter'] = inter
    bw.atomic_write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=4, mtime=0))


def write_variant(bids_dir, variant, *, subject='01', session='01', label=None, seed=0,
                  out_dir=None):
    """Write one visit of ``bids_dir`` as ``variant``, a new single-visit subject.

    Parameters
    ----------
    bids_dir : str or Path
        A synthetic cohort (:func:`lesionqsm.synth.cohort.generate_cohort`, phase in radians).
    variant : str
        A key of :data:`VARIANTS`.
    subject, session : str
        The source visit (labels without ``sub-``/``ses-``).
    label : str, optional
        The new subject's label (default: the variant name without dashes).
    seed : int, optional
        Seed of the slice-wise phase offsets.
    out_dir : str or Path, optional
        The dataset to write into (default ``bids_dir``); given its
        ``dataset_description.json`` from ``bids_dir`` when it has none.

    Returns
    -------
    str
        The new subject's label; its visit keeps the label ``session``.

    Raises
    ------
    ValueError
        Unknown variant, or the source visit has no GRE phase in radians.
    """
    if variant not in VARIANTS:
        raise ValueError(f'unknown variant {variant!r}; choose one of {sorted(VARIANTS)}')
    spec = VARIANTS[variant]
    root = Path(bids_dir)
    label = label or variant.replace('-', '')
    src_dir = root / f'sub-{subject}' / f'ses-{session}' / 'anat'
    src_prefix = f'sub-{subject}_ses-{session}'
    mags = sorted(src_dir.glob(f'{src_prefix}_echo-*_part-mag_MEGRE.nii.gz'),
                  key=lambda p: int(p.name.split('_echo-')[1].split('_')[0]))
    if not mags:
        raise ValueError(f'{src_dir}: no GRE echoes to copy')
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    if not (out / 'dataset_description.json').exists():
        shutil.copy2(root / 'dataset_description.json', out / 'dataset_description.json')
    chosen = spec.echoes or tuple(range(1, len(mags) + 1))
    anat = bw.anat_dir(out, label, session)
    prefix = bw.raw_prefix(label, session)
    dtype, slope, inter, units = PHASE_STORAGE[spec.phase]
    offsets = None
    first_te = None
    for number, source in enumerate(chosen, start=1):
        mag_path = mags[source - 1]
        phase_path = Path(str(mag_path).replace('_part-mag_', '_part-phase_'))
        meta = json.loads(phase_path.with_name(phase_path.name[:-7] + '.json').read_text())
        if meta.get('Units') != 'rad':
            raise ValueError(f'{phase_path}: the source phase must be in radians')
        mag_img = nb.load(mag_path)
        phase = nb.load(phase_path).get_fdata(dtype=np.float32)
        te = float(meta['EchoTime'])
        first_te = te if first_te is None else first_te
        if spec.duplicate_te and number == 2:
            te = first_te
        common = {k: v for k, v in meta.items() if k not in ('EchoTime', 'Units')}
        if spec.slice_offsets:
            if offsets is None:
                rng = np.random.default_rng([seed, 7])
                offsets = rng.uniform(-np.pi, np.pi, phase.shape[2]).astype(np.float32)
            phase = np.angle(np.exp(1j * (phase + offsets[None, None, :]))).astype(np.float32)
            n_slices = phase.shape[2]
            order = list(range(0, n_slices, 2)) + list(range(1, n_slices, 2))
            timing = np.empty(n_slices)
            timing[order] = np.arange(n_slices) * (meta.get('RepetitionTime', 1.0) / n_slices)
            common.update(MRAcquisitionType='2D', SliceTiming=[round(t, 6) for t in timing])
        stem = anat / f'{prefix}_echo-{number}_part-mag_MEGRE'
        bw.write_nifti(f'{stem}.nii.gz', np.asanyarray(mag_img.dataobj), mag_img.affine,
                       dtype=np.int16)
        bw.write_json(f'{stem}.json', {**common, 'EchoTime': te})
        stem = anat / f'{prefix}_echo-{number}_part-phase_MEGRE'
        _write_scaled(f'{stem}.nii.gz', stored_phase(phase, spec.phase), mag_img.affine,
                      slope, inter)
        bw.write_json(f'{stem}.json', {**common, 'EchoTime': te,
                                       **({'Units': units} if units else {})})
    _copy_truth(root, out, subject, session, label)
    return label


def _copy_truth(root, out, subject, session, label):
    """The source visit's ground truth, renamed for the new subject (when it exists)."""
    src = root / 'derivatives' / 'groundtruth' / f'sub-{subject}' / f'ses-{session}' / 'anat'
    if not src.is_dir():
        return
    dst = out / 'derivatives' / 'groundtruth' / f'sub-{label}' / f'ses-{session}' / 'anat'
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        shutil.copy2(path, dst / path.name.replace(f'sub-{subject}_', f'sub-{label}_', 1))


def main(argv=None):
    """``python -m lesionqsm.synth.vendor BIDS_DIR VARIANT... [--out-dir DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog='python -m lesionqsm.synth.vendor',
        description='Write one visit of a synthetic cohort as scanners store it, one new '
                    'subject per variant.')
    parser.add_argument('bids_dir', help='a cohort written by `lesionqsm synth`')
    parser.add_argument('variants', nargs='+', choices=sorted(VARIANTS), metavar='VARIANT',
                        help=f'one or more of: {", ".join(VARIANTS)}')
    parser.add_argument('--subject', default='01', help='source subject (default 01)')
    parser.add_argument('--session', default='01', help='source session (default 01)')
    parser.add_argument('--out-dir', help='dataset to write into (default: bids_dir)')
    args = parser.parse_args(argv)
    for name in args.variants:
        try:
            label = write_variant(args.bids_dir, name, subject=args.subject,
                                  session=args.session, out_dir=args.out_dir)
        except (OSError, ValueError) as exc:
            parser.exit(2, f'{parser.prog}: error: {exc}\n')
        print(f'{name}: sub-{label} ({VARIANTS[name].description})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
