"""The thread helpers the MEDI operators run their FFTs with."""

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
