import collections
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from lprnet import engines, quantize
from lprnet.charset import label_from_filename
from lprnet.cpu import cpu_has_int8_dot_product
from lprnet.engines import OrtEngine
from lprnet.export import OPSET, LeanLPRNet, export_to_onnx
from lprnet.image import list_images, write_image
from lprnet.model import load_model
from lprnet.preprocess import greedy_decode, load_plates, to_input
from lprnet.quantize import QuantizeError, calibration_plates, equalize_channels, int8_path_for, quantize_to_onnx
from tests.conftest import copy_subset, shared_path
from tests.test_infer import load_script
from tests.test_model import trained_like


def op_counts(path):
    return collections.Counter(n.op_type for n in onnx.load(path).graph.node)


def random_plates(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 24, 94, 3), dtype=np.uint8)


def torch_readings(model, x, chunk=100):
    with torch.no_grad():
        return [t for i in range(0, len(x), chunk) for t in greedy_decode(model(torch.from_numpy(x[i:i + chunk])))]


def test_lean_graph_drops_the_plain_exports_slices_and_per_map_normalisation(tmp_path):
    model = trained_like(2)
    plain = op_counts(export_to_onnx(model, str(tmp_path / "plain.onnx"), dynamic=True, lean=False))
    lean_path = export_to_onnx(model, str(tmp_path / "lean.onnx"), dynamic=True)
    lean = op_counts(lean_path)
    assert (plain["Slice"], plain["Pow"], plain["ReduceMean"], plain["Div"]) == (2, 4, 5, 4)
    for op in ("Slice", "Pow", "BatchNormalization", "Constant", "Identity", "Reshape", "Squeeze", "Dropout"):
        assert lean[op] == 0, op
    assert (lean["Concat"], lean["Mul"], lean["GlobalAveragePool"], lean["Div"]) == (1, 1, 1, 1)
    assert (lean["MaxPool"], lean["AveragePool"], lean["ReduceMean"]) == (3, 5, 1)  # ReduceMean: the final mean
    assert lean["Conv"] == 16 + 2 + 2  # LPRNet's 16 (BatchNorm folded), 2 split in two, 2 for the context statistics
    assert sum(lean.values()) < sum(plain.values())
    assert onnx.load(lean_path).opset_import[0].version == OPSET
    conv_pools = op_counts(export_to_onnx(model, str(tmp_path / "c.onnx"), dynamic=True, pool_as_conv=True))
    assert conv_pools["AveragePool"] == 0 and conv_pools["Conv"] == lean["Conv"] + 5
    wide = op_counts(export_to_onnx(trained_like(2, columns=36), str(tmp_path / "wide.onnx"), dynamic=True))
    assert wide["MatMul"] == 1 and wide["Concat"] == 2  # the pooled context to 36 columns, then the last tap
    assert sum(wide.values()) == sum(lean.values()) + 2


def test_lean_and_plain_exports_read_every_real_crop_alike(tmp_path):
    """The reference checkpoint on all validation crops: the plain export and both lean exports give the same
    text for every plate (test.py checks the export against torch on every run)."""
    model = load_model(str(shared_path("reference", "Final_LPRNet_model.pth")))[0]
    _, plates, _ = load_plates(list_images(str(shared_path("data", "plates", "val"))))
    x = to_input(plates)
    readings = {}
    for name, options in {"plain": dict(lean=False), "lean": {}, "lean_conv_pools": dict(pool_as_conv=True)}.items():
        engine = OrtEngine(export_to_onnx(model, str(tmp_path / f"{name}.onnx"), dynamic=True, **options))
        readings[name] = greedy_decode(engine(x))
    assert len(plates) > 300 and len(set(readings["plain"])) > 300
    assert readings["lean"] == readings["plain"] and readings["lean_conv_pools"] == readings["plain"]


def test_channel_equalization_changes_weights_but_not_outputs():
    model = trained_like(4)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    lean = LeanLPRNet(model, pool_as_conv=True)
    x = to_input(random_plates(32))
    with torch.no_grad():
        before = lean(torch.from_numpy(x))
    stem, head = lean.stem.weight.clone(), lean.head.weight.clone()
    equalize_channels(lean, x)
    with torch.no_grad():
        after = lean(torch.from_numpy(x))
    assert not torch.allclose(lean.stem.weight, stem) and not torch.allclose(lean.head.weight, head)
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-4 * before.abs().max().item())
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())  # the source is untouched


def optimized_ops(path, tmp_path):
    """The operators ONNX Runtime actually runs, after its graph optimisations (layouts, QDQ fusion)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return op_counts(options.optimized_model_filepath)


@pytest.mark.parametrize("dynamic,columns", [(True, 18), (False, 18), (True, 36)])
def test_int8_runs_the_backbone_and_context_pooling_as_fused_int8_convs(tmp_path, dynamic, columns):
    model = trained_like(5, columns)
    path = quantize_to_onnx(model, str(tmp_path / "m_int8.onnx"), random_plates(40), dynamic=dynamic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8.onnx"]
    ops = optimized_ops(path, tmp_path)
    assert ops["QLinearConv"] == 17 + 5  # every backbone conv (ReLU fused) and the 5 context poolings
    assert ops["Conv"] == 3  # float: the two context-statistics convs and the head
    assert ops["Slice"] == ops["QLinearAveragePool"] == ops["BatchNormalization"] == 0
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 6  # in once, out once per context part
    assert ops["MatMul"] == (columns == 36)  # float, like the rest of the context
    engine = OrtEngine(path)
    assert engine.fixed_batch == (None if dynamic else 1)
    x = to_input(random_plates(5, seed=1))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = engine(x)
    assert got.shape == (5, 68, columns)
    assert np.abs(got - expected).mean() < 0.1 * np.abs(expected).mean()


def test_bias_correction_cuts_the_int8_error_on_plates_it_did_not_see(tmp_path, monkeypatch):
    model = trained_like(5)
    x = to_input(random_plates(60, seed=1))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    errors = {}
    for corrected in (True, False):
        if not corrected:
            monkeypatch.setattr(quantize, "correct_biases", lambda fp32_model, int8, batches: onnx.load(int8))
        path = quantize_to_onnx(model, str(tmp_path / f"{corrected}.onnx"), random_plates(40), dynamic=True)
        errors[corrected] = np.abs(OrtEngine(path)(x) - expected).mean()
    assert errors[True] < 0.8 * errors[False]


@pytest.mark.parametrize("bits", [7, 8])
def test_int8_reads_real_crops_like_fp32(tmp_path, bits):
    """The reference checkpoint, calibrated on 100 training crops: on 150 validation crops int8 reads at least
    90% of plates exactly as fp32 and loses at most 2 points of accuracy."""
    if bits == 8 and not cpu_has_int8_dot_product():
        pytest.skip("8-bit weights saturate on this CPU (no VNNI/AMX): ONNX Runtime reads them wrongly here")
    model = load_model(str(shared_path("reference", "Final_LPRNet_model.pth")))[0]
    calibration = calibration_plates(str(shared_path("data", "plates", "train")), 100)
    int8 = OrtEngine(quantize_to_onnx(model, str(tmp_path / "int8.onnx"), calibration, dynamic=True,
                                      weight_bits=bits))
    paths = list_images(str(shared_path("data", "plates", "val")))[::2][:150]
    _, plates, _ = load_plates(paths)
    x = to_input(plates)
    labels = [label_from_filename(p) for p in paths]
    fp32, got = torch_readings(model, x), greedy_decode(int8(x))
    same = sum(a == b for a, b in zip(fp32, got))
    correct = [sum(t == label for t, label in zip(texts, labels)) for texts in (fp32, got)]
    assert same >= 0.9 * len(paths)
    assert correct[1] >= correct[0] - 3 and correct[0] > 100


def int8_weights(path):
    """{conv weight name: its int8 values} of a QDQ model."""
    return {init.name: numpy_helper.to_array(init) for init in onnx.load(path).graph.initializer
            if init.data_type == onnx.TensorProto.INT8 and init.dims and len(init.dims) == 4}


def test_an_onnxruntime_too_old_for_int8_export_is_one_clear_error(tmp_path, monkeypatch):
    for version in ("1.14.0+rocm", "1.12.1"):
        monkeypatch.setattr(quantize.ort, "__version__", version)
        expected = rf"^int8 export needs onnxruntime 1.17 or newer, this is {re.escape(version)} "
        with pytest.raises(QuantizeError, match=expected):
            quantize_to_onnx(trained_like(3), str(tmp_path / "m.onnx"), random_plates(4))
    assert not (tmp_path / "m.onnx").exists()
    quantize.check_onnxruntime("1.17.0")
    quantize.check_onnxruntime("2.0.0")


def test_weight_bits_decide_weight_range_input_scale_and_metadata(tmp_path, monkeypatch):
    model, plates = trained_like(3), random_plates(40)
    for cpu_has_vnni, bits in ((True, 8), (False, 7)):
        monkeypatch.setattr(quantize, "cpu_has_int8_dot_product", lambda answer=cpu_has_vnni: answer)
        assert quantize.resolve_weight_bits("auto") == bits
    assert quantize.resolve_weight_bits("8") == 8 and quantize.resolve_weight_bits(7) == 7
    with pytest.raises(QuantizeError, match="7 or 8 bits"):
        quantize.resolve_weight_bits("4")
    peaks, input_scales = {}, {}
    for bits in (7, 8):
        path = quantize_to_onnx(model, str(tmp_path / f"b{bits}.onnx"), plates, dynamic=True, weight_bits=bits)
        proto = onnx.load(path)
        assert {p.key: p.value for p in proto.metadata_props}[quantize.INT8_WEIGHT_BITS_KEY] == str(bits)
        weights = int8_weights(path)
        peaks[bits] = max(np.abs(w).max() for name, w in weights.items() if not name.startswith("stem."))
        assert np.abs(weights["stem.weight_quantized"]).max() == 127  # 8 bits either way
        quantize_input = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
        scale = next(i for i in proto.graph.initializer if i.name == quantize_input.input[1])
        input_scales[bits] = float(numpy_helper.to_array(scale))
    assert peaks[7] == 64 and peaks[8] == 127  # per-channel symmetric: the largest weight at the edge
    assert input_scales[7] == 1 / 64 and input_scales[8] < 1 / 96  # 7-bit input: 0..128, 8-bit: all 256 levels


def test_ort_warns_about_8_bit_weights_only_on_cpus_that_saturate_them(tmp_path, monkeypatch):
    model, plates = trained_like(3), random_plates(20)
    paths = {bits: quantize_to_onnx(model, str(tmp_path / f"b{bits}.onnx"), plates, dynamic=True, weight_bits=bits)
             for bits in (7, 8)}
    monkeypatch.setattr(engines, "cpu_has_int8_dot_product", lambda: False)
    [line] = OrtEngine(paths[8]).warnings
    assert line.startswith(paths[8] + ": int8 model with 8-bit weights on a CPU without VNNI/AMX")
    assert line.endswith("--int8_weight_bits 7")
    fp32 = export_to_onnx(model, str(tmp_path / "fp32.onnx"))
    assert OrtEngine(paths[7]).warnings == [] and OrtEngine(fp32).warnings == []
    monkeypatch.setattr(engines, "cpu_has_int8_dot_product", lambda: True)
    assert OrtEngine(paths[8]).warnings == []


def test_calibration_takes_crops_spread_over_the_folder_and_skips_unreadable(tmp_path):
    for i in range(5):
        write_image(str(tmp_path / f"皖A1234{i}_{i}.jpg"), random_plates(1, i)[0])
    (tmp_path / "皖A12345_9.jpg").write_bytes(b"not a jpeg")  # sorted last
    lines = []
    plates = calibration_plates(str(tmp_path), 3, log=lines.append)
    assert plates.shape == (2, 24, 94, 3) and plates.dtype == np.uint8  # files 0, 2 and the broken one
    assert lines[0].startswith(f"skipped {tmp_path / '皖A12345_9.jpg'}") and "1 unreadable" in lines[1]
    assert len(calibration_plates(str(tmp_path), 100, log=lines.append)) == 5
    with pytest.raises(QuantizeError, match="no such file or folder"):
        calibration_plates(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="no readable images"):
        calibration_plates(str(tmp_path / "empty"))
    with pytest.raises(QuantizeError, match="at least 1"):
        calibration_plates(str(tmp_path), 0)


def test_int8_path_sits_next_to_the_fp32_model():
    assert int8_path_for("model/LPRNet.onnx") == "model/LPRNet_int8.onnx"


def test_test_py_exports_and_scores_int8(tmp_path, capsys):
    checkpoint = str(shared_path("reference", "Final_LPRNet_model.pth"))
    crops = copy_subset(str(shared_path("data", "plates", "val")), str(tmp_path / "val"), 30)
    calib = copy_subset(str(shared_path("data", "plates", "train")), str(tmp_path / "train"), 20)
    test_py = load_script("test.py")
    onnx_path = str(tmp_path / "out" / "LPRNet.onnx")
    test_py.main(["--model", checkpoint, "--imgpath", crops, "--export_onnx", "True", "--onnx_path",
                  onnx_path, "--int8", "True", "--calib_dir", calib, "--calib_count", "16"])
    out = capsys.readouterr().out
    int8_line = next(line for line in out.splitlines() if line.startswith("exported") and "int8" in line)
    assert int8_line.startswith(f"exported {tmp_path / 'out' / 'LPRNet_int8.onnx'} (int8, ")
    assert f"calibrated on 16 crops from {calib}): accuracy=" in int8_line and "points vs torch" in int8_line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["LPRNet.onnx", "LPRNet_int8.onnx"]


@pytest.mark.parametrize("argv,message", [
    (["--int8", "True"], "error: --int8 True needs --export_onnx True"),
    (["--int8", "True", "--export_onnx", "True"], "error: --int8 True needs --calib_dir"),
    (["--int8", "True", "--export_onnx", "True", "--calib_dir", "{tmp}/trian"], "error: {tmp}/trian: no such file"),
    (["--int8", "True", "--export_onnx", "True", "--calib_dir", "{tmp}/empty"],
     "error: {tmp}/empty: no readable images"),
])
def test_test_py_int8_flag_mistakes_exit_with_one_line_before_reading(tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:  # the model is checked only after the flags: none.pth is never opened
        load_script("test.py").main(["--model", str(tmp_path / "none.pth"), "--imgpath", str(tmp_path)]
                                    + [a.format(tmp=tmp_path) for a in argv])
    assert str(e.value.code).startswith(message.format(tmp=tmp_path))
