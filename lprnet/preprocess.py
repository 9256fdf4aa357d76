"""The model contract, once: what goes into LPRNet and how its output becomes text.

Input: NCHW float32 [N, 3, 24, 94], BGR, (pixel - 127.5) * 0.0078125. Output: logits [N, 68, T] (T = 18
columns, or 36), decoded greedily (argmax per column, collapse repeats, drop blanks). Every engine uses these two.
"""
import cv2
import numpy as np

from .charset import BLANK, CHARS

INPUT_W, INPUT_H = 94, 24
OUTPUT_COLUMNS = (18, 36)  # LPRNet's 18, or 36 (`LPRNet(columns=36)`)
MEAN, SCALE = 127.5, 0.0078125


def resize_plate(img):
    """Any BGR plate crop -> 24x94 uint8 (area interpolation when shrinking keeps strokes sharp)."""
    if img.shape[:2] == (INPUT_H, INPUT_W):
        return img
    shrink = img.shape[0] > INPUT_H and img.shape[1] > INPUT_W
    return cv2.resize(img, (INPUT_W, INPUT_H), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_input(plates):
    """uint8 BGR plates [N, 24, 94, 3] (or one [24, 94, 3]) -> float32 model input [N, 3, 24, 94]."""
    plates = np.asarray(plates)
    if plates.ndim == 3:
        plates = plates[None]
    x = (plates.astype(np.float32) - MEAN) * SCALE
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess(images):
    """A list of BGR images of any size -> float32 model input [N, 3, 24, 94]."""
    return to_input(np.stack([resize_plate(img) for img in images]))


def greedy_decode(logits):
    """Logits [N, 68, T] (numpy or torch) -> list of plate strings."""
    best = np.asarray(logits).argmax(axis=1)
    texts = []
    for row in best:
        chars, prev = [], BLANK
        for k in row:
            if k != prev and k != BLANK:
                chars.append(CHARS[k])
            prev = k
        texts.append("".join(chars))
    return texts


def read_plates(paths):
    """(path, image as read, 94x24 uint8 plate, error) for each path; the image and plate are None and the
    error says why where a file cannot be read."""
    from .image import ImageError, read_image
    for path in paths:
        try:
            img = read_image(path)
        except ImageError as e:
            yield path, None, None, str(e)
        else:
            yield path, img, resize_plate(img), None


def load_plates(paths, log=print):
    """Read and resize every image; unreadable ones are reported one line each and skipped.

    Returns (paths read, uint8 plates [N, 24, 94, 3], number skipped).
    """
    kept, plates = [], []
    for path, _, plate, error in read_plates(paths):
        if plate is None:
            log(f"skipped {path}: {error}")
            continue
        kept.append(path)
        plates.append(plate)
    array = np.stack(plates) if plates else np.zeros((0, INPUT_H, INPUT_W, 3), np.uint8)
    return kept, array, len(paths) - len(kept)
