"""Train LPRNet on folders of plate crops named by their text.

    python train.py --train_img_dirs data/train --test_img_dirs data/val
    torchrun --nproc_per_node 2 train.py --train_img_dirs data/train --test_img_dirs data/val
"""
import argparse
import sys

from lprnet.augment import CONTEXT_FRAMING, CUT_SHIFT, PHOTOMETRIC
from lprnet.cli import probability, str2bool
from lprnet.dataset import BoxesError
from lprnet.device import DeviceError
from lprnet.model import CheckpointError
from lprnet.preprocess import OUTPUT_COLUMNS
from lprnet.training import train


def percent(fraction):
    """0.04 -> '4%%': a percentage for argparse help, which formats its text with %."""
    return f"{fraction * 100:.0f}%%"


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train_img_dirs", default="data/train", help="training folders, comma-separated")
    p.add_argument("--test_img_dirs", default="data/val", help="validation folders, comma-separated")
    p.add_argument("--pretrained_model", default="", help="checkpoint to resume or fine-tune from "
                   "(ours, or a bare LPRNet_Pytorch state_dict)")
    p.add_argument("--resume_epoch", type=int, default=0, help="epoch to continue from")
    p.add_argument("--max_epoch", type=int, default=40, help="last epoch to train")
    p.add_argument("--batch_size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--save_folder", default="weights", help="where last.pth, best.pth, log.csv, log.png go")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--workers", type=int, default=-1,
                   help="data-loading processes (-1: none on CPU, where they slow training; up to 4 on a GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no_augment", action="store_true", help="train on the plain crops")
    framing = CONTEXT_FRAMING
    p.add_argument("--near_windows", type=probability, default=framing.near,
                   help="plates with surroundings (boxes.tsv): the chance that a window keeps its sides near the box "
                        f"(else each side moves up to {percent(framing.margin[1])} out), so that its shift cuts into "
                        "the plate")
    p.add_argument("--cut_windows", type=probability, default=framing.cut,
                   help=f"the chance that a near window shifts sideways {percent(CUT_SHIFT)}-{percent(framing.shift)} "
                        "of the box width, which mostly cuts into the first or last character as a shifted detector "
                        "box does")
    p.add_argument("--gray", type=probability, default=PHOTOMETRIC.gray,
                   help="the chance that a training plate loses its colour, as an infrared camera sees it at night")
    p.add_argument("--min_jpeg_quality", type=int, default=PHOTOMETRIC.jpeg_quality[0],
                   help=f"JPEG re-encoding ({percent(PHOTOMETRIC.jpeg)} of training plates) draws its quality from "
                        f"here to {PHOTOMETRIC.jpeg_quality[1]}")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                   help="bf16 autocast; auto turns it on for AMX/AVX512-BF16 CPUs and bf16 GPUs")
    p.add_argument("--threads", type=int, default=0, help="CPU threads in all (0: every core)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--columns", type=int, default=0, choices=(0,) + OUTPUT_COLUMNS,
                   help="output columns: 18 (LPRNet's) or 36 (room for 8 characters in a loose crop); "
                        "0 keeps the pretrained model's, or 18")
    p.add_argument("--sync_bn", type=str2bool, default=True,
                   help="SyncBatchNorm across GPUs under torchrun (True/False; CPU processes never sync)")
    return p.parse_args(argv)


def main(argv=None):
    opt = parse_opt(argv)
    try:
        train(**vars(opt))
    except (BoxesError, CheckpointError, DeviceError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: continue with --pretrained_model {opt.save_folder}/last.pth --resume_epoch "
                 f"<the last epoch in {opt.save_folder}/log.csv> and the same other flags")


if __name__ == "__main__":
    main()
