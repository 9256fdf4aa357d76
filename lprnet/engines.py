"""One class per inference engine, each mapping a preprocessed batch [N,3,24,94] to logits [N,68,T]
(T = 18 output columns, or 36 for a net trained with `--columns 36`).

Models exported or compiled with a fixed batch are fed in chunks of that size, the last one zero-padded;
dynamic-batch models take the batch as it comes.
"""
import json
import os

import numpy as np

from .charset import NUM_CLASSES
from .cli import comma_list
from .cpu import cpu_has_int8_dot_product
from .image import write_atomic
from .preprocess import INPUT_H, INPUT_W, OUTPUT_COLUMNS

# ONNX Runtime execution providers, best first; `auto` takes those this onnxruntime build has, in this order.
ORT_PROVIDERS = ("MIGraphXExecutionProvider", "ROCMExecutionProvider", "CUDAExecutionProvider",
                 "CPUExecutionProvider")
ORT_PROVIDER_ALIASES = {p[:-len("ExecutionProvider")].lower(): p for p in ORT_PROVIDERS}
INT8_WEIGHT_BITS_KEY = "lprnet_int8_weight_bits"  # ONNX metadata lprnet.quantize writes


class EngineError(ValueError):
    """The model file cannot be used by this engine; the message names it."""


class MIGraphXUnavailable(EngineError):
    """The migraphx Python module is not installed (it ships only with DCU/ROCm images)."""


class Engine:
    name = "engine"
    fixed_batch = None  # an int when the model only accepts one batch size
    warnings = ()  # lines the user should see before the results

    def report_warnings(self, log=print):
        for line in self.warnings:
            log(f"warning: {line}")

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.fixed_batch or len(x) == self.fixed_batch:
            return self.run(x)
        b, out = self.fixed_batch, []
        for start in range(0, len(x), b):
            chunk = x[start:start + b]
            pad = b - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.float32)])
            out.append(self.run(chunk)[:b - pad])
        if not out:  # no plates: one padded run says how many columns the model gives
            return self.run(np.zeros((b,) + x.shape[1:], np.float32))[:0]
        return np.concatenate(out)

    def run(self, x):
        raise NotImplementedError

    def describe(self):
        """One line for the log: engine, where it runs, the batch it takes."""
        return f"{self.name}, batch {self.fixed_batch or 'dynamic'}"


class TorchEngine(Engine):
    """A .pth checkpoint (ours or LPRNet_Pytorch's) in torch, channels_last, denormals flushed, run as
    LeanLPRNet (BatchNorm folded, no channel slicing: the same readings, ~1.6x faster in fp32 than LPRNet itself).

    On CPU, batches run in chunks of CPU_CHUNK plates: the activations of bigger batches fall out of the
    caches (2-core AMD EPYC, fp32: ~250-320 plates/s in chunks of 8, ~200 in one batch of 64; the readings
    do not change).
    """

    name = "torch"
    CPU_CHUNK = 8

    def __init__(self, path, device="auto", amp="off", threads=0):
        from .device import DeviceError, bf16_unavailable, configure_cpu, select_device
        from .model import load_model
        try:
            configure_cpu(threads)
            self.device, self.amp = select_device(device), amp
        except DeviceError as e:
            raise EngineError(str(e)) from None
        problem = bf16_unavailable(amp, self.device)
        if problem:
            raise EngineError(problem)
        import torch

        from .export import LeanLPRNet
        self.model = load_model(path)[0]  # LPRNet itself, for exports
        self.lean = LeanLPRNet(self.model).to(self.device).to(memory_format=torch.channels_last)

    def run(self, x):
        from .evaluate import torch_logits
        if self.device.type != "cpu" or len(x) <= self.CPU_CHUNK:
            return torch_logits(self.lean, x, self.device, self.amp)
        return np.concatenate([torch_logits(self.lean, x[i:i + self.CPU_CHUNK], self.device, self.amp)
                               for i in range(0, len(x), self.CPU_CHUNK)])

    def describe(self):
        return f"torch on {self.device}, batch dynamic"


def check_lprnet_io(path, input_shape, output_shape):
    """Raise EngineError unless the model takes [N,3,24,94] and gives [N,68,T] with T in OUTPUT_COLUMNS (N, and
    T, may be symbolic)."""
    def dims(shape):
        return [d if isinstance(d, int) else None for d in shape]
    i, o = dims(input_shape), dims(output_shape)
    if (len(i) != 4 or i[1:] != [3, INPUT_H, INPUT_W] or len(o) != 3 or o[1] != NUM_CLASSES
            or o[2] not in OUTPUT_COLUMNS + (None,)):
        columns = " or ".join(map(str, OUTPUT_COLUMNS))
        raise EngineError(f"{path}: not an LPRNet model (input {input_shape}, output {output_shape}; "
                          f"expected [N,3,{INPUT_H},{INPUT_W}] -> [N,{NUM_CLASSES},{columns}])")
    return i[0]


def missing_model(path):
    """Why `path` is no model file to open, or None."""
    if os.path.isfile(path):
        return None
    return f"{path}: " + ("a folder, not a model file" if os.path.isdir(path) else "no such model file")


def require_file(path, suffixes):
    problem = missing_model(path)
    if problem:
        raise EngineError(problem)
    if not path.lower().endswith(suffixes):
        raise EngineError(f"{path}: expected a {' or '.join(suffixes)} model")


def first_line(error, limit=160):
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:limit]


def ort_providers(requested="auto"):
    """'auto' -> the available ones of ORT_PROVIDERS, best first (CPU last); else comma-separated names or aliases
    (migraphx, rocm, cuda, cpu), each of which this onnxruntime build must have."""
    import onnxruntime as ort
    available = ort.get_available_providers()
    if requested in (None, "", "auto"):  # MIGraphX falls back to ROCm only where ROCm is listed after it
        return [p for p in ORT_PROVIDERS if p in available and p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]
    chosen = []
    for name in comma_list(requested):
        provider = ORT_PROVIDER_ALIASES.get(name.lower(), name)
        if provider not in available:
            raise EngineError(f"ONNX Runtime provider {name!r} is not available in this onnxruntime build "
                              f"(available: {', '.join(available)})")
        chosen.append(provider)
    return chosen


def with_device(providers, device_id=0):
    """ONNX Runtime's providers argument: the GPU providers get `device_id` (CPU alone when none are given)."""
    if device_id < 0:
        raise EngineError(f"device_id {device_id}: a GPU number is 0 or more")
    return [p if p == "CPUExecutionProvider" else (p, {"device_id": str(device_id)})
            for p in providers or ["CPUExecutionProvider"]]


def int8_warnings(path, session, provider):
    """An int8 model with 8-bit weights (lprnet.quantize on a VNNI/AMX CPU) saturates on CPUs without VNNI."""
    bits = session.get_modelmeta().custom_metadata_map.get(INT8_WEIGHT_BITS_KEY)
    if bits == "8" and provider == "CPUExecutionProvider" and not cpu_has_int8_dot_product():
        return [f"{path}: int8 model with 8-bit weights on a CPU without VNNI/AMX, which can saturate its sums "
                f"and misread plates: re-export it with test.py --int8 True --int8_weight_bits 7"]
    return []


class OrtEngine(Engine):
    """An ONNX model in ONNX Runtime (CPU unless `providers` says otherwise).

    Session settings, measured with bench_infer.py on a 2-core AVX2 EPYC: full graph optimisation (the default;
    its NCHWc/NHWC layouts make fp32 ~15% and int8 ~2x faster than ORT_ENABLE_EXTENDED), the memory arena on
    (off: 10-40% slower), denormals flushed, one thread per core. Spinning threads (the default) cut latency
    ~15% on an idle CPU but cost up to 2x when other processes want the cores: `spin=False` there.
    """

    name = "onnxruntime"

    def __init__(self, path, providers=None, threads=0, spin=True, device_id=0, batch_size=64):
        """`device_id`: the GPU of the GPU providers; `batch_size`: what a dynamic-batch model is padded to on
        ONNX Runtime's MIGraphX provider, which compiles the model again for every new input shape."""
        import onnxruntime as ort
        require_file(path, (".onnx", ".ort"))
        options = ort.SessionOptions()
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        providers = with_device(providers, device_id)
        try:
            self.session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise EngineError(f"{path}: ONNX Runtime cannot load it ({first_line(e, 120)})") from None
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name = inp.name
        self.fixed_batch = check_lprnet_io(path, inp.shape, out.shape)
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.provider = self.session.get_providers()[0]
        if self.fixed_batch is None and self.provider == "MIGraphXExecutionProvider":
            self.fixed_batch = batch_size
        self.warnings = int8_warnings(path, self.session, self.provider)

    def run(self, x):
        try:
            out = self.session.run(None, {self.input_name: x.astype(self.input_dtype, copy=False)})[0]
        except Exception as e:
            raise EngineError(f"ONNX Runtime failed on a batch of {len(x)}: {first_line(e)}") from None
        return out.astype(np.float32, copy=False)

    def describe(self):
        return f"onnxruntime {self.provider}, batch {self.fixed_batch or 'dynamic'}"


def open_engine(path):
    """The engine a benchmark reads `path` with: ONNX Runtime for an .onnx/.ort, torch for a .pth checkpoint."""
    return OrtEngine(path) if path.lower().endswith((".onnx", ".ort")) else TorchEngine(path)


def import_migraphx():
    try:
        import migraphx
    except (ImportError, OSError):
        raise MIGraphXUnavailable("MIGraphX is not installed here (it ships only with DCU/ROCm images such as "
                                  "DTK); use LPRNet_ORT_infer.py instead") from None
    return migraphx


def onnx_io(path):
    """(input name, input dims, output dims) of an ONNX file, symbolic dims as None, without running it."""
    import onnx
    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception as e:  # protobuf decode errors have no common public type
        raise EngineError(f"{path}: not a readable ONNX model ({first_line(e, 120)})") from None
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]  # old exports list weights as inputs

    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    if not inputs or not graph.output:
        raise EngineError(f"{path}: not an LPRNet model (no input or no output)")
    return inputs[0].name, dims(inputs[0]), dims(graph.output[0])


def mxr_path_for(onnx_path, fp16=False):
    """Where a compiled program is cached by default: next to the .onnx, fp16 kept apart."""
    return os.path.splitext(onnx_path)[0] + ("_fp16.mxr" if fp16 else ".mxr")


def is_newer(path, than):
    return os.path.isfile(path) and os.path.getmtime(path) > os.path.getmtime(than)


def compiled_from(onnx_path, fp16):
    """What a cached .mxr was compiled from, kept beside it (<name>.mxr.json): the same .mxr path may be asked for
    with another .onnx or another precision."""
    stat = os.stat(onnx_path)
    return {"onnx": os.path.abspath(onnx_path), "size": stat.st_size, "mtime": stat.st_mtime, "fp16": bool(fp16)}


def read_compiled_from(mxr):
    """compiled_from as recorded beside `mxr`, or None where there is no such record (missing, unreadable or not
    ours)."""
    try:
        with open(mxr + ".json", encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and set(record) == {"onnx", "size", "mtime", "fp16"} else None


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


class MIGraphXEngine(Engine):
    """An .onnx compiled by MIGraphX for the GPU (cached as .mxr, reused while newer than the .onnx),
    or an .mxr compiled before. A compiled program takes exactly the batch it was compiled for."""

    name = "migraphx"

    def __init__(self, path, batch_size=1, savepath=None, fp16=False, device_id=0, log=print):
        self.mgx, self.log, self.fp16 = import_migraphx(), log, fp16
        require_file(path, (".onnx", ".mxr"))
        if path.lower().endswith(".mxr"):
            source = read_compiled_from(path)
            self.fp16 = source["fp16"] if source else None  # None: compiled elsewhere, precision unknown
            if fp16 and not self.fp16:
                log(f"note: --fp16 does nothing for {path}: it is compiled already"
                    + (" (in fp32)" if source else ""))
            self.program = self.load(path)
            self.note_device_of_loaded(path, device_id)
            if savepath:
                log(f"note: --savepath {savepath} is not used: {path} is compiled already")
        else:
            savepath = savepath or mxr_path_for(path, fp16)
            if not savepath.lower().endswith(".mxr"):
                raise EngineError(f"{savepath}: the compiled program's file name must end in .mxr")
            self.program = self.compile_cached(path, savepath, batch_size, device_id)
        self.input_name, lens = self.program_input(path)
        self.fixed_batch = check_lprnet_io(path, lens, self.program.get_output_shapes()[0].lens())

    def note_device_of_loaded(self, mxr, device_id):
        if device_id:  # compile() takes a device (DTK), load() does not
            self.log(f"note: {mxr} is a compiled program, which runs on the current HIP device, not --device_id "
                     f"{device_id}: run with HIP_VISIBLE_DEVICES={device_id} (and --device_id 0) to choose the GPU")

    def program_input(self, path):
        shapes = self.program.get_parameter_shapes()
        if any("#output" in n for n in shapes):  # compiled with offload_copy=False: outputs are GPU buffers
            raise EngineError(f"{path}: compiled without offload_copy, so it cannot take and return host memory; "
                              f"compile the .onnx with this script instead (migraphx-driver: --enable-offload-copy)")
        names = list(shapes)
        if len(names) != 1:
            raise EngineError(f"{path}: not an LPRNet model (parameters {sorted(shapes.keys())})")
        return names[0], list(shapes[names[0]].lens())

    def load(self, mxr):
        try:
            return self.mgx.load(mxr)
        except Exception as e:  # migraphx raises RuntimeError, pybind11 may raise others
            raise EngineError(f"{mxr}: MIGraphX cannot load it ({first_line(e, 120)})") from None

    def compile_cached(self, onnx_path, mxr, batch_size, device_id):
        name, in_dims, out_dims = onnx_io(onnx_path)
        batch = check_lprnet_io(onnx_path, in_dims, out_dims) or batch_size
        source = compiled_from(onnx_path, self.fp16)
        if is_newer(mxr, onnx_path):
            program = self.load_cached(mxr, onnx_path, source, name, batch)
            if program is not None:
                self.log(f"loaded {mxr} (compiled for batch {batch}, newer than {onnx_path})")
                self.note_device_of_loaded(mxr, device_id)
                return program
        program = self.compile(onnx_path, name, batch, device_id)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(mxr)), exist_ok=True)
            if os.path.exists(mxr + ".json"):  # the old record must not outlive the program it describes
                os.remove(mxr + ".json")
            write_atomic(mxr, lambda tmp: self.mgx.save(program, tmp))
            write_atomic(mxr + ".json", lambda tmp: write_json(tmp, source))
            self.log(f"compiled {onnx_path} for batch {batch}{' fp16' if self.fp16 else ''}, saved {mxr}")
        except Exception as e:  # an unwritable cache only costs a recompile next time
            self.log(f"warning: compiled {onnx_path} but cannot save {mxr} ({first_line(e)})")
        return program

    def load_cached(self, mxr, onnx_path, source, input_name, batch):
        """The program cached in `mxr` where it was compiled from `source` (`onnx_path` as compiled_from records it)
        for `batch`, else None (saying why)."""
        cached_from = read_compiled_from(mxr)
        if cached_from is None:
            self.log(f"recompiling: {mxr} does not say what it was compiled from ({mxr}.json)")
            return None
        if cached_from != source:
            precision = "fp16" if source["fp16"] else "fp32"
            self.log(f"recompiling: {mxr} was not compiled from this {onnx_path} in {precision}")
            return None
        try:
            program = self.load(mxr)
            cached = program.get_parameter_shapes()[input_name].lens()[0]
        except (EngineError, KeyError) as e:
            self.log(f"recompiling: cannot use {mxr} ({first_line(e)})")
            return None
        if cached != batch:
            self.log(f"recompiling: {mxr} was compiled for batch {cached}, this run needs batch {batch}")
            return None
        return program

    def compile(self, onnx_path, input_name, batch, device_id):
        mgx = self.mgx
        try:
            program = mgx.parse_onnx(onnx_path, map_input_dims={input_name: [batch, 3, INPUT_H, INPUT_W]})
            if self.fp16:
                mgx.quantize_fp16(program)
            options = {"offload_copy": True}  # run() takes and returns host (numpy) memory
            if "device_id" in (program.compile.__doc__ or ""):  # DTK builds have it, upstream MIGraphX not
                options["device_id"] = device_id
            program.compile(mgx.get_target("gpu"), **options)
        except Exception as e:
            raise EngineError(f"{onnx_path}: MIGraphX cannot compile it ({first_line(e, 120)})") from None
        return program

    def run(self, x):
        try:
            out = self.program.run({self.input_name: self.mgx.argument(np.ascontiguousarray(x))})[0]
        except Exception as e:
            raise EngineError(f"MIGraphX failed on a batch of {len(x)}: {first_line(e)}") from None
        return np.array(out, dtype=np.float32).reshape(len(x), NUM_CLASSES, -1)

    def describe(self):
        precision = {True: " fp16", False: "", None: " (precision unknown)"}[self.fp16]
        return f"migraphx gpu{precision}, batch {self.fixed_batch}"
