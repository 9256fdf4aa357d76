"""Conditions benchmark: how well a model reads labelled plates in gray, heavily compressed, at half resolution,
over- or underexposed, or handed over in RGB order.

    python bench_conditions.py --model model/lprnet.pth --sets ../shared/data/plates/val
    python bench_conditions.py --model model/LPRNet.onnx --sets DIR1,DIR2,DIR3
    python bench_conditions.py --model model/LPRNet.onnx --sets runs/gentest/yellow_double --two_rows True
"""
import argparse
import sys

from lprnet.cli import add_plate_rules_flag, add_two_rows_flag, check_flags, set_folders, set_name
from lprnet.conditions import condition_table
from lprnet.engines import EngineError, open_engine
from lprnet.evaluate import labelled_plates
from lprnet.model import CheckpointError


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/lprnet.pth", help=".pth or .onnx")
    p.add_argument("--sets", default="data/val", help="comma-separated folders of plates named by their text")
    p.add_argument("--batch_size", type=int, default=256)
    add_plate_rules_flag(p)
    add_two_rows_flag(p)
    return p.parse_args(argv)


def run(model, sets, batch_size=256, plate_rules=False, two_rows=False):
    check_flags(("--batch_size", batch_size, batch_size >= 1, "at least 1"))
    folders = set_folders(sets)
    try:
        engine = open_engine(model)
        named, skipped = {}, 0
        for folder in folders:
            plates, labels, bad = labelled_plates(folder, two_rows=two_rows)
            named[set_name(folder)], skipped = (plates, labels), skipped + bad
    except (CheckpointError, EngineError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"model: {model}")
    result = condition_table(engine, named, batch_size, plate_rules)
    print(result)
    if skipped:
        print(f"skipped {skipped} images (each named above)")
    return result


def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    main()
