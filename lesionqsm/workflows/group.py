"""The group level: every subject's lesion table -> growth-curve models -> OUTPUT_DIR/group/."""

import tempfile
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ..interfaces.group import GroupModel, find_lesion_tables
from ..stats.growth_curve import DEFAULT_COVARIATES, TABLE_AGES, ModelError

__all__ = ['init_group_wf', 'run_group_level']


def init_group_wf(*, output_dir, degree=8, covariates=DEFAULT_COVARIATES, binning='octiles',
                  bin_edges=None, basis='distinct', random_slopes=False,
                  reference_rim='positive', table_ages=TABLE_AGES, volume_degree=3,
                  name='group_wf'):
    """Fit the lesion-age growth-curve models of all lesions and write them as derivatives.

    Workflow Graph
        .. workflow::

            from lesionqsm.workflows.group import init_group_wf
            wf = init_group_wf(output_dir='derivatives')

    Parameters
    ----------
    output_dir : str
        BIDS derivatives folder of the participant level; results go to ``output_dir/group``.
    degree : int
        Degree of the orthogonal polynomial in lesion age (paper: 8).
    covariates : sequence of str
        Covariates of the susceptibility model (baseline_volume, edss, age, disease_duration,
        treatment_duration; volume_change for the paper's variant).
    binning, bin_edges, basis, random_slopes, reference_rim
        See :func:`lesionqsm.stats.growth_curve.fit_growth_curve`.
    table_ages : sequence of float
        Lesion ages (years) of the fitted-means tables.
    volume_degree : int
        Degree of the volume model (paper: 3).

    Inputs
    ------
    lesion_tables : list of per-subject ``*_lesions.tsv``
    participants_tsv : ``participants.tsv`` (patient age, EDSS, durations)

    Outputs
    -------
    out_files : dict, output kind -> path;  summary : ``group_summary.json``
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=['lesion_tables', 'participants_tsv']),
                        name='inputnode')
    outputnode = pe.Node(niu.IdentityInterface(fields=['out_files', 'summary']),
                         name='outputnode')
    kwargs = dict(out_dir=str(Path(output_dir).absolute() / 'group'), degree=int(degree),
                  covariates=list(covariates),
                  binning=binning if isinstance(binning, str) else [float(b) for b in binning],
                  basis=basis, random_slopes=bool(random_slopes), reference_rim=reference_rim,
                  table_ages=[float(a) for a in table_ages], volume_degree=int(volume_degree))
    if bin_edges is not None:
        kwargs['bin_edges'] = [float(e) for e in bin_edges]
    fit = pe.Node(GroupModel(**kwargs), name='fit_group_model', mem_gb=1.0)
    workflow.connect([
        (inputnode, fit, [('lesion_tables', 'lesion_tables'),
                          ('participants_tsv', 'participants_tsv')]),
        (fit, outputnode, [('out_files', 'out_files'), ('summary', 'summary')]),
    ])  # fmt:skip
    return workflow


def run_group_level(output_dir, bids_dir, *, work_dir=None, **options):
    """Run the group level on an output folder; the CLI's entry point.

    Parameters
    ----------
    output_dir : str or Path
        Participant-level derivatives (``sub-*/sub-*_lesions.tsv``); results are written to
        ``output_dir/group``.
    bids_dir : str or Path
        Raw BIDS dataset; its ``participants.tsv`` gives the patient covariates.
    work_dir : str or Path, optional
        nipype working directory (default: a temporary folder, removed afterwards).
    **options
        Keyword arguments of :func:`init_group_wf` (degree, covariates, binning, ...).

    Returns
    -------
    dict of str -> str
        Output kind -> written path.

    Raises
    ------
    ModelError
        No lesion tables, a covariate needing a missing participants.tsv, or a model the data
        cannot support (the message says why).
    """
    tables = find_lesion_tables(output_dir)
    participants = Path(bids_dir) / 'participants.tsv'
    covariates = options.get('covariates', DEFAULT_COVARIATES)
    if covariates is None:
        options['covariates'] = covariates = list(DEFAULT_COVARIATES)
    needs = {'edss', 'age', 'disease_duration', 'treatment_duration'} & set(covariates)
    if needs and not participants.is_file():
        raise ModelError(f'{participants} not found; it is needed for the covariate(s) '
                         f'{", ".join(sorted(needs))}')
    wf = init_group_wf(output_dir=output_dir, **options)
    wf.inputs.inputnode.lesion_tables = tables
    if participants.is_file():
        wf.inputs.inputnode.participants_tsv = str(participants.absolute())
    with tempfile.TemporaryDirectory(prefix='lesionqsm_group_') as tmp:
        wf.base_dir = str(work_dir or tmp)
        wf.config['execution'] = {'crashdump_dir': tmp, 'stop_on_first_crash': True,
                                  'crashfile_format': 'txt'}
        try:
            graph = wf.run(plugin='Linear')
        except Exception as exc:  # nipype wraps the node's exception: re-raise its message
            raise ModelError(_node_error(tmp) or str(exc)) from exc
        node = next(n for n in graph.nodes() if n.name == 'fit_group_model')
        return dict(node.result.outputs.out_files)


def _node_error(crash_dir):
    """The exception line of the crashed node's traceback, if nipype left a crash file."""
    for crash in sorted(Path(crash_dir).glob('crash-*.txt')):
        lines = [ln for ln in crash.read_text().splitlines() if 'Error:' in ln]
        if lines:
            return lines[-1].split('Error: ', 1)[-1].strip()
    return None
