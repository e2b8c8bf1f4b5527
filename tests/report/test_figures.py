"""Paper figures: smooth fitted curves within the observed ages, Table points on them."""

import io

import numpy as np
import pytest
from PIL import Image

from lesionqsm.report.figures import GRID_POINTS, save_figure, trajectory_figure
from lesionqsm.stats.growth_curve import TABLE_AGES, fit_growth_curve
from lesionqsm.synth.lesion_table import simulate_lesion_table


@pytest.fixture(scope='module')
def fit():
    lesions, participants, _ = simulate_lesion_table(
        n_patients=10, n_lesions=20, visits_per_lesion=5, rng=np.random.default_rng(11))
    # only visits up to 3 years: the Table's 4 and 6 years become extrapolations
    lesions = lesions[lesions['lesion_age_years'] <= 3.0]
    return fit_growth_curve(lesions, participants, degree=3, covariates=('edss',))


def _curves(fig):
    return {line.get_label().split(':')[0]: line for line in fig.axes[0].get_lines()
            if 'fitted mean' in str(line.get_label())}


def test_curve_is_the_model_on_a_fine_grid_within_the_observed_ages(fit):
    fig = trajectory_figure(fit, table_ages=list(TABLE_AGES))
    curves = _curves(fig)
    assert set(curves) == {'rim+', 'rim−'}
    for rim, label in (('positive', 'rim+'), ('negative', 'rim−')):
        ages = fit.data.loc[fit.data['rim'] == rim, 'lesion_age_years']
        x, y = curves[label].get_xdata(), curves[label].get_ydata()
        assert len(x) == GRID_POINTS  # a smooth curve, not the 9 binned ages joined
        # no line beyond the observed ages (float64 linspace ends exactly at them)
        assert x.min() == ages.min() and x.max() == ages.max()
        # the line is the model's population mean (same contrast as the Table): 1e-12 relative
        np.testing.assert_allclose(y, fit.contrast_rows(x, rim) @ fit.fe_params, rtol=1e-12)


def test_table_points_sit_on_the_curve_and_extrapolations_are_named(fit):
    fig = trajectory_figure(fit, table_ages=list(TABLE_AGES))
    curves = _curves(fig)
    table = fit.fitted_means(TABLE_AGES)
    markers = [line for line in fig.axes[0].get_lines() if line.get_marker() == 's'
               and len(line.get_xdata())]
    assert len(markers) == 2
    for line in markers:
        colour = line.get_color()
        label = next(k for k, c in curves.items() if c.get_color() == colour)
        rim = 'positive' if label == 'rim+' else 'negative'
        x = np.asarray(line.get_xdata(), dtype=float)
        assert x.max() <= 3.0  # 4 and 6 years lie beyond every observed age
        rows = table[(table['rim'] == rim) & table['age_years'].isin(x)]
        # the markers are the Table's estimates and lie on the drawn curve (interpolation of a
        # 400-point grid of a cubic: within 0.05 ppb of the exact value at these ages)
        y = np.asarray(line.get_ydata(), dtype=float)
        np.testing.assert_allclose(y, rows['estimate'], rtol=1e-12)
        curve = curves[label]
        on_curve = np.interp(x, curve.get_xdata(), curve.get_ydata())
        np.testing.assert_allclose(y, on_curve, atol=0.05)
    caption = fig.lesionqsm_caption
    assert 'extrapolations, not drawn' in caption and '4, 6 y' in caption
    assert f"edss = {fit.covariate_means['edss']:.3g}" in caption


def test_legend_is_outside_the_axes(fit):
    fig = trajectory_figure(fit, table_ages=list(TABLE_AGES))
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    axes = fig.axes[0].get_window_extent()
    assert legend.x0 >= axes.x1  # entirely to the right of the data


def test_save_figure_writes_300_dpi_png_and_svg_with_caption(fit, tmp_path):
    fig = trajectory_figure(fit, table_ages=list(TABLE_AGES))
    width, height = fig.get_size_inches()
    caption = fig.lesionqsm_caption
    png, svg = save_figure(fig, tmp_path / 'sub' / 'fig')
    assert sorted(p.name for p in png.parent.iterdir()) == ['fig.png', 'fig.svg']
    with Image.open(io.BytesIO(png.read_bytes())) as image:
        assert image.size == (round(width * 300), round(height * 300))
        assert image.info['Description'] == caption
    text = svg.read_text()
    assert text.lstrip().startswith('<?xml') and '<dc:description>' in text
