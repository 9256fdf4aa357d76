"""Cut the plates out of CCPD photos into 94x24 training crops named by their text.

    python cut_ccpd.py --ccpdpath CCPD2019/ccpd_base --savepath data/train
    python cut_ccpd.py --ccpdpath CCPD2019 --split_file CCPD2019/splits/train.txt --savepath data/train
    python cut_ccpd.py --ccpdpath CCPD2020/ccpd_green/train --savepath data/train --warp

Crops are `<PLATE>.jpg`, `<PLATE>_1.jpg` ... ; `manifest.tsv` in the save folder keeps which photo
each came from, so an interrupted run resumes where it stopped when run again. Photos that cannot
be used are listed with their reason in `skipped.tsv`.
"""
import argparse
import sys

from lprnet.ccpd import CutError, cut_ccpd
from lprnet.cli import size_arg, str2bool
from lprnet.pool import WorkerDied

MAX_SIDE = 4096  # a crop is a plate: far larger sizes are typos (JPEG itself stops at 65535)


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ccpdpath", required=True, help="CCPD folder, walked recursively (or the CCPD root with "
                   "--split_file)")
    p.add_argument("--savepath", required=True, help="folder for the crops, manifest.tsv and skipped.tsv")
    p.add_argument("--size", type=size_arg, default=(94, 24), help="crop size WIDTHxHEIGHT (default 94x24)")
    p.add_argument("--workers", type=int, default=0, help="processes (0: every core this process may run on)")
    p.add_argument("--split_file", default="", help="a CCPD split list (paths relative to --ccpdpath) "
                   "instead of walking the folder")
    p.add_argument("--warp", type=str2bool, nargs="?", const=True, default=False,
                   help="rectify the plate by its four corners instead of cropping the axis-aligned box")
    p.add_argument("--overwrite", type=str2bool, nargs="?", const=True, default=False,
                   help="cut again the photos whose crops are already there")
    opt = p.parse_args(argv)
    if opt.workers < 0:
        p.error("--workers must be 0 (every core) or more")
    if max(opt.size) > MAX_SIDE:
        p.error(f"--size {opt.size[0]}x{opt.size[1]}: at most {MAX_SIDE} pixels a side")
    return opt


def main(argv=None):
    opt = parse_opt(argv)
    try:
        summary = cut_ccpd(**vars(opt))
    except (CutError, OSError, UnicodeError, WorkerDied) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted: run the same command again to resume")
    if not summary.written and not summary.already_there:
        sys.exit(f"error: no crop in {opt.savepath}: every photo was skipped or none was found (see above)")


if __name__ == "__main__":
    main()
