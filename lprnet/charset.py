"""The 68-class charset of LPRNet_Pytorch and plate labels taken from file names.

The order is part of the model contract: checkpoints and ONNX models from LPRNet_Pytorch and from
the DCU model-zoo package use exactly these indices, with '-' (index 67) as the CTC blank.
"""
import os
import re

PROVINCES = "京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
DIGITS = "0123456789"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I, no O: Chinese plates never use them
CHARS = list(PROVINCES + DIGITS + LETTERS) + ["I", "O", "-"]
CHAR_INDEX = {c: i for i, c in enumerate(CHARS)}
BLANK = CHARS.index("-")
NUM_CLASSES = len(CHARS)

_ALNUM = LETTERS + DIGITS
# 7 characters: province, letter, 5 alphanumerics (blue and yellow plates).
# 8 characters (green new-energy): small cars put D/F third, large cars put it last.
_PLATE_PATTERNS = (
    re.compile(f"[{PROVINCES}][{LETTERS}][{_ALNUM}]{{5}}"),
    re.compile(f"[{PROVINCES}][{LETTERS}][DF][{_ALNUM}]{{5}}"),
    re.compile(f"[{PROVINCES}][{LETTERS}][{DIGITS}]{{5}}[DF]"),
)


class LabelError(ValueError):
    """A file name does not carry a plate label this model can learn."""


def label_from_filename(path):
    """The plate text of `皖A12345.jpg`, `皖A12345_3.jpg` or `皖A12345-x.png`: the name up to '_' or '-'."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.split(r"[_-]", stem, maxsplit=1)[0]


def is_plate(text):
    """True for a 7-character plate, or an 8-character green one with its D/F where GA 36 puts it."""
    return any(p.fullmatch(text) for p in _PLATE_PATTERNS)


def check_plate(text):
    """Raise LabelError unless `text` is a 7-character or green 8-character plate in CHARS."""
    unknown = sorted({c for c in text if c not in CHAR_INDEX or c == "-"})
    if unknown:
        raise LabelError(f"character(s) {''.join(unknown)!r} not in the charset")
    if not is_plate(text):
        raise LabelError(f"{text!r} is not a plate (7 characters, or 8 with D/F for green plates)")
    return text


def encode(text):
    """Plate text -> list of class indices."""
    return [CHAR_INDEX[c] for c in text]
