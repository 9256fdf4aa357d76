"""TEST DOUBLE of the `migraphx` Python module, built on ONNX Runtime (CPU). For tests only.

MIGraphX ships only with DCU/ROCm images and cannot be installed on our machines. This stand-in offers the
calls lprnet.engines.MIGraphXEngine makes (parse_onnx with map_input_dims, quantize_fp16, get_target,
program.compile/run/get_parameter_shapes/get_output_shapes, argument, save, load) with the behaviour the
engine relies on: a compiled program runs only at the shape it was compiled for, run() needs compile() or
load() first, save/load round-trip a compiled program. It compiles nothing and is not MIGraphX: tests put
it in sys.modules["migraphx"] with monkeypatch; nothing outside tests/ may import it.

`calls` counts each entry point so a test can tell a cached load from a recompile; `accepts_device_id`
switches compile() between upstream's signature and DTK's (which adds device_id).
"""
import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort

calls = Counter()
compile_options = []  # the keyword arguments of every compile() call
accepts_device_id = False
MAGIC = b"MIGRAPHX-TEST-DOUBLE\n"


def reset(device_id=False):
    global accepts_device_id
    calls.clear()
    compile_options.clear()
    accepts_device_id = device_id


class shape:
    def __init__(self, lens):
        self._lens = [int(d) for d in lens]

    def lens(self):
        return list(self._lens)


class target:
    def __init__(self, name):
        self.name = name


def get_target(name):
    if name not in ("gpu", "ref", "cpu"):
        raise RuntimeError(f"Requested target '{name}' is not loaded or not supported")
    return target(name)


class argument:
    """Like the real one, wraps the array's memory without copying it; unlike it, refuses a non-contiguous array
    (real MIGraphX takes its strides as a non-standard shape, which a compiled program's input is not)."""

    def __init__(self, array):
        if not (isinstance(array, np.ndarray) and array.flags.c_contiguous):
            raise RuntimeError("argument: a C-contiguous numpy array is expected")
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def _dims(value):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


class program:
    def __init__(self, model_bytes, fp16=False, compiled=False, offload_copy=True):
        self._model_bytes, self._fp16, self._compiled, self._offload_copy = model_bytes, fp16, compiled, offload_copy
        self._session = None
        graph = onnx.load_from_string(model_bytes).graph
        self._input = graph.input[0]
        self._outputs = list(graph.output)

    def get_parameter_names(self):
        return list(self.get_parameter_shapes())

    def get_parameter_shapes(self):
        shapes = {self._input.name: shape(_dims(self._input))}
        if self._compiled and not self._offload_copy:  # real MIGraphX exposes output buffers as parameters
            for i, out in enumerate(self.get_output_shapes()):
                shapes[f"main:#output_{i}"] = out
        return shapes

    def get_output_shapes(self):
        batch = _dims(self._input)[0]
        return [shape([batch if isinstance(d, str) else d for d in _dims(o)]) for o in self._outputs]

    @property
    def compile(self):
        def compile(t, offload_copy=True, fast_math=True, exhaustive_tune=False, **extra):
            unknown = set(extra) - ({"device_id"} if accepts_device_id else set())
            if unknown or not isinstance(t, target):
                raise TypeError("compile(): incompatible function arguments")
            calls["compile"] += 1
            compile_options.append(dict(offload_copy=offload_copy, fast_math=fast_math, **extra))
            self._compiled, self._offload_copy = True, offload_copy

        extra = ", device_id: int = 0" if accepts_device_id else ""
        compile.__doc__ = ("compile(self: migraphx.program, t: migraphx.target, offload_copy: bool = True, "
                           f"fast_math: bool = True, exhaustive_tune: bool = False{extra}) -> None")
        return compile

    def run(self, params):
        calls["run"] += 1
        if not self._compiled:
            raise RuntimeError("program is not compiled")
        if not self._offload_copy:
            raise RuntimeError("the double supports only offload_copy=True")
        (name, arg), = params.items()
        x = np.asarray(arg)
        expected = _dims(self._input)
        if name != self._input.name or list(x.shape) != expected or x.dtype != np.float32:
            raise RuntimeError(f"parameter {name} {list(x.shape)} {x.dtype} does not match {expected} float32")
        if self._session is None:
            self._session = ort.InferenceSession(self._model_bytes, providers=["CPUExecutionProvider"])
        if self._fp16:
            x = x.astype(np.float16).astype(np.float32)
        out = self._session.run(None, {name: x})[0]
        return [argument(out.astype(np.float16).astype(np.float32) if self._fp16 else out)]


def parse_onnx(path, default_dim_value=1, map_input_dims=None):
    calls["parse_onnx"] += 1
    try:
        model = onnx.load(path)
    except Exception as e:
        raise RuntimeError(f"PARSE_ONNX: cannot parse {path}: {e}") from None
    for value in model.graph.input:
        fixed = (map_input_dims or {}).get(value.name)
        for i, d in enumerate(value.type.tensor_type.shape.dim):
            if fixed is not None:
                d.dim_value = fixed[i]
            elif not d.HasField("dim_value"):
                d.dim_value = default_dim_value
    return program(model.SerializeToString())


def quantize_fp16(prog, ins_names=("all",)):
    calls["quantize_fp16"] += 1
    prog._fp16 = True


def save(prog, path, format="msgpack"):
    calls["save"] += 1
    header = json.dumps({"fp16": prog._fp16, "compiled": prog._compiled, "offload_copy": prog._offload_copy})
    with open(path, "wb") as f:
        f.write(MAGIC + header.encode() + b"\n" + prog._model_bytes)


def load(path, format="msgpack"):
    calls["load"] += 1
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise RuntimeError(f"{path}: not a MIGraphX program")
    header, model_bytes = data[len(MAGIC):].split(b"\n", 1)
    return program(model_bytes, **json.loads(header))
