"""The thread helpers the MEDI operators run their FFTs with."""

import multiprocessing
import os
import time

import numpy as np
import pytest

from lesionqsm.qsm import threads


@pytest.mark.parametrize('parallel', [False, True])
def test_run_all_keeps_order_and_values(parallel):
    arrays = [np.full(1000, float(i), dtype=np.float32) for i in range(5)]
    jobs = [(lambda a=a: float(a.sum())) for a in arrays]
    assert threads.run_all(jobs, parallel=parallel) == [1000.0 * i for i in range(5)]


@pytest.mark.parametrize('parallel', [False, True])
def test_errors_reach_the_caller(parallel):
    def fails():
        raise ValueError('from the job')

    with pytest.raises(ValueError, match='from the job'):
        threads.run_all([lambda: 1, fails], parallel=parallel)
    with pytest.raises(ValueError, match='from the job'):
        threads.start(fails, parallel=parallel).result()


def test_cpu_count_is_positive():
    assert threads.cpu_count() >= 1


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_a_forked_child_gets_its_own_pool():
    """A child forked after the pool started must not wait on the parent's threads."""
    # the parent's pool with its threads busy at once, so that all of them exist (without the
    # fork hook the child then waits forever: measured, TimeoutError)
    threads.run_all([lambda: time.sleep(0.1), lambda: time.sleep(0.1)], parallel=True)
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(1) as pool:
        result = pool.apply_async(_sum_in_threads).get(timeout=60)
    assert result == [0.0, 1000.0]


def _sum_in_threads():
    arrays = [np.full(1000, float(i), dtype=np.float32) for i in range(2)]
    return threads.run_all([(lambda a=a: float(a.sum())) for a in arrays], parallel=True)
