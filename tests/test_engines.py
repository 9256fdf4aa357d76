import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from lprnet.engines import (
    EngineError,
    MIGraphXEngine,
    MIGraphXUnavailable,
    OrtEngine,
    TorchEngine,
    check_lprnet_io,
    import_migraphx,
    mxr_path_for,
    ort_providers,
    with_device,
)
from lprnet.export import LeanLPRNet, export_to_onnx
from lprnet.model import save_checkpoint
from lprnet.preprocess import greedy_decode
from tests import migraphx_test_double
from tests.test_model import trained_like


@pytest.fixture(scope="module")
def model():
    return trained_like(5)


@pytest.fixture(scope="module")
def onnx_models(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {"static1": export_to_onnx(model, str(folder / "s1.onnx")),
            "static4": export_to_onnx(model, str(folder / "s4.onnx"), batch=4),
            "dynamic": export_to_onnx(model, str(folder / "dyn.onnx"), dynamic=True)}


@pytest.fixture(scope="module")
def batch7(model):
    x = np.random.default_rng(1).standard_normal((7, 3, 24, 94)).astype(np.float32)
    with torch.no_grad():
        return x, model(torch.from_numpy(x)).numpy()


@pytest.fixture
def mgx(monkeypatch):
    migraphx_test_double.reset()
    monkeypatch.setitem(sys.modules, "migraphx", migraphx_test_double)
    return migraphx_test_double


def not_lprnet_onnx(path):
    """A valid ONNX model with the right input but the wrong output: [N,3,24,94] -> [N,3,24,94]."""
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 24, 94]) for n in ("input", "output")]
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", [io[0]], [io[1]])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), path)
    return path


@pytest.mark.parametrize("kind,fixed", [("static1", 1), ("static4", 4), ("dynamic", None)])
def test_ort_pads_or_loops_to_the_models_batch(onnx_models, batch7, kind, fixed):
    x, expected = batch7
    engine = OrtEngine(onnx_models[kind])
    assert engine.fixed_batch == fixed
    got = engine(x)  # 7 plates: 7 runs of 1, runs of 4 + 3 padded, or one run of 7
    assert got.shape == (7, 68, 18)
    assert np.allclose(got, expected, atol=1e-4)
    assert engine(x[:0]).shape == (0, 68, 18)


def test_a_fixed_batch_36_column_model_gives_36_columns_even_for_no_plates(batch7, tmp_path):
    x, _ = batch7
    model = trained_like(6, columns=36)
    engine = OrtEngine(export_to_onnx(model, str(tmp_path / "s2.onnx"), batch=2))
    with torch.no_grad():
        expected = model(torch.from_numpy(x[:3])).numpy()
    assert engine.fixed_batch == 2
    assert np.allclose(engine(x[:3]), expected, atol=1e-4)  # a run of 2, then 1 padded to 2
    assert engine(x[:0]).shape == (0, 68, 36)


def test_ort_rejects_missing_non_onnx_and_non_lprnet_files(tmp_path):
    with pytest.raises(EngineError, match="no such model file"):
        OrtEngine(str(tmp_path / "missing.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(EngineError, match="ONNX Runtime cannot load it"):
        OrtEngine(str(tmp_path / "junk.onnx"))
    (tmp_path / "model.pth").write_bytes(b"x")
    with pytest.raises(EngineError, match="expected a .onnx or .ort model"):
        OrtEngine(str(tmp_path / "model.pth"))
    with pytest.raises(EngineError, match=r"not an LPRNet model .*expected \[N,3,24,94\] -> \[N,68,18 or 36\]"):
        OrtEngine(not_lprnet_onnx(str(tmp_path / "relu.onnx")))


def test_check_lprnet_io_returns_the_fixed_batch():
    assert check_lprnet_io("m", [8, 3, 24, 94], [8, 68, 18]) == 8
    assert check_lprnet_io("m", ["batch", 3, 24, 94], ["batch", 68, 18]) is None
    assert check_lprnet_io("m", [1, 3, 24, 94], [1, 68, 36]) == 1
    for bad in ([1, 3, 32, 100], [1, 68, 18]), ([1, 3, 24, 94], [1, 68, 24]):
        with pytest.raises(EngineError):
            check_lprnet_io("m", *bad)


def test_provider_choice(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_providers("auto") == ["CPUExecutionProvider"]
    with pytest.raises(EngineError, match="'cuda' is not available .*available: CPUExecutionProvider"):
        ort_providers("cuda")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider"])
    assert ort_providers("auto") == ["ROCMExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers("cuda, cpu") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers("CUDAExecutionProvider") == ["CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers",  # a DTK build: MIGraphX falls back to ROCm, not to CPU
                        lambda: ["ROCMExecutionProvider", "MIGraphXExecutionProvider", "CPUExecutionProvider"])
    assert ort_providers("auto") == ["MIGraphXExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider"]


def test_gpu_providers_get_the_device_id():
    assert with_device(None) == ["CPUExecutionProvider"]
    assert with_device(["MIGraphXExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider"], 2) == [
        ("MIGraphXExecutionProvider", {"device_id": "2"}), ("ROCMExecutionProvider", {"device_id": "2"}),
        "CPUExecutionProvider"]
    with pytest.raises(EngineError, match="device_id -1"):
        with_device(["CPUExecutionProvider"], -1)


def test_ort_pads_dynamic_batches_to_one_size_on_the_migraphx_provider(onnx_models, batch7, monkeypatch):
    """ORT's MIGraphX provider compiles the model again for every new batch size: feed it one size only."""
    x, expected = batch7
    shapes = []

    class MIGraphXSession(ort.InferenceSession):  # the CPU provider, reporting itself as MIGraphX's
        def get_providers(self):
            return ["MIGraphXExecutionProvider", "CPUExecutionProvider"]

        def run(self, output_names, feed):
            shapes.extend(v.shape for v in feed.values())
            return super().run(output_names, feed)

    monkeypatch.setattr(ort, "InferenceSession", MIGraphXSession)
    engine = OrtEngine(onnx_models["dynamic"], batch_size=4)
    assert engine.fixed_batch == 4
    assert np.allclose(engine(x), expected, atol=1e-4) and np.allclose(engine(x[:1]), expected[:1], atol=1e-4)
    assert set(shapes) == {(4, 3, 24, 94)}
    assert OrtEngine(onnx_models["static1"], batch_size=4).fixed_batch == 1  # a static model keeps its batch


def test_migraphx_missing_is_its_own_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "migraphx", None)  # makes `import migraphx` raise ImportError
    with pytest.raises(MIGraphXUnavailable, match="LPRNet_ORT_infer.py"):
        import_migraphx()


def test_migraphx_compiles_once_then_loads_the_mxr(mgx, onnx_models, batch7, tmp_path):
    x, expected = batch7
    mxr = str(tmp_path / "cache" / "dyn.mxr")
    logs = []
    first = MIGraphXEngine(onnx_models["dynamic"], batch_size=4, savepath=mxr, log=logs.append)
    assert dict(mgx.calls) == {"parse_onnx": 1, "compile": 1, "save": 1}
    assert mgx.compile_options == [{"offload_copy": True, "fast_math": True}]  # upstream compile(): no device_id
    assert first.fixed_batch == 4 and os.path.isfile(mxr)
    assert logs == [f"compiled {onnx_models['dynamic']} for batch 4, saved {mxr}"]
    assert np.allclose(first(x), expected, atol=1e-4)  # 4 + 3 padded

    mgx.reset()
    second = MIGraphXEngine(onnx_models["dynamic"], batch_size=4, savepath=mxr, log=logs.append)
    assert dict(mgx.calls) == {"load": 1}
    assert logs[-1].startswith(f"loaded {mxr} (compiled for batch 4")
    assert np.array_equal(second(x), first(x))

    mgx.reset()
    MIGraphXEngine(onnx_models["dynamic"], batch_size=8, savepath=mxr, log=logs.append)
    assert "was compiled for batch 4, this run needs batch 8" in logs[-2]
    assert mgx.calls["compile"] == 1


def test_migraphx_recompiles_an_mxr_older_than_its_onnx(mgx, onnx_models, tmp_path):
    mxr = str(tmp_path / "s1.mxr")
    MIGraphXEngine(onnx_models["static1"], savepath=mxr, log=lambda m: None)
    stamp = os.path.getmtime(onnx_models["static1"])
    os.utime(mxr, (stamp - 60, stamp - 60))
    mgx.reset()
    MIGraphXEngine(onnx_models["static1"], savepath=mxr, log=lambda m: None)
    assert mgx.calls["compile"] == 1 and mgx.calls["load"] == 0
    assert os.path.getmtime(mxr) > stamp


def test_migraphx_static_onnx_keeps_its_batch_and_mxr_gives_it_back(mgx, onnx_models, batch7, tmp_path):
    x, expected = batch7
    mxr = str(tmp_path / "s4.mxr")
    engine = MIGraphXEngine(onnx_models["static4"], batch_size=64, savepath=mxr, log=lambda m: None)
    assert engine.fixed_batch == 4
    loaded = MIGraphXEngine(mxr, batch_size=1, log=lambda m: None)  # batch read from the parameter shapes
    assert loaded.fixed_batch == 4 and loaded.input_name == "input"
    assert np.allclose(loaded(x), expected, atol=1e-4)


def test_migraphx_passes_device_id_only_when_compile_accepts_it(mgx, onnx_models, tmp_path):
    mgx.reset(device_id=True)
    MIGraphXEngine(onnx_models["static1"], savepath=str(tmp_path / "a.mxr"), device_id=3, log=lambda m: None)
    assert mgx.compile_options == [{"offload_copy": True, "fast_math": True, "device_id": 3}]


def test_migraphx_says_a_loaded_mxr_ignores_device_id(mgx, onnx_models, tmp_path):
    mxr = str(tmp_path / "a.mxr")
    logs = []
    MIGraphXEngine(onnx_models["static1"], savepath=mxr, device_id=2, log=logs.append)  # compiled: no note
    MIGraphXEngine(onnx_models["static1"], savepath=mxr, device_id=2, log=logs.append)  # the cache, loaded
    MIGraphXEngine(mxr, device_id=2, log=logs.append)
    MIGraphXEngine(mxr, log=logs.append)
    notes = [line for line in logs if "HIP_VISIBLE_DEVICES=2" in line]
    assert len(notes) == 2 and all(line.startswith(f"note: {mxr} is a compiled program") for line in notes)


def test_migraphx_refuses_an_mxr_compiled_without_offload_copy(mgx, onnx_models, tmp_path):
    program = mgx.parse_onnx(onnx_models["static1"])
    program.compile(mgx.get_target("gpu"), offload_copy=False)
    mgx.save(program, str(tmp_path / "gpu_buffers.mxr"))
    with pytest.raises(EngineError, match="gpu_buffers.mxr: compiled without offload_copy.*--enable-offload-copy"):
        MIGraphXEngine(str(tmp_path / "gpu_buffers.mxr"))


def test_migraphx_feeds_contiguous_memory(mgx, onnx_models, batch7, tmp_path):
    x, expected = batch7
    engine = MIGraphXEngine(onnx_models["static4"], savepath=str(tmp_path / "s4.mxr"), log=lambda m: None)
    strided = np.asfortranarray(x[:4])
    with pytest.raises(RuntimeError, match="C-contiguous"):  # the double, like MIGraphX, wants a plain array
        mgx.argument(strided)
    assert np.allclose(engine.run(strided), expected[:4], atol=1e-4)


def test_migraphx_record_not_ours_means_unknown(mgx, onnx_models, tmp_path):
    mxr = tmp_path / "dyn.mxr"
    logs = []
    MIGraphXEngine(onnx_models["dynamic"], batch_size=2, savepath=str(mxr), log=logs.append)
    for record in ('{"onnx": "x"}', '"a string"', "[1, 2]"):
        (tmp_path / "dyn.mxr.json").write_text(record)
        assert MIGraphXEngine(str(mxr), log=logs.append).describe() == "migraphx gpu (precision unknown), batch 2"
        mgx.reset()
        MIGraphXEngine(onnx_models["dynamic"], batch_size=2, savepath=str(mxr), log=logs.append)
        assert logs[-2].startswith(f"recompiling: {mxr} does not say") and mgx.calls["compile"] == 1


def test_migraphx_drops_the_old_record_before_replacing_the_program(mgx, onnx_models, tmp_path, monkeypatch):
    mxr = str(tmp_path / "dyn.mxr")
    logs = []
    MIGraphXEngine(onnx_models["dynamic"], batch_size=2, savepath=mxr, log=logs.append)  # fp32, recorded

    def cannot_write(path, obj):
        raise OSError("disk full")
    with monkeypatch.context() as m:
        m.setattr("lprnet.engines.write_json", cannot_write)
        MIGraphXEngine(onnx_models["dynamic"], batch_size=2, savepath=mxr, fp16=True, log=logs.append)
    assert "cannot save" in logs[-1] and not os.path.exists(mxr + ".json")
    mgx.reset()
    engine = MIGraphXEngine(onnx_models["dynamic"], batch_size=2, savepath=mxr, log=logs.append)  # fp32 again
    assert mgx.calls["compile"] == 1 and engine.fp16 is False


def test_migraphx_fp16_is_cached_apart(mgx, onnx_models, batch7):
    x, expected = batch7
    engine = MIGraphXEngine(onnx_models["static1"], fp16=True, log=lambda m: None)
    assert mgx.calls["quantize_fp16"] == 1
    assert os.path.isfile(mxr_path_for(onnx_models["static1"], fp16=True))
    assert not os.path.isfile(mxr_path_for(onnx_models["static1"]))
    assert np.allclose(engine(x), expected, atol=0.05)


def test_migraphx_says_fp16_cannot_change_a_compiled_program(mgx, onnx_models, tmp_path):
    mxr = str(tmp_path / "s1.mxr")
    logs = []
    MIGraphXEngine(onnx_models["static1"], savepath=mxr, log=logs.append)
    MIGraphXEngine(mxr, fp16=True, savepath=str(tmp_path / "other.mxr"), log=logs.append)
    assert logs[-2:] == [f"note: --fp16 does nothing for {mxr}: it is compiled already (in fp32)",
                         f"note: --savepath {tmp_path / 'other.mxr'} is not used: {mxr} is compiled already"]
    assert mgx.calls["quantize_fp16"] == 0


def test_migraphx_bad_models(mgx, onnx_models, tmp_path):
    with pytest.raises(EngineError, match="no such model file"):
        MIGraphXEngine(str(tmp_path / "none.onnx"))
    with pytest.raises(EngineError, match="not an LPRNet model"):
        MIGraphXEngine(not_lprnet_onnx(str(tmp_path / "relu.onnx")))
    (tmp_path / "junk.mxr").write_bytes(b"garbage")
    with pytest.raises(EngineError, match="MIGraphX cannot load it"):
        MIGraphXEngine(str(tmp_path / "junk.mxr"))
    with pytest.raises(EngineError, match="must end in .mxr"):
        MIGraphXEngine(onnx_models["static1"], savepath=onnx_models["dynamic"])
    assert mgx.calls["compile"] == 0


def test_corrupt_cached_mxr_is_recompiled(mgx, onnx_models, tmp_path):
    mxr = tmp_path / "s1.mxr"
    mxr.write_bytes(b"truncated")
    logs = []
    engine = MIGraphXEngine(onnx_models["static1"], savepath=str(mxr), log=logs.append)
    assert logs[0] == f"recompiling: {mxr} does not say what it was compiled from ({mxr}.json)"
    assert mgx.calls["compile"] == 1 and engine.fixed_batch == 1 and mxr.read_bytes().startswith(mgx.MAGIC)
    mxr.write_bytes(b"truncated")  # its record (s1.mxr.json) says it is this .onnx's program
    logs.clear()
    MIGraphXEngine(onnx_models["static1"], savepath=str(mxr), log=logs.append)
    assert "recompiling: cannot use" in logs[0] and mgx.calls["compile"] == 2


def test_torch_engine_runs_lean_lprnet_with_lprnets_logits(model, batch7, tmp_path):
    save_checkpoint(str(tmp_path / "m.pth"), model)
    engine = TorchEngine(str(tmp_path / "m.pth"), device="cpu")
    x = np.concatenate([batch7[0], batch7[0]])  # 14 plates: more than one CPU chunk
    with torch.no_grad():
        expected = model(torch.as_tensor(x)).numpy()
    got = engine(x)
    assert isinstance(engine.lean, LeanLPRNet) and got.shape == expected.shape == (14, 68, 18)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert greedy_decode(got) == greedy_decode(expected)
