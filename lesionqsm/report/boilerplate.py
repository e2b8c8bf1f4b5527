"""Methods boilerplate: ``OUTPUT_DIR/logs/CITATION.md`` (+ ``.bib``, ``.html``).

The paragraph is written from what the run recorded, not from the defaults: the χ sidecars
(``Algorithm``, ``AlgorithmParameters``, ``ReferenceRegion``), the transform sidecars (engine,
cost), the lesion table's data dictionary (the lesion estimator) and ``group/group_summary.json``
(the model).  A step whose parameters no file records is said to be "not recorded" rather than
described from a default.
"""

import json
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..bids.images import atomic_write_text
from .render import render

__all__ = ['write_citation', 'methods_facts', 'REFERENCES']


@dataclass(frozen=True)
class Reference:
    key: str
    kind: str  # BibTeX entry type
    authors: str  # BibTeX 'and'-separated
    title: str
    journal: str
    year: int
    volume: str
    pages: str
    doi: str

    @property
    def vancouver_authors(self):
        """'Liu Z, Spincemaille P, Yao Y, et al' (first three, Vancouver style)."""
        names = []
        for name in self.authors.split(' and '):
            last, _, first = name.partition(',')
            initials = ''.join(part[0] for part in first.replace('.', ' ').split())
            names.append(f'{last.strip()} {initials}'.strip())
        return ', '.join(names[:3]) + (', et al' if len(names) > 3 else '')


REFERENCES = {r.key: r for r in (
    Reference('liu2018medi0', 'article',
              'Liu, Zhe and Spincemaille, Pascal and Yao, Yihao and Zhang, Yan and Wang, Yi',
              'MEDI+0: Morphology enabled dipole inversion with automatic uniform '
              'cerebrospinal fluid zero reference for quantitative susceptibility mapping',
              'Magnetic Resonance in Medicine', 2018, '79', '2795--2803',
              '10.1002/mrm.26946'),
    Reference('liu2011medi', 'article',
              'Liu, Tian and Liu, Jing and de Rochefort, Ludovic and Spincemaille, Pascal and '
              'Khalidov, Ildar and Ledoux, James Robert and Wang, Yi',
              'Morphology enabled dipole inversion (MEDI) from a single-angle acquisition: '
              'comparison with COSMOS in human brain imaging',
              'Magnetic Resonance in Medicine', 2011, '66', '777--783', '10.1002/mrm.22816'),
    Reference('liu2011pdf', 'article',
              'Liu, Tian and Khalidov, Ildar and de Rochefort, Ludovic and Spincemaille, '
              'Pascal and Liu, Jing and Tsiouris, A. John and Wang, Yi',
              'A novel background field removal method for MRI using projection onto dipole '
              'fields (PDF)', 'NMR in Biomedicine', 2011, '24', '1129--1136',
              '10.1002/nbm.1670'),
    Reference('zhou2014lbv', 'article',
              'Zhou, Dong and Liu, Tian and Spincemaille, Pascal and Wang, Yi',
              'Background field removal by solving the Laplacian boundary value problem',
              'NMR in Biomedicine', 2014, '27', '312--319', '10.1002/nbm.3064'),
    Reference('schweser2011sharp', 'article',
              'Schweser, Ferdinand and Deistung, Andreas and Lehr, Berengar Wendel and '
              'Reichenbach, J{\\"u}rgen Rainer',
              'Quantitative imaging of intrinsic magnetic tissue properties using MRI signal '
              'phase: an approach to in vivo brain iron metabolism?', 'NeuroImage', 2011, '54',
              '2789--2807', '10.1016/j.neuroimage.2010.10.070'),
    Reference('liu2017tfi', 'article',
              'Liu, Zhe and Kee, Youngwook and Zhou, Dong and Wang, Yi and Spincemaille, '
              'Pascal',
              'Preconditioned total field inversion (TFI) method for quantitative '
              'susceptibility mapping', 'Magnetic Resonance in Medicine', 2017, '78',
              '303--315', '10.1002/mrm.26331'),
    Reference('li2011vsharp', 'article',
              'Li, Wei and Wu, Bing and Liu, Chunlei',
              'Quantitative susceptibility mapping of human brain reflects spatial variation in '
              'tissue composition', 'NeuroImage', 2011, '55', '1645--1656',
              '10.1016/j.neuroimage.2010.11.088'),
    Reference('pei2015arlo', 'article',
              'Pei, Mengchao and Nguyen, Thanh D. and Thimmappa, Nanda D. and Salustri, Carlo '
              'and Dong, Fang and Cooper, Mitchell A. and Li, Jianqi and Prince, Martin R. and '
              'Wang, Yi',
              'Algorithm for fast monoexponential fitting based on Auto-Regression on Linear '
              'Operations (ARLO) of data', 'Magnetic Resonance in Medicine', 2015, '73',
              '843--850', '10.1002/mrm.25137'),
    Reference('gorgolewski2011nipype', 'article',
              'Gorgolewski, Krzysztof and Burns, Christopher D. and Madison, Cindee and Clark, '
              'Dav and Halchenko, Yaroslav O. and Waskom, Michael L. and Ghosh, Satrajit S.',
              'Nipype: a flexible, lightweight and extensible neuroimaging data processing '
              'framework in Python', 'Frontiers in Neuroinformatics', 2011, '5', '13',
              '10.3389/fninf.2011.00013'),
    Reference('jenkinson2002flirt', 'article',
              'Jenkinson, Mark and Bannister, Peter and Brady, Michael and Smith, Stephen',
              'Improved optimization for the robust and accurate linear registration and '
              'motion correction of brain images', 'NeuroImage', 2002, '17', '825--841',
              '10.1006/nimg.2002.1132'),
    Reference('lowekamp2013simpleitk', 'article',
              'Lowekamp, Bradley C. and Chen, David T. and Ibáñez, Luis and Blezek, '
              'Daniel', 'The design of SimpleITK', 'Frontiers in Neuroinformatics', 2013, '7',
              '45', '10.3389/fninf.2013.00045'),
    Reference('zhang2019ajnr', 'article',
              'Zhang, Shun and Nguyen, Thanh D. and Hurtado Rúa, Sandra M. and Kaunzner, Ulrike '
              'W. and Pandya, Sneha and Kovanlikaya, Ilhami and Spincemaille, Pascal and Wang, '
              'Yi and Gauthier, Susan A.',
              'Quantitative susceptibility mapping of time-dependent susceptibility changes in '
              'multiple sclerosis lesions', 'American Journal of Neuroradiology', 2019, '40',
              '987--993', '10.3174/ajnr.A6071'),
    Reference('bates2015lme4', 'article',
              'Bates, Douglas and Mächler, Martin and Bolker, Ben and Walker, Steve',
              'Fitting linear mixed-effects models using lme4', 'Journal of Statistical Software',
              2015, '67', '1--48', '10.18637/jss.v067.i01'),
    Reference('kuznetsova2017lmertest', 'article',
              'Kuznetsova, Alexandra and Brockhoff, Per B. and Christensen, Rune H. B.',
              'lmerTest package: tests in linear mixed effects models',
              'Journal of Statistical Software', 2017, '82', '1--26',
              '10.18637/jss.v082.i13'),
)}


_ENGINES = {'builtin': 'the built-in rigid engine (SimpleITK)', 'flirt': 'FSL FLIRT'}
_REGIONS = {'ventricular_csf': 'the ventricular CSF',
            'whole_brain': 'the whole brain (no ventricular CSF was found)'}


def _read_json(path):
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _values(sidecars, *keys):
    """Distinct values of the first key found, over sidecars and their parameter blocks."""
    found = Counter()
    for meta in sidecars:
        blocks = [meta] + [meta.get(k) or {} for k in ('AlgorithmParameters', 'Options',
                                                       'Decisions', 'QSMParameters')]
        for key in keys:
            hit = next((b[key] for b in blocks if key in b), None)
            if hit is not None:
                found[json.dumps(hit, sort_keys=True)] += 1
                break
    return [json.loads(v) for v, _ in found.most_common()]


def _one(values, unit=''):
    if not values:
        return None
    text = ' or '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)
    return f'{text}{" " + unit if unit else ""}'


def methods_facts(output_dir):
    """What the run recorded, gathered for the methods paragraph (a dict; None = not recorded).

    Parameters
    ----------
    output_dir : str or Path
        The derivatives dataset.
    """
    output_dir = Path(output_dir)
    chi = [_read_json(p) for p in sorted(output_dir.glob('sub-*/ses-*/*/*_Chimap.json'))
           if 'space-' not in p.name]
    xfm = [_read_json(p) for p in sorted(output_dir.glob('sub-*/ses-*/*/*_xfm.json'))]
    dictionaries = [_read_json(p) for p in sorted(output_dir.glob('sub-*/sub-*_lesions.json'))]
    summary = _read_json(output_dir / 'group' / 'group_summary.json')
    description = _read_json(output_dir / 'dataset_description.json')
    generated = (description.get('GeneratedBy') or [{}])[0]
    references = Counter()
    regions = Counter(_REGIONS.get(str(m.get('ReferenceRegion')).lower().replace(' ', '_'),
                                   str(m.get('ReferenceRegion', 'a region not recorded')))
                      for m in chi)

    algorithm = _one(_values(chi, 'Algorithm', 'QSMAlgorithm'))
    if algorithm and 'MEDI' in algorithm:
        references.update(['liu2011medi'])
        if '+0' in algorithm:
            references.update(['liu2018medi0'])
    background = _values(chi, 'background', 'BackgroundRemoval', 'background_method')
    for value in background:
        references.update({'pdf': ['liu2011pdf'], 'lbv': ['zhou2014lbv'],
                           'pdf_edge_smv': ['liu2011pdf', 'schweser2011sharp', 'li2011vsharp'],
                           'medi_toolbox': ['liu2011pdf', 'schweser2011sharp'],
                           'vsharp': ['schweser2011sharp', 'li2011vsharp']}.get(
            str(value).lower(), []))
    outside_scale = [v for v in _values(chi, 'outside_source_scale')
                     if isinstance(v, int | float) and v > 0]
    if outside_scale and any(str(v).lower() == 'pdf_edge_smv' for v in background):
        references.update(['liu2017tfi'])
    r2star = _values(chi, 'r2star_method', 'R2starMethod')
    if any(str(v).lower() == 'arlo' for v in r2star):
        references.update(['pei2015arlo'])
    engines = _values(xfm, 'Engine', 'RegistrationEngine', 'engine')
    for value in engines:
        text = str(value).lower()
        if 'flirt' in text or 'fsl' in text:
            references.update(['jenkinson2002flirt'])
        elif 'simpleitk' in text or 'builtin' in text or 'built-in' in text:
            references.update(['lowekamp2013simpleitk'])
    if chi and not engines:  # engine not recorded: either may have been used
        references.update(['jenkinson2002flirt', 'lowekamp2013simpleitk'])
    references.update(['gorgolewski2011nipype', 'zhang2019ajnr'])
    model = summary.get('susceptibility_model') or None
    if model:
        references.update(['bates2015lme4'])
        if 'satterthwaite' in str(model.get('inference', '')).lower():
            references.update(['kuznetsova2017lmertest'])
    estimator = None
    for dictionary in dictionaries:
        text = (dictionary.get('chi_rel_ppb') or {}).get('Description')
        if text:  # the dictionary's first sentences: what the column holds
            estimator = text.split(' With --config')[0]
            break
    return {
        'n_chi_maps': len(chi),
        'n_subjects': len({p.parent.parent.parent.name for p in
                           output_dir.glob('sub-*/ses-*/*/*_Chimap.json')}),
        'algorithm': algorithm,
        'lambda': _one(_values(chi, 'lambda_', 'lambda', 'Lambda')),
        'lambda_csf': _one(_values(chi, 'lambda_csf', 'LambdaCSF')),
        'iterations': _one(_values(chi, 'max_gn_iter')),
        'cg_iterations': _one(_values(chi, 'cg_max_iter')),
        'edge_fraction': _one(_values(chi, 'edge_fraction')),
        'field_strength': _one(_values(chi, 'field_strength_T', 'MagneticFieldStrength'), 'T'),
        'echo_spacing': _one([round(v * 1e3, 3) for v in _values(chi, 'delta_te_s')
                              if isinstance(v, int | float)], 'ms'),
        'echo_fit': _one(_values(chi, 'echo_fit', 'field_fit', 'EchoFit')),
        'unwrapping': _one(_values(chi, 'unwrapping', 'Unwrapping', 'unwrap_method')),
        'mask_source': _one([v for v in _values(chi, 'brain_mask') if isinstance(v, str)]),
        'mask_threshold': _one(_values(chi, 'mask_threshold')),
        'mask_opening': _one(_values(chi, 'mask_opening_mm'), 'mm'),
        'mask_erosion': _one(_values(chi, 'mask_erosion_mm'), 'mm'),
        'background': _one(background),
        'edge_smv_radius': _one(_values(chi, 'edge_smv_max_radius_mm')),
        'outside_scale': _one(outside_scale),
        'r2star': _one(r2star),
        'csf_threshold': _one(_values(chi, 'csf_r2star_threshold', 'CSFR2starThreshold'),
                              '1/s'),
        'phase_sign': _one(_values(chi, 'phase_sign', 'PhaseSign')),
        'regions': dict(regions),
        'engine': _one([_ENGINES.get(str(e).lower(), e) for e in engines]),
        'cost': _one(_values(xfm, 'Cost', 'cost', 'CostFunction')),
        'dof': _one(_values(xfm, 'DegreesOfFreedom', 'dof')),
        'estimator': estimator,
        'model': model,
        'model_errors': summary.get('errors') or {},
        'lesionqsm_version': generated.get('Version') or __version__,
        'nipype_version': _version('nipype'),
        'references': [REFERENCES[k] for k in REFERENCES if k in references],
    }


def write_citation(output_dir):
    """Write the methods paragraph and its references into ``OUTPUT_DIR/logs``.

    Parameters
    ----------
    output_dir : str or Path
        The derivatives dataset (participant level done; the group model is described when
        ``group/group_summary.json`` exists).

    Returns
    -------
    dict of str -> pathlib.Path
        ``'md'``, ``'bib'`` and ``'html'`` -> the written files.
    """
    output_dir = Path(output_dir).absolute()
    facts = methods_facts(output_dir)
    logs = output_dir / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, template in (('md', 'citation.md'), ('bib', 'citation.bib'),
                           ('html', 'citation.html')):
        path = logs / f'CITATION.{kind}'
        atomic_write_text(path, render(template, f=facts, version=__version__))
        written[kind] = path
    return written
