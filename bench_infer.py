"""Inference speed and accuracy of every engine on this machine, as one markdown table.

    python bench_infer.py --model model/lprnet.pth --imgpath data/val --calib_dir data/train

Engines: torch eager fp32 and bf16 autocast (channels_last, denormals flushed), ONNX Runtime on LPRNet's plain
export and on the lean export (lprnet/export.py), ONNX Runtime int8 (lprnet/quantize.py, calibrated on
--calib_dir; left out without it) and MIGraphX where it is installed. Each is timed on the model's own work
(a preprocessed batch to logits) at each batch size: warm-up, then --reps rounds that take turns between the
engines (so a busy machine slows them alike), median per round. `vs ORT` is the speed ratio to ONNX Runtime
fp32 (lean) at the same batch size. Accuracy: exact-match plates of the whole --imgpath read at that batch size.
The `compute` line gives the model's GFLOP per plate and this machine's matmul rate in fp32 and bf16: how
far the engines are from what the cores can do.
"""
import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

from lprnet.cli import comma_list, str2bool
from lprnet.cpu import cpu_description, usable_cores
from lprnet.device import DeviceError, configure_cpu
from lprnet.engines import EngineError, MIGraphXEngine, MIGraphXUnavailable, OrtEngine, TorchEngine, import_migraphx
from lprnet.evaluate import Score, labelled_plates, markdown_table, read_texts
from lprnet.export import export_to_onnx
from lprnet.model import CheckpointError, load_model
from lprnet.preprocess import INPUT_H, INPUT_W, to_input
from lprnet.quantize import QuantizeError, calibration_plates, quantize_to_onnx, resolve_weight_bits

SETTLE_S = 0.05  # between engines: the last one's idle threads stop spinning (ORT, OpenMP) and leave the cores
ENGINES = ("torch", "torch-bf16", "ort-plain", "ort", "ort-int8", "migraphx")
LABELS = {"torch": "torch eager fp32", "torch-bf16": "torch eager bf16 autocast", "ort-plain": "ORT fp32, plain export",
          "ort": "ORT fp32", "ort-int8": "ORT int8", "migraphx": "MIGraphX fp32"}


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/lprnet.pth", help=".pth checkpoint (ours or LPRNet_Pytorch's)")
    p.add_argument("--imgpath", default="data/val", help="labelled plate crops (file name = plate)")
    p.add_argument("--calib_dir", default="", help="crops to calibrate int8 on; without it there is no int8 row")
    p.add_argument("--calib_count", type=int, default=200)
    p.add_argument("--int8_weight_bits", default="auto", choices=["auto", "7", "8"], help="as in test.py")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of " + ",".join(ENGINES))
    p.add_argument("--batch_sizes", default="1,8,64")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch and ONNX Runtime (0: all cores)")
    p.add_argument("--spin", type=str2bool, default=True, help="ONNX Runtime threads spin (False on a busy CPU)")
    p.add_argument("--reps", type=int, default=7, help="timed rounds per batch size")
    p.add_argument("--round_s", type=float, default=0.2, help="seconds each engine runs per round (at least)")
    return p.parse_args(argv)


def versions():
    import onnx
    import onnxruntime
    import torch
    return (f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
            f"onnx {onnx.__version__}, numpy {np.__version__}")


def open_engines(names, model, net, workdir, batch_sizes, calib_dir, calib_count, weight_bits, threads, spin, log):
    """{name: {batch: engine}} for the checkpoint at `model` (loaded as `net`); an engine that cannot run here
    is reported and left out."""
    engines = {}
    if "torch" in names:
        engines["torch"] = TorchEngine(model, "cpu", "off", threads)
    if "torch-bf16" in names:
        try:
            engines["torch-bf16"] = TorchEngine(model, "cpu", "bf16", threads)
        except EngineError as e:
            log(f"no torch bf16 row: {e}")
    lean = export_to_onnx(net, os.path.join(workdir, "lean.onnx"), dynamic=True)
    if "ort-plain" in names:
        plain = export_to_onnx(net, os.path.join(workdir, "plain.onnx"), dynamic=True, lean=False)
        engines["ort-plain"] = OrtEngine(plain, threads=threads, spin=spin)
    if "ort" in names:
        engines["ort"] = OrtEngine(lean, threads=threads, spin=spin)
    if "ort-int8" in names and not calib_dir:
        log("no ORT int8 row: pass --calib_dir (plate crops to calibrate on)")
    elif "ort-int8" in names:
        bits = resolve_weight_bits(weight_bits)
        path = quantize_to_onnx(net, os.path.join(workdir, "int8.onnx"), calibration_plates(calib_dir, calib_count),
                                dynamic=True, weight_bits=bits)
        log(f"ORT int8: {bits}-bit weights, calibrated on {calib_dir}")
        engines["ort-int8"] = OrtEngine(path, threads=threads, spin=spin)
        engines["ort-int8"].report_warnings(log)
    engines = {name: {b: engine for b in batch_sizes} for name, engine in engines.items()}
    if "migraphx" in names:
        try:
            import_migraphx()
            engines["migraphx"] = {b: MIGraphXEngine(lean, batch_size=b, savepath=os.path.join(workdir, f"b{b}.mxr"),
                                                     log=lambda m: None) for b in batch_sizes}
        except MIGraphXUnavailable:
            log("no MIGraphX row: migraphx is not installed here")
    return engines


def gflop_per_plate(net):
    """Arithmetic of one plate: 2 x the multiply-adds of every convolution (the rest is negligible)."""
    import torch
    macs = []

    def count(conv, inputs, output):
        macs.append(output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1])
    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, INPUT_H, INPUT_W))
    for h in hooks:
        h.remove()
    return 2 * sum(macs) / 1e9


def matmul_gflops(dtype_name, max_n=2048, probe_s=0.5, rounds=5):
    """(n, GFLOP/s) of a square n x n matmul in torch on the configured threads: the rate this machine's cores
    reach on the best-tuned kernel torch has, a yardstick for how close to the hardware an engine runs.
    n doubles from 256 up to max_n while the next size's matmul would take under probe_s: a CPU without
    bf16 instructions multiplies bf16 ~100x slower, and a 2048 matmul there took a minute."""
    import torch
    dtype = getattr(torch, dtype_name)
    n = 256
    while True:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)
        t0 = time.perf_counter()
        torch.mm(a, b)
        if n >= max_n or 8 * (time.perf_counter() - t0) > probe_s:
            break
        n *= 2
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return n, 2 * n ** 3 / min(times) / 1e9


def compute_rates(net, threads):
    """One line: the matmul rate in fp32 and bf16, and what each rate comes to in plates/s for this model."""
    configure_cpu(threads)
    per_plate = gflop_per_plate(net)
    rates = [(name, *matmul_gflops(name)) for name in ("float32", "bfloat16")]
    return (f"compute: LPRNet is {per_plate:.3f} GFLOP per plate; square matmuls run at "
            + ", ".join(f"{g:.0f} GFLOP/s in {name} ({n}x{n}; = {g / per_plate:.0f} plates/s)"
                        for name, n, g in rates))


def score(engine, plates, labels, batch):
    return Score.of(labels, read_texts(engine, plates, batch))


def seconds_per_call(engines, x, reps, round_s):
    """{name: median seconds of one call on x}: warm-up, then `reps` rounds taking turns between engines."""
    calls = {}
    for name, engine in engines.items():
        engine(x)  # first call: allocation, kernel selection
        t0 = time.perf_counter()
        engine(x)
        calls[name] = max(1, int(round_s / max(time.perf_counter() - t0, 1e-6)))
    times = {name: [] for name in engines}
    for _ in range(reps):
        for name, engine in engines.items():
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                engine(x)
            times[name].append((time.perf_counter() - t0) / calls[name])
    return {name: float(np.median(t)) for name, t in times.items()}


def results_table(rows):
    return markdown_table(["engine", "batch", "ms/img", "img/s", "vs ORT", "accuracy"],
                          [[LABELS[name], batch, f"{1000 * seconds / batch:.3f}", f"{batch / seconds:.0f}",
                            "" if ratio is None else f"{ratio:.2f}x", f"{100 * result.accuracy:.2f}%"]
                           for name, batch, seconds, ratio, result in rows])


def run(model="model/lprnet.pth", imgpath="data/val", calib_dir="", calib_count=200, int8_weight_bits="auto",
        engines=",".join(ENGINES), batch_sizes="1,8,64", threads=0, spin=True, reps=7, round_s=0.2, log=print):
    names = comma_list(engines)
    unknown = [n for n in names if n not in ENGINES]
    if unknown:
        sys.exit(f"error: --engines: unknown {', '.join(unknown)} (choose from {', '.join(ENGINES)})")
    try:
        sizes = [int(b) for b in comma_list(batch_sizes)]
    except ValueError:
        sys.exit(f"error: --batch_sizes {batch_sizes}: expected integers such as 1,8,64")
    if min(sizes) < 1 or reps < 1:
        sys.exit("error: --batch_sizes and --reps must be at least 1")
    try:
        plates, labels, _ = labelled_plates(imgpath, log=log)
        if not labels:
            sys.exit(f"error: {imgpath}: no images named by a plate")
        with tempfile.TemporaryDirectory() as workdir:
            net = load_model(model)[0]
            opened = open_engines(names, model, net, workdir, sizes, calib_dir, calib_count, int8_weight_bits,
                                  threads, spin, log)
            rows = []
            for b in sizes:
                x = to_input(np.resize(plates, (b,) + plates.shape[1:]))  # the first b plates, repeated if fewer
                timed = seconds_per_call({n: e[b] for n, e in opened.items()}, x, reps, round_s)
                for name, seconds in timed.items():
                    ratio = timed["ort"] / seconds if "ort" in timed else None
                    rows.append((name, b, seconds, ratio, score(opened[name][b], plates, labels, b)))
    except (CheckpointError, EngineError, QuantizeError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    used = threads or usable_cores()
    log(compute_rates(net, threads))
    log(f"CPU: {cpu_description()}, {os.cpu_count()} cores, {used} threads | {versions()}")
    log(f"{len(labels)} labelled plates from {imgpath}; median of {reps} interleaved rounds")
    log(results_table(rows))
    return rows


def main(argv=None):
    try:
        return run(**vars(parse_opt(argv)))
    except DeviceError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
