"""Worker processes for the CPU-bound stages (cropping, rendering)."""
import itertools
import multiprocessing
import os
import signal

WATCH_S = 1.0  # while no result comes, how often the workers are checked for one that died


class WorkerDied(RuntimeError):
    """A worker process ended in the middle of the work; the message says which and the likely cause."""


def _start_worker(pids, initializer, initargs):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the pool
    pids.put(os.getpid())
    if initializer is not None:
        initializer(*initargs)


def _run_chunk(task):
    fn, chunk = task
    return [fn(job) for job in chunk]


def chunks(jobs, size):
    jobs = iter(jobs)
    while True:
        chunk = list(itertools.islice(jobs, size))
        if not chunk:
            return
        yield chunk


def is_alive(pid):
    if os.name != "posix":  # elsewhere signal 0 is no probe (on Windows it is CTRL_C_EVENT): assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that number: ours is gone too
        return False
    return True


class clean_process_pool:
    """A multiprocessing Pool whose workers start from a clean process, and whose results stop with WorkerDied
    when a worker is killed (out of memory, a crash): Pool itself would wait forever for the jobs it held.

    Not plain fork: a fork of a process with threads running (OpenCV's pool, tqdm's monitor) can inherit a held
    lock and hang (seen in cv2.setNumThreads). A forkserver forks from a clean single-threaded process, with the
    `preload` modules imported once; where there is none, spawn.
    """

    def __init__(self, workers, initializer=None, initargs=(), preload=()):
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(list(preload))
        self._pids, self._seen = context.SimpleQueue(), set()
        self._pool = context.Pool(workers, _start_worker, (self._pids, initializer, initargs))

    def imap(self, fn, jobs, chunksize=1, ordered=True):
        """fn(job) for each job, as Pool.imap (or imap_unordered), `chunksize` jobs to a worker at a time, checking
        the workers while waiting (Pool's own chunks come back through a generator that cannot wait with a timeout)."""
        tasks = ((fn, chunk) for chunk in chunks(jobs, chunksize))
        results = (self._pool.imap if ordered else self._pool.imap_unordered)(_run_chunk, tasks)
        while True:
            try:
                yield from results.next(timeout=WATCH_S)
            except StopIteration:
                return
            except multiprocessing.TimeoutError:
                self._check_workers()

    def _check_workers(self):
        while not self._pids.empty():
            self._seen.add(self._pids.get())
        dead = sorted(pid for pid in self._seen if not is_alive(pid))
        if dead:
            raise WorkerDied(f"worker process {dead[0]} died in the middle of the work (killed: out of memory?); "
                             "run again, with fewer --workers if memory is short")

    def terminate(self):
        self._pool.terminate()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.terminate()
