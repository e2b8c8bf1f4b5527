"""Figures of the group model: both rim groups' trajectories with 95 % CI bands and raw points.

In the spirit of Zhang et al. (AJNR 2019) Fig 4 (lesion volume) and Fig 5 (susceptibility).
Matplotlib with the Agg backend (no display needed).
"""

import io
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ['trajectory_figure', 'save_figure', 'GROUP_STYLE']

#: Colour and label of each rim group.
GROUP_STYLE = {'positive': ('#c0392b', 'rim+'), 'negative': ('#2471a3', 'rim−')}
Z95 = 1.959963984540054


def trajectory_figure(fit, *, ylabel='χ lesion − NAWM (ppb)', title=None, table_ages=None,
                      rng=None):
    """Fitted mean trajectory of each rim group with its 95 % CI band over the raw visits.

    With binned lesion ages (the default) the curve joins the fitted means at the model's
    time points (the binned ages); a high-degree polynomial between them oscillates and is
    not drawn.  Without binning the polynomial is drawn continuously.

    Parameters
    ----------
    fit : lesionqsm.stats.growth_curve.GrowthCurveFit
        Fitted model; curves are population means at the covariate means.
    ylabel : str
        Y axis label, with units.
    title : str, optional
        Figure title.
    table_ages : sequence of float, optional
        Ages (years) of the fitted-means table, marked with points and error bars.
    rng : numpy.random.Generator, optional
        Horizontal jitter of the raw points (±0.04 y); default seed 0 for reproducible figures.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rng = np.random.default_rng(0) if rng is None else rng
    data = fit.data
    # the fitted curve is not drawn beyond the oldest lesion age observed (extrapolation)
    age_max = float(data['lesion_age_years'].max())
    if fit.options.get('binning') == 'none':
        grid = np.linspace(0.0, age_max, 241)
    else:  # the model is defined at its binned ages; a degree-8 curve between them is not data
        grid = np.asarray(fit.age_points, dtype=float)
    grid = grid[grid <= age_max + 1e-9]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for rim, (colour, label) in GROUP_STYLE.items():
        rows = data[data['rim'] == rim]
        jitter = rng.uniform(-0.04, 0.04, len(rows))
        ax.scatter(rows['lesion_age_years'] + jitter, rows[fit.response], s=9, alpha=0.35,
                   color=colour, linewidths=0, label=f'{label} visits')
        x = fit.contrast_rows(grid, rim)
        est = x @ fit.fe_params
        se = np.sqrt(np.einsum('ij,jk,ik->i', x, fit.cov_fe, x))
        ax.fill_between(grid, est - Z95 * se, est + Z95 * se, color=colour, alpha=0.2,
                        linewidth=0)
        n_les = rows[['participant_id', 'lesion_id']].drop_duplicates().shape[0]
        ax.plot(grid, est, color=colour, lw=2, marker='.' if grid.size < 30 else None,
                label=f'{label} fitted mean, 95% CI ({n_les} lesions)')
        observed = [a for a in (table_ages if table_ages is not None else [])
                    if a <= rows['lesion_age_years'].max() + 1e-9]
        if observed:
            xt = fit.contrast_rows(np.asarray(observed, float), rim)
            et = xt @ fit.fe_params
            st = np.sqrt(np.einsum('ij,jk,ik->i', xt, fit.cov_fe, xt))
            ax.errorbar(observed, et, yerr=Z95 * st, fmt='o', ms=4, color=colour, capsize=3)
    ax.set_xlabel('Lesion age (years since enhancement)')
    ax.set_ylabel(ylabel)
    ax.axhline(0, color='0.5', lw=0.6)
    ax.set_xlim(-0.15, age_max + 0.15)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc='best')
    fig.tight_layout()
    return fig


def save_figure(fig, stem):
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.svg`` atomically; return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ('png', 'svg'):
        path = stem.with_name(f'{stem.name}.{fmt}')
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt)
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(buffer.getvalue())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        paths.append(path)
    plt.close(fig)
    return tuple(paths)
