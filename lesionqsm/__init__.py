"""lesionqsm: QSM of multiple-sclerosis lesions, tracked over visits, with the growth-curve model."""

__version__ = '0.1.0'
