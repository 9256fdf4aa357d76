import cv2
import numpy as np
import pytest
import torch

from lprnet.charset import BLANK, CHAR_INDEX, NUM_CLASSES
from lprnet.image import ImageError, read_image, write_image
from lprnet.preprocess import (
    decode_plates,
    fit_to_plate,
    greedy_decode,
    join_rows,
    load_plates,
    preprocess,
    resize_plate,
    to_input,
)


def one_hot_logits(columns):
    logits = np.zeros((1, NUM_CLASSES, len(columns)), np.float32)
    for t, k in enumerate(columns):
        logits[0, k, t] = 1.0
    return logits


def test_normalisation_and_layout():
    plate = np.zeros((24, 94, 3), np.uint8)
    plate[..., 0], plate[..., 2] = 255, 0  # blue in BGR
    plate[0, 0] = (10, 20, 30)
    x = to_input(plate)
    assert x.shape == (1, 3, 24, 94) and x.dtype == np.float32
    assert x[0, 0, 1, 1] == (255 - 127.5) * 0.0078125 and x[0, 2, 1, 1] == -127.5 * 0.0078125
    assert np.allclose(x[0, :, 0, 0], (np.array([10, 20, 30]) - 127.5) * 0.0078125)


def test_any_size_is_resized_to_the_contract():
    x = preprocess([np.full((60, 200, 3), 127, np.uint8), np.full((10, 30, 3), 255, np.uint8)])
    assert x.shape == (2, 3, 24, 94)
    assert np.allclose(x[1], (255 - 127.5) * 0.0078125)


def test_gray_bgra_16_bit_and_rgb_crops_read_like_bgr_and_empty_crops_are_named():
    bgr = np.random.default_rng(0).integers(0, 255, (30, 100, 3), dtype=np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([bgr, np.full((30, 100), 255, np.uint8)])
    x = preprocess([bgr, bgra, bgr.astype(np.uint16) * 257, gray])
    assert np.array_equal(x[1], x[0]) and np.array_equal(x[2], x[0])
    assert np.array_equal(x[3], preprocess([cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)])[0])
    assert preprocess([]).shape == (0, 3, 24, 94)
    rgb, rgba = bgr[:, :, ::-1], cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(preprocess([rgb, rgba, gray], rgb=True), x[[0, 0, 3]])
    floats = [bgr.astype(np.float32), bgr.astype(np.float32) / 255]  # 0-255, and 0-1 as torch pipelines keep them
    assert np.array_equal(preprocess(floats), x[[0, 0]])
    frame = np.zeros((100, 200, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image 1: an array of shape \(0, 40, 3\) is no image \(an empty crop\?\)"):
        preprocess([bgr, frame[150:170, 10:50]])  # a box below the frame
    with pytest.raises(ValueError, match=r"image 0: an array of shape \(30, 100, 2\) is no image"):
        preprocess([bgr[:, :, :2]])
    for one in (bgr, bgra, gray, gray[:, :, None]):  # one image, not a list: its rows would be read as 30 images
        with pytest.raises(ValueError, match=r"^preprocess takes a list of images, not one image of shape \(30, 100"):
            preprocess(one)
    assert np.array_equal(preprocess(np.stack([bgr, bgr])), x[[0, 0]])  # a batch array is a list of images


def two_row_plate(h=100, w=200):
    """Upper row 50 (left half of it 20), lower row 200: where each part of a joined plate comes from shows."""
    img = np.full((h, w, 3), 200, np.uint8)
    img[:42] = 50
    img[:42, :w // 2] = 20
    return img


def test_two_rows_are_joined_upper_row_first_as_wide_as_a_one_row_plates_characters():
    joined = join_rows(two_row_plate())
    assert joined.shape == (67, 58 + 149, 3)  # the lower row's 67 pixels high; 122 and 312 mm beside 140 mm
    upper, lower = joined[:, :58, 0], joined[:, 58:, 0]
    assert set(np.unique(upper)) <= {20, 50} and (upper[:, :20] == 20).all() and (upper[:, -20:] == 50).all()
    assert (lower[:5] <= 50).all() and (lower[-50:] == 200).all()  # the lower row starts a little above its half
    assert join_rows(np.zeros((1, 1, 3), np.uint8)).shape[0] == 24  # tiny crops join too


def test_a_trimmed_two_row_crop_loses_the_same_share_of_each_side_before_joining():
    loose = np.random.default_rng(0).integers(0, 256, (50, 100, 3), dtype=np.uint8)
    assert np.array_equal(join_rows(loose, trim=0.12), join_rows(loose[6:44, 12:88]))
    assert np.array_equal(join_rows(loose, trim=0.0), join_rows(loose))
    assert join_rows(np.zeros((2, 2, 3), np.uint8), trim=0.12).shape[0] == 24


def test_preprocess_joins_rows_for_all_images_or_the_ones_marked():
    plate = two_row_plate()
    both = preprocess([plate, plate], two_rows=[True, False])
    assert np.array_equal(both[0], preprocess([plate], two_rows=True)[0])
    assert np.array_equal(both[1], to_input(resize_plate(plate))[0])
    assert not np.array_equal(both[0], both[1])
    with pytest.raises(ValueError, match="two_rows has 1 values for 2 images"):
        preprocess([plate, plate], two_rows=[True])


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    a, b, one = CHAR_INDEX["皖"], CHAR_INDEX["A"], CHAR_INDEX["1"]
    cols = [BLANK, a, a, BLANK, b, one, one, BLANK, one, BLANK]
    assert greedy_decode(one_hot_logits(cols)) == ["皖A11"]
    assert greedy_decode(one_hot_logits([BLANK] * 18)) == [""]


def reading_logits(text, unsure=()):
    """Logits that read `text` one character per column pair, a blank between: sure (logit 8 against 0), or
    only just (logit 0.5) at the positions in `unsure`."""
    logits = np.zeros((1, NUM_CLASSES, max(18, 2 * len(text))), np.float32)
    logits[0, BLANK] = 4.0
    for i, c in enumerate(text):
        logits[0, BLANK, 2 * i] = 0.0
        logits[0, CHAR_INDEX[c], 2 * i] = 0.5 if i in unsure else 8.0
    return logits


def test_plate_rules_drop_the_least_confident_extra_character():
    extra = reading_logits("皖AY68767", unsure={7})  # a 7 read from the bumper beside the plate
    assert greedy_decode(extra) == ["皖AY68767"]
    assert greedy_decode(extra, plate_rules=True) == ["皖AY6876"]
    # every character but the province can go; the least confident one does
    assert greedy_decode(reading_logits("皖AB1234C", unsure={4}), plate_rules=True) == ["皖AB134C"]
    assert greedy_decode(reading_logits("皖AB1234C", unsure={1}), plate_rules=True) == ["皖B1234C"]
    # 9 characters: two go
    assert greedy_decode(reading_logits("皖AB12345C", unsure={3, 8}), plate_rules=True) == ["皖AB2345"]


def test_plate_rules_leave_plates_and_hopeless_readings_alone():
    for text in ("皖AD12345", "皖A12345F", "皖A12345", "皖A1234", "皖皖皖皖皖皖皖皖", "皖AB1234567"):
        assert greedy_decode(reading_logits(text, unsure={0, 3}), plate_rules=True) == [text]
    assert fit_to_plate("皖AY68767", [0.9] * 7 + [0.1]) == ("皖AY6876", [0.9] * 7)


def softmax_of(logit):
    """The probability softmax gives a character's `logit` in its column of reading_logits (the rest 0)."""
    return np.exp(logit) / (np.exp(logit) + NUM_CLASSES - 1)


def test_confidence_is_the_least_sure_character_kept():
    sure, unsure = softmax_of(8.0), softmax_of(0.5)
    [(text, confidence)] = decode_plates(reading_logits("皖AY6876"))
    assert text == "皖AY6876" and confidence == pytest.approx(sure, rel=1e-5)
    [(text, confidence)] = decode_plates(reading_logits("皖AY6876", unsure={3}))
    assert text == "皖AY6876" and confidence == pytest.approx(unsure, rel=1e-5)
    # the plate rules drop the unsure extra character, and its confidence with it
    extra = reading_logits("皖AY68767", unsure={7})
    assert decode_plates(extra)[0][1] == pytest.approx(unsure, rel=1e-5)
    assert decode_plates(extra, plate_rules=True)[0] == ("皖AY6876", pytest.approx(sure, rel=1e-5))
    assert decode_plates(one_hot_logits([BLANK] * 18)) == [("", 0.0)]
    tracked = torch.tensor(reading_logits("皖AY6876"), requires_grad=True)  # a model's output as it comes
    assert decode_plates(tracked) == decode_plates(reading_logits("皖AY6876"))


def test_bad_images_are_skipped_one_line_each(tmp_path):
    good = np.random.default_rng(0).integers(0, 255, (30, 100, 3), dtype=np.uint8)
    write_image(str(tmp_path / "皖A12345.jpg"), good)
    cv2.imencode(".png", good[..., 0])[1].tofile(str(tmp_path / "gray.png"))
    cv2.imencode(".png", np.dstack([good, good[..., :1]]))[1].tofile(str(tmp_path / "rgba.png"))
    cv2.imencode(".png", good.astype(np.uint16) * 257)[1].tofile(str(tmp_path / "deep16.png"))
    (tmp_path / "notes.jpg").write_text("not an image")
    jpeg = (tmp_path / "皖A12345.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(jpeg[:200])
    (tmp_path / "empty.jpg").write_bytes(b"")
    lines = []
    paths = sorted(str(p) for p in tmp_path.iterdir())
    kept, plates, skipped = load_plates(paths, log=lines.append)
    assert skipped == 3 and len(kept) == 4 and plates.shape == (4, 24, 94, 3)
    assert sorted(line.split()[1].rsplit("/", 1)[1].rstrip(":") for line in lines) == \
        ["empty.jpg", "notes.jpg", "truncated.jpg"]
    assert all(len(line.splitlines()) == 1 for line in lines)
    deep = plates[[i for i, p in enumerate(kept) if p.endswith("deep16.png")][0]]
    colour = plates[[i for i, p in enumerate(kept) if p.endswith("rgba.png")][0]]
    assert np.abs(deep.astype(int) - colour.astype(int)).max() <= 1  # 16-bit scaled to 8, alpha dropped


def test_a_jpeg_cut_short_anywhere_in_its_scan_is_refused_whatever_the_opencv(tmp_path):
    """OpenCV before 4.11 decodes a truncated JPEG with its missing part grey; we refuse it on every version."""
    img = np.random.default_rng(1).integers(0, 255, (48, 160, 3), dtype=np.uint8)
    progressive = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    for name, params in (("baseline", []), ("progressive", progressive)):
        jpeg = cv2.imencode(".jpg", img, params)[1].tobytes()
        whole = tmp_path / f"{name}.jpg"
        whole.write_bytes(jpeg + b"trailing bytes a camera added")
        assert read_image(str(whole)).shape == (48, 160, 3)
        for keep in (len(jpeg) // 2, len(jpeg) - 2):
            cut = tmp_path / f"{name}_{keep}.jpg"
            cut.write_bytes(jpeg[:keep])
            with pytest.raises(ImageError, match=r"^not a readable image \(a JPEG cut short\)$"):
                read_image(str(cut))
