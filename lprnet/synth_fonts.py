"""Fonts for the synthetic generator: found with fontconfig (or given), glyphs rendered once with PIL,
stretched into the plate's character boxes and cached; 1, 3, 6, 9 and M reshaped the way the plate font draws them."""
import math
import os
import subprocess
from functools import cached_property

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .cli import comma_list


class FontError(RuntimeError):
    """No usable font for the Chinese province characters or for letters and digits."""


# No system font is the plate font, so plates draw from several (with weights): a model trained on a mix
# learns character shapes rather than one font's quirks. Only fonts the queries name are used.
CN_FONT_QUERIES = (("Noto Sans CJK SC:style=Bold", 1), ("Noto Sans CJK SC:style=Regular", 1),
                   ("WenQuanYi Zen Hei", 1), ("Source Han Sans SC:style=Bold", 1), ("SimHei", 1),
                   ("Microsoft YaHei", 1), ("PingFang SC", 1), ("Heiti SC", 1))
EN_FONT_QUERIES = (("DejaVu Sans Condensed:style=Book", 3), ("DejaVu Sans Condensed:style=Bold", 1),
                   ("Noto Sans CJK SC:style=Regular", 1), ("WenQuanYi Zen Hei", 1), ("Liberation Sans Narrow", 2),
                   ("Arial Narrow", 2), ("Roboto Condensed", 2))


def fc_match(query):
    """(file, index) of the font fontconfig picks for `query`, or None if it only offers a substitute."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{family}|%{file}|%{index}", query], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.strip().split("|")
    if len(parts) != 3 or not os.path.isfile(parts[1]):
        return None
    wanted = query.split(":")[0].lower()
    if wanted not in [f.strip().lower() for f in parts[0].split(",")]:
        return None
    return parts[1], int(parts[2] or 0)


def parse_font_arg(arg):
    """'a.ttc:2,b.ttf' -> [('a.ttc', 2), ('b.ttf', 0)] (a .ttc index may follow a colon)."""
    fonts = []
    for item in comma_list(arg):
        path, _, index = item.rpartition(":") if item.rpartition(":")[2].isdigit() else (item, "", "0")
        if not os.path.isfile(path):
            raise FontError(f"font file not found: {path}")
        fonts.append((path, int(index)))
    return fonts


def find_fonts(font_cn="", font_en=""):
    """({(file, index): weight} for provinces, the same for letters/digits): the files given (equal weights),
    else the fonts of the queries fontconfig has."""
    cn = dict.fromkeys(parse_font_arg(font_cn), 1) if font_cn else _matches(CN_FONT_QUERIES)
    en = dict.fromkeys(parse_font_arg(font_en), 1) if font_en else _matches(EN_FONT_QUERIES)
    if not cn:
        raise FontError("no Chinese font found: install fonts-noto-cjk or fonts-wqy-zenhei, or pass --font_cn FILE")
    if not en:
        raise FontError("no font for letters and digits found: install fonts-dejavu-core, or pass --font_en FILE")
    return cn, en


def _matches(queries):
    found = {}
    for query, weight in queries:
        font = fc_match(query)
        if font is not None and font not in found:
            found[font] = weight
    return found


def plain_one(mask):
    """A plate '1' is a bare vertical bar: keep the stem, drop the flag and foot serif fonts give it (with
    them it reads as I, T or 7)."""
    h = mask.shape[0]
    stem = np.nonzero(mask[int(h * 0.4):int(h * 0.6)].max(axis=0) > 40)[0]
    return mask[:, stem.min():stem.max() + 1]


def stroke_width(zero):
    """Stroke thickness of a font, measured across the left side of its 0 at mid-height."""
    row = zero[zero.shape[0] // 2] > 127
    start = int(np.argmax(row))
    return max(2, int(np.argmin(row[start:])))


def eighths(*values):
    """Coordinates in the 1/8-pixel fixed point that the cv2 drawing calls below take (shift=3)."""
    return tuple(round(v * 8) for v in values)


def plate_nine(zero):
    """The plate font's 9: a round bowl in the upper half and a long straight tail down to the bottom left
    (sans fonts curl the tail round, which at 94x24 reads as 0 or 8). Drawn with the font's stroke, in the
    box of its 0."""
    h, w = zero.shape
    s = stroke_width(zero)
    out = np.zeros((h, w), np.uint8)
    bowl_h = max(int(h * 0.54), 2 * s + int(h * 0.25))  # a bold font's bowl still needs its hole
    cv2.ellipse(out, eighths((w - 1) / 2, (bowl_h - 1) / 2), eighths((w - s) / 2, (bowl_h - s) / 2), 0, 0, 360, 255,
                s, cv2.LINE_AA, 3)
    t = np.linspace(0, 1, 24)[:, None]
    start, bend, end = (np.float64(p) for p in ([w - s / 2, bowl_h / 2], [w - s / 2, h * 0.72], [w * 0.3, h - s / 2]))
    tail = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end  # a gently bent stroke
    cv2.polylines(out, [np.round(tail * 8).astype(np.int32)], False, 255, s, cv2.LINE_AA, 3)
    return out


def plate_m(m, zero):
    """The plate font's M: upright legs and a short V whose point ends at mid-height (measured on the mean
    M of the real crops; sans fonts take it down to the baseline or near it, and a model trained on those
    reads every real M as H). Drawn with the font's stroke, in the box of its M."""
    h, w = m.shape
    s = stroke_width(zero)
    out = np.zeros((h, w), np.uint8)
    for x in (s / 2, w - s / 2):
        cv2.line(out, eighths(x, 0), eighths(x, h - 1), 255, s, cv2.LINE_AA, 3)
        cv2.line(out, eighths(x, s / 2), eighths(w / 2, h * 0.5 - s / 2), 255, s, cv2.LINE_AA, 3)
    return out


def plate_three(zero):
    """The plate font's 3: a flat top bar, a diagonal down to the middle and a round lower bowl (sans fonts
    draw two bowls, and a model trained on those reads the real flat-topped 3 as 5). Drawn with the font's
    stroke, in the box of its 0."""
    h, w = zero.shape
    s = stroke_width(zero)
    out = np.zeros((h, w), np.uint8)
    bowl_top, bar_left, bar_right = h * 0.42, eighths(s / 2, s / 2), eighths(w - s / 2, s / 2)
    cx, cy = w / 2, (bowl_top + h - s / 2) / 2
    rx, ry = (w - s) / 2, (h - s / 2 - bowl_top) / 2
    start = eighths(cx + rx * math.cos(math.radians(-115)), cy + ry * math.sin(math.radians(-115)))
    cv2.line(out, bar_left, bar_right, 255, s, cv2.LINE_AA, 3)
    cv2.line(out, bar_right, start, 255, s, cv2.LINE_AA, 3)
    cv2.ellipse(out, eighths(cx, cy), eighths(rx, ry), 0, -115, 150, 255, s, cv2.LINE_AA, 3)
    return out


class GlyphBank:
    """Glyph masks of one font, rendered once large and cached per box size and stroke weight."""

    RENDER_SIZE = 192

    def __init__(self, path, index=0):
        try:
            self.font = ImageFont.truetype(path, self.RENDER_SIZE, index=index)
        except OSError as e:
            raise FontError(f"cannot load font {path} (index {index}): {e}") from None
        self.name = f"{os.path.basename(path)}:{index}"
        self._large, self._cache = {}, {}
        self._tofu = self._render("\U0010fffd")

    @cached_property
    def digit_ratio(self):
        """Width/height of a typical digit: how much a 1's bar is stretched along with its neighbours."""
        return float(np.median([m.shape[1] / m.shape[0] for m in map(self.large, "0234567895")]))

    def _render(self, char):
        x0, y0, x1, y1 = self.font.getbbox(char)
        img = Image.new("L", (max(1, x1 - x0) + 4, max(1, y1 - y0) + 4))
        ImageDraw.Draw(img).text((2 - x0, 2 - y0), char, font=self.font, fill=255)
        mask = np.asarray(img)
        ys, xs = np.nonzero(mask > 40)
        if len(ys) == 0:
            return None
        return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]

    def large(self, char):
        if char not in self._large:
            mask = self._render(char)
            if mask is None or (self._tofu is not None and mask.shape == self._tofu.shape
                                and np.array_equal(mask, self._tofu)):
                raise FontError(f"font {self.name} has no glyph for {char!r}")
            if char == "1":
                mask = plain_one(mask)
            elif char == "M":
                mask = plate_m(mask, self.large("0"))
            elif char == "3":
                mask = plate_three(self.large("0"))
            elif char in "69":  # drawn in the plate font's shape
                mask = plate_nine(self.large("0"))
                mask = mask[::-1, ::-1].copy() if char == "6" else mask
            self._large[char] = mask
        return self._large[char]

    def mask(self, char, box_w, box_h, weight=0):
        """float32 alpha [h, w] fitting a box_w x box_h pixel box (w <= box_w); weight 0/1/2 thickens."""
        key = (char, box_w, box_h, weight)
        if key not in self._cache:
            m = self.large(char)
            if weight:
                m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (1 + 3 * weight,) * 2))
            w = box_w  # plate characters fill their box, whatever the font's proportions ...
            if char == "1":  # ... except the bare bar of a 1, as thick as the other digits' strokes
                stretch = (box_w / box_h) / self.digit_ratio
                w = min(box_w, max(1, round(box_h * m.shape[1] / m.shape[0] * stretch)))
            self._cache[key] = cv2.resize(m, (w, box_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        return self._cache[key]


