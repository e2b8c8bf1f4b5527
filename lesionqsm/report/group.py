"""The group HTML report: ``OUTPUT_DIR/group.html`` from the files of ``OUTPUT_DIR/group/``.

Read: ``group_summary.json`` (the models as fitted), ``group_desc-<model>_fittedmeans.tsv``
(the paper's Table), ``*_lrt.tsv``, ``*_coefficients.tsv`` and the figures the group level
wrote; the per-subject lesion tables give one more figure (observed lesions with the Table's
fitted means), drawn here into ``OUTPUT_DIR/group/figures/``.
"""

import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..bids.group_tables import check_lesion_tables
from ..bids.images import atomic_write_bytes, atomic_write_text
from .figures import GROUP_STYLE, covariates_phrase, observed_figure
from .logs import read_run_log
from .render import render

__all__ = ['write_group_report', 'model_formula', 'paper_table']

#: Models of the group level: summary key, file ``desc``, title, response unit.
MODELS = (
    ('susceptibility_model', 'chi', 'Lesion susceptibility (χ lesion − NAWM)', 'ppb'),
    ('volume_change_variant', 'chivolchange', 'Susceptibility with volume change as covariate',
     'ppb'),
    ('volume_model', 'volume', 'Lesion volume', 'mm³'),
)
_RIM = {'positive': 'rim+', 'negative': 'rim−'}
#: Provenance rows of the About section: summary key, row name.
PROVENANCE = (('lesionqsm_version', 'lesionqsm version'), ('command', 'Command line'),
              ('algorithm_version', 'Group-level algorithm version'))


@dataclass
class Model:
    key: str
    desc: str
    title: str
    unit: str
    formula: str = ''
    facts: list = field(default_factory=list)  # (name, value)
    table_header: list = field(default_factory=list)
    table_rows: list = field(default_factory=list)
    extrapolated_rows: list = field(default_factory=list)
    lrt: tuple = ((), ())  # (columns, rows)
    coefficients: tuple = ((), ())
    files: list = field(default_factory=list)  # relative paths of the model's files
    error: str = ''
    difference: str = 'between the groups'


@dataclass
class GroupFigure:
    src: str
    caption: str
    alt: str


def _read_tsv(path):
    try:
        return pd.read_csv(path, sep='\t', na_values=['n/a'], keep_default_na=False,
                           dtype={'participant_id': str, 'lesion_id': str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def _num(value, digits=3):
    """Fixed-point text of a number (one decimal from 100 up, scientific below 10^-digits)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(number):
        return 'n/a'
    if number != 0 and abs(number) < 10 ** -digits:
        return f'{number:.2e}'
    return f'{number:.1f}' if abs(number) >= 100 else f'{number:.{digits}f}'


def _p(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 'n/a'
    if not np.isfinite(number):
        return ''
    return '< 0.001' if number < 0.001 else f'{number:.3f}'


def model_formula(summary):
    """The fitted model in lme4 notation, from a model's summary in ``group_summary.json``."""
    if summary.get('formula'):
        return str(summary['formula'])
    response = summary.get('response', 'chi_rel_ppb')
    degree = summary.get('degree', '?')
    options = summary.get('options') or {}
    terms = [f'poly(lesion_age, {degree}) * rim']
    terms += [str(c) for c in summary.get('covariates') or []]
    terms += [f'{c}:rim' for c in options.get('rim_interactions') or []]
    slope = ' + poly1' if options.get('random_slopes') else ''
    random = [f'(1{slope} | patient)']
    if options.get('lesion_effect', True):
        random.append(f'(1{slope} | patient:lesion)')
    return f'{response} ~ ' + ' + '.join(terms + random)


def _format_inference(value):
    if isinstance(value, dict):
        return '; '.join(f'{k}: {v}' for k, v in value.items())
    return 'n/a' if value is None else str(value)


def _facts(summary):
    options = summary.get('options') or {}
    by_rim = summary.get('n_lesions_by_rim') or {}
    facts = [
        ('Patients', summary.get('n_patients', 'n/a')),
        ('Lesions', f"{summary.get('n_lesions', 'n/a')} ("
                    + ', '.join(f'{_RIM.get(k, k)} {v}' for k, v in by_rim.items()) + ')'),
        ('Lesion visits (observations)', summary.get('n_observations', 'n/a')),
        ('Polynomial degree in lesion age', summary.get('degree', 'n/a')),
        ('Covariates', ', '.join(summary.get('covariates') or []) or 'none'),
        ('Lesion-age binning', options.get('binning', 'n/a')),
        ('Time points of the basis',
         ', '.join(f'{a:.2f}' for a in summary.get('age_points_years') or []) or 'n/a'),
        ('Reference group', _RIM.get(summary.get('reference_rim'), 'n/a')),
        ('Estimation', f"{summary.get('method', 'REML')}; optimum verified: "
                       f"{summary.get('optimum_checked', summary.get('converged', 'n/a'))}; "
                       f"singular: {summary.get('singular', 'n/a')}"),
        ('Inference', _format_inference(summary.get('inference'))),
        ('Covariates held at (figures, Table)',
         covariates_phrase(summary.get('covariate_means') or {})),
    ]
    exclusions = summary.get('exclusions') or {}
    dropped = {k: v for k, v in exclusions.items() if v}
    if dropped:
        facts.append(('Rows left out', ', '.join(f'{k}: {v}' for k, v in dropped.items())))
    return [(name, str(value)) for name, value in facts]


def paper_table(means):
    """The paper's Table from a fitted-means TSV: rows within and beyond the observed ages.

    Returns
    -------
    header : list of str
    observed : list of list of str
        One row per lesion age inside the observed ages: rim+ and rim− means with their 95 %
        CI, the difference's P, lesions near that age per group.
    extrapolated : list of list of str
        The same for ages flagged ``extrapolated`` (kept out of the main Table).
    """
    header = ['Lesion age (y)', 'rim+ mean (95% CI)', 'n rim+', 'rim− mean (95% CI)',
              'n rim−', 'Difference (95% CI)', 'P']
    observed, extrapolated = [], []
    if means is None or means.empty:
        return header, observed, extrapolated
    flag = means['extrapolated'].astype(str).str.lower().isin(['true', '1']) \
        if 'extrapolated' in means.columns else pd.Series(False, means.index)
    for age in sorted(means['age_years'].unique()):
        rows = means[means['age_years'] == age]
        cells = [f'{age:g}']
        for rim in ('positive', 'negative', 'difference'):
            row = rows[rows['rim'] == rim]
            if row.empty:
                cells += ['n/a'] + ([''] if rim != 'difference' else [])
                continue
            r = row.iloc[0]
            cells.append(f"{_num(r['estimate'], 2)} ({_num(r['ci_low'], 2)}, "
                         f"{_num(r['ci_high'], 2)})")
            if rim != 'difference':
                cells.append(str(r.get('n_lesions', '')))
            else:
                cells.append(_p(r.get('p_value')))
        (extrapolated if flag[rows.index].any() else observed).append(cells)
    return header, observed, extrapolated


def _frame_rows(df, columns=None):
    if df is None:
        return (), ()
    columns = [c for c in (columns or df.columns) if c in df.columns]
    rows = []
    for _, row in df.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            cells.append(_p(value) if column == 'p_value' else
                         _num(value) if isinstance(value, float | np.floating) else str(value))
        rows.append(cells)
    return columns, rows


def _caption_of(path):
    """The ``Description`` a figure file carries in its metadata (PNG text, SVG Dublin Core)."""
    try:
        if path.suffix == '.svg':
            match = re.search(r'<dc:description>(.*?)</dc:description>', path.read_text(),
                              re.DOTALL)
            return html.unescape(match.group(1)).strip() if match else ''
        from PIL import Image

        with Image.open(path) as image:
            return str(image.info.get('Description', ''))
    except (OSError, ValueError):
        return ''


def _group_figures(output_dir, group_dir):
    """The group level's own figures (SVG, else PNG), each with the caption it carries."""
    figures = []
    stems = sorted({p.with_suffix('') for p in group_dir.glob('*.svg')}
                   | {p.with_suffix('') for p in group_dir.glob('*.png')})
    for stem in stems:
        path = stem.with_suffix('.svg') if stem.with_suffix('.svg').exists() \
            else stem.with_suffix('.png')
        caption = _caption_of(path) or _caption_of(stem.with_suffix('.png'))
        figures.append(GroupFigure(src=path.relative_to(output_dir).as_posix(),
                                   caption=caption or stem.name, alt=stem.name))
    return figures


def _observed_figures(output_dir, group_dir, table_paths=None):
    """Observed lesion trajectories with each model's Table, drawn from the files on disk.

    ``table_paths``: the lesion tables the models used (from the summary; default every
    table of ``output_dir``); a table that is not usable (see
    :func:`lesionqsm.bids.group_tables.check_lesion_tables`) is not drawn.
    """
    if table_paths is None:
        table_paths = sorted(output_dir.glob('sub-*/sub-*_lesions.tsv'))
    else:  # where they are now (the output folder may have moved since)
        table_paths = [output_dir / Path(p).parent.name / Path(p).name for p in table_paths]
    lesions = check_lesion_tables(table_paths)[0]
    if lesions is None:
        return []
    if 'status' in lesions.columns:
        lesions = lesions[lesions['status'].astype(str) == 'ok']
    out = group_dir / 'figures'
    figures = []
    for desc, response, ylabel in (('chi', 'chi_rel_ppb', 'χ lesion − NAWM (ppb)'),
                                   ('volume', 'volume_mm3', 'Lesion volume (mm³)')):
        means = _read_tsv(group_dir / f'group_desc-{desc}_fittedmeans.tsv')
        if means is None or response not in lesions.columns:
            continue
        fig = observed_figure(lesions, means, response=response, ylabel=ylabel)
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format='svg', metadata={'Date': None})
        plt.close(fig)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f'group_desc-{desc}_observed.svg'
        atomic_write_bytes(path, buffer.getvalue())
        figures.append(GroupFigure(
            src=path.relative_to(output_dir).as_posix(),
            caption=(f'Every lesion\'s {response} at each visit (thin lines join a lesion\'s '
                     f'visits; {GROUP_STYLE["positive"][1]} red, {GROUP_STYLE["negative"][1]} '
                     'blue) with the fitted means and 95% CIs of the Table at the ages inside '
                     'the observed range (extrapolated ages are not drawn).'),
            alt=f'observed {response} and fitted means'))
    return figures


def write_group_report(output_dir):
    """Write ``OUTPUT_DIR/group.html`` from the group level's outputs.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives dataset; the group level wrote ``output_dir/group``.

    Returns
    -------
    pathlib.Path
        The HTML file.

    Raises
    ------
    FileNotFoundError
        If ``output_dir/group`` does not exist (the group level has not run).
    """
    output_dir = Path(output_dir).absolute()
    group_dir = output_dir / 'group'
    if not group_dir.is_dir():
        raise FileNotFoundError(f'{group_dir}: no group folder; run the group level first')
    summary_path = group_dir / 'group_summary.json'
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        summary = {}
    models = []
    for key, desc, title, unit in MODELS:
        fitted = summary.get(key)
        files = sorted(p.relative_to(output_dir).as_posix()
                       for p in group_dir.glob(f'group_desc-{desc}_*'))
        if not fitted and not files:
            continue
        model = Model(key=key, desc=desc, title=title, unit=unit, files=files)
        if fitted:
            model.formula = model_formula(fitted)
            model.facts = _facts(fitted)
            reference = fitted.get('reference_rim', 'positive')
            other = 'negative' if reference == 'positive' else 'positive'
            model.difference = f'{_RIM[other]} minus {_RIM.get(reference, reference)}'
        else:
            model.error = (summary.get('errors') or {}).get(key, 'not fitted')
        means = _read_tsv(group_dir / f'group_desc-{desc}_fittedmeans.tsv')
        model.table_header, model.table_rows, model.extrapolated_rows = paper_table(means)
        model.lrt = _frame_rows(_read_tsv(group_dir / f'group_desc-{desc}_lrt.tsv'),
                                ['test', 'df', 'statistic', 'p_value', 'loglik_full',
                                 'loglik_reduced', 'terms'])
        model.coefficients = _frame_rows(
            _read_tsv(group_dir / f'group_desc-{desc}_coefficients.tsv'),
            ['term', 'estimate', 'se', 'ci_low', 'ci_high', 'statistic', 'p_value'])
        models.append(model)
    errors = [f'{k}: {v}' for k, v in (summary.get('errors') or {}).items()]
    unverified = [f'{name}: the optimum of the fit could not be verified'
                  for name in summary.get('optimum_not_verified') or []]
    log_file, records, _ = read_run_log(output_dir, 'group')
    figures = _group_figures(output_dir, group_dir) + _observed_figures(
        output_dir, group_dir, summary.get('lesion_tables'))
    provenance = [(name, str(summary[key])) for key, name in PROVENANCE
                  if summary.get(key) is not None]
    left_out = [(f'sub-{subject}', messages)
                for subject, messages in (summary.get('subjects_left_out') or {}).items()]
    html_text = render(
        'group.html', models=models, figures=figures, results=summary.get('results') or [],
        errors=errors, warnings=unverified + [r.message.splitlines()[0] for r in records
                                              if r.level == 'WARNING'],
        log_file=log_file.relative_to(output_dir).as_posix() if log_file else None,
        summary_file=(summary_path.relative_to(output_dir).as_posix()
                      if summary_path.exists() else None),
        provenance=provenance, left_out=left_out, version=__version__, output_dir=output_dir)
    path = output_dir / 'group.html'
    atomic_write_text(path, html_text)
    return path
