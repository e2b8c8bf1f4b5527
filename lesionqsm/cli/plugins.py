"""Execution back ends: nipype plugin and configuration, SLURM job requests, SLURM resume.

The participant level runs one nipype workflow; where its nodes run is chosen here:

* ``Linear`` / ``MultiProc``: on this machine; MultiProc runs as
  :class:`~lesionqsm.cli.eager.EagerMultiProcPlugin`, which skips cached nodes without waiting
  for a poll (a rerun that changes nothing takes seconds).
* ``SLURM``: one ``sbatch`` job per node, submitted when the node's inputs are ready; this
  process (the *driver*) stays alive and polls ``squeue``.
* ``SLURMGraph``: the whole graph is submitted at once with ``--dependency=afterok`` chains;
  :class:`WaitingSLURMGraphPlugin` then waits for the jobs (nipype's own plugin returns at once)
  and fails if any node did not finish.

Both SLURM plugins here resume: before submitting, they wait for jobs that a previous, killed
driver left in the queue for the same work directory (so no two jobs ever write one node's
directory), and nodes whose results are cached are not submitted again.

Facts about nipype 1.8-1.11 this module works around (found on a real single-node cluster):
the SLURM plugin reads ``os.environ['LOGNAME']`` (``KeyError`` when unset); ``SLURMGraph``
raises ``AttributeError`` when ``plugin_args`` is empty; ``poll_sleep_duration`` is a config
setting, not a plugin argument, and its default of 2 s dominates the run time of small jobs;
a result file written on a compute node may appear late on a shared file system, which nipype
tolerates for ``job_finished_timeout`` seconds.
"""

from __future__ import annotations

import copy
import getpass
import logging
import math
import os
import shlex
import subprocess
import time
from pathlib import Path

from nipype import config as nipype_config
from nipype.pipeline import plugins as nipype_plugins
from nipype.pipeline.plugins.slurm import SLURMPlugin
from nipype.pipeline.plugins.slurmgraph import SLURMGraphPlugin
from nipype.pipeline.plugins.tools import report_crash

from .eager import EAGER_POLL_SECONDS  # also registers the EagerMultiProc plugin
from .resources import available_memory_gb

LOGGER = logging.getLogger('lesionqsm.slurm')

PLUGINS = ('Linear', 'MultiProc', 'SLURM', 'SLURMGraph')
SLURM_PLUGINS = ('SLURM', 'SLURMGraph')

#: Resident memory of a nipype job's Python interpreter with numpy, scipy and nibabel loaded
#: (about 0.25 GB measured; rounded up), added to each node's ``mem_gb`` in its ``--mem``.
PYTHON_OVERHEAD_GB = 0.5
#: Default ``poll_sleep_duration`` (s) under SLURM: nipype's 2 s makes a 20-node run of
#: one-second jobs take minutes; each poll is one ``squeue`` call per running job.
SLURM_POLL_SECONDS = 1.0
#: Default ``job_finished_timeout`` (s) under SLURM: how long a missing result file is waited
#: for after its job left the queue (NFS attribute caches hold stale entries up to ~60 s, but
#: the wait only ever costs time when a job failed).
SLURM_JOB_FINISHED_TIMEOUT = 20.0
#: Always added to SLURMGraph jobs: a job whose dependency failed is cancelled instead of
#: pending forever with reason ``DependencyNeverSatisfied``.
GRAPH_SBATCH_ARGS = '--kill-on-invalid-dep=yes'
#: Key of ``plugin_args`` carrying the nipype execution settings to the SLURM plugins.
EXECUTION_KEY = 'lesionqsm_execution'
#: nipype's own default ``poll_sleep_duration`` (s), kept for its plugins.
NIPYPE_POLL_SECONDS = 2.0
#: How nipype hashes a file input to decide whether a cached result is still valid:
#: ``timestamp`` (size and modification time, a ``stat`` per file) or ``content`` (MD5 of
#: every byte, read again for every node on every run). See :func:`configure_execution`.
HASH_METHODS = ('timestamp', 'content')


def ensure_logname():
    """Set ``LOGNAME`` from the current user if it is unset (nipype's SLURM plugin needs it)."""
    if not os.environ.get('LOGNAME'):
        try:
            os.environ['LOGNAME'] = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for this uid
            os.environ['LOGNAME'] = str(os.getuid())
    return os.environ['LOGNAME']


def configure_execution(
    *,
    plugin,
    nprocs,
    mem_gb,
    plugin_args=None,
    sbatch_args=None,
    work_dir,
    poll_sleep_duration=None,
    job_finished_timeout=None,
    stop_on_first_crash=False,
    crashdump_dir=None,
    hash_method=None,
    eager=None,
    workflow=None,
):
    """Set nipype's execution configuration and build the plugin for ``workflow.run``.

    Parameters
    ----------
    plugin : {'Linear', 'MultiProc', 'SLURM', 'SLURMGraph'}
        Where the nodes run.
    nprocs : int
        CPUs MultiProc may use at once (ignored by the SLURM plugins: SLURM schedules).
    mem_gb : float or None
        Memory in GB MultiProc may use at once (None: the memory available now, raised with a
        warning to the largest node's ``mem_gb`` if that is more, so that it can run alone;
        ignored by the SLURM plugins).
    plugin_args : dict, optional
        Extra nipype plugin arguments; they override the ones built here. Its keys
        ``poll_sleep_duration``, ``job_finished_timeout``, ``hash_method`` and ``eager``, if
        given, are taken as those settings (so ``--plugin-args '{"poll_sleep_duration": 0.2}'``
        works).
    sbatch_args : str, optional
        Extra ``sbatch`` options for every job, e.g. ``'--partition=short --account=ms'``.
    work_dir : str or Path
        nipype's work directory.
    poll_sleep_duration : float, optional
        Seconds between polls of the job queue: default 1 s for SLURM,
        :data:`~lesionqsm.cli.eager.EAGER_POLL_SECONDS` for the eager MultiProc (which waits
        for its jobs rather than polling), nipype's 2 s otherwise.
    job_finished_timeout : float, optional
        Seconds to wait for a result file after its job left the queue; default 20 s for SLURM.
    stop_on_first_crash : bool, optional
        Stop the whole run at the first failing node (default: run every node that can run).
    crashdump_dir : str or Path, optional
        Where nipype writes crash files; default ``work_dir/crash``.
    hash_method : {'timestamp', 'content'}, optional
        How file inputs are hashed to decide whether a node's cached result is valid
        (default ``timestamp`` on this machine, ``content`` under SLURM, where the driver and
        the jobs see a file through different hosts' attribute caches of a shared file
        system). ``timestamp`` compares each file's size and modification
        time: a rerun costs one ``stat`` per file, but a file rewritten with the same size and
        time (``cp -p``, ``rsync -t`` of another version, a write within the file system's
        time resolution) is not noticed, and a file touched or copied without its time
        (``cp``, ``git checkout``) reruns everything downstream of it. ``content`` reads and
        MD5s every byte of every file input of every node on every run: exact, but a rerun of
        a real cohort then reads the whole work directory again.
    eager : bool, optional
        MultiProc only: run it as :class:`~lesionqsm.cli.eager.EagerMultiProcPlugin`
        (default True); False gives nipype's own plugin, for comparison.
    workflow : nipype Workflow, optional
        A workflow built *before* this call. nipype copies its global configuration into every
        workflow and node when they are built, and those copies win over later changes, so
        pass the workflow (or call this before building it). The SLURM plugins returned here
        also apply the settings to every node when they run.

    Returns
    -------
    plugin : str
        Pass to ``workflow.run(plugin=plugin, plugin_args=plugin_args)``. ``'Linear'``;
        ``'EagerMultiProc'`` (or nipype's ``'MultiProc'`` when ``eager`` is False); for SLURM
        ``'SLURMResumable'`` (:class:`SLURMResumablePlugin`) and for SLURMGraph
        ``'SLURMGraphWaiting'`` (:class:`SLURMGraphWaitingPlugin`): subclasses of nipype's
        plugins registered in ``nipype.pipeline.plugins``.
    plugin_args : dict
        The plugin arguments; never empty for SLURMGraph.

    Raises
    ------
    ValueError
        If ``plugin`` is not one of the above, ``nprocs``, ``mem_gb`` or a duration is not
        positive, or ``hash_method`` is not one of :data:`HASH_METHODS`.
    """
    if plugin not in PLUGINS:
        raise ValueError(f'unknown plugin {plugin!r}: choose one of {", ".join(PLUGINS)}')
    if int(nprocs) < 1:
        raise ValueError(f'nprocs must be a positive number of CPUs, got {nprocs!r}')
    if mem_gb is not None and not float(mem_gb) > 0:
        raise ValueError(f'mem_gb must be a positive number of GB, got {mem_gb!r}')
    slurm = plugin in SLURM_PLUGINS
    plugin_args = dict(plugin_args or {})  # the two config settings may come from --plugin-args
    if poll_sleep_duration is None:
        poll_sleep_duration = plugin_args.pop('poll_sleep_duration', None)
    if job_finished_timeout is None:
        job_finished_timeout = plugin_args.pop('job_finished_timeout', None)
    if hash_method is None:
        hash_method = plugin_args.pop('hash_method', 'content' if slurm else 'timestamp')
    if eager is None:
        eager = bool(plugin_args.pop('eager', True))
    eager = eager and plugin == 'MultiProc'
    if hash_method not in HASH_METHODS:
        raise ValueError(
            f'hash_method must be one of {", ".join(HASH_METHODS)}, got {hash_method!r}'
        )
    if poll_sleep_duration is None:
        if slurm:
            poll_sleep_duration = SLURM_POLL_SECONDS
        else:
            poll_sleep_duration = EAGER_POLL_SECONDS if eager else NIPYPE_POLL_SECONDS
    if job_finished_timeout is None:
        job_finished_timeout = SLURM_JOB_FINISHED_TIMEOUT if slurm else 5.0
    for name, value in (
        ('poll_sleep_duration', poll_sleep_duration),
        ('job_finished_timeout', job_finished_timeout),
    ):
        if not float(value) > 0:
            raise ValueError(f'{name} must be a positive number of seconds, got {value!r}')

    work_dir = Path(work_dir).absolute()
    settings = {
        'poll_sleep_duration': str(float(poll_sleep_duration)),
        'job_finished_timeout': str(float(job_finished_timeout)),
        'crashdump_dir': str(Path(crashdump_dir or work_dir / 'crash').absolute()),
        'crashfile_format': 'txt',
        'stop_on_first_crash': 'true' if stop_on_first_crash else 'false',
        # A cached node is reused only if its hash matches: the resume rests on this.
        'hash_method': hash_method,
    }
    for key, value in settings.items():
        nipype_config.set('execution', key, value)
    if workflow is not None:
        _apply_settings(settings, workflow, workflow._get_all_nodes())

    if plugin == 'Linear':
        return 'Linear', dict(plugin_args or {})
    if plugin == 'MultiProc':
        if mem_gb is None:
            mem_gb = _default_memory_gb(workflow)
        args = {'n_procs': int(nprocs)}
        if mem_gb is not None:
            args['memory_gb'] = float(mem_gb)
        args.update(plugin_args or {})
        return ('EagerMultiProc' if eager else 'MultiProc'), args

    ensure_logname()
    if plugin == 'SLURM':
        args = {'sbatch_args': sbatch_args or '', 'max_tries': 3, 'retry_timeout': 5}
        name = 'SLURMResumable'
    else:
        args = {
            'sbatch_args': ' '.join(filter(None, [GRAPH_SBATCH_ARGS, sbatch_args])),
            'dont_resubmit_completed_jobs': True,
        }
        name = 'SLURMGraphWaiting'
    args.update(plugin_args or {})
    args[EXECUTION_KEY] = settings
    return name, args


def _default_memory_gb(workflow):
    """MultiProc's memory budget when none is given: what is available, and enough for the
    largest node of ``workflow`` (which then runs alone; a warning says so)."""
    available = available_memory_gb()
    if available is None or workflow is None:
        return available
    largest = max((node.mem_gb for node in workflow._get_all_nodes()), default=0.0)
    if largest > available:
        LOGGER.warning(
            'only %.1f GB of memory is available now, and the largest node asks for %.1f GB: '
            'running it alone with a %.1f GB budget (set --mem-gb to choose)',
            available, largest, largest,
        )  # fmt: skip
        return largest
    return available


def _apply_settings(settings, workflow_or_config, nodes):
    """Put ``settings`` into a workflow's (or a run's) config and into each node's copy."""
    config = getattr(workflow_or_config, 'config', workflow_or_config)
    config.setdefault('execution', {}).update(settings)
    for node in nodes:
        if node.config is None:
            node.config = {}
        node.config.setdefault('execution', {}).update(settings)


def node_sbatch_args(*, mem_gb, n_procs, walltime='04:00:00', sbatch_args=None):
    """The ``sbatch`` options that request one node's resources.

    Parameters
    ----------
    mem_gb : float
        The node's own memory estimate in GB; :data:`PYTHON_OVERHEAD_GB` is added.
    n_procs : int
        Threads the node uses.
    walltime : str, optional
        SLURM time limit, ``[D-]HH:MM:SS``.
    sbatch_args : str, optional
        The user's options, appended last so that they win over the computed ones.

    Returns
    -------
    str
        Starts with a space: nipype's SLURMGraph concatenates it to its own arguments as is.
    """
    mem_mb = math.ceil((float(mem_gb) + PYTHON_OVERHEAD_GB) * 1024)
    args = f' --mem={mem_mb}M --cpus-per-task={max(1, int(n_procs))} --time={walltime}'
    if sbatch_args:
        args += ' ' + sbatch_args.strip()
    return args


def apply_node_resources(workflow, *, walltime='04:00:00', sbatch_args=None):
    """Give every node of ``workflow`` an ``sbatch`` request from its ``mem_gb`` and ``n_procs``.

    Nested workflows are included. A node's existing ``plugin_args`` are kept; its
    ``sbatch_args`` are appended to. Used by the SLURM and SLURMGraph plugins, ignored by
    the others.

    Parameters
    ----------
    workflow : nipype Workflow
    walltime : str, optional
        Time limit per job, ``[D-]HH:MM:SS``.
    sbatch_args : str, optional
        The user's ``--sbatch-args``, appended to every node's request.

    Returns
    -------
    int
        Number of nodes given a request.

    Raises
    ------
    ValueError
        If ``walltime`` is not a SLURM time (``[D-]HH:MM:SS``, ``MM:SS`` or minutes).
    """
    _check_walltime(walltime)
    count = 0
    for node in workflow._get_all_nodes():
        request = node_sbatch_args(
            mem_gb=node.mem_gb, n_procs=node.n_procs, walltime=walltime, sbatch_args=sbatch_args
        )
        args = dict(node.plugin_args or {})
        args['sbatch_args'] = args.get('sbatch_args', '') + request
        node.plugin_args = args
        count += 1
    return count


def _check_walltime(walltime):
    text = str(walltime)
    days, _, clock = text.rpartition('-')
    parts = clock.split(':')
    ok = (not days or days.isdigit()) and 1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)
    if not ok:
        raise ValueError(
            f'walltime {walltime!r} is not a SLURM time limit: use [D-]HH:MM:SS, e.g. 04:00:00'
        )


# --- the SLURM queue ---------------------------------------------------------------------


def queued_jobs(under):
    """This user's queued or running SLURM jobs whose batch script lies under ``under``.

    Parameters
    ----------
    under : str or Path
        A directory; nipype writes its batch scripts to ``<work dir>/<workflow>/batch``.

    Returns
    -------
    list of dict
        ``{'jobid': int, 'state': str, 'reason': str, 'script': str}`` per job.

    Raises
    ------
    RuntimeError
        If ``squeue`` fails (no cluster, or ``SLURM_CONF`` not set).
    """
    under = str(Path(under).absolute()).rstrip('/') + '/'
    cmd = ['squeue', '-h', '-u', str(os.getuid()), '-o', '%i|%T|%r|%o']
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f'{shlex.join(cmd)} failed: {proc.stderr.strip()}')
    jobs = []
    for line in proc.stdout.splitlines():
        fields = line.split('|', 3)
        if len(fields) == 4 and fields[3].startswith(under):
            jobid, state, reason, script = fields
            jobs.append({'jobid': int(jobid), 'state': state, 'reason': reason, 'script': script})
    return jobs


def wait_for_jobs(under, *, poll_seconds=1.0, timeout=None):
    """Block until no job of this user with a batch script under ``under`` is in the queue.

    Parameters
    ----------
    under : str or Path
        Directory holding the jobs' batch scripts.
    poll_seconds : float, optional
        Seconds between ``squeue`` calls.
    timeout : float, optional
        Give up after this many seconds.

    Returns
    -------
    int
        The number of jobs that were waited for (0 if none were queued).

    Raises
    ------
    TimeoutError
        If jobs are still queued after ``timeout`` seconds.
    """
    start = time.monotonic()
    seen = set()
    while True:
        jobs = queued_jobs(under)
        if not jobs:
            return len(seen)
        seen.update(job['jobid'] for job in jobs)
        if timeout is not None and time.monotonic() - start > timeout:
            ids = ', '.join(str(job['jobid']) for job in jobs)
            raise TimeoutError(f'SLURM jobs {ids} under {under} still queued after {timeout} s')
        time.sleep(poll_seconds)


def _batch_dirs(graph):
    """The directories nipype writes the batch scripts of ``graph``'s nodes to."""
    dirs = set()
    for node in graph.nodes():
        if node._hierarchy:
            dirs.add(Path(node.base_dir, node._hierarchy.split('.')[0], 'batch'))
        else:
            dirs.add(Path(node.base_dir, 'batch'))
    return sorted(dirs)


def _wait_for_leftovers(graph, poll_seconds):
    """Wait for queued jobs of an earlier run that belong to nodes of ``graph``.

    nipype names a node's batch script ``batchscript_pyscript_<time>_<hierarchy>_<node>.sh``;
    matching on the hierarchies of this graph's nodes (e.g. ``lesionqsm_wf.sub_01_wf...``)
    leaves alone the jobs of another driver working on other subjects in the same work dir.
    """
    tags = {f'_{node._hierarchy}_' for node in graph.nodes() if node._hierarchy}
    for batch_dir in _batch_dirs(graph):

        def leftovers(batch_dir=batch_dir):
            return [
                job for job in queued_jobs(batch_dir)
                if not tags or any(tag in Path(job['script']).name for tag in tags)
            ]  # fmt: skip

        if not leftovers():
            continue
        LOGGER.warning(
            'jobs of an earlier run are still queued under %s; waiting for them before '
            'resuming (scancel them to rerun their nodes instead)',
            batch_dir,
        )
        while leftovers():
            time.sleep(poll_seconds)


class SLURMResumablePlugin(SLURMPlugin):
    """nipype's SLURM plugin, waiting first for jobs a killed driver left for this work dir.

    Without the wait, a rerun would submit a second job for a node whose first job is still
    running, and both would write the same node directory.
    """

    def run(self, graph, config, updatehash=False):
        config = _prepare(self, graph, config)
        return super().run(graph, config, updatehash=updatehash)


class SLURMGraphWaitingPlugin(SLURMGraphPlugin):
    """nipype's SLURMGraph plugin that returns only when its jobs have finished.

    nipype's plugin submits the graph and returns at once, so a command line using it would
    exit 0 before any output exists. Here ``run`` also waits for leftovers of a killed earlier
    run (as :class:`SLURMResumablePlugin`), skips nodes whose results are cached, waits for
    the submitted jobs to leave the queue, and raises ``RuntimeError`` naming every node that
    did not finish (a failed, killed or timed-out job, or one cancelled because a job it
    depends on failed).
    """

    def run(self, graph, config, updatehash=False):
        config = _prepare(self, graph, config)
        poll = float(config['execution']['poll_sleep_duration'])
        super().run(graph, config, updatehash=updatehash)
        for batch_dir in _batch_dirs(graph):
            wait_for_jobs(batch_dir, poll_seconds=poll)
        not_done = [node for node in graph.nodes() if not _node_done(node)]
        for node in not_done:  # a crash file per node, as the other plugins leave
            report_crash(
                node,
                traceback=[
                    f'Node {node.fullname} did not finish under SLURMGraph: its job failed, was '
                    'killed or timed out, or was cancelled because a job it depends on failed.\n'
                ],
            )
        if not_done:
            names = ', '.join(node.fullname for node in not_done)
            raise RuntimeError(
                f'{len(not_done)} of {graph.number_of_nodes()} nodes did not finish under '
                f'SLURMGraph: {names}. Crash files: {config["execution"]["crashdump_dir"]}; '
                f'job logs: {", ".join(map(str, _batch_dirs(graph)))}. Rerun the same command '
                'to run only these.'
            )


def _prepare(plugin, graph, config):
    """Apply the carried settings, make LOGNAME exist, wait for a killed run's leftovers."""
    ensure_logname()
    config = copy.deepcopy(config)
    _apply_settings(plugin.plugin_args.get(EXECUTION_KEY, {}), config, graph.nodes())
    _wait_for_leftovers(graph, float(config['execution']['poll_sleep_duration']))
    return config


def _register():
    """Make the plugins reachable by name from ``workflow.run(plugin=...)``."""
    for cls in (SLURMResumablePlugin, SLURMGraphWaitingPlugin):
        setattr(nipype_plugins, cls.__name__, cls)


def _node_done(node):
    """True if the node's result for its current inputs is cached (its hash file exists)."""
    try:
        return node.hash_exists()[0]
    except Exception:  # an upstream result is missing, so this node cannot have run
        return False


_register()
