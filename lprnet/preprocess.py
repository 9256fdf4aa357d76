"""The model contract, once: what goes into LPRNet and how its output becomes text.

Input: NCHW float32 [N, 3, 24, 94], BGR, (pixel - 127.5) * 0.0078125. Output: logits [N, 68, T] (T = 18
columns, or 36), decoded greedily (argmax per column, collapse repeats, drop blanks; optionally fitted to a
valid plate) with a confidence. Every script and engine reads plates through these (to_input, decode_plates).
"""
from itertools import combinations

import cv2
import numpy as np

from .charset import BLANK, CHARS, is_plate
from .image import ImageError, read_image, to_bgr8

INPUT_W, INPUT_H = 94, 24
OUTPUT_COLUMNS = (18, 36)  # LPRNet's 18, or 36 (`LPRNet(columns=36)`)
ONE_ROW_LEN = 7  # characters of a blue or yellow plate; green ones have 8
MAX_DROPPED = 2  # greedy_decode's plate_rules mend readings of up to ONE_ROW_LEN + 2 characters
MEAN, SCALE = 127.5, 0.0078125
# Two-row plates (GA 36 rear plates of large vehicles: province and office letter above, the serial below) are
# read as one row: each row is cut out of the crop at these fractions (y0, y1, x0, x1) and the two are laid side
# by side, as wide as a one-row plate 140 mm high has its characters in mm (ROW_WIDTHS).
UPPER_ROW, LOWER_ROW = (0.0, 0.42, 0.2, 0.8), (0.33, 1.0, 0.02, 0.98)
ROW_WIDTHS = (122, 312)
TWO_ROW_MIN_ASPECT = 0.4  # height / width: a two-row plate's box ~0.5, most one-row boxes less (--two_rows auto)
# The rows are cut at fixed fractions of the box, which a loose box moves off the rows: a joined reading that is no
# sure plate (a valid one at least TWO_ROW_SURE confident) is read again with the crop trimmed by these fractions of
# its height and width on each side, as if its box were tighter (lprnet.evaluate.best_two_row_reading).
TWO_ROW_TRIMS = (0.06, 0.12)
TWO_ROW_SURE = 0.5
# --two_rows auto: a tall crop's valid one-row reading gives way to its joined reading only where that is a valid plate
# read at least TWO_ROW_OVERRULE more confidently (a squeezed two-row plate can read as a wrong but valid one-row
# plate); so a one-row reading more confident than 1 - TWO_ROW_OVERRULE is never read again.
TWO_ROW_OVERRULE = 0.3


def resize_plate(img, size=(INPUT_W, INPUT_H)):
    """Any BGR plate crop -> `size` (width, height; the model's 94x24 by default) uint8 (area interpolation when
    shrinking keeps strokes sharp)."""
    w, h = size
    if img.shape[:2] == (h, w):
        return img
    shrink = img.shape[0] > h and img.shape[1] > w
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def join_rows(img, trim=0.0):
    """A crop of a two-row plate -> the same plate in one row (upper row left of the lower one), as LPRNet reads it.
    `trim`: the crop first loses this fraction of its height and of its width on each side."""
    h, w = img.shape[:2]
    if trim:
        img = img[round(trim * h):h - round(trim * h), round(trim * w):w - round(trim * w)]
        h, w = img.shape[:2]
    height = max(INPUT_H, round(h * (LOWER_ROW[1] - LOWER_ROW[0])))
    rows = []
    for (y0, y1, x0, x1), width in zip((UPPER_ROW, LOWER_ROW), ROW_WIDTHS):
        top, left = min(round(y0 * h), h - 1), min(round(x0 * w), w - 1)
        row = img[top:max(round(y1 * h), top + 1), left:max(round(x1 * w), left + 1)]
        rows.append(cv2.resize(row, (round(height * width / 140), height), interpolation=cv2.INTER_LINEAR))
    return np.hstack(rows)


def to_plate(img, two_rows=False, trim=0.0):
    """A BGR crop -> the 24x94 uint8 plate the model reads; `two_rows`: the crop is of a two-row plate (and
    `trim`, how much join_rows trims it)."""
    return resize_plate(join_rows(img, trim) if two_rows else img)


def to_input(plates):
    """uint8 BGR plates [N, 24, 94, 3] (or one [24, 94, 3]) -> float32 model input [N, 3, 24, 94]."""
    plates = np.asarray(plates)
    if plates.ndim == 3:
        plates = plates[None]
    x = (plates.astype(np.float32) - MEAN) * SCALE
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess(images, rgb=False, two_rows=False):
    """A list of BGR images of any size (gray, BGRA, 16-bit and float ones are converted; RGB/RGBA ones, as PIL
    gives them, with `rgb`) -> float32 model input [N, 3, 24, 94]. `two_rows`: True where the images are two-row
    plates, for all of them or one bool per image (as a detector that tells them apart gives). Raises ValueError
    naming the first array that is no image, such as an empty crop."""
    if isinstance(images, np.ndarray) and (images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4))):
        raise ValueError(f"preprocess takes a list of images, not one image of shape {images.shape}: "
                         "preprocess([img])")
    images = list(images)
    two_rows = list(two_rows) if isinstance(two_rows, (list, tuple, np.ndarray)) else [two_rows] * len(images)
    if len(two_rows) != len(images):
        raise ValueError(f"two_rows has {len(two_rows)} values for {len(images)} images")
    plates = [to_plate(crop_to_bgr8(img, rgb, i), two) for i, (img, two) in enumerate(zip(images, two_rows))]
    return to_input(np.stack(plates) if plates else np.zeros((0, INPUT_H, INPUT_W, 3), np.uint8))


def crop_to_bgr8(img, rgb=False, index=0):
    """A crop given as an array (see `preprocess`) -> 8-bit BGR; raises ValueError naming image `index` where
    the array is no image."""
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.size == 0 or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image {index}: an array of shape {img.shape} is no image (an empty crop?)")
    img = to_bgr8(img)
    return np.ascontiguousarray(img[:, :, ::-1]) if rgb else img


def greedy_decode(logits, plate_rules=False):
    """Logits [N, 68, T] (numpy or torch) -> list of plate strings (see `decode_plates`)."""
    return [text for text, _ in decode_plates(logits, plate_rules)]


def decode_plates(logits, plate_rules=False):
    """Logits [N, 68, T] (numpy or torch) -> list of (plate, confidence).

    The plate: the best class of each column, repeats collapsed, blanks dropped. With `plate_rules`, a reading
    of 8 or 9 characters that is no plate loses the fewest, least confident characters that leave one
    (`fit_to_plate`). The confidence: the probability of the least sure character kept, at its most confident
    column (0.0 when nothing is read); blurred, cut or non-plate crops score low.
    """
    if hasattr(logits, "detach"):  # a torch tensor, maybe on a GPU or still tracking gradients
        logits = logits.detach().float().cpu().numpy()
    logits = np.asarray(logits, dtype=np.float32)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    read = []
    for p, best in zip(probs, logits.argmax(axis=1)):
        runs = character_runs(best)
        text = "".join(CHARS[k] for k, _, _ in runs)
        confidences = [p[k, first:last + 1].max() for k, first, last in runs]
        if plate_rules and ONE_ROW_LEN < len(text) <= ONE_ROW_LEN + MAX_DROPPED and not is_plate(text):
            text, confidences = fit_to_plate(text, confidences)
        read.append((text, float(min(confidences, default=0.0))))
    return read


def character_runs(best):
    """[class, first column, last column] of each character the columns' best classes read."""
    runs, prev = [], BLANK
    for t, k in enumerate(best):
        if k != BLANK:
            if k != prev:
                runs.append([k, t, t])
            else:
                runs[-1][2] = t
        prev = k
    return runs


def fit_to_plate(text, confidences):
    """The plate left by dropping the fewest characters of `text` (up to MAX_DROPPED), of least total confidence,
    and the confidences of the characters kept; `text` itself where none is left. The usual case: LPRNet reads
    one extra character from the frame or the background beside the plate (`皖AY68767` for `皖AY6876`); only
    green plates have 8 characters, with D/F third or last."""
    for count in range(1, min(MAX_DROPPED, len(text) - ONE_ROW_LEN) + 1):
        options = []
        for dropped in combinations(range(len(text)), count):
            kept = [i for i in range(len(text)) if i not in dropped]
            plate = "".join(text[i] for i in kept)
            if is_plate(plate):
                options.append((sum(confidences[i] for i in dropped), plate, [confidences[i] for i in kept]))
        if options:
            _, plate, kept_confidences = min(options, key=lambda option: option[:2])
            return plate, kept_confidences
    return text, confidences


def read_plates(paths, two_rows=False):
    """(path, image as read, 94x24 uint8 plate, error) for each path; the image and plate are None and the
    error says why where a file cannot be read. `two_rows`: the images are of two-row plates."""
    for path in paths:
        try:
            img = read_image(path)
        except ImageError as e:
            yield path, None, None, str(e)
        else:
            yield path, img, to_plate(img, two_rows), None


def load_plates(paths, log=print, two_rows=False):
    """Read and resize every image (`two_rows`: joining their rows first); unreadable ones are reported one line
    each and skipped.

    Returns (paths read, uint8 plates [N, 24, 94, 3], number skipped).
    """
    kept, plates = [], []
    for path, _, plate, error in read_plates(paths, two_rows):
        if plate is None:
            log(f"skipped {path}: {error}")
            continue
        kept.append(path)
        plates.append(plate)
    array = np.stack(plates) if plates else np.zeros((0, INPUT_H, INPUT_W, 3), np.uint8)
    return kept, array, len(paths) - len(kept)
