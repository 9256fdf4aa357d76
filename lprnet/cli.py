"""Flag helpers shared by the stage scripts."""
import argparse


def str2bool(value):
    """'True/False', any case, 1/0, yes/no, y/n, on/off -> bool (the seed README passes True/False)."""
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "on", "t"):
        return True
    if v in ("false", "0", "no", "n", "off", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")
