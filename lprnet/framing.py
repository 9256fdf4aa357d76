"""The framing benchmark: the same plates cropped the ways users' detectors crop them, read by one model.

Every plate comes with its four corners (a folder with a boxes.tsv, as plates_context/ has). Each
variant draws its window from a generator seeded by the plate's index, so every model sees the same crops.
"""
import numpy as np

from .augment import bounding_corners, box_crop, make_window, warp_window
from .evaluate import read_texts


def _tight(img, quad, rng):
    return box_crop(img, quad)


def _loose(img, quad, rng):
    return box_crop(img, make_window(bounding_corners(quad), rng.uniform(0.05, 0.25, size=4)))


def _shifted(img, quad, rng):
    return box_crop(img, make_window(bounding_corners(quad), shift=rng.uniform(-0.10, 0.10, size=2)))


def _rotated(img, quad, rng):
    return warp_window(img, make_window(bounding_corners(quad), angle=rng.uniform(-8, 8)))


def _rectified(img, quad, rng):
    return warp_window(img, quad)


VARIANTS = {
    "tight": _tight,                 # the axis-aligned box, as CCPD gives it
    "loose (+5-25% each side)": _loose,
    "shifted (+-10%)": _shifted,
    "rotated (+-8 deg)": _rotated,
    "rectified (4 corners)": _rectified,
}


def crops(samples, variant, seed=0):
    """uint8 [N, 24, 94, 3]: every sample cropped by `variant`."""
    make = VARIANTS[variant]
    return np.stack([make(s.image, s.quad, np.random.default_rng((seed, i))) for i, s in enumerate(samples)])


def accuracy(engine, samples, variant, batch_size=256, seed=0):
    texts = read_texts(engine, crops(samples, variant, seed), batch_size)
    return float(np.mean([t == s.text for t, s in zip(texts, samples)])) if samples else 0.0


def table(engine, sets, batch_size=256, seed=0):
    """Markdown: one row per variant, one column per named set of samples."""
    names = list(sets)
    lines = ["| framing | " + " | ".join(f"{n} ({len(sets[n])})" for n in names) + " |",
             "| --- |" + " ---: |" * len(names)]
    for variant in VARIANTS:
        cells = [f"{100 * accuracy(engine, sets[n], variant, batch_size, seed):.1f}%" for n in names]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
