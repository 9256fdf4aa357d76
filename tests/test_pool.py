"""lprnet.pool: worker processes that start clean and cannot hang the run when one dies."""
import os
import signal

import pytest

from lprnet.pool import WorkerDied, clean_process_pool


def square(x):
    return x * x


def killed_at_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer ends a process: no exception, no result
    return x


def test_results_come_back_in_order_or_as_they_finish():
    with clean_process_pool(2, preload=[__name__]) as pool:
        assert list(pool.imap(square, range(10), chunksize=2)) == [x * x for x in range(10)]
        assert sorted(pool.imap(square, range(10), ordered=False)) == [x * x for x in range(10)]


def test_a_killed_worker_ends_the_run_instead_of_hanging_it():
    with clean_process_pool(2, preload=[__name__]) as pool:
        with pytest.raises(WorkerDied, match=r"^worker process \d+ died in the middle of the work"):
            list(pool.imap(killed_at_three, range(8)))
