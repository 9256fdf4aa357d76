import dataclasses
from pathlib import Path

import numpy as np

from lprnet.augment import PHOTOMETRIC, TIGHT_FRAMING, Framing, corners_of_image
from lprnet.dataset import PlateDataset, Sample, load_samples
from lprnet.image import list_images, write_image
from lprnet.preprocess import load_plates, to_input

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
    monkeypatch.setattr("lprnet.dataset.augment", lambda img, quad, rng, framing, photo: used.append(framing) or img)
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
