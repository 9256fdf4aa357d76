"""The framing benchmark: the same plates cropped the ways users' detectors crop them, read by one model.

Every plate comes with its four corners (a folder with a boxes.tsv, as plates_context/ has). Each
variant draws its window from a generator seeded by the plate's index, so every model sees the same crops.
"""
import numpy as np

from .augment import bounding_corners, box_crop, make_window, warp_window
from .evaluate import best_two_row_reading, markdown_table, read_readings
from .preprocess import TWO_ROW_TRIMS
from .synth import LAYOUT_7, LAYOUT_8

SHIFTED = "shifted (+-10%)"
# where cut_table's bins of the share of the end character a shifted window keeps meet
KEPT_EDGES = (0.25, 0.4, 0.5, 0.6, 0.8)


def _tight(img, quad, rng, two_rows, trim):
    return box_crop(img, quad, two_rows, trim)


def _loose(img, quad, rng, two_rows, trim):
    return box_crop(img, make_window(bounding_corners(quad), rng.uniform(0.05, 0.25, size=4)), two_rows, trim)


def _shift(rng):
    return rng.uniform(-0.10, 0.10, size=2)


def _shifted(img, quad, rng, two_rows, trim):
    return box_crop(img, make_window(bounding_corners(quad), shift=_shift(rng)), two_rows, trim)


def _rotated(img, quad, rng, two_rows, trim):
    return warp_window(img, make_window(bounding_corners(quad), angle=rng.uniform(-8, 8)), two_rows, trim)


def _rectified(img, quad, rng, two_rows, trim):
    return warp_window(img, quad, two_rows, trim)


VARIANTS = {
    "tight": _tight,                 # the axis-aligned box around the four corners (not CCPD's own bbox column)
    "loose (+5-25% each side)": _loose,
    SHIFTED: _shifted,
    "rotated (+-8 deg)": _rotated,
    "rectified (4 corners)": _rectified,
}


def plate_rng(seed, i):
    """The generator the i-th plate's window is drawn from: the same crop for every model."""
    return np.random.default_rng((seed, i))


def crops(samples, variant, seed=0, two_rows=False, trim=0.0):
    """uint8 [N, 24, 94, 3]: every sample cropped by `variant`; the rows of two-row plates (`two_rows`: every
    plate; else those the boxes.tsv marks) are joined, the crop trimmed by `trim` first."""
    make = VARIANTS[variant]
    return np.stack([make(s.image, s.quad, plate_rng(seed, i), two_rows or s.two_rows, trim)
                     for i, s in enumerate(samples)])


def read_right(engine, samples, variant, batch_size=256, seed=0, plate_rules=False, two_rows=False):
    """bool [N]: whether the engine reads each sample, cropped by `variant`, as its text."""
    if not samples:
        return np.zeros(0, dtype=bool)
    readings = read_readings(engine, crops(samples, variant, seed, two_rows), batch_size, plate_rules)
    two_row = [i for i, s in enumerate(samples) if two_rows or s.two_rows]
    if two_row:  # read trimmed too and chosen from as the scripts do (lprnet.evaluate.reread_two_row_plates)
        trimmed = [read_readings(engine, crops(samples, variant, seed, two_rows, trim), batch_size, plate_rules)
                   for trim in TWO_ROW_TRIMS]
        for i in two_row:
            readings[i] = best_two_row_reading([readings[i]] + [r[i] for r in trimmed])
    return np.array([text == s.text for (text, _), s in zip(readings, samples)], dtype=bool)


def read_right_by_variant(engine, sets, batch_size=256, seed=0, plate_rules=False, two_rows=False):
    """{variant: {set name: `read_right` of that set}}, every variant of every named set of samples read once."""
    return {variant: {name: read_right(engine, samples, variant, batch_size, seed, plate_rules, two_rows)
                      for name, samples in sets.items()}
            for variant in VARIANTS}


def table(right):
    """Markdown from `read_right_by_variant`: one row per variant, one column per named set."""
    first = next(iter(right.values()))
    rows = [[variant] + [f"{100 * r.mean():.1f}%" if len(r) else "-" for r in per_set.values()]
            for variant, per_set in right.items()]
    return markdown_table(["framing"] + [f"{n} ({len(first[n])})" for n in first], rows)


def end_character_kept(quad, text, shift):
    """The share of the first or of the last character, whichever is cut more, that the window shifted by
    `shift` (fractions of the box, as `_shifted` draws it) keeps. Character places follow the GA 36 layout of
    the plate's length, measured along the plate's top and bottom edges between its corners."""
    layout = LAYOUT_8 if len(text) == 8 else LAYOUT_7
    box = bounding_corners(quad)
    move = shift[0] * (box[1, 0] - box[0, 0])
    left, right = box[0, 0] + move, box[1, 0] + move

    def x_at(f):  # x of the point a fraction f along the plate, halfway between its top and bottom edges
        return ((1 - f) * (quad[0, 0] + quad[3, 0]) + f * (quad[1, 0] + quad[2, 0])) / 2

    kept = []
    for x_mm, w_mm in (layout.boxes[0], layout.boxes[-1]):
        a, b = x_at(x_mm / layout.width), x_at((x_mm + w_mm) / layout.width)
        kept.append(max(0.0, min(b, right) - max(a, left)) / (b - a))
    return min(kept)


def cut_table(sets, shifted_right, seed=0):
    """Markdown: the shifted variant's accuracy (`shifted_right`, from `read_right_by_variant`) by the share of the
    end character it cuts most that stays in the window (rows: the bins KEPT_EDGES make), per named set of samples.
    Shows how much of its loss is characters cut away."""
    columns = []
    for name, samples in sets.items():
        kept = [end_character_kept(s.quad, s.text, _shift(plate_rng(seed, i)))
                for i, s in enumerate(samples)]
        bins = np.searchsorted(KEPT_EDGES, kept, side="right")
        right = shifted_right[name]
        columns.append([right[bins == r] for r in range(len(KEPT_EDGES) + 1)])
    bounds = (0.0,) + KEPT_EDGES + (1.0,)
    rows = [[f"{bounds[r]:.2f}-{bounds[r + 1]:.2f}"]
            + [f"{100 * c[r].mean():.1f}% ({len(c[r])})" if len(c[r]) else "- (0)" for c in columns]
            for r in range(len(KEPT_EDGES) + 1)]
    return markdown_table(["end character kept"] + list(sets), rows)
