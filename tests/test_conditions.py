import cv2
import numpy as np
import pytest

import bench_conditions
from lprnet.conditions import CONDITIONS, JPEG_QUALITY, condition_table, gray, half_resolution, heavy_jpeg, rgb
from lprnet.image import read_image
from lprnet.preprocess import resize_plate
from lprnet.synth import FontError, generate
from tests.conftest import ROOT, no_fonts


def demo_plates():
    return np.stack([resize_plate(read_image(str(p))) for p in sorted((ROOT / "imgs").glob("*.jpg"))])


def test_every_condition_keeps_the_plates_shape_and_type_and_is_repeatable():
    plates = demo_plates()
    for name, degrade in CONDITIONS.items():
        out = degrade(plates)
        assert out.shape == plates.shape and out.dtype == np.uint8, name
        assert np.array_equal(out, degrade(plates)), name


def test_conditions_degrade_the_plates_as_named():
    plates = demo_plates()
    assert np.array_equal(gray(plates)[0], cv2.cvtColor(cv2.cvtColor(plates[0], cv2.COLOR_BGR2GRAY),
                                                         cv2.COLOR_GRAY2BGR))
    assert np.array_equal(rgb(plates)[..., 0], plates[..., 2])
    ok, buf = cv2.imencode(".jpg", plates[0], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert np.array_equal(heavy_jpeg(plates)[0], cv2.imdecode(buf, cv2.IMREAD_COLOR))

    def detail(x):  # energy of the differences between neighbouring columns
        return np.abs(np.diff(x.astype(np.float32), axis=2)).mean()
    assert detail(half_resolution(plates)) < 0.8 * detail(plates)
    assert CONDITIONS["dark (x0.35)"](plates).max() <= 90
    assert CONDITIONS["overexposed (x1.8 + 40)"](plates).mean() > plates.mean() + 40


def test_benchmark_command_on_the_demo_images_with_the_shipped_model(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rows = bench_conditions.run("model/LPRNet.onnx", "imgs").splitlines()
    assert rows[0] == "| condition | imgs (12) |"
    assert [r.split("|")[1].strip() for r in rows[2:]] == list(CONDITIONS)
    accuracy = {r.split("|")[1].strip(): float(r.split("|")[2].strip().rstrip("%")) for r in rows[2:]}
    assert accuracy["as read"] == 100.0  # the shipped model reads every demo image (test_shipped_model.py)
    assert accuracy["RGB given as BGR"] < 75.0  # the model relies on the plates' colours
    assert capsys.readouterr().out.startswith("model: model/LPRNet.onnx\n")


def test_two_row_plates_are_joined_before_the_conditions(tmp_path, capsys):
    try:
        generate(num=20, savepath=str(tmp_path), types="yellow_double", seed=4, join_rows=False, log=lambda *a: None)
    except FontError as e:
        no_fonts(e)
    onnx = str(ROOT / "model" / "LPRNet.onnx")
    joined, squeezed = (bench_conditions.run(onnx, str(tmp_path), two_rows=two).splitlines() for two in (True, False))
    capsys.readouterr()
    as_read = [float(rows[2].split("|")[2].strip().rstrip("%")) for rows in (joined, squeezed)]
    assert as_read[0] >= 80 and as_read[1] == 0  # the shipped model reads 95% of these generated two-row plates


def test_an_empty_set_gets_empty_cells_not_a_crash():
    def engine(x):
        raise AssertionError("nothing to read")

    rows = condition_table(engine, {"empty": (np.zeros((0, 24, 94, 3), np.uint8), [])}).splitlines()
    assert rows[0] == "| condition | empty (0) |"
    assert rows[2:] == [f"| {name} | - |" for name in CONDITIONS]


def test_a_missing_model_or_folder_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for model, sets, problem in [(str(tmp_path / "none.onnx"), "imgs", "no such model file"),
                                 ("model/LPRNet.onnx", str(tmp_path / "absent"), "no such file or folder")]:
        with pytest.raises(SystemExit) as e:
            bench_conditions.run(model, sets)
        assert str(e.value).startswith("error: ") and problem in str(e.value) and "\n" not in str(e.value)


def test_bad_images_are_named_and_counted_at_the_end(tmp_path, capsys):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "皖X10391.jpg").write_bytes((ROOT / "imgs" / "皖X10391.jpg").read_bytes())
    (tmp_path / "good" / "皖A12345.jpg").write_bytes(b"no image")
    (tmp_path / "good" / "holiday.jpg").write_bytes((ROOT / "imgs" / "皖X10391.jpg").read_bytes())
    (tmp_path / "empty").mkdir()
    rows = bench_conditions.run(str(ROOT / "model" / "LPRNet.onnx"), f"{tmp_path / 'good'}, {tmp_path / 'empty'}")
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split(":")[0] for line in out if line.startswith("skipped /")) == [
        f"skipped {tmp_path / 'good' / 'holiday.jpg'}", f"skipped {tmp_path / 'good' / '皖A12345.jpg'}"]
    assert f"warning: {tmp_path / 'empty'}: no images named by their plate" in out
    assert rows.splitlines()[2] == "| as read | 100.0% | - |"
    assert out[-1] == "skipped 2 images (each named above)"
