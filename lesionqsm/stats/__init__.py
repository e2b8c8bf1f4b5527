"""Statistics of lesion trajectories: pure numpy/scipy/statsmodels, no nipype."""
