import numpy as np

from lprnet.charset import BLANK, CHAR_INDEX, NUM_CLASSES
from lprnet.evaluate import reread_two_row_plates
from lprnet.image import write_image


def engine_reading(text):
    """An engine that reads `text` off every plate it is given, and counts the plates."""
    def engine(x):
        engine.seen += len(x)
        logits = np.zeros((len(x), NUM_CLASSES, 18), np.float32)
        logits[:, BLANK] = 1
        for t, char in enumerate(text):
            logits[:, BLANK, 2 * t], logits[:, CHAR_INDEX[char], 2 * t] = 0, 1
        return logits
    engine.seen = 0
    return engine


def test_two_rows_auto_rereads_only_high_crops_whose_reading_is_no_plate(tmp_path):
    paths = []
    for name, shape in {"tall": (48, 94), "flat": (24, 94), "tall_valid": (50, 100), "missing": None}.items():
        paths.append(str(tmp_path / f"{name}.png"))
        if shape:
            write_image(paths[-1], np.full(shape + (3,), 128, np.uint8))
    readings = [("皖A1234", 0.9), ("皖A1234", 0.9), ("苏B12345", 0.4), ("皖A1", 0.2)]
    engine = engine_reading("皖A12345")
    assert reread_two_row_plates(engine, paths, readings, batch_size=8) == [0]
    assert readings[0][0] == "皖A12345" and readings[1:] == [("皖A1234", 0.9), ("苏B12345", 0.4), ("皖A1", 0.2)]
    assert engine.seen == 1  # the flat crop, the valid reading and the unreadable file are not read again

    still_no_plate = engine_reading("皖A12")
    readings = [("皖A1234", 0.9)]
    assert reread_two_row_plates(still_no_plate, paths[:1], readings, batch_size=8) == []
    assert readings == [("皖A1234", 0.9)]  # a joined reading that is no plate either is not taken
