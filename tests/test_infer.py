import csv
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from lprnet import engines, infer
from lprnet.engines import OrtEngine
from lprnet.export import export_to_onnx
from lprnet.image import read_image, write_image
from lprnet.model import LPRNet, load_model, save_checkpoint
from lprnet.preprocess import decode_plates, preprocess, resize_plate
from lprnet.quantize import quantize_to_onnx
from tests import migraphx_test_double
from tests.conftest import ROOT, copy_subset, load_script, shared_path
from tests.test_engines import not_lprnet_onnx

READABLE = {  # relative path -> label the file name carries (None: not a plate name)
    "皖A12345_1.jpg": "皖A12345",
    "皖B11111_gray.png": "皖B11111",
    "皖C22222_rgba.png": "皖C22222",
    "car.jpg": None,
    "子目录/苏E88888.png": "苏E88888",
    "子目录/沪AD12345_green.bmp": "沪AD12345",
}
UNREADABLE = {
    "皖D33333_notanimage.jpg": "not a readable image",
    "皖E44444_corrupt.jpg": "not a readable image",
    "empty.png": "empty file",
}


ort_script = load_script("LPRNet_ORT_infer.py")
mgx_script = load_script("LPRNet_migraphx_infer.py")


@pytest.fixture(scope="module")
def models(imgdir, tmp_path_factory):
    folder, model = tmp_path_factory.mktemp("models"), varied_model(imgdir)
    return {"static1": export_to_onnx(model, str(folder / "s1.onnx")),
            "static4": export_to_onnx(model, str(folder / "s4.onnx"), batch=4),
            "dynamic": export_to_onnx(model, str(folder / "dyn.onnx"), dynamic=True)}


@pytest.fixture(scope="module")
def imgdir(tmp_path_factory):
    """Plate-sized block-noise images in every colour layout, in a subfolder too, plus unreadable files."""
    root, rng = tmp_path_factory.mktemp("imgs"), np.random.default_rng(0)
    for i, rel in enumerate(READABLE):
        os.makedirs(os.path.dirname(str(root / rel)), exist_ok=True)
        img = np.kron(rng.integers(0, 256, (6, 24, 3), dtype=np.uint8), np.ones((5 + i, 4 + i, 1), np.uint8))
        if "gray" in rel:
            img = img[:, :, 0]
        elif "rgba" in rel:
            img = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
        write_image(str(root / rel), img)
    (root / "皖D33333_notanimage.jpg").write_text("just text")
    jpeg = cv2.imencode(".jpg", rng.integers(0, 256, (40, 140, 3), dtype=np.uint8))[1].tobytes()
    (root / "皖E44444_corrupt.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not listed: not an image extension")
    return root


def varied_model(imgdir):
    """Random weights with BatchNorm statistics from the test images, so that each image reads differently."""
    torch.manual_seed(11)
    model = LPRNet()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the calibration batch
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(preprocess([read_image(str(imgdir / rel)) for rel in READABLE])))
    return model.eval()


def expected_readings(model_path, imgdir):
    """{path: (plate, confidence)} of the readable images, decoded outside the script."""
    engine = OrtEngine(model_path)
    paths = [str(imgdir / rel) for rel in READABLE]
    return dict(zip(paths, decode_plates(engine(preprocess([read_image(p) for p in paths])))))


def expected_plates(model_path, imgdir):
    return {path: plate for path, (plate, _) in expected_readings(model_path, imgdir).items()}


def summary_of(out):
    last = out.strip().splitlines()[-1]
    assert last.startswith("summary {")
    return json.loads(last[len("summary "):])


def test_ort_script_end_to_end(models, imgdir, tmp_path, capsys):
    report = str(tmp_path / "out" / "results.json")
    results, summary = ort_script.main(["--model", models["dynamic"], "--imgpath", str(imgdir),
                                        "--batch_size", "4", "--output", report])
    out = capsys.readouterr().out
    assert out.startswith("onnxruntime CPUExecutionProvider, batch dynamic | 9 images from ")
    expected = expected_readings(models["dynamic"], imgdir)
    for rel, label in READABLE.items():
        path = str(imgdir / rel)
        plate, confidence = expected[path]
        mark = "" if label is None else ("  ✓" if plate == label else "  ✗")
        assert f"\n{path}  {plate or '(none)'}  {confidence:.2f}{mark}\n" in out
    for rel, problem in UNREADABLE.items():
        assert f"\nskipped {imgdir / rel}: {problem}" in out
    assert "notes.txt" not in out
    assert summary == summary_of(out)
    assert (summary["images"], summary["skipped"], summary["labelled"]) == (6, 3, 5)
    assert summary["correct"] == sum(expected[str(imgdir / r)][0] == lab for r, lab in READABLE.items() if lab)
    assert summary["img_per_s"] > 0 and summary["batch_size"] == 4

    with open(report, encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["summary"] == summary
    rows = {row["file"]: row for row in saved["results"]}
    assert len(rows) == 9 and rows[str(imgdir / "car.jpg")]["label"] is None
    assert rows[str(imgdir / "empty.png")]["error"] == "empty file"
    plate, confidence = expected[str(imgdir / "皖A12345_1.jpg")]
    assert rows[str(imgdir / "皖A12345_1.jpg")]["plate"] == plate
    assert rows[str(imgdir / "皖A12345_1.jpg")]["confidence"] == pytest.approx(confidence, abs=1e-4)
    assert rows[str(imgdir / "empty.png")]["confidence"] is None


def test_csv_output_opens_in_excel_and_python(models, imgdir, tmp_path, capsys):
    report = tmp_path / "results.csv"
    ort_script.main(["--model", models["static1"], "--imgpath", str(imgdir), "--output", str(report)])
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the plates as UTF-8
    with open(report, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(infer.OUTPUT_FIELDS) and len(rows) == 9
    assert {r["file"] for r in rows if r["error"]} == {str(imgdir / rel) for rel in UNREADABLE}


@pytest.mark.parametrize("kind", ["static1", "static4", "dynamic"])
@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_every_export_and_batch_size_reads_the_same(models, imgdir, kind, batch_size, capsys):
    results, summary = ort_script.main(["--model", models[kind], "--imgpath", str(imgdir),
                                        "--batch_size", str(batch_size)])
    got = {r.file: r.plate for r in results if not r.error}
    assert summary["batch_size"] == (4 if kind == "static4" and batch_size == 1 else batch_size)
    assert got == expected_plates(models["dynamic"], imgdir)
    assert len(set(got.values())) == len(READABLE)  # every image reads differently: the equality means something
    assert summary["skipped"] == 3


def test_single_image_and_unicode_paths(models, imgdir, capsys):
    path = str(imgdir / "子目录" / "苏E88888.png")
    results, summary = ort_script.main(["--model", models["static1"], "--imgpath", path])
    assert [r.file for r in results] == [path] and summary["labelled"] == 1


@pytest.mark.parametrize("argv,message", [
    (["--model", "{tmp}/missing.onnx"], "error: {tmp}/missing.onnx: no such model file"),
    (["--model", "{tmp}"], "error: {tmp}: a folder, not a model file"),
    (["--imgpath", "{tmp}/nowhere"], "error: {tmp}/nowhere: no such file or folder"),
    (["--imgpath", "{tmp}"], "error: {tmp}: no images in it"),
    (["--model", "{tmp}/relu.onnx"], "error: {tmp}/relu.onnx: not an LPRNet model"),
    (["--model", "{tmp}/junk.onnx"], "error: {tmp}/junk.onnx: ONNX Runtime cannot load it"),
    (["--output", "{tmp}/r.txt"], "error: --output {tmp}/r.txt: must end in .json or .csv"),
    (["--batch_size", "0"], "error: --batch_size 0 must be at least 1"),
    (["--providers", "tensorrt"], "error: ONNX Runtime provider 'tensorrt' is not available"),
    (["--device_id", "-1"], "error: device_id -1: a GPU number is 0 or more"),
    (["--save_vis", "{tmp}/vis", "--font", "{tmp}/none.ttf"], "error: --font {tmp}/none.ttf: no such file"),
    (["--imgpath", "{img}", "--save_vis", "{img}/vis"], "error: --save_vis {img}/vis: inside --imgpath"),
    (["--output", "{tmp}/file.txt/r.json"], "error: --output {tmp}/file.txt/r.json: cannot write there "
                                           "({tmp}/file.txt is a file)"),
    (["--save_vis", "{tmp}/file.txt/vis"], "error: --save_vis {tmp}/file.txt/vis: cannot write there "
                                          "({tmp}/file.txt is a file)"),
])
def test_fatal_problems_exit_with_one_line(models, imgdir, tmp_path, argv, message):
    not_lprnet_onnx(str(tmp_path / "relu.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07garbage")
    (tmp_path / "file.txt").write_text("a file, not a folder")
    defaults = {"--model": models["dynamic"], "--imgpath": str(imgdir)}
    argv = [a.format(tmp=tmp_path, img=imgdir) for a in argv]
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    with pytest.raises(SystemExit) as e:
        ort_script.main(argv)
    assert str(e.value.code).startswith(message.format(tmp=tmp_path, img=imgdir))
    assert "\n" not in str(e.value.code)


def test_default_demo_without_model_is_one_line_not_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "LPRNet_ORT_infer.py")], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == "error: model/LPRNet.onnx: no such model file\n"


def test_save_vis_draws_every_readable_image(models, imgdir, tmp_path, capsys):
    vis = tmp_path / "vis"
    ort_script.main(["--model", models["dynamic"], "--imgpath", str(imgdir), "--save_vis", str(vis)])
    written = sorted(str(p.relative_to(vis)) for p in vis.rglob("*") if p.is_file())
    assert written == sorted(READABLE)
    for rel in READABLE:
        src, out = read_image(str(imgdir / rel)), read_image(str(vis / rel))
        assert out.shape[1] == infer.VIS_WIDTH and out.shape[0] > infer.VIS_WIDTH * src.shape[0] / src.shape[1]
        band = out[-20:]
        assert (band < 128).any() and (band == 255).mean() > 0.5  # dark text on the white band


def test_save_vis_writes_the_confidence_after_the_plate():
    font, img = infer.vis_font_file(""), np.full((24, 94, 3), 128, np.uint8)

    def inked_columns(result):
        band = infer.draw_result(img, result, font)[-30:]
        return (band < 128).any(axis=(0, 2)).sum()

    assert infer.vis_text(infer.Result("a.jpg", "皖A12345", confidence=0.98765)) == "皖A12345  0.99"
    assert infer.vis_text(infer.Result("a.jpg", "", confidence=0.0)) == "(none)"
    plain = inked_columns(infer.Result("a.jpg", "皖A12345"))
    assert inked_columns(infer.Result("a.jpg", "皖A12345", confidence=0.98765)) > plain * 1.3


def test_save_vis_without_a_cjk_font_says_so(models, imgdir, tmp_path, monkeypatch):
    monkeypatch.setattr(infer, "fontconfig_cjk_fonts", lambda: [])
    monkeypatch.setattr(infer, "KNOWN_FONT_FILES", ())
    with pytest.raises(SystemExit) as e:
        ort_script.main(["--model", models["dynamic"], "--imgpath", str(imgdir), "--save_vis", str(tmp_path)])
    assert "needs a font with Chinese characters and none was found" in str(e.value.code)
    assert "--font" in str(e.value.code) and not (tmp_path / "car.jpg").exists()


def test_result_lines_and_marks():
    assert infer.result_marks("utf-8") == ("✓", "✗")
    assert infer.result_marks("gbk") == ("√", "×")  # a Chinese Windows console cannot print ✓
    assert infer.result_marks("ascii") == ("ok", "wrong")
    marks = ("✓", "✗")
    assert infer.result_line(infer.Result("a/皖A12345.jpg", "皖A12345", "皖A12345", confidence=0.876), marks) == \
        "a/皖A12345.jpg  皖A12345  0.88  ✓"
    assert infer.result_line(infer.Result("b.jpg", "皖A1234", "皖A12345"), marks) == "b.jpg  皖A1234  ✗"
    assert infer.result_line(infer.Result("car.jpg", ""), marks) == "car.jpg  (none)"
    assert infer.result_line(infer.Result("x.jpg", error="empty file"), marks) == "skipped x.jpg: empty file"


def test_finds_an_installed_cjk_font():
    font = infer.find_cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (fonts-wqy-zenhei / fonts-noto-cjk)")
    assert os.path.isfile(font) and "bold" not in os.path.basename(font).lower()


def test_accuracy_equals_test_py_on_real_plates(tmp_path, capsys):
    """The reference checkpoint on real crops: test.py's accuracy for the .pth equals the ORT script's for
    its static and dynamic exports, at batch 1 and 64, and for a static batch-64 export (which pads)."""
    checkpoint = str(shared_path("reference", "Final_LPRNet_model.pth"))
    crops = copy_subset(str(shared_path("data", "plates", "val")), str(tmp_path / "val"), 40)
    test_py = load_script("test.py")
    onnx = {"static1": str(tmp_path / "s1.onnx"), "dynamic": str(tmp_path / "dyn.onnx"),
            "static64": export_to_onnx(load_model(checkpoint)[0], str(tmp_path / "s64.onnx"), batch=64)}
    scores = [test_py.run(checkpoint, crops, batch_size=16, export_onnx=True, dynamic=kind == "dynamic",
                          onnx_path=onnx[kind]) for kind in ("static1", "dynamic")]
    reported = scores[0].summary()
    assert scores[1].summary() == reported and scores[0].accuracy > 0.6
    capsys.readouterr()
    for kind, batch_size in [("static1", "1"), ("static1", "64"), ("dynamic", "1"), ("dynamic", "64"),
                             ("static64", "64")]:
        _, summary = ort_script.main(["--model", onnx[kind], "--imgpath", crops, "--batch_size", batch_size])
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[-2] == reported, (kind, batch_size)
        assert summary["correct"] == scores[0].correct and summary["labelled"] == 40
        assert sum(line.endswith("  ✓") for line in lines) == scores[0].correct


def test_plate_rules_mend_extra_characters_on_real_plates(capsys):
    """The shipped model on the real validation crops: --plate_rules True keeps every right reading and mends
    some 8-character misreadings (an extra character from beside the plate); test.py and the ORT script agree."""
    val = str(shared_path("data", "plates", "val"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pth, onnx = os.path.join(root, "model", "lprnet.pth"), os.path.join(root, "model", "LPRNet.onnx")
    plain, _ = ort_script.run(onnx, val, 64, two_rows=False)  # two-row re-reading, which the rules steer too, off
    ruled, summary = ort_script.run(onnx, val, 64, plate_rules=True, two_rows=False)
    assert summary["plate_rules"] is True
    changed = [(a.plate, b.plate, a.label) for a, b in zip(plain, ruled) if a.plate != b.plate]
    assert all(len(was) == 8 and len(now) == 7 and was != label for was, now, label in changed)
    mended = sum(now == label for _, now, label in changed)
    assert mended >= 1 and summary["correct"] == sum(r.plate == r.label for r in plain) + mended
    score = load_script("test.py").run(pth, val, batch_size=64, plate_rules=True, two_rows=False)
    assert score.correct == summary["correct"]
    capsys.readouterr()


@pytest.fixture
def mgx(monkeypatch):
    migraphx_test_double.reset()
    monkeypatch.setitem(sys.modules, "migraphx", migraphx_test_double)
    return migraphx_test_double


def test_migraphx_script_reads_like_ort_and_compiles_once(mgx, models, imgdir, tmp_path, capsys):
    model = str(tmp_path / "LPRNet.onnx")
    with open(models["dynamic"], "rb") as src, open(model, "wb") as dst:
        dst.write(src.read())
    ort_results, ort_summary = ort_script.main(["--model", model, "--imgpath", str(imgdir), "--batch_size", "4"])
    ort_lines = capsys.readouterr().out.splitlines()

    argv = ["--model", model, "--imgpath", str(imgdir), "--batch_size", "4"]
    results, summary = mgx_script.main(argv)
    lines = capsys.readouterr().out.splitlines()
    mxr = str(tmp_path / "LPRNet.mxr")
    assert lines[0] == f"compiled {model} for batch 4, saved {mxr}"
    assert lines[1].startswith("migraphx gpu, batch 4 | 9 images")
    assert lines[2:-1] == ort_lines[1:-1]  # the same line for every image, the same accuracy
    assert results == ort_results
    assert {k: v for k, v in summary.items() if k not in ("engine", "img_per_s")} == \
           {k: v for k, v in ort_summary.items() if k not in ("engine", "img_per_s")}
    assert dict(mgx.calls) == {"parse_onnx": 1, "compile": 1, "save": 1, "run": 3}

    mgx.reset()
    assert mgx_script.main(argv)[0] == ort_results
    assert capsys.readouterr().out.startswith(f"loaded {mxr} (compiled for batch 4, newer than {model})")
    assert mgx.calls["load"] == 1 and mgx.calls["compile"] == 0 and mgx.calls["parse_onnx"] == 0

    mgx.reset()
    assert mgx_script.main(["--model", mxr, "--imgpath", str(imgdir), "--batch_size", "64"])[0] == ort_results
    assert mgx.calls["compile"] == 0 and mgx.calls["run"] == 2  # the .mxr takes batch 4: 6 images in 2 runs


def test_migraphx_script_savepath_and_fp16(mgx, models, imgdir, tmp_path, capsys):
    mxr = tmp_path / "cache" / "b1.mxr"
    results, _ = mgx_script.main(["--model", models["static1"], "--imgpath", str(imgdir), "--savepath", str(mxr),
                                  "--fp16", "--output", str(tmp_path / "r.json")])
    assert mxr.is_file() and mgx.calls["quantize_fp16"] == 1
    assert capsys.readouterr().out.splitlines()[1].startswith("migraphx gpu fp16, batch 1 | 9 images")
    assert {r.file for r in results if r.plate} == set(expected_plates(models["static1"], imgdir))

    # the same --savepath asked for in fp32, or for another .onnx, is compiled again, not loaded
    for model, fp16, note in ((models["static1"], [], f"was not compiled from this {models['static1']} in fp32"),
                              (models["static4"], [], f"was not compiled from this {models['static4']} in fp32"),
                              (models["static4"], [], None)):
        mgx.reset()
        mgx_script.main(["--model", model, "--imgpath", str(imgdir), "--savepath", str(mxr), *fp16])
        out = capsys.readouterr().out
        assert (f"recompiling: {mxr} {note}" in out) if note else out.startswith(f"loaded {mxr}")
        assert mgx.calls["compile"] == (1 if note else 0)
    mgx_script.main(["--model", str(mxr), "--imgpath", str(imgdir)])
    assert capsys.readouterr().out.splitlines()[0].startswith("migraphx gpu, batch 4 | 9 images")
    os.remove(str(mxr) + ".json")  # compiled by another tool: its precision is not known
    mgx_script.main(["--model", str(mxr), "--imgpath", str(imgdir)])
    assert capsys.readouterr().out.splitlines()[0].startswith("migraphx gpu (precision unknown), batch 4")


def test_migraphx_script_without_migraphx_exits_2(models, tmp_path):
    if importlib.util.find_spec("migraphx") is not None:
        pytest.skip("MIGraphX is installed here")
    run = subprocess.run([sys.executable, str(ROOT / "LPRNet_migraphx_infer.py"), "--model", models["static1"]],
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "MIGraphX is not installed" in run.stderr
    assert "LPRNet_ORT_infer.py" in run.stderr


def test_ort_script_warns_once_about_8_bit_int8_weights_on_a_cpu_without_vnni(imgdir, tmp_path, monkeypatch, capsys):
    model, plates = varied_model(imgdir), np.stack([resize_plate(read_image(str(imgdir / r))) for r in READABLE])
    path = quantize_to_onnx(model, str(tmp_path / "int8.onnx"), plates, dynamic=True, weight_bits=8)
    monkeypatch.setattr(engines, "cpu_has_int8_dot_product", lambda: False)
    ort_script.main(["--model", path, "--imgpath", str(imgdir)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"warning: {path}: int8 model with 8-bit weights on a CPU without VNNI/AMX")
    assert sum(line.startswith("warning:") for line in lines) == 1 and lines[-1].startswith("summary {")


@pytest.fixture(scope="module")
def checkpoint(imgdir, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ckpt") / "varied.pth")
    save_checkpoint(path, varied_model(imgdir))
    return path


@pytest.mark.parametrize("argv,message", [
    (["--imgpath", "{tmp}/empty"], "error: {tmp}/empty: no labelled image could be read (0 skipped)"),
    (["--device", "foo"], "error: --device foo: not a device here"),
    (["--threads", "-1"], "error: --threads -1: must be 0 (every core) or more"),
    (["--export_onnx", "True", "--onnx_path", "{tmp}/file.txt/m.onnx"],
     "error: --onnx_path {tmp}/file.txt/m.onnx: cannot write it"),
])
def test_test_py_fatal_problems_exit_with_one_line(checkpoint, imgdir, tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("a file, not a folder")
    argv = [a.format(tmp=tmp_path) for a in argv]
    argv += ["--model", checkpoint] + ([] if "--imgpath" in argv else ["--imgpath", str(imgdir)])
    with pytest.raises(SystemExit) as e:
        load_script("test.py").main(argv)
    assert str(e.value.code).startswith(message.format(tmp=tmp_path))
    assert "\n" not in str(e.value.code)


def test_test_py_keeps_the_model_there_when_the_export_reads_differently(checkpoint, imgdir, tmp_path, monkeypatch):
    test_py = load_script("test.py")

    class ReadsNothing(OrtEngine):
        def run(self, x):
            return np.zeros_like(super().run(x))  # every column blank-or-first-class alike: no plate

    monkeypatch.setattr(test_py, "OrtEngine", ReadsNothing)
    onnx_path = tmp_path / "LPRNet.onnx"
    onnx_path.write_bytes(b"the model users have")
    with pytest.raises(SystemExit) as e:
        test_py.run(checkpoint, str(imgdir), export_onnx=True, onnx_path=str(onnx_path))
    assert f"disagrees with torch on 5/5 plates; {onnx_path} is left as it was" in str(e.value.code)
    assert onnx_path.read_bytes() == b"the model users have" and os.listdir(str(tmp_path)) == ["LPRNet.onnx"]


def test_a_run_that_reads_no_image_fails_after_its_summary(models, tmp_path, capsys):
    for name in ("皖A12345.jpg", "notes.png"):
        (tmp_path / name).write_bytes(b"no image")
    with pytest.raises(SystemExit) as e:
        ort_script.main(["--model", models["dynamic"], "--imgpath", str(tmp_path)])
    assert str(e.value.code) == f"error: {tmp_path}: no image could be read (2 skipped)"
    assert capsys.readouterr().out.splitlines()[-1].startswith('summary {"images": 0, "skipped": 2')


def test_a_closed_pipe_ends_the_script_without_a_traceback(models, imgdir):
    """`LPRNet_ORT_infer.py ... | head -1`: the reader goes away while the script still prints."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as in most shells
    run = subprocess.Popen([sys.executable, str(ROOT / "LPRNet_ORT_infer.py"), "--model", models["dynamic"],
                            "--imgpath", str(imgdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    run.stdout.close()  # before the script (still importing) prints anything
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1 and b"Traceback" not in err and b"BrokenPipe" not in err
