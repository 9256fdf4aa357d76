"""Reading labelled plates and scoring the readings: exact-match accuracy with LPRNet_Pytorch's breakdown (correct /
wrong length / wrong characters), the reading of crops by any engine (with the two-row re-reading) and torch's
logits."""
from dataclasses import dataclass, field

import numpy as np

from .charset import LabelError, check_plate, is_plate, label_from_filename
from .image import ImageError, list_images, read_image
from .preprocess import (
    TWO_ROW_MIN_ASPECT,
    TWO_ROW_OVERRULE,
    TWO_ROW_SURE,
    TWO_ROW_TRIMS,
    crop_to_bgr8,
    decode_plates,
    greedy_decode,
    load_plates,
    to_input,
    to_plate,
)


@dataclass
class Score:
    correct: int = 0
    wrong_length: int = 0
    wrong_chars: int = 0
    misses: list = field(default_factory=list)  # (name, truth, prediction, confidence or None)

    @property
    def total(self):
        return self.correct + self.wrong_length + self.wrong_chars

    @property
    def accuracy(self):
        return self.correct / self.total if self.total else 0.0

    @classmethod
    def of(cls, truths, predictions, names=None, confidences=None):
        """The Score of `predictions` against `truths` (misses named by `names`, else by their index)."""
        score = cls()
        for i, (truth, prediction) in enumerate(zip(truths, predictions)):
            score.add(names[i] if names else str(i), truth, prediction, confidences[i] if confidences else None)
        return score

    def add(self, name, truth, prediction, confidence=None):
        if prediction == truth:
            self.correct += 1
            return
        if len(prediction) != len(truth):
            self.wrong_length += 1
        else:
            self.wrong_chars += 1
        self.misses.append((name, truth, prediction, confidence))

    def summary(self):
        return f"accuracy={100 * self.accuracy:.2f}% ({self.correct}/{self.total})"


def markdown_table(header, rows):
    """A markdown table as text: the first column (names) left-aligned, the others (numbers) right-aligned."""
    def line(cells):
        return "| " + " | ".join(map(str, cells)) + " |"
    return "\n".join([line(header), "| --- |" + " ---: |" * (len(header) - 1)] + [line(row) for row in rows])


def labelled_images(imgpath, log=print):
    """(paths, labels, skipped): the images under `imgpath` whose file name is a plate this model can read; the
    others are reported one line each."""
    paths, labels, skipped = [], [], 0
    for path in list_images(imgpath):
        try:
            labels.append(check_plate(label_from_filename(path)))
            paths.append(path)
        except LabelError as e:
            log(f"skipped {path}: label {e}")
            skipped += 1
    return paths, labels, skipped


def labelled_plates(imgpath, log=print, two_rows=False):
    """(uint8 plates [N,24,94,3], their labels, number skipped), for the benchmarks: files without a plate name
    and unreadable ones are reported to `log` one line each and skipped. `two_rows`: two-row plates, rows joined."""
    paths, labels, unlabelled = labelled_images(imgpath, log)
    read, plates, unreadable = load_plates(paths, log, two_rows)
    if not paths:
        log(f"warning: {imgpath}: no images named by their plate")
    truth = dict(zip(paths, labels))
    return plates, [truth[p] for p in read], unlabelled + unreadable


def read_readings(engine, plates, batch_size, plate_rules=False):
    """(plate, confidence) for each of the uint8 `plates` [N, 24, 94, 3] that `engine` (model input -> logits)
    reads, batch_size plates a call."""
    readings = []
    for start in range(0, len(plates), batch_size):
        readings += decode_plates(engine(to_input(plates[start:start + batch_size])), plate_rules)
    return readings


def is_sure_plate(reading):
    """A (plate, confidence) reading that is a valid plate read at least TWO_ROW_SURE confidently."""
    text, confidence = reading
    return is_plate(text) and confidence >= TWO_ROW_SURE


def overrulable(one_row):
    """--two_rows auto: whether a joined reading could replace this one-row (plate, confidence) reading."""
    text, confidence = one_row
    return not is_plate(text) or confidence <= 1 - TWO_ROW_OVERRULE


def overrules(joined, one_row):
    """--two_rows auto: a joined reading replaces a one-row one that is no plate, or another plate read at least
    TWO_ROW_OVERRULE less confidently (the same plate stays a one-row reading)."""
    return is_plate(joined[0]) and (not is_plate(one_row[0]) or
                                    (joined[0] != one_row[0] and joined[1] >= one_row[1] + TWO_ROW_OVERRULE))


def best_two_row_reading(readings):
    """Of one two-row crop's readings, joined as it is first and then trimmed (TWO_ROW_TRIMS): the first where it
    is a sure plate, else the most confident valid plate, else the first."""
    if is_sure_plate(readings[0]):
        return readings[0]
    valid = [r for r in readings if is_plate(r[0])]
    return max(valid, key=lambda r: r[1]) if valid else readings[0]


def reread_two_row_plates(engine, crops, readings, batch_size, plate_rules=False, joined=False, rgb=False):
    """Read again the `crops` (image files, or arrays as a detector cuts them: BGR, or RGB with `rgb` as for
    `preprocess`) that may be two-row plates read badly, and keep their best_two_row_reading where it is a valid
    plate (auto: where it overrules the one-row reading; `readings`, updated in place). Returns the indices of the
    readings that changed.

    - joined False (--two_rows auto): `readings` are of the crops as one row. Crops at least TWO_ROW_MIN_ASPECT
      times as high as wide whose reading is overrulable are read joined, as they are and trimmed, and take the
      joined reading where it overrules theirs. A valid reading (every right reading of a labelled plate is one)
      changes only for a much more confident valid one.
    - joined True (--two_rows True): `readings` are of the crops joined; those that are no sure plate are read
      trimmed too.
    """
    trims = TWO_ROW_TRIMS if joined else (0.0,) + TWO_ROW_TRIMS
    retry, plates = [], []
    for i, (crop, reading) in enumerate(zip(crops, readings)):
        settled = is_sure_plate(reading) if joined else not overrulable(reading)
        if settled:
            continue
        try:
            img = crop_to_bgr8(crop, rgb, i) if isinstance(crop, np.ndarray) else read_image(crop)
        except ImageError:
            continue
        if joined or img.shape[0] >= TWO_ROW_MIN_ASPECT * img.shape[1]:
            retry.append(i)
            plates += [to_plate(img, True, trim) for trim in trims]
    changed = []
    if plates:
        again = read_readings(engine, np.stack(plates), batch_size, plate_rules)
        for k, i in enumerate(retry):
            own = [readings[i]] if joined else []  # the joined crop as it is, read already
            best = best_two_row_reading(own + again[k * len(trims):(k + 1) * len(trims)])
            better = (is_plate(best[0]) and best != readings[i]) if joined else overrules(best, readings[i])
            if better:
                readings[i] = best
                changed.append(i)
    return changed


def read_crops(engine, crops, plates, batch_size, plate_rules=False, two_rows=False):
    """Every crop's reading the way the scripts read it: `plates` (the `crops` made 94x24, joined where `two_rows`
    is True) read, then read again where reread_two_row_plates says so (`two_rows` True or "auto"). Returns
    (readings, indices of the readings that re-reading changed)."""
    readings = read_readings(engine, plates, batch_size, plate_rules)
    if not two_rows:
        return readings, []
    return readings, reread_two_row_plates(engine, crops, readings, batch_size, plate_rules, joined=two_rows is True)


def two_row_note(two_rows, changed):
    """The line the scripts print when reread_two_row_plates changed `changed` readings."""
    if two_rows == "auto":
        return f"--two_rows auto: {changed} crops read as two-row plates"
    return f"--two_rows True: {changed} crops read trimmed (their joined reading as cut was no sure plate)"


def read_texts(engine, plates, batch_size, plate_rules=False):
    """The plates alone of `read_readings`."""
    return [text for text, _ in read_readings(engine, plates, batch_size, plate_rules)]


def torch_logits(model, x, device, amp="off"):
    """Logits as float32 numpy for a float32 numpy/torch batch (fed channels_last, as the nets are kept)."""
    import torch  # deployment scripts use Score without torch installed

    from .device import autocast
    x = torch.as_tensor(x).to(device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), autocast(device, amp):
        return model(x).float().cpu().numpy()


def score_dataset(model, dataset, device, batch_size=256, amp="off"):
    """Score a non-augmenting PlateDataset with a torch model (used for per-epoch validation)."""
    texts = []
    for start in range(0, len(dataset), batch_size):
        x = np.stack([dataset[i][0].numpy() for i in range(start, min(start + batch_size, len(dataset)))])
        texts += greedy_decode(torch_logits(model, x, device, amp))
    return Score.of([s.text for s in dataset.samples], texts)
