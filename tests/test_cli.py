import argparse
from pathlib import Path

import pytest

from lprnet.cli import add_two_rows_flag, comma_list, parse_size, probability, set_folders, size_arg, str2bool

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text,expected", [("True", True), ("false", False), ("1", True), ("off", False)])
def test_str2bool_reads_the_spellings_users_type(text, expected):
    assert str2bool(text) is expected


def test_str2bool_refuses_anything_else():
    with pytest.raises(argparse.ArgumentTypeError, match="expected True or False, got 'maybe'"):
        str2bool("maybe")


def test_two_rows_takes_auto_only_where_the_script_can_read_twice(capsys):
    reading, benchmark = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_two_rows_flag(reading, auto=True)
    add_two_rows_flag(benchmark)
    assert [reading.parse_args(["--two_rows", v]).two_rows for v in ("True", "no", "AUTO")] == [True, False, "auto"]
    assert reading.parse_args([]).two_rows == "auto" and benchmark.parse_args([]).two_rows is False
    assert benchmark.parse_args(["--two_rows", "1"]).two_rows is True
    with pytest.raises(SystemExit):
        reading.parse_args(["--two_rows", "maybe"])
    assert "expected True, False or auto, got 'maybe'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--two_rows", "auto"])
    assert "expected True or False, got 'auto'" in capsys.readouterr().err


def test_probability_takes_0_to_1_and_names_anything_else():
    assert [probability(t) for t in ("0", "0.6", "1")] == [0.0, 0.6, 1.0]
    for text in ("1.5", "-0.1", "half", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"between 0 and 1, got '{text}'"):
            probability(text)


def test_parse_size():
    assert parse_size("94x24") == (94, 24)
    assert parse_size(" 188 X 48 ") == (188, 48)
    with pytest.raises(ValueError, match="not WIDTHxHEIGHT"):
        parse_size("94*24")
    with pytest.raises(ValueError, match=r"too small \(at least 8x4\)"):
        parse_size("7x24", 8, 4)


def test_a_bad_size_names_the_problem():  # cut_ccpd's --size (tests/test_cut_ccpd.py runs the flag)
    for text, problem in [("94", "is not WIDTHxHEIGHT, e.g. 94x24"), ("0x", "is not WIDTHxHEIGHT, e.g. 94x24"),
                          ("94x0", r"is too small \(at least 1x1\)")]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^size '{text}' {problem}$"):
            size_arg(text)


def test_benchmark_sets_that_would_share_a_column_are_refused(tmp_path):
    assert comma_list(" cuda, ,cpu,") == ["cuda", "cpu"]
    assert set_folders("a/plates/val, b/plates/train,") == ["a/plates/val", "b/plates/train"]
    for empty in ("", " , "):
        with pytest.raises(SystemExit, match="^error: --sets names no folder$"):
            set_folders(empty)
    with pytest.raises(SystemExit) as e:
        set_folders("a/plates/val,b/plates/val")
    assert str(e.value.code) == ("error: --sets a/plates/val and b/plates/val would both be the column plates/val; "
                                 "give folders whose last two parts differ")
