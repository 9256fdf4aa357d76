"""Framing benchmark: how well a model reads plates cropped tight, loose, shifted, rotated or rectified.

    python bench_framing.py --model model/lprnet.pth --sets ../shared/data/plates_context/val
    python bench_framing.py --model model/LPRNet.onnx --sets DIR1,DIR2 --cut_detail
    python bench_framing.py --model model/LPRNet.onnx --sets runs/gentest/context_yellow_double
"""
import argparse
import sys

from lprnet.cli import add_plate_rules_flag, add_two_rows_flag, check_flags, set_folders, set_name
from lprnet.dataset import BoxesError, load_samples
from lprnet.engines import EngineError, open_engine
from lprnet.framing import SHIFTED, cut_table, read_right_by_variant, table
from lprnet.model import CheckpointError


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/lprnet.pth", help=".pth or .onnx")
    p.add_argument("--sets", default="../shared/data/plates_context/val",
                   help="comma-separated folders whose boxes.tsv gives each plate's corners")
    p.add_argument("--limit", type=int, default=0, help="use only the first N plates of each set")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    add_plate_rules_flag(p)
    add_two_rows_flag(p)
    p.add_argument("--cut_detail", action="store_true",
                   help="also split the shifted variant by the share of the first/last character the window keeps")
    return p.parse_args(argv)


def run(model, sets, limit=0, batch_size=256, seed=0, cut_detail=False, plate_rules=False, two_rows=False):
    check_flags(("--batch_size", batch_size, batch_size >= 1, "at least 1"),
                ("--limit", limit, limit >= 0, "0 or more"), ("--seed", seed, seed >= 0, "0 or more"))
    folders = set_folders(sets)
    one_row_only = ("error: --cut_detail measures one-row plates' characters; leave it out for two-row plates "
                    "(--two_rows True, or marked in boxes.tsv)")
    if cut_detail and two_rows:
        sys.exit(one_row_only)
    try:
        named, skipped = {}, 0
        for folder in folders:
            samples, bad = load_samples(folder, store_width=None)  # crops come from the images as read
            framed = [s for s in samples if s.framed]  # load_samples says how many have no corners
            if samples and not framed:
                print(f"warning: {folder}: no boxes.tsv gives corners for its {len(samples)} plates, so none can be "
                      "framed (use a folder like plates_context/val, or gen_plates.py --context)")
            named[set_name(folder)] = framed[:limit] if limit else framed
            skipped += bad + len(samples) - len(framed)
        if not any(named.values()):
            sys.exit(f"error: --sets {sets}: no plate with corners to frame ({skipped} images skipped)")
        if cut_detail and any(s.two_rows for samples in named.values() for s in samples):
            sys.exit(one_row_only)
        engine = open_engine(model)
    except (BoxesError, CheckpointError, EngineError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    right = read_right_by_variant(engine, named, batch_size, seed, plate_rules, two_rows)
    result = table(right)
    if cut_detail:
        result += "\n\n" + cut_table(named, right[SHIFTED], seed)
    print(f"model: {model}\n{result}")
    if skipped:
        print(f"skipped {skipped} images (unreadable, unlabelled or without corners: each reported above)")
    return result


def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    main()
