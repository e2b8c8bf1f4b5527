"""Progress lines: count, elapsed time, where, the step in words, cached nodes named."""

import logging

import pytest

from lesionqsm.cli.progress import ProgressReporter, format_elapsed, step_name, where


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class _Node:
    """A stand-in for a nipype node that has no result file (never ran)."""

    def __init__(self, fullname):
        self.fullname, self.name = fullname, fullname.split('.')[-1]

    @property
    def result(self):
        raise FileNotFoundError('no result file')


def _node(fullname):
    return _Node(fullname)


def test_names_and_places():
    assert step_name('invert_dipole') == 'dipole inversion'
    assert step_name('ses_02_gre_to_baseline') == 'GRE registration to baseline'
    assert step_name('some_new_node') == 'some new node'
    assert where('lesionqsm_wf.sub_01_wf.ses_02_qsm_wf.invert_dipole') == 'sub-01 ses-02'
    assert where('lesionqsm_wf.sub_01_wf.lesion_statistics') == 'sub-01'
    assert format_elapsed(41) == '00:41' and format_elapsed(3725) == '1:02:05'


def test_lines_count_time_and_failures():
    clock = _Clock()
    reporter = ProgressReporter(122, clock=clock, logger=logging.getLogger('test.progress'))
    node = _node('lesionqsm_wf.sub_01_wf.ses_02_qsm_wf.invert_dipole')
    assert reporter.line(node, 'start') is None
    clock.now += 41
    assert reporter.line(node, 'end') == '[1/122 00:41] sub-01 ses-02 dipole inversion'
    clock.now += 1
    assert reporter.line(node, 'exception') == \
        '[2/122 00:42] sub-01 ses-02 dipole inversion FAILED'


def test_cached_nodes_are_named_on_a_rerun(tmp_path):
    """A real nipype workflow run twice: every node of the second run is cached."""
    from nipype.interfaces.utility import Function, IdentityInterface
    from nipype.pipeline import engine as pe

    def double(x):
        return 2 * x

    workflow = pe.Workflow(name='lesionqsm_wf', base_dir=str(tmp_path))
    first = pe.Node(Function(input_names=['x'], output_names=['y'], function=double),
                    name='invert_dipole')
    first.inputs.x = 3
    second = pe.Node(Function(input_names=['x'], output_names=['y'], function=double),
                     name='ses_02_gre_to_baseline')
    passing = pe.Node(IdentityInterface(fields=['x']), name='inputnode')  # nipype drops it
    workflow.connect(first, 'y', passing, 'x')
    workflow.connect(passing, 'x', second, 'x')
    lines = []
    for _ in range(2):
        reporter = ProgressReporter.for_workflow(workflow, logger=logging.getLogger('t.p'))
        assert reporter.total == 2
        workflow.run(plugin='Linear', plugin_args={'status_callback': reporter})
        lines.append(reporter.lines)
    assert [line.split('] ')[1] for line in lines[0]] == [
        'dipole inversion', 'ses-02 GRE registration to baseline']
    assert all(line.endswith(' (cached)') for line in lines[1])
    assert lines[1][0].startswith('[1/2 ') and lines[0][-1].startswith('[2/2 ')


@pytest.mark.parametrize('status', ['start', 'other'])
def test_no_line_for_other_statuses(status):
    assert ProgressReporter(3).line(_node('a.b'), status) is None


def test_closing_lines_name_outputs_reports_and_next_step():
    from lesionqsm.cli.progress import closing_lines

    lines = closing_lines('/d/out', level='participant', bids_dir='/d/bids',
                          reports=['/d/out/sub-01.html'], citation='/d/out/logs/CITATION.md')
    assert lines == ['outputs: /d/out', 'report: /d/out/sub-01.html',
                     'methods boilerplate: /d/out/logs/CITATION.md',
                     'next: lesionqsm /d/bids /d/out group']
    assert closing_lines('/d/out', level='group')[-1] == 'outputs: /d/out'
