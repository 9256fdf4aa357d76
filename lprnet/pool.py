"""Worker processes for the CPU-bound stages (cropping, rendering)."""
import multiprocessing


def clean_process_pool(workers, initializer, initargs=(), preload=()):
    """A multiprocessing Pool whose workers start from a clean process.

    Not plain fork: a fork of a process with threads running (OpenCV's pool, tqdm's monitor) can inherit a held
    lock and hang (seen in cv2.setNumThreads). A forkserver forks from a clean single-threaded process, with the
    `preload` modules imported once; where there is none, spawn.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(preload))
    return context.Pool(workers, initializer, initargs)
