"""The conditions benchmark: the same labelled plates as cameras, codecs and callers deliver them, read by one model.

Each condition maps the uint8 BGR plates [N, 24, 94, 3] that test.py reads to degraded ones; nothing is random,
so every model sees the same images.
"""
import cv2
import numpy as np

from .evaluate import Score, markdown_table, read_texts
from .image import jpeg_roundtrip

JPEG_QUALITY = 15


def gray(plates):
    """Colour lost, as night-time infrared cameras see plates."""
    return np.stack([cv2.cvtColor(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for p in plates])


def heavy_jpeg(plates):
    return np.stack([jpeg_roundtrip(p, JPEG_QUALITY) for p in plates])


def half_resolution(plates):
    """A plate half as many pixels wide as the model's input (47x12), scaled back up."""
    h, w = plates.shape[1:3]
    return np.stack([cv2.resize(cv2.resize(p, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for p in plates])


def gain(factor, offset=0.0):
    def apply(plates):
        return np.clip(plates.astype(np.float32) * factor + offset, 0, 255).astype(np.uint8)
    return apply


def rgb(plates):
    """Channels in RGB order (PIL, many detectors' outputs) where the model takes BGR."""
    return np.ascontiguousarray(plates[..., ::-1])


CONDITIONS = {
    "as read": lambda plates: plates,
    "gray (infrared camera)": gray,
    f"JPEG quality {JPEG_QUALITY}": heavy_jpeg,
    "half resolution (47x12)": half_resolution,
    "overexposed (x1.8 + 40)": gain(1.8, 40),
    "dark (x0.35)": gain(0.35),
    "RGB given as BGR": rgb,
}


def condition_table(engine, sets, batch_size=256, plate_rules=False):
    """Markdown: one row per condition, one column per named set of (uint8 plates, labels)."""
    rows = []
    for condition, degrade in CONDITIONS.items():
        cells = []
        for plates, labels in sets.values():
            texts = read_texts(engine, degrade(plates), batch_size, plate_rules) if len(labels) else []
            cells.append(f"{100 * Score.of(labels, texts).accuracy:.1f}%" if texts else "-")
        rows.append([condition] + cells)
    return markdown_table(["condition"] + [f"{name} ({len(labels)})" for name, (_, labels) in sets.items()], rows)
