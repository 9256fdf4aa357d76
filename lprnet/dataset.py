"""Plate folders held in memory as uint8, labels from file names, augmentation on the fly.

`train_img_dirs` may be several comma-separated folders, read recursively. A folder that has a
`boxes.tsv` beside its images or one level up (as `plates_context/` does) gives each listed image
the plate's corners, so training can frame the plate the way a detector would; a fourth column of 2 (which
gen_plates.py writes for two-row plates) has the plate's rows joined into one as it is framed.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .augment import CONTEXT_FRAMING, PHOTOMETRIC, TIGHT_FRAMING, area_shrink, augment, box_crop, corners_of_image
from .charset import LabelError, check_plate, encode, label_from_filename
from .cli import comma_list
from .image import ImageError, list_images, read_image
from .preprocess import to_input

# Training images are kept with the plate at most this wide: enough detail for 94-pixel output, little memory.
STORE_PLATE_WIDTH = 140


class BoxesError(ValueError):
    """A boxes.tsv cannot be read at all; the message names it."""


def read_boxes(folder, log=print):
    """{absolute image path: (corners [4, 2] (TL, TR, BR, BL), rows)} from a boxes.tsv in `folder` or its parent;
    rows is 2 for a two-row plate, else 1. Malformed rows are reported one line each (their images are then read
    as tight crops)."""
    for base in (folder, os.path.dirname(os.path.normpath(folder))):
        tsv = os.path.join(base, "boxes.tsv")
        if os.path.isfile(tsv):
            return parse_boxes_tsv(tsv, log)
    return {}


def parse_boxes_tsv(tsv, log=print):
    try:
        with open(tsv, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError:
        raise BoxesError(f"{tsv}: not UTF-8 text (save it as UTF-8)") from None
    base, boxes = os.path.dirname(os.path.abspath(tsv)), {}
    for number, line in enumerate(lines, 1):
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "file" or not line.strip():
            continue
        try:
            br, bl, tl, tr = [[float(v) for v in p.split("&")] for p in parts[2].split("_")]
            if any(len(point) != 2 or not np.isfinite(point).all() for point in (br, bl, tl, tr)):
                raise ValueError
        except (ValueError, IndexError):
            log(f"warning: {tsv} line {number}: not 'file<TAB>bbox<TAB>x&y_x&y_x&y_x&y corners', ignored")
            continue
        rows = 2 if len(parts) > 3 and parts[3].strip() == "2" else 1
        boxes[os.path.normpath(os.path.join(base, parts[0]))] = (np.float32([tl, tr, br, bl]), rows)
    return boxes


def split_dirs(dirs):
    return comma_list(dirs) if isinstance(dirs, str) else list(dirs)


class Sample:
    __slots__ = ("image", "quad", "text", "framed", "two_rows")

    def __init__(self, image, quad, text, framed, two_rows=False):
        self.image, self.quad, self.text, self.framed, self.two_rows = image, quad, text, framed, two_rows


def _load_one(path, box, store_width):
    text = check_plate(label_from_filename(path))
    img = read_image(path)
    framed = box is not None
    quad, rows = box if framed else (corners_of_image(img), 1)
    width = np.linalg.norm(quad[1] - quad[0])
    if store_width and width > store_width:
        img, quad = area_shrink(img, quad, store_width / width)
    return Sample(img, quad.astype(np.float32), text, framed, rows == 2)


def load_samples(dirs, workers=2, log=print, store_width=STORE_PLATE_WIDTH):
    """Read every labelled image under `dirs`; bad files are reported one line each and skipped.
    Images whose plate is wider than `store_width` are kept downscaled (None: as read, so a tight crop
    resizes exactly as test.py's does).

    Returns (samples, skipped count).
    """
    jobs = []
    for folder in split_dirs(dirs):
        paths = list_images(folder)
        if not paths:
            log(f"warning: {folder}: no images found")
        boxes = read_boxes(folder, log) if os.path.isdir(folder) else {}
        folder_jobs = [(p, boxes.get(os.path.normpath(os.path.abspath(p)))) for p in paths]
        unboxed = sum(box is None for _, box in folder_jobs)
        if boxes and unboxed:
            log(f"warning: {folder}: {unboxed} of {len(paths)} images have no row in boxes.tsv, so no corners "
                "(training reads them as tight crops, bench_framing.py leaves them out)")
        jobs += folder_jobs

    def attempt(job):
        try:
            return _load_one(*job, store_width)
        except (LabelError, ImageError) as e:
            return f"skipped {job[0]}: {e}"

    samples, skipped = [], 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for result in pool.map(attempt, jobs):
            if isinstance(result, Sample):
                samples.append(result)
            else:
                log(result)
                skipped += 1
    return samples, skipped


class PlateDataset(torch.utils.data.Dataset):
    """Returns (input [3, 24, 94] float32, label indices); `collate` batches them with the label lengths."""

    def __init__(self, samples, train=False, seed=0, framing=CONTEXT_FRAMING, photo=PHOTOMETRIC):
        """`framing`: how training windows frame plates whose surroundings are known (bare crops: TIGHT_FRAMING);
        `photo`: the camera effects on every training plate."""
        self.samples, self.train, self.seed, self.epoch = samples, train, seed, 0
        self.framing, self.photo = framing, photo

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.samples)

    def plate(self, i):
        s = self.samples[i]
        if not self.train:
            return box_crop(s.image, s.quad, s.two_rows)
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return augment(s.image, s.quad, rng, self.framing if s.framed else TIGHT_FRAMING, self.photo, s.two_rows)

    def __getitem__(self, i):
        return torch.from_numpy(to_input(self.plate(i))[0]), encode(self.samples[i].text)


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    labels = torch.tensor([c for b in batch for c in b[1]], dtype=torch.long)
    lengths = torch.tensor([len(b[1]) for b in batch], dtype=torch.long)
    return images, labels, lengths
