"""Measure cut_ccpd.py's speed on a folder of CCPD photos: photos per second for each worker count.

    python bench_cut_ccpd.py --ccpdpath ../shared/data/ccpd_sample --workers 1,2

Each count cuts every photo into a fresh temporary folder, after one read-through that puts the files
in the page cache (disk speed is not measured) and a first start of the worker processes (a one-off
second or so per command, not counted). With one worker the cut runs in this process, and "photos
per CPU-second" is what one idle core gives even when the machine is busy.
"""
import argparse
import os
import sys
import tempfile
import time

from lprnet.ccpd import CcpdNameError, cut_ccpd, parse_ccpd_name, run_jobs
from lprnet.charset import LabelError
from lprnet.cli import comma_list, size_arg, str2bool
from lprnet.cpu import usable_cores
from lprnet.image import list_images


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ccpdpath", required=True, help="folder of CCPD photos")
    p.add_argument("--workers", default=f"1,{usable_cores()}", help="worker counts to time, comma-separated")
    p.add_argument("--size", type=size_arg, default=(94, 24), help="crop size WIDTHxHEIGHT")
    p.add_argument("--warp", type=str2bool, nargs="?", const=True, default=False, help="time the --warp crop")
    return p.parse_args(argv)


def is_ccpd_photo(path):
    try:
        parse_ccpd_name(path)
    except (CcpdNameError, LabelError):
        return False
    return True


def benchmark(ccpdpath, workers, size=(94, 24), warp=False, log=print):
    photos = 0
    for path in list_images(ccpdpath):
        with open(path, "rb") as f:
            f.read()
        photos += is_ccpd_photo(path)
    if not photos:
        raise SystemExit(f"error: {ccpdpath}: no photo with a CCPD file name to cut")
    log(f"{ccpdpath}: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores, "
        f"{'warp' if warp else 'bbox'} crop {size[0]}x{size[1]}")
    for n in workers:
        list(run_jobs([], n))  # start the worker processes once
        with tempfile.TemporaryDirectory() as tmp:
            cpu = time.process_time()
            s = cut_ccpd(ccpdpath, tmp, size=size, workers=n, warp=warp, progress=False, log=lambda _: None)
            cpu = time.process_time() - cpu
        line = f"workers={n}: {s.processed} photos in {s.seconds:.2f} s = {s.rate:.0f} photos/s"
        if n == 1:
            line += f"; {cpu:.2f} CPU-s = {s.processed / max(cpu, 1e-9):.0f} photos per CPU-second"
        log(line)


def main(argv=None):
    opt = parse_opt(argv)
    try:
        workers = [int(n) for n in comma_list(opt.workers)]
    except ValueError:
        sys.exit(f"error: --workers {opt.workers!r}: expected counts such as 1,2")
    if min(workers) < 1:
        sys.exit(f"error: --workers {opt.workers!r}: counts must be at least 1")
    try:
        benchmark(opt.ccpdpath, workers, opt.size, opt.warp)
    except OSError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
