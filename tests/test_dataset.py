import dataclasses
from pathlib import Path

import numpy as np

from lprnet.augment import (
    CONTEXT_FRAMING,
    PHOTOMETRIC,
    TIGHT_FRAMING,
    Framing,
    Photometric,
    box_crop,
    corners_of_image,
    frame_window,
    warp_window,
)
from lprnet.dataset import PlateDataset, Sample, load_samples, parse_boxes_tsv
from lprnet.image import list_images, write_image
from lprnet.preprocess import load_plates, to_input
from lprnet.synth import FontError, generate
from tests.conftest import no_fonts

PLATES = {"皖A12345": (90, 300), "苏E88888": (20, 60), "沪AD12345": (48, 188)}  # text: (height, width)


def test_validation_inputs_equal_test_py_inputs(tmp_path):
    """train.py's per-epoch validation must read each image exactly as test.py does, so the two report the
    same accuracy; training images may be kept downscaled (a second resize changes the pixels)."""
    rng = np.random.default_rng(0)
    for text, shape in PLATES.items():
        write_image(str(tmp_path / f"{text}.png"), rng.integers(0, 256, shape + (3,), dtype=np.uint8))
    paths, plates, skipped = load_plates(list_images(str(tmp_path)))
    assert skipped == 0
    expected = {Path(p).stem: x for p, x in zip(paths, to_input(plates))}

    samples, skipped = load_samples(str(tmp_path), log=lambda *a: None, store_width=None)
    val = PlateDataset(samples)
    assert skipped == 0 and len(val) == len(PLATES)
    for i, s in enumerate(samples):
        assert np.array_equal(val[i][0].numpy(), expected[s.text]), s.text

    stored = PlateDataset(load_samples(str(tmp_path), log=lambda *a: None)[0])  # the training default
    wide = [i for i, s in enumerate(stored.samples) if s.text == "皖A12345"][0]
    assert stored.samples[wide].image.shape[1] == 140
    assert not np.array_equal(stored[wide][0].numpy(), expected["皖A12345"])


def test_training_frames_plates_with_surroundings_by_the_given_framing_and_bare_crops_tightly(monkeypatch):
    used = []
    monkeypatch.setattr("lprnet.dataset.augment",
                        lambda img, quad, rng, framing, photo, two_rows: used.append(framing) or img)
    img, quad = np.zeros((30, 100, 3), np.uint8), np.float32([[10, 5], [90, 5], [90, 25], [10, 25]])
    samples = [Sample(img, quad, "皖A12345", framed=True), Sample(img, quad, "皖A12345", framed=False)]
    cutting = Framing(near=0.35, cut=0.6)
    train = PlateDataset(samples, train=True, framing=cutting)
    train.plate(0), train.plate(1)
    assert used == [cutting, TIGHT_FRAMING]


def test_training_plates_lose_their_colour_as_often_as_gray_says():
    img = np.random.default_rng(0).integers(0, 256, (30, 100, 3), dtype=np.uint8)
    samples = [Sample(img, corners_of_image(img), "皖A12345", framed=True)] * 40

    def gray_plates(gray):
        train = PlateDataset(samples, train=True, photo=dataclasses.replace(PHOTOMETRIC, gray=gray))
        plates = [train.plate(i).astype(int) for i in range(len(samples))]
        # JPEG's chroma rounding leaves gray plates a level or two off gray
        return sum(np.abs(p - p.mean(axis=2, keepdims=True)).max() <= 2 for p in plates)

    assert gray_plates(1.0) == 40 and gray_plates(0.0) == 0
    assert 0 < gray_plates(0.25) < 20


def test_two_row_plates_marked_in_boxes_tsv_are_framed_then_joined_for_training_and_validation(tmp_path):
    try:
        generate(num=6, savepath=str(tmp_path), types="yellow_double,blue", seed=5, context=True, log=lambda *a: None)
    except FontError as e:
        no_fonts(e)
    samples, _ = load_samples(str(tmp_path), log=lambda *a: None)
    two = [s for s in samples if s.two_rows]
    assert len(two) == 2 and all(len(s.text) == 7 for s in two)  # the plan: 2 two-row plates, 4 blue
    s = two[0]
    val = PlateDataset([s])
    assert np.array_equal(val.plate(0), box_crop(s.image, s.quad, two_rows=True))
    still = Photometric(brightness=0, contrast=0, colour=0, low_res=0, blur=0, noise=0, jpeg=0, gray=0)
    train = PlateDataset([s], train=True, seed=1, photo=still)
    window = frame_window(s.quad, np.random.default_rng((1, 0, 0)), CONTEXT_FRAMING)  # the first plate's window
    plate = train.plate(0).astype(int)
    assert np.abs(plate - warp_window(s.image, window, two_rows=True)).max() <= 1
    assert np.abs(plate - warp_window(s.image, window)).mean() > 10  # joined, not squeezed


def test_bad_training_images_are_named_and_counted(tmp_path):
    demo = (Path(__file__).resolve().parents[1] / "imgs" / "皖X10391.jpg").read_bytes()
    for name, data in [("皖X10391.jpg", demo), ("皖A12345.jpg", b"no image"), ("holiday.jpg", demo),
                       ("皖A1234.jpg", demo)]:
        (tmp_path / name).write_bytes(data)
    lines = []
    samples, skipped = load_samples(str(tmp_path), log=lines.append)
    assert [s.text for s in samples] == ["皖X10391"] and skipped == 3
    assert sorted(line.split(":")[0] for line in lines) == [f"skipped {tmp_path / n}" for n in
                                                            sorted(["皖A12345.jpg", "holiday.jpg", "皖A1234.jpg"])]


def test_boxes_rows_with_corners_that_are_no_numbers_are_ignored(tmp_path):
    rows = ["file\tbbox\tcorners", "a.jpg\t0&0_9&9\t9&9_0&9_0&0_9&0", "b.jpg\t0&0_9&9\tnan&9_0&9_0&0_9&0",
            "c.jpg\t0&0_9&9\t9&9_0&inf_0&0_9&0"]
    (tmp_path / "boxes.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    lines = []
    boxes = parse_boxes_tsv(str(tmp_path / "boxes.tsv"), lines.append)
    assert list(boxes) == [str(tmp_path / "a.jpg")]
    assert [line.split(": not")[0] for line in lines] == [f"warning: {tmp_path / 'boxes.tsv'} line {n}" for n in (3, 4)]
