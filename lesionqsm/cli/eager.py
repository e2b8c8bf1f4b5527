"""A MultiProc plugin that skips cached nodes at once and waits for jobs, not a clock.

nipype's MultiProc plugin works in passes: collect finished jobs, start what is ready, sleep
``poll_sleep_duration`` (2 s by default), repeat. A node whose result is cached is skipped in
a pass, but it still takes its CPUs from that pass's budget, and the nodes it releases wait for
the next pass: a rerun that changes nothing skips about one node per pass on 2 CPUs (122 s of
scheduling for the 122 nodes of the tiny cohort). :class:`EagerMultiProcPlugin` fixes both:
in each pass it first skips every ready node whose result is cached, again and again until
none is left (without taking CPUs), and between passes it waits for a job to finish instead
of sleeping a fixed time.
"""

import sys
from concurrent.futures import FIRST_COMPLETED, wait
from traceback import format_exception

import numpy as np
from nipype.pipeline import plugins as nipype_plugins
from nipype.pipeline.engine import MapNode
from nipype.pipeline.plugins.multiproc import MultiProcPlugin

#: Seconds between two scheduling passes of :class:`EagerMultiProcPlugin` when a pass may
#: start something (nipype's ``poll_sleep_duration``); when nothing can start, the plugin waits
#: for a job to finish instead, so this only bounds how often the driver runs a pass.
EAGER_POLL_SECONDS = 0.05
#: Longest wait (s) for a running job to finish before the next pass looks again anyway.
EAGER_MAX_WAIT_SECONDS = 2.0


class EagerMultiProcPlugin(MultiProcPlugin):
    """nipype's MultiProc that skips cached nodes at once and waits for jobs, not for a clock.

    Plugin arguments are MultiProc's (``n_procs``, ``memory_gb``, ...), plus
    ``max_wait`` (s, default :data:`EAGER_MAX_WAIT_SECONDS`), the longest wait for a running
    job between two passes. Select it with ``workflow.run(plugin='EagerMultiProc')`` after
    importing this module.
    """

    def __init__(self, plugin_args=None):
        args = dict(plugin_args or {})
        self._max_wait = float(args.pop('max_wait', EAGER_MAX_WAIT_SECONDS))
        super().__init__(plugin_args=args)
        self._not_cached = set()  # job ids found not cached (their inputs are final)

    def _send_procs_to_workers(self, updatehash=False, graph=None):
        if not updatehash:
            self._skip_cached(graph)
        super()._send_procs_to_workers(updatehash=updatehash, graph=graph)
        if not self._can_start_a_job():
            self._wait_for_a_job()

    def _ready_jobs(self):
        return np.flatnonzero(~self.proc_done & (self.depidx.sum(axis=0) == 0).__array__())

    def _skip_cached(self, graph):
        """Mark done every ready node whose result is cached, until none is left.

        Skipping a node makes its dependents ready, so the loop goes on level by level: a
        rerun that changes nothing ends in one pass. MapNodes are left to nipype (it expands
        them first). Returns the number of nodes skipped.
        """
        skipped = 0
        while True:
            candidates = [
                jobid for jobid in self._ready_jobs()
                if jobid not in self._not_cached and not isinstance(self.procs[jobid], MapNode)
            ]  # fmt: skip
            if not candidates:
                return skipped
            for jobid in candidates:
                self.proc_done[jobid] = True  # as nipype does before its own check
                self.proc_pending[jobid] = True
                if self._local_hash_check(jobid, graph):
                    skipped += 1
                else:
                    self.proc_done[jobid] = False
                    self.proc_pending[jobid] = False
                    self._not_cached.add(jobid)

    def _can_start_a_job(self):
        """True if a ready job fits in the CPUs and memory the running jobs leave free."""
        ready = self._ready_jobs()
        if not len(ready):
            return False
        free_gb, free_procs, _ = self._check_resources(self.pending_tasks)
        for jobid in ready:
            node = self.procs[jobid]
            if (min(node.n_procs, self.processors) <= free_procs
                    and min(node.mem_gb_runtime, self.memory_gb) <= free_gb):
                return True
        return False

    def _wait_for_a_job(self):
        """Block until a running job finishes (at most ``max_wait`` seconds)."""
        running = [self._task_obj[taskid] for taskid, _ in self.pending_tasks
                   if taskid in self._task_obj]
        if running:
            wait(running, timeout=self._max_wait, return_when=FIRST_COMPLETED)

    def _get_result(self, taskid):
        """The job's result once its future is done (nipype waits for a callback thread).

        A worker that died (e.g. killed for memory) makes its node fail with the error as its
        traceback; nipype's plugin would wait forever for a result that never comes.
        """
        future = self._task_obj.get(taskid)
        if future is None or not future.done():
            return None
        try:
            return future.result()
        except Exception:  # the worker died or the job could not be sent to it
            return {'result': None, 'traceback': format_exception(*sys.exc_info()),
                    'taskid': taskid}


def _register():
    """Make the plugin reachable by name from ``workflow.run(plugin='EagerMultiProc')``."""
    nipype_plugins.EagerMultiProcPlugin = EagerMultiProcPlugin


_register()
