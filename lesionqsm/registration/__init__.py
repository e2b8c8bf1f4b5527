"""Rigid registration, pure: the built-in engine (SimpleITK) and FSL-matrix conversion.

FSL FLIRT itself runs through nipype (:mod:`lesionqsm.interfaces.registration`); both engines
write a 4×4 matrix in FLIRT's convention (:mod:`lesionqsm.registration.fsl_matrix`), so
everything downstream is the same whichever engine ran.  :func:`resolve_engine` chooses the
engine once, when the workflow is built.
"""

from . import fsl_matrix, rigid
from .engine import ENGINES, register_builtin, registration_summary, resolve_engine

__all__ = ['ENGINES', 'fsl_matrix', 'register_builtin', 'registration_summary',
           'resolve_engine', 'rigid']
