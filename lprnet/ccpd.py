"""CCPD photos -> plate crops named by their text: the engine behind cut_ccpd.py.

A CCPD file name carries the labels: `area-tilt-bbox-vertices-indices-brightness-blur.jpg`, e.g.
`0254-91_84-220&469_341&511-328&514_224&510_224&471_328&475-10_2_5_22_31_31_27-103-12.jpg` (some
names start with a long numeric id instead of the area). The box is known before decoding, so each
photo is decoded at the smallest JPEG scale that keeps the plate at least 1.5x the output size: a
fraction of a full decode's cost, for a crop that differs from a full decode's less than moving the
box by one pixel does.

Output names are stable across runs: `manifest.tsv` in the save folder maps each photo (absolute
path) to its crop's name and is written before any crop is, so a re-run resumes where the last one
stopped and a plate seen again keeps its `_1`, `_2` ... suffix. Two runs must not share a save
folder at the same time.
"""
import functools
import os
import re
import time
from collections import Counter, namedtuple
from contextlib import closing

import cv2
import numpy as np
from tqdm import tqdm

from .ccpd_tables import indices_to_plate
from .charset import LabelError, check_plate
from .cpu import usable_cores
from .image import ImageError, list_images, read_image, write_image, write_lines
from .pool import clean_process_pool
from .preprocess import INPUT_H, INPUT_W, resize_plate

MANIFEST, SKIPPED = "manifest.tsv", "skipped.tsv"
REASONS = ("bad_name", "bad_plate", "missing", "unreadable", "box_outside")  # skip reasons, summary order
REDUCTIONS = (8, 4, 2, 1)
# A reduced decode is a box filter, and area-resizing its crop by a factor near 1 blurs on top of
# it. Keeping the plate >= 1.5x the output size at the reduced scale holds the crop close to a full
# decode's: on ccpd_sample the luma differs by 1.3/255 on average (3.8 at 1x; moving the box by one
# pixel makes 5.6) and the Laplacian variance drops 10% (30% at 1x).
MIN_OVERSAMPLE = 1.5
# Box corners are inclusive pixel coordinates; one on the photo's far edge (x == width) is
# tolerated and clipped, anything further out is 'box_outside'.
EDGE_SLACK = 1

_PAIR = r"([0-9]+)&([0-9]+)"  # [0-9], not \d: no full-width or other scripts' digits
_FIELDS = (  # (name, pattern) of the 7 '-'-separated fields
    ("area/id", re.compile(r"[0-9]+")),
    ("tilt", re.compile(r"[0-9]+_[0-9]+")),
    ("bbox", re.compile(f"{_PAIR}_{_PAIR}")),
    ("vertices", re.compile("_".join([_PAIR] * 4))),
    ("plate indices", re.compile(r"[0-9]+(?:_[0-9]+){6,7}")),
    ("brightness", re.compile(r"[0-9]+")),
    ("blur", re.compile(r"[0-9]+")),
)

# box: (x1, y1, x2, y2), inclusive; corners: float32 [4, 2] top-left, top-right, bottom-right, bottom-left
CcpdLabel = namedtuple("CcpdLabel", "plate box corners")


class CcpdNameError(ValueError):
    """A file name is not a CCPD name."""


class BoxOutsideError(ValueError):
    """The plate's box does not lie inside the photo."""


class CutError(ValueError):
    """The run cannot start (the save folder was made with other settings, or holds the photos)."""


def parse_ccpd_name(path):
    """The CcpdLabel of a CCPD photo's file name.

    Raises CcpdNameError when the name is not a CCPD name, LabelError when its plate is not one
    this model can learn (警 and 学 plates, missing characters).
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    fields = stem.split("-")
    if len(fields) != len(_FIELDS):
        raise CcpdNameError(f"{len(fields)} '-'-separated fields, a CCPD name has {len(_FIELDS)}")
    matches = []
    for (what, pattern), text in zip(_FIELDS, fields):
        m = pattern.fullmatch(text)
        if m is None:
            raise CcpdNameError(f"{what} field {text!r} is malformed")
        matches.append(m)
    x1, y1, x2, y2 = (int(v) for v in matches[2].groups())
    if x2 <= x1 or y2 <= y1:
        raise CcpdNameError(f"bbox {fields[2]!r} is " + ("reversed" if x2 < x1 or y2 < y1 else "one pixel thin"))
    v = [int(n) for n in matches[3].groups()]  # bottom-right, bottom-left, top-left, top-right
    corners = np.array([v[4:6], v[6:8], v[0:2], v[2:4]], np.float32)
    check_corners(corners, (x1, y1, x2, y2), fields[3])
    try:
        text = indices_to_plate([int(i) for i in fields[4].split("_")])
    except IndexError:
        raise CcpdNameError(f"plate indices {fields[4]!r} go past the end of CCPD's tables") from None
    return CcpdLabel(check_plate(text), (x1, y1, x2, y2), corners)


def check_corners(corners, box, field):
    """Raise CcpdNameError where the four corners cannot be the plate in the bbox: in CCPD they run clockwise from
    the bottom-right one (so that --warp does not turn or mirror the plate), enclose 43-100% of its area and stray
    outside it by at most 11% of its width (622 sample photos; the limits below leave a wide margin)."""
    x1, y1, x2, y2 = box
    tl, tr, br, bl = corners
    x, y = corners[:, 0], corners[:, 1]
    clockwise = np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0  # in image coordinates, y down
    upright = (bl[1] + br[1]) > (tl[1] + tr[1]) and (tr[0] + br[0]) > (tl[0] + bl[0])  # holds up to 90 degrees
    if len({(float(a), float(b)) for a, b in corners}) < 4 or not clockwise or not upright:
        raise CcpdNameError(f"corners {field!r} are not four corners clockwise from the bottom-right one")
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    if area < 0.2 * (x2 - x1) * (y2 - y1):
        raise CcpdNameError(f"corners {field!r} enclose {area:.0f} px², under a fifth of the bbox")
    slack = 0.5 * (x2 - x1)
    if x.min() < x1 - slack or x.max() > x2 + slack or y.min() < y1 - slack or y.max() > y2 + slack:
        raise CcpdNameError(f"corners {field!r} lie far outside the bbox")


def plate_extent(label, warp):
    """Width and height of the plate as cropped: the bbox, or the rectified four corners."""
    if not warp:
        x1, y1, x2, y2 = label.box
        return x2 - x1 + 1, y2 - y1 + 1
    tl, tr, br, bl = label.corners
    return (max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)),
            max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))


def crop_region(label, warp):
    """(x1, y1, x2, y2), inclusive: the part of the photo the crop needs."""
    if not warp:
        return label.box
    (x1, y1), (x2, y2) = label.corners.min(axis=0), label.corners.max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def choose_reduction(plate_w, plate_h, size):
    """The largest JPEG decode reduction that keeps the plate at least MIN_OVERSAMPLE x `size`."""
    min_w, min_h = MIN_OVERSAMPLE * size[0], MIN_OVERSAMPLE * size[1]
    return next(r for r in REDUCTIONS if r == 1 or (plate_w / r >= min_w and plate_h / r >= min_h))


def read_for_region(path, region, reduction):
    """(image, reduction): `path` decoded at 1/reduction; BoxOutsideError unless `region` lies inside."""
    img = read_image(path, reduction)
    h, w = img.shape[:2]
    # A JPEG decoded at 1/r is ceil(W / r) wide: the photo is at least r * (w - 1) + 1 wide.
    min_w, min_h = reduction * (w - 1) + 1, reduction * (h - 1) + 1
    x1, y1, x2, y2 = region
    if x1 < min_w and y1 < min_h and x2 < min_w + EDGE_SLACK and y2 < min_h + EDGE_SLACK:
        return img, reduction
    if reduction > 1:  # near or past the edge: decide on the full photo
        return read_for_region(path, region, 1)
    raise BoxOutsideError(f"plate at x {x1:g}..{x2:g}, y {y1:g}..{y2:g} is not inside the {w}x{h} photo")


def lerp(table, positions, axis):
    """`table` linearly interpolated at fractional `positions` along `axis`."""
    i = np.minimum(positions.astype(int), table.shape[axis] - 2)
    shape = [1] * table.ndim
    shape[axis] = -1
    lo, hi = np.take(table, i, axis), np.take(table, i + 1, axis)
    return lo + (positions - i).reshape(shape) * (hi - lo)


def area_resample(img, region, size):
    """Area-resample `region` (x0, y0, x1, y1 in pixel-edge coordinates, fractional) of `img` to `size`.

    A box cut from a reduced decode rarely falls on its pixel grid; rounding it to whole pixels
    would shift and stretch the plate by up to a reduced pixel. The sum over any rectangle is exact
    from the integral image, which is bilinear within each pixel.
    """
    x0, y0, x1, y1 = region
    c0, r0 = int(x0), int(y0)
    crop = img[r0:int(np.ceil(y1)), c0:int(np.ceil(x1))]
    ys = np.clip(y0 - r0 + (y1 - y0) * np.arange(size[1] + 1) / size[1], 0, crop.shape[0])
    xs = np.clip(x0 - c0 + (x1 - x0) * np.arange(size[0] + 1) / size[0], 0, crop.shape[1])
    table = cv2.integral(crop, sdepth=cv2.CV_64F).reshape(crop.shape[0] + 1, crop.shape[1] + 1, -1)
    table = lerp(lerp(table, ys, axis=0), xs, axis=1)
    sums = table[1:, 1:] - table[:-1, 1:] - table[1:, :-1] + table[:-1, :-1]
    area = np.diff(ys)[:, None, None] * np.diff(xs)[None, :, None]
    return np.clip(np.rint(sums / area), 0, 255).astype(np.uint8)


def warp_plate(img, corners, extent, reduction=1):
    """The plate rectified: its four corners (pixel centres of the photo, as CCPD's coordinates are inclusive) onto
    the corner pixels of a rectangle `extent` (the corners' distances) + 1 pixels wide and high, drawn at 1/reduction
    of that size from `img`, the photo decoded at 1/reduction."""
    w, h = round(extent[0]) + 1, round(extent[1]) + 1
    rect = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])

    def reduced(points):  # a pixel centre p of the full image is at (p + 0.5) / r - 0.5 in its 1/r decode
        return ((points + 0.5) / reduction - 0.5).astype(np.float32)
    m = cv2.getPerspectiveTransform(reduced(corners), reduced(rect))
    size = (max(2, round(w / reduction)), max(2, round(h / reduction)))
    return cv2.warpPerspective(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def cut_photo(src, dst, label, size, warp):
    """Crop one photo into `dst`. Returns None when written, else (reason, detail)."""
    extent = plate_extent(label, warp)
    jpeg = src.lower().endswith((".jpg", ".jpeg"))  # other formats do not decode faster when reduced
    reduction = choose_reduction(*extent, size) if jpeg else 1
    region = crop_region(label, warp)
    try:
        img, reduction = read_for_region(src, region, reduction)
    except ImageError as e:
        return "unreadable", str(e)
    except BoxOutsideError as e:
        return "box_outside", str(e)
    if warp:
        plate = resize_plate(warp_plate(img, label.corners, extent, reduction), size)
    elif reduction == 1:
        x1, y1, x2, y2 = region
        plate = resize_plate(img[y1:y2 + 1, x1:x2 + 1], size)
    else:
        x1, y1, x2, y2 = (np.float64(region) + (0, 0, 1, 1)) / reduction
        plate = area_resample(img, (x1, y1, x2, y2), size)
    write_image(dst, plate)
    return None


def _cut_job(job):
    return job[0], cut_photo(*job)


def _init_worker():
    cv2.setNumThreads(1)


def run_jobs(jobs, workers):
    """Yield (src, result) for each job; in this process when workers == 1."""
    if workers == 1:
        yield from map(_cut_job, jobs)
        return
    chunk = max(1, min(64, len(jobs) // (workers * 16)))
    with clean_process_pool(workers, _init_worker, preload=[__name__]) as pool:
        yield from pool.imap(_cut_job, jobs, chunksize=chunk, ordered=False)


def photo_key(path):
    """A photo's path with its folder's links resolved (a folder reached through a link holds the same photos) and
    its own name kept (a linked file is labelled by its link's CCPD name, not by the name of what it points to)."""
    path = os.path.abspath(path)
    return os.path.join(real_folder(os.path.dirname(path)), os.path.basename(path))


@functools.lru_cache(maxsize=None)
def real_folder(folder):
    """os.path.realpath, once per folder: a CCPD folder holds 100,000s of photos."""
    return os.path.realpath(folder)


def list_photos(ccpdpath, split_file, savepath):
    """(photos, missing): photo_key paths, sorted. The save folder is never read back as input."""
    if split_file:
        with open(split_file, encoding="utf-8-sig") as f:  # -sig: a BOM from a Windows editor is no part of a name
            names = {line.strip() for line in f if line.strip()}
        paths = sorted(photo_key(os.path.join(ccpdpath, n)) for n in names)
        return [p for p in paths if os.path.isfile(p)], [p for p in paths if not os.path.isfile(p)]
    save = os.path.join(os.path.realpath(savepath), "")
    return sorted(p for p in map(photo_key, list_images(ccpdpath)) if not p.startswith(save)), []


def check_folders(ccpdpath, savepath):
    """CutError where the crops would go into the photos' own folder (or one above it): nothing could be told apart."""
    photos, save = os.path.realpath(ccpdpath), os.path.realpath(savepath)
    if photos == save or photos.startswith(os.path.join(save, "")):
        raise CutError(f"--savepath {savepath} holds --ccpdpath {ccpdpath}: choose a folder outside it (or inside it)")


def is_utf8_name(path):
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a name the file system gave as undecodable bytes (e.g. GBK from a Windows zip)
        return False


def printable(path):
    return os.fsencode(path).decode("utf-8", "replace")


def settings_line(size, warp):
    return f"# cut_ccpd size={size[0]}x{size[1]} crop={'warp' if warp else 'bbox'}"


def read_tsv(path):
    """Lines of a tab-separated file as lists, '#' comments and blank lines left out; [] if absent."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]


def read_manifest(path):
    """(settings line or None, {photo: output name})."""
    header = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
        header = first if first.startswith("#") else None
    return header, {photo_key(row[0]): row[1] for row in read_tsv(path) if len(row) == 2}  # older ones: abspath


def write_manifest(path, header, mapping):
    write_lines(path, [header + "\n"] + [f"{src}\t{out}\n" for src, out in mapping.items()])


def is_name_for(name, plate):
    """Whether `name` is `<plate>.jpg` or `<plate>_<n>.jpg`."""
    stem = name[:-4] if name.endswith(".jpg") else ""
    return stem == plate or (stem.startswith(plate + "_") and stem[len(plate) + 1:].isdigit())


def assign_names(labelled, mapping, taken):
    """Give each photo without a valid name in `mapping` the first free `<PLATE>.jpg`, `<PLATE>_1.jpg` ...

    `labelled` is [(photo, CcpdLabel)] in a stable order; `taken` holds every name already used.
    Returns how many names were added.
    """
    added, next_suffix = 0, {}
    for src, label in labelled:
        plate = label.plate
        if is_name_for(mapping.get(src, ""), plate):
            continue
        k = next_suffix.get(plate, 0)
        while (f"{plate}_{k}.jpg" if k else f"{plate}.jpg") in taken:
            k += 1
        mapping[src] = f"{plate}_{k}.jpg" if k else f"{plate}.jpg"
        taken.add(mapping[src])
        next_suffix[plate] = k + 1
        added += 1
    return added


def write_skipped(path, skipped, settled):
    """skipped.tsv: this run's skips plus earlier runs' for photos this run did not settle and that are still there."""
    rows = [[photo_key(row[0])] + row[1:] for row in read_tsv(path) if len(row) >= 2]
    rows = [row for row in rows if row[0] not in settled and os.path.isfile(row[0])]
    rows += [[src, reason, detail] for src, (reason, detail) in skipped.items()]
    text = "# file\treason\tdetail\n" + "".join("\t".join(row) + "\n" for row in sorted(rows))
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    write_lines(path, [text])


class Summary:
    def __init__(self):
        # processed: the photos the workers took (written, or skipped by them)
        self.written, self.already_there, self.processed, self.seconds = 0, 0, 0, 0.0
        self.skipped = Counter()

    @property
    def rate(self):
        return self.processed / max(self.seconds, 1e-9)

    def line(self):
        reasons = ", ".join(f"{r} {self.skipped[r]}" for r in REASONS if self.skipped[r])
        skipped = f"skipped {sum(self.skipped.values())}" + (f" ({reasons}) -> {SKIPPED}" if reasons else "")
        speed = (f"{self.processed} photos processed in {self.seconds:.1f} s ({self.rate:.0f} photos/s)"
                 if self.processed else f"nothing to cut ({self.seconds:.1f} s)")
        return f"written {self.written}, already there {self.already_there}, {skipped}; {speed}"


def cut_ccpd(ccpdpath, savepath, size=(INPUT_W, INPUT_H), workers=0, split_file="", warp=False, overwrite=False,
             progress=True, log=tqdm.write):
    """Crop every CCPD photo under `ccpdpath` (or listed in `split_file`) into `savepath`; returns a Summary."""
    start, summary = time.perf_counter(), Summary()
    size, workers = tuple(size), workers or usable_cores()
    if not split_file:  # a split file names its photos: the save folder may hold the CCPD root
        check_folders(ccpdpath, savepath)
    savepath = os.path.realpath(savepath)  # worker processes may not share this one's working folder
    photos, missing = list_photos(ccpdpath, split_file, savepath)
    if not photos and not missing:
        log(f"warning: {ccpdpath}: no images found")
    os.makedirs(savepath, exist_ok=True)
    manifest_path, header = os.path.join(savepath, MANIFEST), settings_line(size, warp)
    old_header, mapping = read_manifest(manifest_path)
    existing = set(os.listdir(savepath))
    made = [src for src, name in mapping.items() if name in existing]
    if made and old_header != header:
        made_with, wanted = str(old_header).replace("# cut_ccpd ", ""), header.replace("# cut_ccpd ", "")
        if not overwrite:
            raise CutError(f"{savepath} holds crops made with {made_with}, not {wanted}: use another --savepath, "
                           "or --overwrite to redo them")
        others = set(made) - set(photos)
        if others:  # they would stay as they are under the new settings line
            raise CutError(f"{savepath} holds {len(others)} crops made with {made_with} of photos this run does not "
                           f"cut: --overwrite can redo only this run's photos; use another --savepath")
    for name in existing:  # temp files of a run that was killed
        if name.startswith(".") and name.endswith(".tmp"):
            os.remove(os.path.join(savepath, name))

    skipped = {src: ("missing", "listed in the split file but not found") for src in missing}
    undecodable = {src for src in photos if not is_utf8_name(src)}
    skipped.update({printable(src): ("bad_name", "the file name is not UTF-8 text") for src in sorted(undecodable)})
    photos = [src for src in photos if src not in undecodable]
    labelled = []
    for src in photos:
        try:
            labelled.append((src, parse_ccpd_name(src)))
        except CcpdNameError as e:
            skipped[src] = ("bad_name", str(e))
        except LabelError as e:
            skipped[src] = ("bad_plate", str(e))
    for src, (reason, detail) in skipped.items():
        log(f"skipped {src}: {detail} ({reason})")
    if assign_names(labelled, mapping, set(mapping.values()) | existing) or old_header != header:
        write_manifest(manifest_path, header, mapping)

    jobs = [(src, os.path.join(savepath, mapping[src]), label, size, warp) for src, label in labelled
            if overwrite or mapping[src] not in existing]
    summary.already_there, summary.processed = len(labelled) - len(jobs), len(jobs)
    settled = set(skipped) | {src for src, _ in labelled if mapping[src] in existing and not overwrite}
    try:
        bar = tqdm(total=len(jobs), unit="photo", disable=not progress or not jobs, smoothing=0.1)
        results = run_jobs(jobs, min(workers, max(1, len(jobs))))
        with bar, closing(results):  # closing stops the workers on Ctrl-C too
            for src, result in results:
                settled.add(src)
                if result is None:
                    summary.written += 1
                else:
                    skipped[src] = result
                    log(f"skipped {src}: {result[1]} ({result[0]})")
                bar.update()
        forget = [src for src in skipped if src in mapping and (mapping[src] not in existing or old_header != header)]
        for src in forget:  # a name only for a crop that exists, made with this run's settings
            if mapping[src] in existing:  # --overwrite with new settings could not redo it: not left behind as new
                os.remove(os.path.join(savepath, mapping[src]))
            del mapping[src]
        if forget:
            write_manifest(manifest_path, header, mapping)
    finally:
        summary.skipped = Counter(reason for reason, _ in skipped.values())
        write_skipped(os.path.join(savepath, SKIPPED), skipped, settled)
    summary.seconds = time.perf_counter() - start
    log(summary.line())
    return summary
