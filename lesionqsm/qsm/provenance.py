"""What the chain did, gathered from its steps into the Chimap sidecar.

Each step returns its decisions (a dict) and warnings (a list of str); :func:`step_record`
packs them, :func:`chimap_metadata` merges the records of a whole visit into the sidecar.  The
workflow and :func:`lesionqsm.qsm.reconstruct_session` both use these two functions, so the
sidecar and the API report the same decisions.
"""


def step_record(decisions, warnings=()):
    """One step's decisions with its warnings under ``'warnings'``."""
    return {**decisions, 'warnings': list(warnings)}


def csf_record(result):
    """The CSF step's record: the reference found, how, and a warning if it fell back."""
    warnings = [] if result.reference == 'ventricular_csf' else [result.message]
    return step_record({'csf_search': result.reference, 'ReferenceMessage': result.message},
                       warnings)


def chimap_metadata(records, options, *, algorithm_version):
    """The Chimap sidecar of one visit.

    Parameters
    ----------
    records : list of dict
        :func:`step_record` of every step, in chain order (the inversion last).
    options : dict
        Every option of the chain, flat (:meth:`lesionqsm.qsm.QSMOptions.as_flat_dict`).
    algorithm_version : str
        Version of the QSM interfaces' algorithms.

    Returns
    -------
    dict
        BIDS entries (``Units``, ``Algorithm``, ``ReferenceRegion``...), ``Decisions`` (what
        every step did), ``Options`` and ``Warnings``.
    """
    decisions, warnings = {}, []
    for record in records:
        record = dict(record)
        warnings += record.pop('warnings', [])
        decisions.update(record)
    return {
        'Units': 'ppm',
        'Algorithm': decisions.pop('Algorithm', None),
        'AlgorithmParameters': decisions.pop('AlgorithmParameters', {}),
        'ReferenceRegion': decisions.pop('ReferenceRegion', None),
        'SusceptibilitySign': 'paramagnetic positive',
        'AlgorithmVersion': algorithm_version,
        'Decisions': decisions,
        'Options': dict(options),
        'Warnings': warnings,
    }
