"""Reading one visit's echoes from disk: shared by the workflow and the Python API."""

import numpy as np

from ..qsm.echoes import complex_echoes, phase_to_radians
from .images import ImageError, check_same_grid, load_image
from .labels import strip_prefix


def read_echoes(mag_files, phase_files, phase_units='rad'):
    """Load one visit's echoes as one complex array.

    Parameters
    ----------
    mag_files, phase_files : sequence of str
        One 3-D NIfTI per echo, in the order of the echo times.
    phase_units : {'rad', 'arbitrary'}
        Sidecar ``Units`` of the phase images (``'arbitrary'``: inferred per echo by
        :func:`lesionqsm.qsm.echoes.phase_scaling`).

    Returns
    -------
    signal : complex64 ndarray, shape (X, Y, Z, E)
        ``magnitude · exp(i phase)``, phase in radians.
    reference_img : nibabel image
        The first magnitude image (grid of every output).
    warnings : list of str
    scalings : list of dict
        Per echo, how its phase was mapped to radians (:meth:`PhaseScaling.record`).

    Raises
    ------
    ImageError
        Unreadable files, grids that differ (both files named), or a constant phase.
    """
    mag_files, phase_files = list(mag_files), list(phase_files)
    if len(mag_files) != len(phase_files) or not mag_files:
        raise ImageError(f'{(mag_files or phase_files or ["?"])[0]}: {len(mag_files)} '
                         f'magnitude and {len(phase_files)} phase files do not pair up')
    reference_img = load_image(mag_files[0], ndim=3)
    magnitudes, phases, warnings, scalings = [], [], [], []
    for mag_file, phase_file in zip(mag_files, phase_files, strict=True):
        mag_img = load_image(mag_file, ndim=3)
        phase_img = load_image(phase_file, ndim=3)
        check_same_grid(mag_img, mag_file, reference_img, mag_files[0])
        check_same_grid(phase_img, phase_file, mag_img, mag_file)
        try:
            phase, messages, scaling = phase_to_radians(np.asanyarray(phase_img.dataobj),
                                                        phase_units, phase_file)
        except ValueError as exc:
            raise ImageError(str(exc)) from exc
        magnitudes.append(mag_img.get_fdata(dtype=np.float32))
        phases.append(phase)
        warnings += messages
        scalings.append(scaling.record())
    return complex_echoes(magnitudes, phases), reference_img, warnings, scalings


def load_visit(bids_dir, subject, session=None, *, field_strength=None):
    """One visit of a BIDS dataset as the inputs of :func:`lesionqsm.qsm.reconstruct_session`.

    Parameters
    ----------
    bids_dir : str or Path
        The raw BIDS dataset.
    subject : str
        Participant label, with or without ``sub-``.
    session : str, optional
        Session label, with or without ``ses-`` (default: the first visit).
    field_strength : float, optional
        B0 in T when the sidecars lack ``MagneticFieldStrength``.

    Returns
    -------
    dict
        ``complex_echoes``, ``echo_times`` (s), ``field_strength`` (T), ``affine`` and
        ``phase_scaling`` (per echo): the keyword arguments of ``reconstruct_session``.

    Examples
    --------
    >>> from lesionqsm.qsm import load_visit, reconstruct_session  # doctest: +SKIP
    >>> result = reconstruct_session(**load_visit('bids', '01', '01'))  # doctest: +SKIP
    """
    from .layout import collect_subject

    subject = strip_prefix(subject, 'sub-')
    labels = None if session is None else [strip_prefix(session, 'ses-')]
    data = collect_subject(bids_dir, subject, session_label=labels,
                           field_strength_override=field_strength)
    visits = [s for s in data.sessions if s.megre is not None and s.megre.has_phase]
    if not visits:
        raise ValueError(f'sub-{subject}: no visit with GRE magnitude and phase'
                         + (f' at ses-{labels[0]}' if labels else ''))
    megre = visits[0].megre
    signal, reference_img, _, scalings = read_echoes(megre.mag_files, megre.phase_files,
                                                     megre.phase_units or 'rad')
    return {'complex_echoes': signal, 'echo_times': list(megre.echo_times),
            'field_strength': float(megre.field_strength), 'affine': reference_img.affine,
            'phase_scaling': scalings}
