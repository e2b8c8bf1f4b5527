"""Figures of the lesion-age model, fit for a paper, and the per-lesion trajectories.

In the spirit of Zhang et al. (AJNR 2019) Fig 4 (lesion volume) and Fig 5 (susceptibility):
each rim group's fitted population mean is drawn as a smooth curve (the polynomial evaluated
on a fine grid of lesion ages, as the Table evaluates it at its ages), with its 95 % confidence
band, over every lesion's observed visits joined by thin lines.  Nothing is drawn beyond the
lesion ages a group was observed at; Table ages outside them are named in the caption as
extrapolations.  Matplotlib with the Agg backend (no display needed).
"""

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..bids.images import atomic_write_bytes  # noqa: E402

__all__ = ['trajectory_figure', 'save_figure', 'observed_figure', 'lesion_trajectory_figure',
           'figure_caption', 'GROUP_STYLE', 'COVARIATE_UNITS']

#: Colour and label of each rim group.
GROUP_STYLE = {'positive': ('#c0392b', 'rim+'), 'negative': ('#2471a3', 'rim−')}
#: Units of the covariate columns, for captions.
COVARIATE_UNITS = {'baseline_volume_mm3': 'mm³', 'volume_change_mm3': 'mm³', 'edss': '',
                   'age': 'years', 'disease_duration': 'years', 'treatment_duration': 'years'}
Z95 = 1.959963984540054
#: Points of the fine lesion-age grid of the fitted curves.
GRID_POINTS = 400
_AGE_LABEL = 'Lesion age (years since enhancement)'


def _lesion_lines(ax, rows, response, colour):
    """Each lesion's visits: points joined by a thin line, in age order."""
    for _, lesion in rows.groupby(['participant_id', 'lesion_id'], sort=False):
        lesion = lesion.sort_values('lesion_age_years')
        ax.plot(lesion['lesion_age_years'], lesion[response], color=colour, lw=0.5,
                alpha=0.45, marker='o', ms=2.2, mew=0, zorder=1)


def covariates_phrase(covariate_means):
    """'baseline_volume_mm3 = 412 mm³, edss = 2.1' or 'no covariates'."""
    if not covariate_means:
        return 'no covariates in the model'
    parts = []
    for name, value in covariate_means.items():
        unit = COVARIATE_UNITS.get(name, '')
        parts.append(f'{name} = {value:.3g}{" " + unit if unit else ""}')
    return 'covariates held at their means over the modelled visits: ' + ', '.join(parts)


def trajectory_figure(fit, *, ylabel='χ lesion − NAWM (ppb)', title=None, table_ages=None,
                      rng=None, caption=True, grid_points=GRID_POINTS):
    """Fitted mean trajectory of each rim group with its 95 % CI band over the observed lesions.

    Parameters
    ----------
    fit : lesionqsm.stats.growth_curve.GrowthCurveFit
        Fitted model; curves are population means at the covariate means.
    ylabel : str
        Y axis label, with units.
    title : str, optional
        Figure title.
    table_ages : sequence of float, optional
        Ages (years) of the fitted-means Table: marked on the curve with their 95 % CI where a
        group was observed at that age; the others are named in the caption as extrapolated.
    rng : numpy.random.Generator, optional
        Kept for compatibility; the observed points are drawn at their exact ages (no jitter).
    caption : bool
        Write the caption under the axes (it is also stored as ``fig.lesionqsm_caption``,
        which :func:`save_figure` embeds in the PNG and SVG metadata).
    grid_points : int
        Points of the lesion-age grid the curves are evaluated on.

    Returns
    -------
    matplotlib.figure.Figure
    """
    del rng  # no jitter: per-lesion lines join the exact visits
    data = fit.data
    table_ages = [float(a) for a in (table_ages if table_ages is not None else [])]
    fig, ax = plt.subplots(figsize=(7.6, 4.6), dpi=100)
    n_lesions, ranges, outside = {}, {}, {}
    for rim, (colour, label) in GROUP_STYLE.items():
        rows = data[data['rim'] == rim]
        if rows.empty:
            continue
        _lesion_lines(ax, rows, fit.response, colour)
        lo, hi = float(rows['lesion_age_years'].min()), float(rows['lesion_age_years'].max())
        ranges[rim] = (lo, hi)
        grid = np.linspace(lo, hi, int(grid_points)) if hi > lo else np.array([lo])
        x = fit.contrast_rows(grid, rim)
        est = x @ fit.fe_params
        se = np.sqrt(np.einsum('ij,jk,ik->i', x, fit.cov_fe, x))
        ax.fill_between(grid, est - Z95 * se, est + Z95 * se, color=colour, alpha=0.18,
                        linewidth=0, zorder=2)
        n_lesions[rim] = rows[['participant_id', 'lesion_id']].drop_duplicates().shape[0]
        ax.plot(grid, est, color=colour, lw=2.2, zorder=3,
                label=f'{label}: fitted mean, 95% CI ({n_lesions[rim]} lesions)')
        inside = [a for a in table_ages if lo - 1e-9 <= a <= hi + 1e-9]
        outside[rim] = [a for a in table_ages if a not in inside]
        if inside:
            xt = fit.contrast_rows(np.asarray(inside, float), rim)
            et = xt @ fit.fe_params
            st = np.sqrt(np.einsum('ij,jk,ik->i', xt, fit.cov_fe, xt))
            ax.errorbar(inside, et, yerr=Z95 * st, fmt='s', ms=4, color=colour, capsize=2.5,
                        mec='white', mew=0.6, lw=1.0, zorder=4)
        ax.plot([], [], color=colour, lw=0.5, marker='o', ms=2.5, alpha=0.6,
                label=f'{label}: observed visits, one line per lesion')
    if table_ages:
        ax.errorbar([], [], yerr=[], fmt='s', color='0.3', ms=4, capsize=2.5,
                    label='Table ages: fitted mean ± 95% CI')
    ax.set_xlabel(_AGE_LABEL)
    ax.set_ylabel(ylabel)
    ax.axhline(0, color='0.6', lw=0.6, zorder=0)
    if ranges:
        lo = min(r[0] for r in ranges.values())
        hi = max(r[1] for r in ranges.values())
        pad = 0.03 * max(hi - lo, 1.0)
        ax.set_xlim(lo - pad, hi + pad)
    ax.spines[['top', 'right']].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc='upper left', bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)
    text = figure_caption(fit, n_lesions, ranges, outside)
    fig.lesionqsm_caption = text
    bottom = 0.12
    if caption:
        wrapped = textwrap.fill(text, 150)
        fig.text(0.01, 0.015, wrapped, fontsize=6.5, va='bottom', ha='left', color='0.2')
        bottom += 0.03 * (wrapped.count('\n') + 1)
    fig.subplots_adjust(left=0.09, right=0.66, top=0.92 if title else 0.96, bottom=bottom)
    return fig


def figure_caption(fit, n_lesions, ranges, outside):
    """The caption of :func:`trajectory_figure`: model, covariates, extrapolated ages."""
    groups = ', '.join(f'{GROUP_STYLE[r][1]} {n} lesions, observed {ranges[r][0]:.2g}-'
                       f'{ranges[r][1]:.2g} y' for r, n in n_lesions.items())
    text = (f'Population mean of {fit.response} by lesion age (degree-{fit.degree} orthogonal '
            f'polynomial x rim group, random intercepts per patient and lesion), line on a fine '
            f'age grid with its 95% confidence band, drawn only over the ages each group was '
            f'observed at ({groups}); {covariates_phrase(fit.covariate_means)}.')
    flagged = {GROUP_STYLE[r][1]: ages for r, ages in outside.items() if ages}
    if flagged:
        listed = '; '.join(f'{g}: {", ".join(f"{a:g}" for a in ages)} y'
                           for g, ages in flagged.items())
        text += (f' Table ages beyond the observed ages are extrapolations, not drawn '
                 f'({listed}).')
    return text


def save_figure(fig, stem, *, dpi=300, caption=None):
    """Write ``fig`` as ``<stem>.png`` (``dpi``) and ``<stem>.svg`` atomically; return both.

    The caption (``caption``, else ``fig.lesionqsm_caption`` if set) is embedded as the
    ``Description`` of both files' metadata.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    caption = caption if caption is not None else getattr(fig, 'lesionqsm_caption', None)
    paths = []
    for fmt in ('png', 'svg'):
        path = stem.with_name(f'{stem.name}.{fmt}')
        buffer = io.BytesIO()
        metadata = {'Description': caption} if caption else None
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    plt.close(fig)
    return tuple(paths)


def observed_figure(lesions, fitted_means, *, response='chi_rel_ppb',
                    ylabel='χ lesion − NAWM (ppb)', title=None):
    """Observed lesion trajectories with the Table's fitted means, from the files on disk.

    Parameters
    ----------
    lesions : DataFrame
        Lesion × visit rows (``*_lesions.tsv``): participant_id, lesion_id, rim,
        lesion_age_years and the response.
    fitted_means : DataFrame
        ``group_desc-*_fittedmeans.tsv``: age_years, rim, estimate, ci_low, ci_high,
        extrapolated; extrapolated rows are not drawn.
    response : str
        Column of ``lesions`` drawn.
    ylabel, title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=100)
    for k, (rim, (colour, label)) in enumerate(GROUP_STYLE.items()):
        rows = lesions[(lesions['rim'] == rim) & np.isfinite(
            np.asarray(lesions[response], dtype=float))]
        if not rows.empty:
            _lesion_lines(ax, rows, response, colour)
            n = rows[['participant_id', 'lesion_id']].drop_duplicates().shape[0]
            ax.plot([], [], color=colour, lw=0.5, marker='o', ms=2.5,
                    label=f'{label}: observed, one line per lesion ({n})')
        means = fitted_means[(fitted_means['rim'] == rim)
                             & ~fitted_means['extrapolated'].astype(str).str.lower()
                             .isin(['true', '1'])]
        if not means.empty:
            offset = (k - 0.5) * 0.04  # the two groups' bars side by side
            ax.errorbar(means['age_years'] + offset, means['estimate'],
                        yerr=[means['estimate'] - means['ci_low'],
                              means['ci_high'] - means['estimate']],
                        fmt='s', ms=4, color=colour, capsize=2.5, mec='white', mew=0.6,
                        label=f'{label}: fitted mean ± 95% CI (Table)', zorder=4)
    ax.axhline(0, color='0.6', lw=0.6, zorder=0)
    ax.set_xlabel(_AGE_LABEL)
    ax.set_ylabel(ylabel)
    ax.spines[['top', 'right']].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, frameon=False, loc='upper left', bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)
    fig.subplots_adjust(left=0.09, right=0.64, top=0.9 if title else 0.96, bottom=0.13)
    return fig


def lesion_trajectory_figure(rows, *, title=None):
    """One lesion's χ_rel (ppb) and volume (mm³) against lesion age, from its table rows.

    Parameters
    ----------
    rows : DataFrame
        The lesion's rows of ``*_lesions.tsv`` (lesion_age_years, chi_rel_ppb, volume_mm3,
        status, session_id).  Visits whose status is not 'ok' are marked with a cross at the
        axis bottom and named.
    """
    rows = rows.sort_values('lesion_age_years')
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.5), dpi=100)
    for ax, column, label in ((axes[0], 'chi_rel_ppb', 'χ lesion − NAWM (ppb)'),
                              (axes[1], 'volume_mm3', 'Volume (mm³)')):
        age = np.asarray(rows['lesion_age_years'], dtype=float)
        value = np.asarray(rows[column], dtype=float) if column in rows else np.full(age.shape,
                                                                                     np.nan)
        ok = np.isfinite(value) & np.isfinite(age)
        ax.plot(age[ok], value[ok], '-o', color='#333333', ms=4, lw=1.2)
        for a, v, ses in zip(age[ok], value[ok], rows['session_id'].to_numpy()[ok],
                             strict=True):
            ax.annotate(str(ses), (a, v), textcoords='offset points', xytext=(3, 4),
                        fontsize=6, color='0.35')
        missing = ~ok & np.isfinite(age)
        if missing.any():
            ax.plot(age[missing], np.zeros(missing.sum()), 'x', color='#c0392b', ms=6,
                    transform=ax.get_xaxis_transform(), clip_on=False,
                    label='no value (see table status)')
            ax.legend(fontsize=6, frameon=False, loc='upper left', bbox_to_anchor=(0, -0.25))
        if column == 'chi_rel_ppb':
            ax.axhline(0, color='0.6', lw=0.6)
        ax.set_xlabel('Lesion age (years)', fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[['top', 'right']].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
