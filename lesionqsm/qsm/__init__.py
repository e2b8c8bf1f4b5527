"""Numerical QSM core: pure numpy/scipy, no nipype, no file I/O."""
