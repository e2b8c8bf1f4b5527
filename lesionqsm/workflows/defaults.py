"""Default algorithm parameters (the paper's), importable without nipype."""

#: Defaults of every QSM parameter: the paper's (MEDI+0 with the MEDI toolbox's settings).
QSM_DEFAULTS = {
    'phase_sign': 1,
    'unwrapping': 'region_growing',
    'r2star_method': 'arlo',
    'background': 'pdf',
    'inversion': 'medi+0',
    'lambda_': 1000.0,
    'lambda_csf': 100.0,
    'max_gn_iter': 10,
    'gn_tol': 0.1,
    'cg_max_iter': 100,
    'cg_tol': 0.01,
    'edge_fraction': 0.9,
    'smv_radius_mm': 0.0,
    'merit': False,
    'csf_r2star_threshold': 5.0,
    'csf_sphere_radius_mm': 30.0,
    'csf_erosion_mm': 10.0,
}
