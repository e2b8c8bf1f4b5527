"""QSM of one visit as a chain of pure steps (numpy/scipy; no nipype, no file I/O).

``reconstruct_session`` runs the whole chain; ``load_visit`` reads its inputs from a BIDS
dataset (the only function here that touches files, imported on first use).
"""

from .pipeline import QSMOptions, SessionReconstruction, reconstruct_session

__all__ = ['QSMOptions', 'SessionReconstruction', 'load_visit', 'reconstruct_session']


def __getattr__(name):
    if name == 'load_visit':
        from ..bids.visit import load_visit

        return load_visit
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
