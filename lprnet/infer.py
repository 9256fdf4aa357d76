"""The inference run both LPRNet_*_infer.py scripts share.

List images (one file, or a folder searched recursively), read them batch by batch, run an engine, decode,
print one line per image, score the images whose file name is a plate, then write the results (.json/.csv)
and visualisations. Unreadable images get one line each and are counted; fatal problems exit with one line.
"""
import csv
import functools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .charset import LabelError, check_plate, label_from_filename
from .cli import add_plate_rules_flag, add_two_rows_flag, check_flags
from .engines import EngineError, missing_model
from .evaluate import Score, read_crops, two_row_note
from .image import IMAGE_EXTENSIONS, ImageError, list_images, unwritable_folder, write_atomic, write_image
from .preprocess import INPUT_W, read_plates

VIS_WIDTH = 4 * INPUT_W  # narrower images are enlarged to this width for --save_vis
FONT_PREFERENCE = ("wqy-zenhei", "wqy-microhei", "notosanscjk-regular", "notosanscjk", "notosanssc",
                   "droidsansfallback", "msyh", "simhei", "pingfang")
KNOWN_FONT_FILES = (  # where fc-list is missing (Windows, macOS, minimal images)
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
)
OUTPUT_FIELDS = ("file", "plate", "confidence", "two_rows", "label", "correct", "error")


def add_io_args(parser):
    """The flags every inference script has, besides --model and the engine's own."""
    parser.add_argument("--imgpath", default="imgs", help="an image, or a folder searched recursively; "
                        "file names like 皖A12345_1.jpg are scored")
    parser.add_argument("--batch_size", type=int, default=64, help="images per inference call")
    parser.add_argument("--output", default="", help="also write every result to FILE.json or FILE.csv")
    parser.add_argument("--save_vis", default="", help="folder for each image, enlarged, with its plate and "
                        "confidence under it")
    parser.add_argument("--font", default="", help="font file with Chinese glyphs for --save_vis "
                        "(default: WenQuanYi Zen Hei or Noto Sans CJK, found with fc-list)")
    add_plate_rules_flag(parser)
    add_two_rows_flag(parser, auto=True)


@dataclass
class Result:
    file: str
    plate: str = ""
    label: Optional[str] = None  # the plate the file name carries, if it carries one
    error: Optional[str] = None  # why the image was skipped
    confidence: Optional[float] = None  # of the least sure character read (lprnet.preprocess.decode_plates)
    two_rows: bool = False  # read with its two rows joined (--two_rows True, or auto's second reading)

    @property
    def correct(self):
        return None if self.label is None or self.error else self.plate == self.label

    def row(self):
        return {k: getattr(self, k) for k in OUTPUT_FIELDS}


def fatal(message):
    sys.exit(f"error: {message}")


def plate_label(path):
    try:
        return check_plate(label_from_filename(path))
    except LabelError:
        return None


def read_batch(paths, keep_images=False, two_rows=False):
    """Results (read errors filled in), uint8 plates of the readable images, and those images if kept."""
    results, plates, images = [], [], []
    for path, img, plate, error in read_plates(paths, two_rows):
        results.append(Result(path, label=plate_label(path), error=error))
        if plate is not None:
            plates.append(plate)
            images.append(img if keep_images else None)
    return results, plates, images


def result_marks(encoding):
    """✓/✗, or √/× where the console cannot print them (GBK), or plain text."""
    for marks in (("✓", "✗"), ("√", "×")):
        try:
            "".join(marks).encode(encoding or "utf-8")
            return marks
        except (UnicodeEncodeError, LookupError):
            continue
    return "ok", "wrong"


def result_line(result, marks):
    if result.error:
        return f"skipped {result.file}: {result.error}"
    confidence = "" if result.confidence is None else f"  {result.confidence:.2f}"
    mark = "" if result.correct is None else f"  {marks[0] if result.correct else marks[1]}"
    joined = "  (two rows)" if result.two_rows else ""
    return f"{result.file}  {result.plate or '(none)'}{confidence}{joined}{mark}"


def fontconfig_cjk_fonts():
    try:
        listing = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":")[0].strip() for line in listing.stdout.splitlines() if line.strip()]


def find_cjk_font():
    """The best installed font with Chinese glyphs (fontconfig, then well-known paths), or None."""
    found = fontconfig_cjk_fonts() + [f for f in KNOWN_FONT_FILES if os.path.isfile(f)]

    def rank(path):
        name = os.path.basename(path).lower().replace(" ", "")
        preference = next((i for i, key in enumerate(FONT_PREFERENCE) if key in name), len(FONT_PREFERENCE))
        return preference, "bold" in name, path
    return min(found, key=rank) if found else None


def vis_font_file(font):
    """The font for --save_vis, checked to load: --font, or one found on the system; exits if there is none."""
    try:
        from PIL import ImageFont
    except ImportError:
        fatal("--save_vis needs Pillow (pip install pillow)")
    if font and not os.path.isfile(font):
        fatal(f"--font {font}: no such file")
    font = font or find_cjk_font()
    if not font:
        fatal("--save_vis needs a font with Chinese characters and none was found (fc-list :lang=zh is empty): "
              "install fonts-wqy-zenhei or fonts-noto-cjk, or pass --font FILE.ttf/.ttc")
    try:
        ImageFont.truetype(font, 20)
    except OSError as e:
        fatal(f"--font {font}: cannot load it ({e})")
    return font


@functools.lru_cache(maxsize=8)
def truetype(font, size):
    from PIL import ImageFont
    return ImageFont.truetype(font, size)


def vis_text(result):
    if not result.plate:
        return "(none)"
    return result.plate if result.confidence is None else f"{result.plate}  {result.confidence:.2f}"


def draw_result(img, result, font):
    """The image enlarged to VIS_WIDTH (if narrower) over a white band with the plate and its confidence:
    green when it matches the file name's label, red when not, black when unlabelled."""
    from PIL import Image, ImageDraw
    h, w = img.shape[:2]
    if w < VIS_WIDTH:
        img = cv2.resize(img, (VIS_WIDTH, max(1, round(h * VIS_WIDTH / w))), interpolation=cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    size = max(20, w // 10)
    band = size * 3 // 2
    canvas = np.full((h + band, w, 3), 255, np.uint8)
    canvas[:h] = img
    color = {None: (0, 0, 0), True: (0, 150, 0), False: (220, 0, 0)}[result.correct]
    picture = Image.fromarray(np.ascontiguousarray(canvas[:, :, ::-1]))
    ImageDraw.Draw(picture).text((w / 2, h + band / 2), vis_text(result), fill=color,
                                 font=truetype(font, size), anchor="mm")
    return np.asarray(picture)[:, :, ::-1]


def vis_path(save_vis, imgpath, path):
    """The same relative path under save_vis (subfolders kept, so names cannot collide)."""
    rel = os.path.relpath(path, imgpath) if os.path.isdir(imgpath) else os.path.basename(path)
    return os.path.join(save_vis, rel)


def save_visualisations(results, images, save_vis, imgpath, font, log):
    for result, img in zip((r for r in results if not r.error), images):
        target = vis_path(save_vis, imgpath, result.file)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_image(target, draw_result(img, result, font))
        except (OSError, ImageError) as e:
            log(f"warning: cannot write {target}: {e}")


def summarise(results, seconds, engine, batch_size):
    """The summary dict and the Score of the labelled images (the same Score test.py reports)."""
    labelled = [r for r in results if r.correct is not None]
    score = Score.of([r.label for r in labelled], [r.plate for r in labelled], [r.file for r in labelled])
    read = sum(r.error is None for r in results)
    summary = {"images": read, "skipped": len(results) - read, "labelled": score.total}
    if score.total:
        summary.update(correct=score.correct, accuracy=round(score.accuracy, 6))
    summary.update(img_per_s=round(read / seconds, 1) if seconds else 0.0, engine=engine.describe(),
                   batch_size=batch_size)
    return summary, score


def write_results(path, results, summary):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    rows = [r.row() for r in results]

    def dump(tmp):
        if path.lower().endswith(".json"):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"summary": summary, "results": rows}, f, ensure_ascii=False, indent=1)
        else:  # utf-8-sig: Excel opens Chinese plates correctly only with the BOM
            with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=OUTPUT_FIELDS)
                writer.writeheader()
                writer.writerows(rows)

    write_atomic(path, dump)


def check_options(model, imgpath, batch_size, output, save_vis, font):
    """Exit with one line on the first unusable option; returns the images and the --save_vis font."""
    check_flags(("--batch_size", batch_size, batch_size >= 1, "at least 1"))
    if output and not output.lower().endswith((".json", ".csv")):
        fatal(f"--output {output}: must end in .json or .csv")
    output_folder = os.path.dirname(os.path.abspath(output)) if output else ""
    for flag, value, folder in (("--output", output, output_folder), ("--save_vis", save_vis, save_vis)):
        problem = folder and unwritable_folder(folder)
        if problem:
            fatal(f"{flag} {value}: cannot write there ({problem})")
    problem = missing_model(model)
    if problem:
        fatal(problem)
    try:
        paths = list_images(imgpath)
    except FileNotFoundError as e:
        fatal(str(e))
    if not paths:
        fatal(f"{imgpath}: no images in it ({' '.join(IMAGE_EXTENSIONS)})")
    if save_vis:
        vis = os.path.realpath(save_vis)
        source_dir = os.path.realpath(imgpath if os.path.isdir(imgpath) else os.path.dirname(imgpath) or ".")
        if vis == source_dir:
            fatal(f"--save_vis {save_vis}: would overwrite the input images; choose another folder")
        if os.path.isdir(imgpath) and vis.startswith(source_dir + os.sep):
            fatal(f"--save_vis {save_vis}: inside --imgpath, which is read with its subfolders: the next run would "
                  "read the drawn images as plates; choose a folder outside it")
        font = vis_font_file(font)
    return paths, font


def recognise(engine, read, images, plates, batch_size, plate_rules, two_rows):
    """Fill in the plate, confidence and two_rows of the `read` results, whose images as read are `images` (kept
    where two-row plates may be read again) and as the model reads them `plates`; returns how many readings
    reread_two_row_plates changed (--two_rows True or auto)."""
    readings, changed = read_crops(engine, images, np.stack(plates), batch_size, plate_rules, two_rows)
    for i, (result, (text, confidence)) in enumerate(zip(read, readings)):
        result.plate, result.confidence = text, round(confidence, 4)
        result.two_rows = two_rows is True or i in changed
    return len(changed)


def run(make_engine, model, imgpath, batch_size=64, output="", save_vis="", font="", plate_rules=False,
        two_rows="auto", log=print):
    """Recognise every image under `imgpath` with the engine `make_engine()` builds for `model`.

    Returns (list of Result, summary dict). The last line printed is `summary {json}`; img_per_s counts
    the model's work (preprocessed batch to text), not file reading.
    """
    paths, font = check_options(model, imgpath, batch_size, output, save_vis, font)
    try:
        engine = make_engine()
    except EngineError as e:
        fatal(str(e))
    log(f"{engine.describe()} | {len(paths)} images from {imgpath}")
    engine.report_warnings(log)
    if engine.fixed_batch and batch_size < engine.fixed_batch:  # smaller batches would only add padding
        log(f"note: the model takes batches of {engine.fixed_batch}: reading {engine.fixed_batch} images at a time")
        batch_size = engine.fixed_batch
    marks = result_marks(getattr(sys.stdout, "encoding", None))
    results, seconds, reread = [], 0.0, 0
    for start in range(0, len(paths), batch_size):
        batch, plates, images = read_batch(paths[start:start + batch_size], bool(save_vis or two_rows),
                                           two_rows is True)
        if plates:
            t0 = time.perf_counter()
            try:
                reread += recognise(engine, [r for r in batch if not r.error], images, plates, batch_size,
                                    plate_rules, two_rows)
            except EngineError as e:
                fatal(str(e))
            seconds += time.perf_counter() - t0
        for result in batch:
            log(result_line(result, marks))
        if save_vis:
            save_visualisations(batch, images, save_vis, imgpath, font, log)
        results += batch

    if reread:
        log(two_row_note(two_rows, reread))
    summary, score = summarise(results, seconds, engine, batch_size)
    summary["plate_rules"], summary["two_rows"] = plate_rules, two_rows
    if output:
        try:
            write_results(output, results, summary)
        except OSError as e:
            fatal(f"--output {output}: cannot write it ({e})")
    if score.total:
        log(score.summary())
    log("summary " + json.dumps(summary, ensure_ascii=False))
    if not summary["images"]:
        fatal(f"{imgpath}: no image could be read ({summary['skipped']} skipped)")
    return results, summary
