"""Training-time plate augmentation: how a detector frames the plate, then how a camera degrades it.

A sample is an image plus the plate's four corners in it (top-left, top-right, bottom-right,
bottom-left). Framing picks a crop window around those corners - tight or loose, shifted, rotated,
skewed - and warps it straight to 94x24; photometric effects follow. Every strength is a setting.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .image import jpeg_roundtrip
from .preprocess import INPUT_H, INPUT_W, to_plate

OUT_RECT = np.float32([[0, 0], [INPUT_W, 0], [INPUT_W, INPUT_H], [0, INPUT_H]])
TWO_ROW_WARP = (2 * INPUT_W, 4 * INPUT_H)  # a two-row plate's window, before its rows are joined: 2:1, detail kept
TWO_ROW_RECT = np.float32([[0, 0], [TWO_ROW_WARP[0], 0], TWO_ROW_WARP, [0, TWO_ROW_WARP[1]]])
# A bilinear warp that shrinks more than 2x skips source pixels (aliases); up to 2x every pixel still counts.
AREA_SHRINK_ABOVE = 2.0
# GA 36 plates start their first character 3.5% of the width in: a larger sideways shift mostly cuts into it
CUT_SHIFT = 0.04


@dataclass
class Framing:
    margin: tuple = (-0.03, 0.25)  # each side moves out by this fraction of the box size
    # the chance that the sides stay near the box instead, so a shift cuts into the plate as a detector's
    # shifted box does (with wide margins a shifted window still holds the whole plate)
    near: float = 0.25
    near_margin: tuple = (-0.03, 0.04)
    shift: float = 0.10            # window centre moves by up to this fraction of width/height
    # the chance that a near window moves sideways by at least CUT_SHIFT, mostly cutting into the first or last
    # character as a shifted detector box does
    cut: float = 0.0
    rotate: float = 8.0            # degrees
    skew: float = 0.04             # corner jitter, fraction of the box size
    rectify: float = 0.3           # chance of framing the four corners instead of their bounding box


# Plates that come as bare crops (no surroundings known) get a gentler framing: a loose window
# would only stretch replicated border pixels.
TIGHT_FRAMING = Framing(margin=(-0.04, 0.06), near=0.0, shift=0.03, rotate=4.0, skew=0.03, rectify=0.0)
CONTEXT_FRAMING = Framing()


@dataclass
class Photometric:
    brightness: float = 0.35   # gain 1 +- this
    contrast: float = 0.35
    colour: float = 0.08       # per-channel gain 1 +- this
    low_res: float = 0.3       # chance of a down-then-up resample (distant plates)
    blur: float = 0.3          # chance of gaussian or motion blur
    noise: float = 0.3         # chance of gaussian noise
    jpeg: float = 0.3          # chance of JPEG re-encoding ...
    jpeg_quality: tuple = (25, 90)  # ... at a quality drawn from this range
    gray: float = 0.03         # chance of losing colour (night-time infrared cameras see no colour)


def corners_of_image(img):
    h, w = img.shape[:2]
    return np.float32([[0, 0], [w, 0], [w, h], [0, h]])


def bounding_corners(quad):
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    return np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def box_crop(img, corners, two_rows=False, trim=0.0):
    """The axis-aligned box around `corners` in whole pixels, as a detector's box is cut out, made the 94x24
    plate the model reads by the contract's own resize (`two_rows`: joining its rows first, trimmed by `trim`).
    Parts of the box outside the image repeat its border."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.maximum(np.ceil(corners.max(axis=0)).astype(int), (x0 + 1, y0 + 1))
    pad = [max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w)]
    if any(pad):
        img = cv2.copyMakeBorder(img, *pad, cv2.BORDER_REPLICATE)
        x0, x1, y0, y1 = x0 + pad[2], x1 + pad[2], y0 + pad[0], y1 + pad[0]
    return to_plate(img[y0:y1, x0:x1], two_rows, trim)


def make_window(base, margins=(0, 0, 0, 0), shift=(0, 0), angle=0.0, skew=None):
    """A crop window around the 4 corners `base`: sides moved out by `margins` (left, right, top, bottom)
    and the centre by `shift`, as fractions of the box size; then rotated by `angle` degrees."""
    centre = base.mean(axis=0)
    w = np.linalg.norm(base[1] - base[0])
    h = np.linalg.norm(base[3] - base[0])
    left, right, top, bottom = margins
    window = base + np.float32([[-left * w, -top * h], [right * w, -top * h],
                                [right * w, bottom * h], [-left * w, bottom * h]])
    window += np.float32(shift) * (w, h)
    if skew is not None:
        window += skew * (w, h)
    a = np.deg2rad(angle)
    rot = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((window - centre) @ rot.T + centre).astype(np.float32)


def frame_window(quad, rng, f):
    """A random crop window (4 corners, image coordinates) around the plate corners `quad`."""
    base = quad if rng.random() < f.rectify else bounding_corners(quad)
    near = f.near and rng.random() < f.near
    margins = rng.uniform(*(f.near_margin if near else f.margin), size=4)
    shift = rng.uniform(-f.shift, f.shift, size=2)
    if near and f.cut and rng.random() < f.cut:
        shift[0] = rng.choice((-1.0, 1.0)) * rng.uniform(CUT_SHIFT, f.shift)
    return make_window(base, margins, shift, rng.uniform(-f.rotate, f.rotate),
                       rng.uniform(-f.skew, f.skew, size=(4, 2)))


def area_shrink(img, points, scale):
    """The image shrunk by `scale` (< 1) with area averaging, and `points` moved with it."""
    h, w = img.shape[:2]
    img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return img, points * np.float32([img.shape[1] / w, img.shape[0] / h])


def warp_window(img, window, two_rows=False, trim=0.0):
    """The window (4 corners) warped to 94x24. A window more than twice that size is first shrunk with area
    averaging, as resize_plate shrinks a crop (training's stored images rarely need it: it is slow).
    `two_rows`: warped to TWO_ROW_WARP, then its rows joined (trimmed by `trim`) and resized to 94x24."""
    window = np.float32(window)
    (w, h), rect = (TWO_ROW_WARP, TWO_ROW_RECT) if two_rows else ((INPUT_W, INPUT_H), OUT_RECT)
    shrink = min(np.linalg.norm(window[1] - window[0]) / w, np.linalg.norm(window[3] - window[0]) / h)
    if shrink > AREA_SHRINK_ABOVE:
        img, window = area_shrink(img, window, 1 / shrink)
    # corners are pixel edges (a w-pixel box spans 0..w), warpPerspective maps pixel centres: shift by half a pixel
    m = cv2.getPerspectiveTransform(window - 0.5, rect - 0.5)
    out = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return to_plate(out, True, trim) if two_rows else out


def photometric(plate, rng, p):
    """Camera effects on a 94x24 uint8 BGR plate."""
    x = plate.astype(np.float32)
    if rng.random() < p.low_res:
        s = rng.uniform(0.35, 0.8)
        small = cv2.resize(x, (max(8, int(INPUT_W * s)), max(4, int(INPUT_H * s))), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (INPUT_W, INPUT_H), interpolation=cv2.INTER_LINEAR)
    if rng.random() < p.blur:
        if rng.random() < 0.5:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.1))
        else:
            k = int(rng.integers(3, 6))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2] = 1.0 / k
            rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (k, k))
            x = cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))
    mean = x.mean()
    gain = 1 + rng.uniform(-p.contrast, p.contrast)
    x = (x - mean) * gain + mean * (1 + rng.uniform(-p.brightness, p.brightness))
    x *= 1 + rng.uniform(-p.colour, p.colour, size=3)
    if rng.random() < p.noise:
        x += rng.normal(0, rng.uniform(2, 10), size=x.shape)
    if rng.random() < p.gray:
        x[:] = x.mean(axis=2, keepdims=True)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < p.jpeg:
        out = jpeg_roundtrip(out, rng.integers(*p.jpeg_quality))
    return out


PHOTOMETRIC = Photometric()


def augment(img, quad, rng, framing, photo=PHOTOMETRIC, two_rows=False):
    return photometric(warp_window(img, frame_window(quad, rng, framing), two_rows), rng, photo)
