"""Flag helpers shared by the stage scripts."""
import argparse
import os
import re
import sys

from .preprocess import MAX_DROPPED, ONE_ROW_LEN, TWO_ROW_MIN_ASPECT, TWO_ROW_OVERRULE


def piped(main):
    """Run a script's `main` so that `| head` closing the pipe ends it quietly, as other shell tools end."""
    try:
        main()
        sys.stdout.flush()  # a buffered stdout meets the closed pipe here, not in the prints
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        sys.exit(1)


def comma_list(text):
    """'a, b,,c' -> ['a', 'b', 'c']: the values of a comma-separated flag."""
    return [item.strip() for item in str(text).split(",") if item.strip()]


def str2bool(value):
    """'True/False', any case, 1/0, yes/no, y/n, on/off -> bool (the seed README passes True/False)."""
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on", "t"):
        return True
    if v in ("false", "0", "no", "n", "off", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def probability(text):
    """A float in [0, 1] as an argparse type."""
    try:
        p = float(text)
    except ValueError:
        p = float("nan")
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return p


def add_plate_rules_flag(parser):
    """--plate_rules, the same for every script that reads plates (lprnet.preprocess.greedy_decode)."""
    parser.add_argument("--plate_rules", type=str2bool, default=False,
                        help=f"a reading of {ONE_ROW_LEN + 1}-{ONE_ROW_LEN + MAX_DROPPED} characters that is no "
                             "plate drops its least confident extra characters (True/False; default False: plain "
                             "greedy decoding)")


def two_rows_arg(value):
    """--two_rows: True/False as str2bool takes them, or 'auto'."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return str2bool(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected True, False or auto, got {value!r}") from None


def add_two_rows_flag(parser, auto=False):
    """--two_rows, the same for every script that reads plates (lprnet.preprocess.join_rows). `auto`, the default
    of the scripts that can read a crop a second time (lprnet.evaluate.reread_two_row_plates), changes a valid
    reading only for a much more confident valid one, so it hardly ever loses a right one (none on the one-row sets
    the README measures); the benchmarks, which read each set one way, default to False."""
    help_text = ("the images are two-row plates (rear plates of trucks and buses): their rows are joined into one "
                 "before reading (True/False")
    if auto:
        parser.add_argument("--two_rows", type=two_rows_arg, default="auto",
                            help=help_text + f"/auto; default auto: crops at least {TWO_ROW_MIN_ASPECT} times as "
                                 "high as wide whose one-row reading is no valid plate, or one read at most "
                                 f"{1 - TWO_ROW_OVERRULE:g} confidently, are read joined too; a valid joined "
                                 "reading replaces a one-row reading that is no plate, or one at least "
                                 f"{TWO_ROW_OVERRULE:g} less confident)")
    else:
        parser.add_argument("--two_rows", type=str2bool, default=False, help=help_text + ")")


def parse_size(text, min_w=1, min_h=1):
    """'94x24' -> (94, 24); ValueError naming the problem otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 94x24")
    w, h = int(m.group(1)), int(m.group(2))
    if w < min_w or h < min_h:
        raise ValueError(f"size {text!r} is too small (at least {min_w}x{min_h})")
    return w, h


def size_arg(text):
    """parse_size as an argparse type, so the user sees its message rather than argparse's generic one."""
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def set_name(folder):
    """A folder's last two parts, as benchmark tables name a set: `plates/val` rather than just `val`."""
    return "/".join(os.path.normpath(folder).split(os.sep)[-2:])


def set_folders(sets):
    """The comma-separated --sets folders; exits with one line where two would share a table column's name."""
    folders = comma_list(sets)
    if not folders:
        sys.exit("error: --sets names no folder")
    names = [set_name(f) for f in folders]
    for name in names:
        if names.count(name) > 1:
            clash = [f for f in folders if set_name(f) == name]
            sys.exit(f"error: --sets {' and '.join(clash)} would both be the column {name}; "
                     "give folders whose last two parts differ")
    return folders


def check_flags(*checks):
    """Exit with one line at the first (flag, value, ok, rule) whose value is not ok: `error: --lr -1.0 must be
    above 0`."""
    for flag, value, ok, rule in checks:
        if not ok:
            sys.exit(f"error: {flag} {value} must be {rule}")
