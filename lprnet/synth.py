"""Synthetic Chinese licence plates: GA 36-2018 layout, system fonts, and the camera that sees them.

A plate is drawn flat (millimetre layout scaled to pixels), set into surroundings (car body, plate
holder), lit unevenly, dirtied and shadowed, then seen by a camera: perspective, rotation, distance
(plate width in camera pixels), a detector's crop window, defocus/motion blur, noise and JPEG.
Every random draw comes from one numpy Generator per image, seeded by (seed, index), so the same
seed gives the same images however the work is split between processes.

    synth = PlateSynth()
    rng = np.random.default_rng(0)
    kind, text = "blue", random_plate("blue", rng)
    img = synth.crop(kind, text, rng)                  # 94x24 BGR plate crop
    img, corners = synth.context(kind, text, rng)      # plate with surroundings, corners TL TR BR BL
    img, corners, info = synth.ccpd_scene(kind, text, rng)   # 720x1160 CCPD-style photo
"""
import math
import os
import time
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
from tqdm import tqdm

from .ccpd_tables import plate_to_indices
from .charset import PROVINCES
from .cli import parse_size
from .image import ImageError, jpeg_roundtrip, unwritable_folder, write_image, write_lines
from .pool import clean_process_pool
from .preprocess import INPUT_H, INPUT_W, join_rows, resize_plate
from .synth_fonts import FontError, GlyphBank, find_fonts
from .synth_text import TextStyle, draw, kind_probs, parse_weights, pick_kind, random_plate, style_from_spec

__all__ = ["CCPD_SIZE", "Effects", "FontError", "PlateSynth", "TextStyle", "ccpd_filename",
           "effects_from_spec", "file_names", "generate", "plan_plates", "random_plate", "style_from_spec"]
CCPD_SIZE = (720, 1160)  # width, height of a CCPD photo

# -------------------------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    """GA 36-2018 plate geometry in millimetres."""
    width: float
    boxes: tuple            # (x, width) of each character box
    dot: float = None       # x of the separator dot's centre (7-character plates only)
    height: float = 140.0
    char_top: float = 25.0
    char_height: float = 90.0
    dot_diameter: float = 10.0
    rows: tuple = None      # (top, height) of each character box, where they differ (two-row plates)
    rivet_x: tuple = (0.23, 0.72)  # rivet centres as a fraction of the plate width, on the top border

    def char_rows(self):
        return self.rows or ((self.char_top, self.char_height),) * len(self.boxes)


def _boxes(left, widths, gaps):
    x, boxes = left, []
    for w, g in zip(widths, list(gaps) + [0]):
        boxes.append((x, w))
        x += w + g
    return tuple(boxes)


# 7 characters: 45 mm wide, 12 mm apart, 34 mm between the 2nd and 3rd holding the 10 mm dot.
LAYOUT_7 = Layout(440.0, _boxes(15.5, [45] * 7, [12, 34, 12, 12, 12, 12]), dot=15.5 + 45 + 12 + 45 + 17)
# New-energy: province 45 mm, the rest 43 mm, 9 mm apart, 49 mm between the 2nd and 3rd, no dot.
LAYOUT_8 = Layout(480.0, _boxes(15.5, [45] + [43] * 7, [9, 49, 9, 9, 9, 9, 9]))
# Two rows (large vehicles' rear plates): province and office letter 80x60 mm on top, the serial 65x110 mm below.
LAYOUT_2ROW = Layout(440.0, ((110, 80), (250, 80)) + _boxes(27.5, [65] * 5, [15] * 4), height=220.0,
                     rows=((15, 60),) * 2 + ((90, 110),) * 5, rivet_x=(0.1, 0.9))
LAYOUTS = {"blue": LAYOUT_7, "yellow": LAYOUT_7, "green_small": LAYOUT_8, "green_large": LAYOUT_8,
           "yellow_double": LAYOUT_2ROW}

# Paint colours (BGR) as a CCPD-like camera renders them at normal exposure.
BLUE, WHITE, BLACK = (222, 105, 20), (238, 236, 232), (22, 22, 22)
YELLOW, GREEN_LIGHT, GREEN = (10, 190, 235), (222, 246, 226), (95, 200, 70)
GREEN_DARK = (70, 170, 30)
INK = {"blue": WHITE, "yellow": BLACK, "green_small": BLACK, "green_large": BLACK, "yellow_double": BLACK}
BORDER = {"blue": WHITE, "yellow": BLACK, "green_small": None, "green_large": None, "yellow_double": BLACK}
CAR_PAINTS = ((235, 235, 235), (190, 190, 195), (120, 120, 125), (30, 30, 32), (40, 40, 150), (130, 70, 30),
              (60, 60, 60))
RIVET_Y, RIVET_D = 9.0, 11.0

# ----------------------------------------------------------------------------------------- effects

@dataclass
class Effects:
    """Strength of each effect: 1 is the default, 0 turns it off, 2 doubles it. What 1 means:"""
    perspective: float = 1.0   # yaw ~N(0, 12 deg) within +-30, pitch up to +-18 deg
    rotate: float = 1.0        # in-plane rotation ~N(0, 3 deg) within +-7
    framing: float = 1.0       # detector crop: each side -3..+8% of the plate's box, shifted up to 3%
    blur: float = 1.0          # defocus sigma up to 0.9 px; 20% motion blur of 1.5..4 px (camera pixels)
    noise: float = 1.0         # gaussian noise sigma up to 7
    jpeg: float = 1.0          # 60% re-encoded at JPEG quality 25..95
    light: float = 1.0         # exposure 0.6..1.3x, light gradient up to +-25%, 15% glare spots
    colour: float = 1.0        # paint hue/saturation/value spread, white balance +-12%, saturation 0.85..1.25
    dirt: float = 1.0          # 60% of plates with mud/dust blotches and specks
    shadow: float = 1.0        # 40% with a soft shadow edge across the plate, 30..70% darker
    scale: tuple = (70.0, 300.0)  # plate width in camera pixels (log-uniform): the distance to the camera

    def scaled(self, k):
        return replace(self, **{f.name: getattr(self, f.name) * k for f in fields(self) if f.name != "scale"})


def effects_from_spec(strength=1.0, spec=""):
    """Effects scaled by `strength`, then 'dirt=0,blur=0.5' overrides."""
    names = [f.name for f in fields(Effects) if f.name != "scale"]
    effects = Effects().scaled(strength)
    return replace(effects, **parse_weights(spec, keys=names)) if spec else effects


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


def _log_u(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def rounded_rect_mask(h, w, x0, y0, x1, y1, radius):
    """Anti-aliased float32 mask of a rounded rectangle (pixel coordinates, edges included)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    dx = np.maximum(np.abs(xs - cx) - (hw - radius), 0)
    dy = np.maximum(np.abs(ys - cy) - (hh - radius), 0)
    inside_core = np.maximum(np.abs(xs - cx) - hw, np.abs(ys - cy) - hh)
    dist = np.where((dx > 0) & (dy > 0), np.hypot(dx, dy) - radius, inside_core)
    return np.clip(0.5 - dist, 0, 1).astype(np.float32)


def disk(d):
    r = d / 2
    n = int(math.ceil(d)) + 2
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    return np.clip(r + 0.5 - np.hypot(xs - n / 2, ys - n / 2), 0, 1).astype(np.float32)


def blend(dst, alpha, colour, x, y):
    """Paint `colour` through `alpha` onto dst at (x, y), clipped to dst."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, dst.shape[1]), min(y + h, dst.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = dst[y0:y1, x0:x1]
    region += a * (np.float32(colour) - region)


def paste_max(dst, alpha, x, y):
    """dst = max(dst, alpha placed at (x, y)), clipped to dst."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, dst.shape[1]), min(y + h, dst.shape[0])
    if x1 > x0 and y1 > y0:
        np.maximum(dst[y0:y1, x0:x1], alpha[y0 - y:y1 - y, x0 - x:x1 - x], out=dst[y0:y1, x0:x1])


def low_freq(rng, h, w, cells=(3, 6)):
    """Smooth random field in [0, 1] of shape [h, w]."""
    return cv2.resize(rng.random(cells, dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def jitter_colour(colour, rng, strength):
    """A paint colour after fading/manufacturing spread: hue, saturation and value jitter (BGR)."""
    hsv = cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_BGR2HSV_FULL)[0, 0].astype(np.float32)
    hsv += (rng.uniform(-8, 8) * strength, rng.uniform(-25, 15) * strength, rng.uniform(-15, 15) * strength)
    hsv = np.clip(hsv, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv[None, None], cv2.COLOR_HSV2BGR_FULL)[0, 0].astype(np.float32)


LUMA = np.float64([0.114, 0.587, 0.299])  # BGR


def colour_matrix(gain, saturation):
    """3x3 matrix for cv2.transform: per-channel gain (white balance, exposure), then saturation scaling."""
    mix = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), LUMA)
    return (mix * np.asarray(gain, np.float64)[None]).astype(np.float32)


def motion_kernel(length, angle):
    k = max(3, int(math.ceil(length)) | 1)
    kernel = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    dx, dy = math.cos(math.radians(angle)) * length / 2, math.sin(math.radians(angle)) * length / 2
    cv2.line(kernel, (round((c - dx) * 16), round((c - dy) * 16)), (round((c + dx) * 16), round((c + dy) * 16)),
             1.0, 1, cv2.LINE_AA, shift=4)
    return kernel / max(kernel.sum(), 1e-6)


def rotation(yaw, pitch, roll):
    a, b, c = map(math.radians, (yaw, pitch, roll))
    ry = np.float64([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.float64([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.float64([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def camera_quad(w, h, yaw, pitch, roll, focal):
    """Image of a w x h plate's corners (TL TR BR BL) under a pinhole camera `focal` plate-widths away."""
    pts = np.float64([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    p = pts @ rotation(yaw, pitch, roll).T
    p[:, 2] += focal * w
    return (p[:, :2] / p[:, 2:] * focal * w).astype(np.float32)


def bbox_of(quad):
    return np.float32([*quad.min(axis=0), *quad.max(axis=0)])


# ------------------------------------------------------------------------------------------ render

class PlateSynth:
    """Renders plates. Holds fonts and glyph caches; every draw comes from the rng passed in."""

    PX_PER_MM = 0.4  # flat rendering scale: a 440 mm plate is 176 px, enough for 94x24 output

    def __init__(self, font_cn="", font_en="", effects=None, px_per_mm=PX_PER_MM):
        cn, en = find_fonts(font_cn, font_en)
        self.cn, self.cn_cdf = [GlyphBank(*f) for f in cn], np.cumsum(list(cn.values()))
        self.en, self.en_cdf = [GlyphBank(*f) for f in en], np.cumsum(list(en.values()))
        for bank in self.cn:
            for c in PROVINCES:
                bank.large(c)  # fail now, with the font's name, if a province is missing
        self.effects = effects or Effects()
        self.s = px_per_mm
        self._masks = {}
        self._noise_bank = np.random.default_rng(20180301).standard_normal((256, 512, 3), dtype=np.float32)

    def _rounded(self, h, w, radius):
        key = (h, w, radius)
        if key not in self._masks:
            self._masks[key] = rounded_rect_mask(h, w, 0, 0, w, h, radius)
        return self._masks[key]

    # ---- the flat plate
    def _shape_masks(self, layout):
        """(plate outline, border line) masks for a layout, cached."""
        if layout not in self._masks:
            s, w, h = self.s, round(layout.width * self.s), round(layout.height * self.s)
            outline = rounded_rect_mask(h, w, 0, 0, w, h, 6 * s)
            inset, thick = 2.0 * s, max(1.0, 3.0 * s)
            outer = rounded_rect_mask(h, w, inset, inset, w - inset, h - inset, 5 * s)
            inner = rounded_rect_mask(h, w, inset + thick, inset + thick, w - inset - thick, h - inset - thick,
                                      4 * s)
            self._masks[layout] = (outline, outer - inner)
        return self._masks[layout]

    def _background(self, kind, h, w, rng, e):
        c = e.colour
        if kind == "blue":
            bg = np.empty((h, w, 3), np.float32)
            bg[:] = jitter_colour(BLUE, rng, c)
        elif kind in ("yellow", "yellow_double"):
            bg = np.empty((h, w, 3), np.float32)
            bg[:] = jitter_colour(YELLOW, rng, c)
        elif kind == "green_small":  # white-green at the top fading to green at the bottom
            t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] ** _u(rng, 0.6, 1.4)
            top, bottom = jitter_colour(GREEN_LIGHT, rng, c * 0.5), jitter_colour(GREEN, rng, c)
            bg = np.broadcast_to(top + t * (bottom - top), (h, w, 3)).copy()
        else:  # yellow left (province and office letter), green right
            bg = np.empty((h, w, 3), np.float32)
            split = round((LAYOUT_8.boxes[1][0] + LAYOUT_8.boxes[1][1] + 24.5) * self.s)
            bg[:, :split] = jitter_colour(YELLOW, rng, c)
            bg[:, split:] = jitter_colour(GREEN_DARK, rng, c)
        return bg

    def _ink(self, kind, text, h, w, rng):
        """Alpha [h, w] of everything printed in the ink colour: characters, separator dot, border line."""
        layout, s = LAYOUTS[kind], self.s
        alpha = np.zeros((h, w), np.float32)
        cn, en = self.cn[draw(rng, self.cn_cdf)], self.en[draw(rng, self.en_cdf)]
        weight = (0, 0, 1, 1, 2)[rng.integers(5)]  # extra stroke weight
        narrow = _u(rng, 0.82, 1.0)  # plate glyphs often stop short of their box's full width
        dy = int(rng.integers(-1, 2))
        for i, (char, (x, bw), (top, bh)) in enumerate(zip(text, layout.boxes, layout.char_rows())):
            box_w = round(bw * s)
            glyph = (cn if i == 0 else en).mask(char, round(box_w * narrow), round(bh * s), weight)
            x0 = round(x * s) + (box_w - glyph.shape[1]) // 2 + int(rng.integers(-1, 2))
            paste_max(alpha, glyph, x0, round(top * s) + dy)
        if layout.dot is not None:
            d = disk(layout.dot_diameter * s)
            paste_max(alpha, d, round(layout.dot * s - d.shape[1] / 2), round((layout.char_top + 40) * s) + dy)
        if BORDER[kind] is not None:
            np.maximum(alpha, self._shape_masks(layout)[1], out=alpha)
        return alpha

    def _rivets(self, plate, layout, rng):
        if rng.random() < 0.2:
            return
        d = disk(RIVET_D * self.s * _u(rng, 0.8, 1.3))
        metal = np.float32([rng.uniform(20, 70) if rng.random() < 0.5 else rng.uniform(140, 230)] * 3)
        rows = [RIVET_Y] + ([layout.height - RIVET_Y] if rng.random() < 0.6 else [])
        for y in rows:
            for fx in layout.rivet_x:
                x = fx * layout.width + rng.uniform(-6, 6)
                blend(plate, d, metal, round(x * self.s - d.shape[1] / 2), round(y * self.s - d.shape[0] / 2))

    def _dirt(self, plate, rng):
        e = self.effects.dirt
        if e <= 0 or rng.random() > 0.6:
            return
        h, w = plate.shape[:2]
        sh, sw = h // 2, w // 2  # built at half resolution: blotches and specks of about a pixel
        amount = low_freq(rng, sh, sw, (int(rng.integers(2, 5)), int(rng.integers(3, 9)))) ** 2
        amount *= _u(rng, 0.1, 0.5) * e
        n = int(rng.poisson(0.01 * e * sh * sw))
        amount[rng.integers(sh, size=n), rng.integers(sw, size=n)] += rng.uniform(0.2, 0.7, size=n).astype(np.float32)
        amount = cv2.resize(np.clip(amount, 0, 0.85), (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        mud = np.float32([rng.uniform(40, 110), rng.uniform(70, 130), rng.uniform(90, 150)])
        plate += amount * (mud - plate)

    def flat_plate(self, kind, text, rng):
        """(plate BGR float32 [h, w, 3], outline alpha [h, w]) of the flat plate at PX_PER_MM."""
        layout = LAYOUTS[kind]
        outline = self._shape_masks(layout)[0]
        h, w = outline.shape
        plate = self._background(kind, h, w, rng, self.effects)
        ink = jitter_colour(INK[kind], rng, 0.5 * self.effects.colour)
        plate += self._ink(kind, text, h, w, rng)[..., None] * (ink - plate)
        self._rivets(plate, layout, rng)
        self._dirt(plate, rng)
        return plate, outline

    # ---- the plate in its surroundings
    def _surroundings(self, h, w, rng):
        """Car body around the plate: paint, a vertical light gradient, bumper edges, texture (built at a
        quarter of the resolution: it is out of focus anyway)."""
        sh, sw = max(2, h // 4), max(2, w // 4)
        paint = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
        img = np.empty((sh, sw, 3), np.float32)
        img[:] = np.float32(paint) * _u(rng, 0.6, 1.2)
        img *= np.linspace(_u(rng, 0.6, 1.2), _u(rng, 0.6, 1.2), sh, dtype=np.float32)[:, None, None]
        for _ in range(int(rng.integers(0, 4))):  # bumper edges, grille bars
            y0 = int(rng.integers(0, sh))
            img[y0:y0 + int(rng.integers(1, max(2, sh // 5)))] *= _u(rng, 0.3, 1.4)
        img += (low_freq(rng, sh, sw, (4, 8))[..., None] - 0.5) * 40
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    def scene(self, kind, text, rng, margin_x, margin_y):
        """Plate in surroundings: (canvas float32, plate corners TL TR BR BL in canvas pixels)."""
        plate, outline = self.flat_plate(kind, text, rng)
        ph, pw = outline.shape
        mx, my = round(pw * margin_x), round(ph * margin_y)
        canvas = self._surroundings(ph + 2 * my, pw + 2 * mx, rng)
        if rng.random() < 0.5:  # a plate holder frame a few millimetres wide
            f = round(_u(rng, 2, 10) * self.s) + 1
            frame = self._rounded(ph + 2 * f, pw + 2 * f, 8 * self.s)
            tone = np.float32([rng.uniform(10, 60)] * 3) if rng.random() < 0.7 else np.float32([200, 200, 205])
            blend(canvas, frame, tone, mx - f, my - f)
        region = canvas[my:my + ph, mx:mx + pw]
        region += outline[..., None] * (plate - region)
        corners = np.float32([[mx, my], [mx + pw, my], [mx + pw, my + ph], [mx, my + ph]])
        self._lighting(canvas, rng)
        return canvas, corners

    def _lighting(self, img, rng):
        """Uneven light (a gradient, sometimes glare) and a soft shadow edge, as one gain field built at a
        quarter of the resolution."""
        e = self.effects
        h, w = img.shape[:2]
        sh, sw = max(2, h // 4), max(2, w // 4)
        ys = np.linspace(-1, 1, sh, dtype=np.float32)[:, None] * (h / w)
        xs = np.linspace(-1, 1, sw, dtype=np.float32)[None]
        gain = np.ones((sh, sw), np.float32)
        if e.light > 0:
            a = rng.uniform(0, 2 * math.pi)
            gain += (xs * math.cos(a) + ys * math.sin(a)) * _u(rng, 0, 0.25) * e.light
            if rng.random() < 0.15 * e.light:
                cx, cy, r = _u(rng, -1, 1), _u(rng, -0.3, 0.3), _u(rng, 0.1, 0.5)
                gain += _u(rng, 0.3, 1.2) * e.light * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / r ** 2)
        if e.shadow > 0 and rng.random() < 0.4 * e.shadow:
            a = rng.uniform(0, 2 * math.pi)
            d = xs * math.cos(a) + ys * math.sin(a) - _u(rng, -0.5, 0.5)
            depth = _u(rng, 0.3, 0.7) * min(1.0, e.shadow)
            gain *= 1 - depth / (1 + np.exp(np.clip(-d / _u(rng, 0.02, 0.15), -30, 30)))
        img *= cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]

    # ---- the camera
    def _view(self, rng, plate_w, plate_h):
        """Random pose: plate corners (TL TR BR BL) in camera pixels, plate width ~ the `scale` range."""
        e = self.effects
        # past ~70 degrees (--strength or --effects perspective above ~2.3) a plate turns edge-on, then flips over
        yaw = rng.normal(0, 12) * e.perspective
        yaw = float(np.clip(yaw, -min(30 * e.perspective, 70), min(30 * e.perspective, 70)))
        pitch = float(np.clip(_u(rng, -18, 18) * e.perspective, -70, 70))
        roll = rng.normal(0, 3) * e.rotate
        roll = float(np.clip(roll, -min(7 * e.rotate, 45), min(7 * e.rotate, 45)))
        quad = camera_quad(plate_w, plate_h, yaw, pitch, roll, _u(rng, 1.5, 6))
        width = _log_u(rng, *e.scale)
        quad *= width / (quad[:, 0].max() - quad[:, 0].min())
        return quad - quad.min(axis=0), (yaw, pitch)

    def _warp(self, canvas, corners, quad, window, size):
        """Warp the canvas so its plate corners land on `quad`, cropping `window` (x0 y0 x1 y1) at `size`."""
        scale = min(1.0, 1.4 * (quad[1, 0] - quad[0, 0]) / (corners[1, 0] - corners[0, 0]))
        if scale < 0.7:  # shrink first with area averaging: a warp alone would alias
            canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            corners = corners * scale
        m = cv2.getPerspectiveTransform(corners, (quad - window[:2]).astype(np.float32))
        sx, sy = size[0] / (window[2] - window[0]), size[1] / (window[3] - window[1])
        m = np.float64([[sx, 0, 0], [0, sy, 0], [0, 0, 1]]) @ m
        return cv2.warpPerspective(canvas, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def _camera(self, img, rng, blur_scale=1.0):
        """Exposure, white balance, blur, noise and JPEG on a float32 image: (uint8 image, blur amount)."""
        e = self.effects
        exposure = _log_u(rng, 0.6, 1.3) ** e.light if e.light else 1.0
        gain = exposure * (1 + rng.uniform(-0.12, 0.12, size=3) * e.colour)
        x = cv2.transform(img, colour_matrix(gain, 1 + _u(rng, -0.15, 0.25) * e.colour))
        sigma, length = _u(rng, 0, 0.9) * e.blur * blur_scale, 0.0
        if sigma > 0.3:
            x = cv2.GaussianBlur(x, (0, 0), sigma)
        if e.blur > 0 and rng.random() < 0.2:
            length = _u(rng, 1.5, 1.5 + 2.5 * e.blur) * blur_scale
            x = cv2.filter2D(x, -1, motion_kernel(length, rng.normal(0, 15)))
        if e.noise > 0:
            x += self._noise(x.shape, rng) * np.float32(_u(rng, 0, 7) * e.noise)
        out = np.clip(x, 0, 255).astype(np.uint8)
        if e.jpeg > 0 and rng.random() < 0.6:
            q = int(round(95 - _u(rng, 0, 70) * min(e.jpeg, 1.0)))
            out = jpeg_roundtrip(out, q)
        return out, sigma + length / 2

    def _noise(self, shape, rng):
        """Unit gaussian noise: a random window of a fixed bank (drawing fresh noise costs more than the
        rest of the camera), fresh noise for images larger than the bank."""
        h, w, c = shape
        bank = self._noise_bank
        if h > bank.shape[0] or w > bank.shape[1]:
            return rng.standard_normal(shape, dtype=np.float32)
        y, x = int(rng.integers(bank.shape[0] - h + 1)), int(rng.integers(bank.shape[1] - w + 1))
        return bank[y:y + h, x:x + w, :c]

    # ---- public renderings
    def crop(self, kind, text, rng, size=(INPUT_W, INPUT_H), joined=True):
        """The plate as a detector crops it: uint8 BGR of `size` (w, h). A two-row plate has its rows joined into
        one as LPRNet reads it (`preprocess.join_rows`), or with `joined=False` is as photographed, twice as high."""
        canvas, corners = self.scene(kind, text, rng, 0.2, 0.5)
        quad, _ = self._view(rng, *(corners[2] - corners[0]))
        x0, y0, x1, y1 = bbox_of(quad)
        bw, bh = x1 - x0, y1 - y0
        f = self.effects.framing
        left, right, top, bottom = (rng.uniform(-0.03, 0.08, size=4) * f).tolist()
        sx, sy = (rng.uniform(-0.03, 0.03, size=2) * f).tolist()
        window = np.float32([x0 - left * bw + sx * bw, y0 - top * bh + sy * bh, x1 + right * bw + sx * bw,
                             y1 + bottom * bh + sy * bh])
        cam_size = (max(8, round(window[2] - window[0])), max(4, round(window[3] - window[1])))
        img, _ = self._camera(self._warp(canvas, corners, quad, window, cam_size), rng)
        if LAYOUTS[kind].rows is None:
            return resize_plate(img, size)
        return resize_plate(join_rows(img), size) if joined else resize_plate(img, (size[0], 2 * size[1]))

    def context(self, kind, text, rng, loose=(0.25, 0.5)):
        """The plate with surroundings, framed like plates_context (box + 25% of its width left and right,
        50% of its height above and below, jittered): (uint8 BGR, corners TL TR BR BL float32)."""
        canvas, corners = self.scene(kind, text, rng, 0.9, 2.2)
        quad, _ = self._view(rng, *(corners[2] - corners[0]))
        x0, y0, x1, y1 = bbox_of(quad)
        bw, bh = x1 - x0, y1 - y0
        mx = rng.uniform(0.6, 1.4, size=2) * loose[0] * bw
        my = rng.uniform(0.6, 1.4, size=2) * loose[1] * bh
        window = np.float32([x0 - mx[0], y0 - my[0], x1 + mx[1], y1 + my[1]])
        size = (round(window[2] - window[0]), round(window[3] - window[1]))
        window[2:] = window[:2] + size  # whole pixels, so corners map 1:1
        img, _ = self._camera(self._warp(canvas, corners, quad, window, size), rng)
        return img, quad - window[:2]

    def ccpd_scene(self, kind, text, rng):
        """A 720x1160 CCPD-like photo: (uint8 BGR, corners TL TR BR BL, info dict for ccpd_filename)."""
        w, h = CCPD_SIZE
        photo = street_background(rng, w, h)
        canvas, corners = self.scene(kind, text, rng, 1.2, 3.0)
        quad, (yaw, pitch) = self._view(rng, *(corners[2] - corners[0]))
        quad *= _u(rng, 90, 330) / (quad[:, 0].max() - quad[:, 0].min())
        quad *= min(1.0, (w - 20) / quad[:, 0].max(), 0.5 * h / quad[:, 1].max())  # a steep pose still fits
        span = quad.max(axis=0)
        offset = np.float32([_u(rng, 10, w - 10 - span[0]), _u(rng, 0.3 * h, 0.8 * h - span[1])])
        quad += offset
        m = cv2.getPerspectiveTransform(corners, quad)
        outline = cv2.warpPerspective(np.ones(canvas.shape[:2], np.float32), m, (w, h))[..., None]
        car = cv2.warpPerspective(canvas, m, (w, h), flags=cv2.INTER_LINEAR)
        photo += outline * (car - photo)
        img, blur = self._camera(photo, rng, blur_scale=2.0)
        x1, y1, x2, y2 = np.round(bbox_of(quad)).astype(int)
        brightness = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).mean()
        return img, quad, {"tilt": (90 + round(yaw), 90 + round(pitch)), "brightness": brightness, "blur": blur}


def street_background(rng, w, h):
    """A plausible blurry street: sky/ground gradient, a few dark and bright blocks, texture."""
    top, bottom = rng.uniform(60, 230, size=3), rng.uniform(30, 140, size=3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top + t * (bottom - top), (h, w, 3)).astype(np.float32).copy()
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        img[y0:y0 + int(rng.integers(40, 400)), x0:x0 + int(rng.integers(40, 400))] = rng.uniform(10, 240, size=3)
    img += (low_freq(rng, h, w, (6, 4))[..., None] - 0.5) * 60
    return cv2.GaussianBlur(img, (0, 0), 3)


def ccpd_filename(text, quad, image_size, tilt=(90, 90), brightness=128, blur=0):
    """CCPD name `area-tilt-bbox-vertices-plate_indices-brightness-blur.jpg` for a plate with corners `quad`
    (TL TR BR BL); vertices are written bottom-right first, clockwise, as CCPD does."""
    w, h = image_size
    q = np.round(quad).astype(int)
    x1, y1 = np.clip(q.min(axis=0), 0, [w - 1, h - 1])
    x2, y2 = np.clip(q.max(axis=0), 0, [w - 1, h - 1])
    area = round(1000 * (x2 - x1) * (y2 - y1) / (w * h))
    tl, tr, br, bl = (f"{x}&{y}" for x, y in q)
    indices = "_".join(map(str, plate_to_indices(text)))
    return (f"{area:03d}-{tilt[0]}_{tilt[1]}-{x1}&{y1}_{x2}&{y2}-{br}_{bl}_{tl}_{tr}-{indices}-"
            f"{int(brightness)}-{int(round(blur * 10))}.jpg")


# ---------------------------------------------------------------------------------------- datasets

BOXES_HEADER = ("file\tbbox x1&y1_x2&y2\tcorners (CCPD order: bottom-right, bottom-left, top-left, top-right)"
                "\trows (2: a two-row plate)\n")


def plan_plates(num, seed, types="blue,green,yellow", style=None):
    """[(kind, text)] for images 0..num-1, each drawn from its own (seed, index, 0) generator."""
    style = style or TextStyle()
    names, probs = kind_probs(types)
    plan = []
    for i in range(num):
        rng = np.random.default_rng([seed, i, 0])
        kind = pick_kind(names, probs, rng, style)
        plan.append((kind, random_plate(kind, rng, style)))
    return plan


def file_names(plan, numbered=True, ext=".jpg"):
    """`皖A12345_17.jpg` (numbered) or `皖A12345.jpg`, a repeated plate then taking its index."""
    names, seen = [], set()
    for i, (_, text) in enumerate(plan):
        name = f"{text}_{i}{ext}" if numbered or text in seen else f"{text}{ext}"
        seen.add(text)
        names.append(name)
    return names


def corners_field(quad):
    """TL TR BR BL corners -> CCPD's 'br_bl_tl_tr' with x&y integers."""
    tl, tr, br, bl = np.round(quad).astype(int).tolist()
    return "_".join(f"{x}&{y}" for x, y in (br, bl, tl, tr))


def bbox_field(quad):
    (x1, y1), (x2, y2) = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    return f"{x1}&{y1}_{x2}&{y2}"


_worker = {}


def _init_worker(config, synth=None):
    if synth is None:  # a pool process: one image per process at a time, no OpenCV threads
        cv2.setNumThreads(1)
        synth = PlateSynth(config["font_cn"], config["font_en"], config["effects"])
    _worker.clear()
    _worker.update(config, synth=synth)


def _render_job(job):
    """Render and write image `i`; returns (i, file name, corners or None) or (i, None, error line)."""
    i, kind, text, name = job
    w = _worker
    rng = np.random.default_rng([w["seed"], i, 1])
    corners = None
    if w["mode"] == "ccpd":
        img, corners, info = w["synth"].ccpd_scene(kind, text, rng)
        name = ccpd_filename(text, corners, CCPD_SIZE, **info)
    elif w["mode"] == "context":
        img, corners = w["synth"].context(kind, text, rng)
    else:
        img = w["synth"].crop(kind, text, rng, w["size"], w["join_rows"])
    try:
        write_image(os.path.join(w["savepath"], name), img, w["quality"])
    except (OSError, ImageError) as e:
        return i, None, f"skipped {name}: {e}"
    return i, name, corners


def earlier_rows(path, rendered):
    """The rows of an existing boxes.tsv at `path` whose images are still beside it and not `rendered` again."""
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot add to it ({getattr(e, 'strerror', None) or 'not UTF-8 text'})") from None
    rows = []
    for line in lines:
        name = line.split("\t", 1)[0]
        if line.strip() and name != "file" and name not in rendered \
                and os.path.isfile(os.path.join(os.path.dirname(path), name)):
            rows.append(line.rstrip("\n") + "\n")
    return rows


def remove_unreceived(savepath, names, since):
    """Delete the images among `names` this run (started at `since`) wrote but whose result it never received; returns
    how many."""
    removed = 0
    for name in names:
        path = os.path.join(savepath, name)
        if os.path.isfile(path) and os.path.getmtime(path) >= since:
            os.remove(path)
            removed += 1
    return removed


def write_boxes(savepath, records):
    """boxes.tsv beside context images, in the format of plates_context/boxes.tsv plus a column of plate rows;
    `records`: (file name, corners, rows). The rows of images an earlier run left in `savepath` stay."""
    path = os.path.join(savepath, "boxes.tsv")
    rendered = {name for name, _, _ in records}
    write_lines(path, [BOXES_HEADER] + earlier_rows(path, rendered) + [
        f"{name}\t{bbox_field(q)}\t{corners_field(q)}\t{rows}\n" for name, q, rows in records])


def generate(num=1000, savepath="data/synth", types="blue,green,yellow", size="94x24", seed=0, workers=1,
             provinces="", strength=1.0, effects="", font_cn="", font_en="", context=False, ccpd=False,
             quality=95, numbered=True, join_rows=True, log=tqdm.write):
    """Render `num` plates into `savepath`; the same seed gives the same files whatever `workers` is."""
    if context and ccpd:
        raise ValueError("choose one of --context and --ccpd")
    problem = unwritable_folder(savepath)
    if problem:
        raise ValueError(f"--savepath {savepath}: cannot write there ({problem})")
    if context:
        earlier_rows(os.path.join(savepath, "boxes.tsv"), set())  # a boxes.tsv it cannot add to fails now
    style = style_from_spec(provinces)
    config = {"font_cn": font_cn, "font_en": font_en, "effects": effects_from_spec(strength, effects),
              "seed": seed, "size": parse_size(size, 8, 4), "savepath": savepath, "quality": quality,
              "join_rows": join_rows, "mode": "ccpd" if ccpd else "context" if context else "crop"}
    synth = PlateSynth(font_cn, font_en, config["effects"])  # font problems surface here, before any worker
    plan = plan_plates(num, seed, types, style)
    jobs = [(i, kind, text, name) for i, ((kind, text), name) in enumerate(zip(plan, file_names(plan, numbered)))]
    os.makedirs(savepath, exist_ok=True)
    start, written, skipped, boxes = time.time(), 0, 0, []
    bar = tqdm(total=num, desc=f"rendering {config['mode']} plates", unit="img")
    if workers > 1:
        pool = clean_process_pool(workers, _init_worker, (config,), preload=[__name__])
        results = pool.imap(_render_job, jobs, chunksize=32)
    else:
        pool = None
        _init_worker(config, synth)
        results = map(_render_job, jobs)
    received = set()
    try:
        for i, name, extra in results:
            received.add(i)
            bar.update()
            if name is None:
                log(extra)
                skipped += 1
                continue
            written += 1
            if context:
                boxes.append((name, extra, 1 if LAYOUTS[plan[i][0]].rows is None else 2))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        removed = 0
        if context:  # also when interrupted: the images written so far keep their rows
            write_boxes(savepath, boxes)
            if len(received) < len(jobs):  # workers wrote these, their corners never came back: no row, no image
                removed = remove_unreceived(savepath, [job[3] for job in jobs if job[0] not in received], start)
        if len(received) < len(jobs):
            log(f"stopped after {written} of {num} images, which are kept in {savepath}"
                + (f" with their boxes.tsv rows ({removed} unfinished ones removed)" if context else ""))
    elapsed = time.time() - start
    log(f"wrote {written} images to {savepath} in {elapsed:.1f} s ({written / max(elapsed, 1e-9):.0f} img/s)"
        + (f", {skipped} skipped" if skipped else "") + (", corners in boxes.tsv" if context else ""))
    return written, skipped
