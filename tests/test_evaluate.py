import numpy as np

from lprnet.charset import BLANK, CHAR_INDEX, NUM_CLASSES
from lprnet.evaluate import Score, best_two_row_reading, overrulable, overrules, reread_two_row_plates
from lprnet.image import write_image


def engine_reading(text, margin=1.0):
    """An engine that reads `text` off every plate it is given, and counts the plates; each character with
    confidence ~0.04 (margin 1) or ~1 (margin 20)."""
    def engine(x):
        engine.seen += len(x)
        logits = np.zeros((len(x), NUM_CLASSES, 18), np.float32)
        logits[:, BLANK] = margin
        for t, char in enumerate(text):
            logits[:, BLANK, 2 * t], logits[:, CHAR_INDEX[char], 2 * t] = 0, margin
        return logits
    engine.seen = 0
    return engine


def test_two_rows_auto_rereads_only_high_crops_whose_reading_is_no_plate_or_unsure(tmp_path):
    paths = []
    for name, shape in {"tall": (48, 94), "flat": (24, 94), "tall_valid": (50, 100), "missing": None}.items():
        paths.append(str(tmp_path / f"{name}.png"))
        if shape:
            write_image(paths[-1], np.full(shape + (3,), 128, np.uint8))
    readings = [("皖A1234", 0.9), ("皖A1234", 0.9), ("苏B12345", 0.8), ("皖A1", 0.2)]
    engine = engine_reading("皖A12345")
    assert reread_two_row_plates(engine, paths, readings, batch_size=8) == [0]
    assert readings[0][0] == "皖A12345" and readings[1:] == [("皖A1234", 0.9), ("苏B12345", 0.8), ("皖A1", 0.2)]
    assert engine.seen == 3  # joined as it is and trimmed twice; the flat crop, the sure valid reading and the
    # unreadable file are not read again

    still_no_plate = engine_reading("皖A12")
    readings = [("皖A1234", 0.9)]
    assert reread_two_row_plates(still_no_plate, paths[:1], readings, batch_size=8) == []
    assert readings == [("皖A1234", 0.9)]  # a joined reading that is no plate either is not taken

    arrays = [np.full((48, 94), 128, np.uint8), np.full((24, 94, 3), 128, np.uint8)]  # crops in memory, gray too
    readings = [("皖A1234", 0.9), ("皖A1234", 0.9)]
    assert reread_two_row_plates(engine_reading("皖A12345"), arrays, readings, batch_size=8) == [0]


def test_two_rows_true_rereads_trimmed_only_the_crops_read_no_sure_plate(tmp_path):
    paths = []
    for name in ("sure", "unsure", "no_plate"):
        paths.append(str(tmp_path / f"{name}.png"))
        write_image(paths[-1], np.full((48, 94, 3), 128, np.uint8))
    readings = [("皖A12345", 0.9), ("皖A12346", 0.3), ("皖A1", 0.9)]  # read joined as cut
    engine = engine_reading("苏B12345")  # a valid plate, read with confidence ~0.04 trimmed
    assert reread_two_row_plates(engine, paths, readings, batch_size=8, joined=True) == [2]
    assert engine.seen == 4  # the two crops that were no sure plate, each trimmed twice
    assert readings[:2] == [("皖A12345", 0.9), ("皖A12346", 0.3)]  # the more confident valid reading stays
    assert readings[2][0] == "苏B12345"  # only the trimmed crops read a plate


def test_best_two_row_reading_keeps_a_sure_first_reading_else_takes_the_most_confident_plate():
    assert best_two_row_reading([("皖A12345", 0.6), ("苏B12345", 0.95)]) == ("皖A12345", 0.6)
    assert best_two_row_reading([("皖A12345", 0.4), ("苏B12345", 0.45), ("皖A1", 0.99)]) == ("苏B12345", 0.45)
    assert best_two_row_reading([("皖A1", 0.3), ("皖A12", 0.9)]) == ("皖A1", 0.3)


def test_rgb_crops_are_reread_in_the_colours_preprocess_gives_them():
    """An engine that reads a plate only where the first input channel (blue in BGR) is the brighter one."""
    def engine(x):
        blue = x[:, 0].mean(axis=(1, 2)) > x[:, 2].mean(axis=(1, 2))
        return np.stack([engine_reading("皖A12345" if b else "皖A1")(x[:1])[0] for b in blue])
    bgr = np.zeros((48, 94, 3), np.uint8)
    bgr[..., 0] = 200  # a blue plate, tall as two-row crops are
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    readings = [("皖A1", 0.2)]
    assert reread_two_row_plates(engine, [rgb], readings, batch_size=8, rgb=True) == [0]
    assert readings[0][0] == "皖A12345"
    readings = [("皖A1", 0.2)]
    assert reread_two_row_plates(engine, [rgb], readings, batch_size=8) == []  # taken as BGR: a red plate


def test_score_splits_misreadings_by_length_and_by_characters():
    score = Score()
    readings = [("a", "皖A12345", "皖A12345"), ("b", "皖A12345", "皖A1234"), ("c", "皖A12345", "皖A12346"),
                ("d", "皖AD12345", "皖A123456"), ("e", "皖A12345", "")]
    for name, truth, prediction in readings:
        score.add(name, truth, prediction, 0.5)
    assert (score.correct, score.wrong_length, score.wrong_chars, score.total) == (1, 2, 2, 5)
    assert score.summary() == "accuracy=20.00% (1/5)"
    assert [m[0] for m in score.misses] == ["b", "c", "d", "e"]


def test_two_rows_auto_replaces_a_valid_reading_only_by_a_much_more_confident_joined_one(tmp_path):
    path = str(tmp_path / "tall.png")
    write_image(path, np.full((48, 94, 3), 128, np.uint8))
    sure_joined = engine_reading("皖A12345", margin=20)  # confidence ~1
    readings = [("苏B12345", 0.69)]
    assert reread_two_row_plates(sure_joined, [path], readings, batch_size=8) == [0]
    assert readings[0][0] == "皖A12345" and readings[0][1] > 0.99
    readings = [("苏B12345", 0.71)]  # no joined reading can be 0.3 more confident: not read again
    assert reread_two_row_plates(sure_joined, [path], readings, batch_size=8) == [] and sure_joined.seen == 3
    unsure_joined = engine_reading("皖A12345")  # ~0.04
    readings = [("苏B12345", 0.05)]
    assert reread_two_row_plates(unsure_joined, [path], readings, batch_size=8) == []
    assert readings == [("苏B12345", 0.05)] and unsure_joined.seen == 3
    readings = [("苏B1", 0.9)]  # no plate: any valid joined reading replaces it
    assert reread_two_row_plates(unsure_joined, [path], readings, batch_size=8) == [0]


def test_a_joined_reading_overrules_a_valid_one_row_reading_only_0_3_more_confident():
    assert overrulable(("苏B12345", 0.7)) and not overrulable(("苏B12345", 0.71)) and overrulable(("苏B1", 0.99))
    assert overrules(("皖A12345", 0.99), ("苏B12345", 0.69)) and not overrules(("皖A12345", 0.98), ("苏B12345", 0.69))
    assert overrules(("皖A12345", 0.01), ("苏B1", 0.99))  # no plate: any valid joined reading
    assert not overrules(("皖A1", 0.99), ("苏B1", 0.01))  # a joined reading that is no plate never
    assert not overrules(("皖A12345", 0.99), ("皖A12345", 0.5))  # nor the same plate: it stays a one-row reading
