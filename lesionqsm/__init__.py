"""lesionqsm: QSM of MS lesions tracked over visits, and the growth-curve model."""

__version__ = '0.1.0'
