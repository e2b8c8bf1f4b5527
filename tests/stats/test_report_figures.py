"""Trajectory figures: written as PNG and SVG, drawn at the model's time points."""

import numpy as np

from lesionqsm.report.figures import save_figure, trajectory_figure
from lesionqsm.stats.growth_curve import TABLE_AGES, fit_growth_curve
from lesionqsm.synth.lesion_table import simulate_lesion_table


def test_trajectory_figure_png_and_svg(tmp_path):
    lesions, participants, _ = simulate_lesion_table(
        n_patients=10, n_lesions=20, visits_per_lesion=5, rng=np.random.default_rng(11))
    fit = fit_growth_curve(lesions, participants, degree=4, covariates=('edss',))
    fig = trajectory_figure(fit, table_ages=list(TABLE_AGES))
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if 'fitted mean' in str(line.get_label())]
    assert len(curves) == 2
    # binned ages: the curve joins the fitted means at the 9 model time points, no more
    np.testing.assert_allclose(curves[0].get_xdata(), fit.age_points)
    expected = fit.contrast_rows(fit.age_points, 'positive') @ fit.fe_params
    np.testing.assert_allclose(curves[0].get_ydata(), expected, rtol=1e-12)
    png, svg = save_figure(fig, tmp_path / 'sub' / 'fig')
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert svg.read_text().lstrip().startswith('<?xml')
    assert sorted(p.name for p in png.parent.iterdir()) == ['fig.png', 'fig.svg']
