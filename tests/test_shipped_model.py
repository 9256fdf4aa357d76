"""The files in model/: what a fresh clone runs first (`python LPRNet_ORT_infer.py` on imgs/)."""
import contextlib
import io
import re
from pathlib import Path

import numpy as np

from lprnet.ccpd import parse_ccpd_name
from lprnet.charset import label_from_filename
from lprnet.engines import OrtEngine, TorchEngine
from lprnet.evaluate import labelled_images
from lprnet.image import list_images, read_image
from lprnet.preprocess import decode_plates, greedy_decode, load_plates, preprocess, to_input
from lprnet.synth import FontError, generate
from tests.conftest import load_script, no_fonts, shared_path

ROOT = Path(__file__).resolve().parents[1]
TWO_ROW_ACCURACY = 0.9  # the shipped model reads 96% of the generated test set (README)


def test_the_shipped_model_reads_every_demo_image_in_torch_and_onnx_alike():
    paths, plates, skipped = load_plates(list_images(str(ROOT / "imgs")))
    assert skipped == 0 and len(paths) == 12
    x = to_input(plates)
    torch_logits = TorchEngine(str(ROOT / "model" / "lprnet.pth"), device="cpu")(x)
    ort_logits = OrtEngine(str(ROOT / "model" / "LPRNet.onnx"))(x)
    labels = [label_from_filename(p) for p in paths]
    assert greedy_decode(torch_logits) == labels
    assert greedy_decode(ort_logits) == labels
    assert np.abs(torch_logits - ort_logits).max() < 1e-3 * np.abs(torch_logits).max()


def test_the_shipped_files_stay_small():
    for name in ("lprnet.pth", "LPRNet.onnx"):
        assert 1.5e6 < (ROOT / "model" / name).stat().st_size < 2.5e6


def readme_python_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### 在自己的代码中调用"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_reads_a_demo_image(monkeypatch):
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(readme_python_example(), {})
    plate, confidence = out.getvalue().split()
    assert plate == "皖X10391" and 0.5 <= float(confidence) <= 1


def read_with_confidence(crops):
    return decode_plates(OrtEngine(str(ROOT / "model" / "LPRNet.onnx"))(preprocess(crops)))  # a dynamic batch


def test_confidence_is_high_on_right_readings_and_low_on_wrong_ones():
    paths, labels, _ = labelled_images(str(shared_path("data", "plates", "val")))
    readings = read_with_confidence([read_image(p) for p in paths])
    right = [c for (text, c), label in zip(readings, labels) if text == label]
    wrong = [c for (text, c), label in zip(readings, labels) if text != label]
    assert len(wrong) >= 3  # the comparison means something
    assert np.mean([c >= 0.5 for c in right]) >= 0.99
    assert np.mean(wrong) < np.mean(right) - 0.1


def test_windows_without_a_plate_never_read_as_a_confident_plate():
    """Plate-shaped windows from CCPD photos that miss the plate: some read 7 or 8 characters, none with
    confidence 0.5 or more."""
    rng = np.random.default_rng(0)
    crops = []
    for path in list_images(str(shared_path("data", "ccpd_sample")))[:100]:
        img, (x0, y0, x1, y1) = read_image(path), parse_ccpd_name(path).box
        for _ in range(5):
            w = int(rng.integers(80, 300))
            h = max(20, int(w / rng.uniform(2.5, 4.5)))
            x, y = int(rng.integers(0, img.shape[1] - w)), int(rng.integers(0, img.shape[0] - h))
            if x >= x1 or x + w <= x0 or y >= y1 or y + h <= y0:
                crops.append(img[y:y + h, x:x + w])
    readings = read_with_confidence(crops)
    plate_long = [c for text, c in readings if len(text) in (7, 8)]
    assert len(crops) > 300 and len(plate_long) >= 10
    assert max(plate_long) < 0.5


def test_the_shipped_model_reads_two_row_plates_once_their_rows_are_joined(tmp_path, capsys):
    """Rear plates of trucks and buses, as photographed (generated, 94x48): test.py and the ORT script read
    them with --two_rows True, and by default (auto) among one-row plates; squeezed into 94x24 as they are
    (--two_rows False), no plate reads."""
    try:
        generate(num=100, savepath=str(tmp_path), types="yellow_double", seed=31, join_rows=False, log=lambda *a: None)
    except FontError as e:
        no_fonts(e)
    model, onnx = str(ROOT / "model" / "lprnet.pth"), str(ROOT / "model" / "LPRNet.onnx")
    joined = load_script("test.py").run(model, str(tmp_path), two_rows=True)
    squeezed = load_script("test.py").run(model, str(tmp_path), two_rows=False)
    _, summary = load_script("LPRNet_ORT_infer.py").run(onnx, str(tmp_path), two_rows=True)
    capsys.readouterr()
    assert joined.total == 100 and joined.accuracy >= TWO_ROW_ACCURACY
    assert summary["correct"] == joined.correct and summary["two_rows"] is True
    assert squeezed.correct == 0

    # the demo images beside them, and the default --two_rows auto: two-row crops whose one-row reading is no plate,
    # or an unsure one, are read again with their rows joined; every one-row demo image keeps its right reading.
    # The exported fp32 and int8 models read the crops the same way as torch.
    for path in (ROOT / "imgs").glob("*.jpg"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    mixed = load_script("test.py").run(model, str(tmp_path), export_onnx=True, dynamic=True,
                                       onnx_path=str(out / "m.onnx"), int8=True, calib_dir=str(ROOT / "imgs"))
    printed = capsys.readouterr().out
    results, summary = load_script("LPRNet_ORT_infer.py").run(onnx, str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    demo = {p.name for p in (ROOT / "imgs").glob("*.jpg")}
    right = {Path(r.file).name for r in results if r.correct}
    assert demo <= right and summary["two_rows"] == "auto"
    joined_files = {Path(r.file).name for r in results if r.two_rows}  # marked on the console and in --output
    assert mixed.total == 112 and mixed.correct == summary["correct"] >= 12 + 0.8 * joined.correct
    joined_count = int(re.search(r"--two_rows auto: (\d+) crops read as two-row plates", printed).group(1))
    assert 0.8 * joined.correct <= joined_count <= 100 and len(joined_files) == joined_count
    assert not joined_files & demo and f"--two_rows auto: {joined_count} crops read as two-row plates" in lines
    assert sum(line.endswith("(two rows)  ✓") or line.endswith("(two rows)  ✗") for line in lines) == joined_count
    assert "ONNX Runtime agrees with torch on all 112 plates" in printed
    int8_differ = re.search(r"vs torch, (\d+)/112 plates read differently", printed)
    assert int8_differ and int(int8_differ.group(1)) <= 11
