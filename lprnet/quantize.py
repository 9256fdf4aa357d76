"""Static int8 quantisation of LPRNet for ONNX Runtime, calibrated on real plate crops.

    python test.py --model model/lprnet.pth --imgpath data/val --export_onnx True --int8 True --calib_dir data/train

What makes int8 pay here, found by profiling the quantised graph (bench_infer.py measures the result):
- the graph is `LeanLPRNet(pool_as_conv=True)`: no Slice (in int8 NHWC it gathers every 2nd/4th byte and
  took ~15% of the time) and the context's average pooling as depthwise QLinearConv (QLinearAveragePool took
  ~25%), so ONNX Runtime fuses every Conv+ReLU into one NHWC QLinearConv, with no float round trip in the backbone;
- QDQ format, per-channel int8 weights, uint8 activations (U8S8: the fast x86 kernels; U8U8 is no faster than fp32);
- weights on 8 bits where the CPU that quantises has VNNI or AMX (`--int8_weight_bits auto`), on 7 bits
  (`reduce_range`) elsewhere: AVX2 and AVX-512 CPUs without VNNI add pairs of U8S8 products in 16 bits and
  saturate with 8-bit weights (the reference checkpoint drops from 81.5% to 72% on an AVX2 EPYC). With 7 bits the
  first conv (27 weights per channel, the most hurt by 7 bits) keeps 8-bit weights and gets a 7-bit input instead
  (pixel pairs: 0..128 x 8 bits cannot saturate), which cuts the logit error ~15%. The model records its weight
  bits, and the ONNX Runtime engine warns when an 8-bit model runs on a CPU that would saturate it;
- the context normalisation and the head stay float: they are ~2% of the work and divide by per-sample statistics;
- before quantising, every ReLU output is rescaled per channel (`equalize_channels`, exact in float) so that its
  channels use more of the single int8 range the tensor gets; this cuts the logit error by about a fifth.
- after quantising, each conv's int32 bias absorbs the mean error its quantised inputs and weights leave in its
  output channels (`correct_biases`, measured on the calibration crops, conv by conv in graph order); the shipped
  model's logit error is then ~0.15 for 100 to 800 calibration crops (0.20-0.31 without).
With 200 calibration crops, on plates/val, the shipped model/lprnet.pth (stage 10) with 8-bit weights reads
exactly as fp32 (0 of 395 plates differ) at 2.1-2.6x the speed of ONNX Runtime fp32 on a 2-core AVX-512 EPYC
(Zen 4); with 7 bits it loses 0.76 points (5 plates differ) at 1.4-1.9x on a 2-core AVX2 EPYC, 1.8-2.0x on a
2-core AMX Xeon. Bias correction cuts the plates read differently from fp32 on 5069 other crops from 25 to 18
(7-bit weights).
"""
import contextlib
import logging
import os
import re
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from .cpu import cpu_has_int8_dot_product
from .engines import INT8_WEIGHT_BITS_KEY
from .export import LeanLPRNet, export_to_onnx
from .image import list_images, write_atomic
from .preprocess import load_plates, to_input

CALIBRATION_BATCH = 32
MIN_ONNXRUNTIME = (1, 17)  # 1.14 ignores the per-tensor overrides below; 1.12 cannot run the model it writes


class QuantizeError(ValueError):
    """Int8 quantisation cannot run with what it was given; the message says why."""


def int8_path_for(onnx_path):
    """model/LPRNet.onnx -> model/LPRNet_int8.onnx"""
    return os.path.splitext(onnx_path)[0] + "_int8.onnx"


def calibration_plates(calib_dir, count=200, log=print):
    """`count` crops spread evenly over `calib_dir` (recursive), read and resized: uint8 [N, 24, 94, 3]."""
    if count < 1:
        raise QuantizeError("--calib_count must be at least 1")
    try:
        paths = list_images(calib_dir)
    except FileNotFoundError as e:
        raise QuantizeError(str(e)) from None
    if len(paths) > count:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]
    _, plates, skipped = load_plates(paths, log)
    if not len(plates):
        raise QuantizeError(f"{calib_dir}: no readable images to calibrate int8 on")
    if skipped:
        log(f"calibration: {skipped} unreadable images skipped")
    return plates


def calibration_batches(plates, dynamic):
    """Model inputs for calibration: chunks of CALIBRATION_BATCH, or one plate each for a static (batch 1) model."""
    size = CALIBRATION_BATCH if dynamic else 1
    return [to_input(plates[i:i + size]) for i in range(0, len(plates), size)]


def channel_peaks(model, x, convs, chunk=50):
    """The largest ReLU output of every channel of each conv in `convs` over the inputs `x`."""
    peaks = {}

    def record(conv, _, out):
        peak = out.clamp(min=0).amax(dim=(0, 2, 3))
        peaks[conv] = torch.maximum(peaks[conv], peak) if conv in peaks else peak

    hooks = [conv.register_forward_hook(record) for conv in convs]
    try:
        with torch.no_grad():
            for start in range(0, len(x), chunk):
                model(torch.from_numpy(x[start:start + chunk]))
    finally:
        for hook in hooks:
            hook.remove()
    return peaks


def equalize_channels(lean, x, alpha=0.5, max_gain=16.0):
    """Rescale each ReLU output's channels towards the tensor's peak, int8 per-tensor activations then resolve
    the weak channels better; the reading convs take the inverse scale into their (per-channel) weights.

    A channel with peak p is multiplied by (peak_max / p) ** alpha, at most `max_gain`; channels only the
    float context reads go all the way (alpha 1), channels that never fire are left alone."""
    links = lean.channel_links()
    peaks = channel_peaks(lean, x, [conv for conv, _, _ in links])
    for link in links:
        peak = peaks[link[0]]
        exponent = alpha if link[1] else 1.0
        scale = (peak / peak.max().clamp(min=1e-12)).pow(exponent).clamp(min=1.0 / max_gain)
        lean.divide_channels(link, torch.where(peak > 0, scale, torch.ones_like(scale)))
    return lean


def input_overrides(graph):
    """TensorQuantOverrides for 7-bit weights: the input on 7 bits (scale 1/64: the preprocessed [-1, 1] ->
    0..128), the first conv's weights on 8 bits, so its U8S8 pairs stay below 2**15 (see the module docstring)."""
    stem = next(n for n in graph.node if n.op_type == "Conv" and n.input[0] == graph.input[0].name)
    channels = next(i.dims[0] for i in graph.initializer if i.name == stem.input[1])
    return {graph.input[0].name: [{"scale": np.array(1 / 64, np.float32), "zero_point": np.array(64, np.uint8)}],
            stem.input[1]: [{"reduce_range": False}] * channels}  # one per channel: onnxruntime 1.17 needs them all


def float_nodes(graph):
    """The context normalisation and head: the channel Concat and every node after it."""
    concat = next(n for n in graph.node if n.op_type == "Concat")
    names, tensors = [concat.name], set(concat.output)
    for node in graph.node:  # topological order
        if any(i in tensors for i in node.input):
            names.append(node.name)
            tensors.update(node.output)
    return names


def channel_means(proto, tensors, batches):
    """The mean of each channel of the named float tensors of an ONNX model over all `batches` [N, C, H, W]."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    sums, counts = [0.0] * len(tensors), [0] * len(tensors)
    for x in batches:
        outputs = session.run(tensors, {name: x})
        sums = [s + o.sum(axis=(0, 2, 3), dtype=np.float64) for s, o in zip(sums, outputs)]
        counts = [c + o.size // o.shape[1] for c, o in zip(counts, outputs)]
    return [s / c for s, c in zip(sums, counts)]


def quantised_biases(proto):
    """(conv name, conv output, int32 bias initializer, its scale's initializer) of every conv whose bias the
    QDQ model dequantises from int32, in graph order."""
    made_by = {out: node for node in proto.graph.node for out in node.output}
    found = []
    for node in proto.graph.node:
        bias = made_by.get(node.input[2]) if node.op_type == "Conv" and len(node.input) > 2 else None
        if bias is not None and bias.op_type == "DequantizeLinear":
            found.append((node.name, node.output[0], bias.input[0], bias.input[1]))
    return found


def correct_biases(fp32, int8_path, batches):
    """Empirical bias correction: in graph order, move each quantised conv's int32 bias by the mean difference,
    per output channel and before the activation, between the fp32 model's conv output and the int8 model's
    (with the convs before it already corrected), both run on the calibration `batches`. `fp32` is the model
    that was quantised (a ModelProto); returns the corrected int8 model."""
    int8 = onnx.load(int8_path)
    fp32_outputs = {node.name: node.output[0] for node in fp32.graph.node if node.op_type == "Conv"}
    convs = [conv for conv in quantised_biases(int8) if conv[0] in fp32_outputs]  # the quantiser keeps node names
    targets = channel_means(fp32, [fp32_outputs[name] for name, _, _, _ in convs], batches)
    initializers = {init.name: init for init in int8.graph.initializer}
    for (_, output, bias, scale), target in zip(convs, targets):
        error = target - channel_means(int8, [output], batches)[0]
        steps = np.round(error / numpy_helper.to_array(initializers[scale]).astype(np.float64))
        moved = numpy_helper.to_array(initializers[bias]).astype(np.int64) + steps.astype(np.int64)
        initializers[bias].CopyFrom(numpy_helper.from_array(
            np.clip(moved, -2 ** 31, 2 ** 31 - 1).astype(np.int32), bias))
    return int8


class PlateReader(CalibrationDataReader):
    """Feeds preprocessed plate batches to the calibration."""

    def __init__(self, batches):
        self.batches = iter(batches)

    def get_next(self):
        x = next(self.batches, None)
        return None if x is None else {"input": x}


@contextlib.contextmanager
def quiet_quantizer():
    """onnxruntime.quantization logs advice (pre-processing, opset) on the root logger at WARNING."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def check_onnxruntime(version):
    """DCU images keep their own (often older) onnxruntime build: say so in one line where it cannot export int8."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found and tuple(map(int, found.groups())) < MIN_ONNXRUNTIME:
        raise QuantizeError(f"int8 export needs onnxruntime {'.'.join(map(str, MIN_ONNXRUNTIME))} or newer, "
                            f"this is {version} (the fp32 export and every engine work with it)")


def resolve_weight_bits(weight_bits="auto"):
    """'auto' -> 8 where this CPU sums int8 products in 32 bits (VNNI, AMX), else 7; 7 or 8 as given."""
    if weight_bits == "auto":
        return 8 if cpu_has_int8_dot_product() else 7
    if str(weight_bits) not in ("7", "8"):
        raise QuantizeError(f"int8 weights take 7 or 8 bits (or auto), not {weight_bits}")
    return int(weight_bits)


def quantize_to_onnx(model, path, plates, dynamic=False, weight_bits="auto"):
    """Write an int8 QDQ ONNX model of `model` (LPRNet; dynamic batch, or static batch 1) to `path`, calibrated on
    uint8 `plates` [N,24,94,3], with 7- or 8-bit weights (`resolve_weight_bits`), recorded in the model's
    metadata."""
    check_onnxruntime(ort.__version__)
    bits = resolve_weight_bits(weight_bits)
    lean = LeanLPRNet(model.float().cpu().eval(), pool_as_conv=True)
    equalize_channels(lean, to_input(plates))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_to_onnx(lean, os.path.join(tmp, "lean.onnx"), dynamic=dynamic)
        fp32_model = onnx.load(fp32)
        batches = calibration_batches(plates, dynamic)

        def write(out):
            overrides = input_overrides(fp32_model.graph) if bits == 7 else {}
            with quiet_quantizer():
                quantize_static(fp32, out, PlateReader(batches), quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=bits == 7, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=float_nodes(fp32_model.graph),
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options={"TensorQuantOverrides": overrides})
            int8 = correct_biases(fp32_model, out, batches)
            onnx.helper.set_model_props(int8, {INT8_WEIGHT_BITS_KEY: str(bits)})
            onnx.save(int8, out)

        write_atomic(path, write)
    return path
