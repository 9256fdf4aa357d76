import pytest

from lprnet.charset import BLANK, CHARS, LabelError, check_plate, encode, label_from_filename


def test_charset_is_lprnet_pytorchs():
    assert len(CHARS) == 68
    assert CHARS[:3] == ["京", "沪", "津"] and CHARS[30] == "新"
    assert CHARS[31:41] == list("0123456789")
    assert CHARS[41] == "A" and CHARS[64] == "Z" and "I" not in CHARS[41:65] and "O" not in CHARS[41:65]
    assert CHARS[65:] == ["I", "O", "-"] and BLANK == 67


@pytest.mark.parametrize("name, label", [
    ("皖A12345.jpg", "皖A12345"),
    ("dir/皖A12345_3.jpg", "皖A12345"),
    ("京AD12345-x.png", "京AD12345"),
])
def test_label_from_filename(name, label):
    assert label_from_filename(name) == label


@pytest.mark.parametrize("plate", ["皖A12345", "京AD12345", "粤B12345F", "沪CF1234Z", "新Z9999A"])
def test_valid_plates(plate):
    assert check_plate(plate) == plate
    assert len(encode(plate)) == len(plate)


@pytest.mark.parametrize("plate, why", [
    ("警A12345", "not in the charset"),
    ("皖A1234学", "not in the charset"),
    ("港A12345", "not in the charset"),
    ("皖A1234", "is not a plate"),
    ("皖A123456", "is not a plate"),     # 8 characters without D/F
    ("皖1A2345", "is not a plate"),      # second character must be a letter
    ("皖AI2345", "is not a plate"),      # I and O never appear on plates
    ("皖A-12345", "not in the charset"),  # the CTC blank is no character
])
def test_invalid_plates_are_rejected_with_reason(plate, why):
    with pytest.raises(LabelError, match=why):
        check_plate(plate)
