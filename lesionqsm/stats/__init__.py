"""Statistics of lesion trajectories: pure numpy/scipy, no nipype."""
