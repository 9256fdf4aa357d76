"""Measure LPRNet's exact-match accuracy on labelled plate crops, and optionally export it to ONNX.

    python test.py --model model/lprnet.pth --imgpath data/val
    python test.py --model model/lprnet.pth --imgpath data/val --export_onnx True --dynamic True
    python test.py --model model/lprnet.pth --imgpath data/val --export_onnx True --int8 True --calib_dir data/train
"""
import argparse
import functools
import os
import sys
import time

from lprnet.cli import add_plate_rules_flag, add_two_rows_flag, check_flags, piped, str2bool
from lprnet.device import slow_bf16_warning
from lprnet.engines import EngineError, OrtEngine, TorchEngine
from lprnet.evaluate import Score, labelled_images, read_crops, two_row_note
from lprnet.export import export_to_onnx
from lprnet.model import CheckpointError
from lprnet.preprocess import load_plates


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/lprnet.pth", help=".pth checkpoint (ours or LPRNet_Pytorch's)")
    p.add_argument("--imgpath", default="data/val", help="folder (recursive) or single image, named by plate")
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--export_onnx", type=str2bool, default=False, help="also write an ONNX model (True/False)")
    p.add_argument("--dynamic", type=str2bool, default=False, help="ONNX with a dynamic batch axis (True/False)")
    p.add_argument("--onnx_path", default="model/LPRNet.onnx")
    p.add_argument("--int8", type=str2bool, default=False, help="with --export_onnx: also write <onnx_path>_int8.onnx, "
                   "statically quantised for ONNX Runtime on CPUs, and score it (True/False)")
    p.add_argument("--calib_dir", default="", help="plate crops to calibrate int8 on (not the --imgpath ones)")
    p.add_argument("--calib_count", type=int, default=200, help="how many --calib_dir crops, spread evenly")
    p.add_argument("--int8_weight_bits", default="auto", choices=["auto", "7", "8"],
                   help="8 is more accurate but saturates on CPUs without VNNI/AMX, 7 runs right everywhere; "
                   "auto: 8 when this CPU has VNNI or AMX")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="off", choices=["off", "bf16"], help="bf16 autocast for torch inference")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--show", type=str2bool, nargs="?", const=True, default=False,
                   help="print every misread plate with its confidence (--show, or --show True/False)")
    add_plate_rules_flag(p)
    add_two_rows_flag(p, auto=True)
    return p.parse_args(argv)


def export_checked(model, onnx_path, dynamic, read, expected):
    """Export to a temporary .onnx beside `onnx_path` and rename it onto `onnx_path` only once ONNX Runtime reads
    every crop as torch did (`read(engine)`: read_crops for the crops torch read as `expected`): an export that
    disagrees never replaces the model there."""
    folder, name = os.path.split(os.path.abspath(onnx_path))
    tmp = os.path.join(folder, f".{os.getpid()}.{name}")  # keeps the extension ONNX Runtime wants
    try:
        export_to_onnx(model, tmp, dynamic=dynamic)
        engine = OrtEngine(tmp)
        readings, _ = read(engine)
        differ = sum(text != want for (text, _), want in zip(readings, expected))
        batch = engine.fixed_batch or "dynamic"
        if differ:
            sys.exit(f"error: the export to {onnx_path} (batch {batch}) disagrees with torch on "
                     f"{differ}/{len(expected)} plates; {onnx_path} is left as it was")
        os.replace(tmp, onnx_path)
    except OSError as e:
        sys.exit(f"error: --onnx_path {onnx_path}: cannot write it ({e.strerror or e})")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"exported {onnx_path} (batch {batch}, {os.path.getsize(onnx_path) / 1e6:.1f} MB): "
          f"ONNX Runtime agrees with torch on all {len(expected)} plates")


def int8_settings(calib_dir, calib_count, weight_bits):
    """(calibration plates, weight bits) for export_int8, checked before anything is read or exported."""
    from lprnet.quantize import QuantizeError, calibration_plates, resolve_weight_bits
    try:
        return calibration_plates(calib_dir, calib_count), resolve_weight_bits(weight_bits)
    except QuantizeError as e:
        sys.exit(f"error: {e}")


def export_int8(model, onnx_path, read, expected, labels, torch_accuracy, calib_dir, calibration, bits, dynamic):
    """Quantise, then score the int8 model on the same crops read the same way (`read(engine)`) as torch
    (`expected`, `torch_accuracy`: torch's readings and their accuracy)."""
    from lprnet.quantize import QuantizeError, int8_path_for, quantize_to_onnx
    path = int8_path_for(onnx_path)
    try:
        quantize_to_onnx(model, path, calibration, dynamic=dynamic, weight_bits=bits)
        engine = OrtEngine(path)
        readings, _ = read(engine)
        got = [text for text, _ in readings]
    except (QuantizeError, EngineError) as e:
        sys.exit(f"error: {e}")
    engine.report_warnings()
    score = Score.of(labels, got)
    differ = sum(a != b for a, b in zip(got, expected))
    print(f"exported {path} (int8, {bits}-bit weights, {os.path.getsize(path) / 1e6:.1f} MB, "
          f"calibrated on {len(calibration)} crops "
          f"from {calib_dir}): {score.summary()}, {100 * (score.accuracy - torch_accuracy):+.2f} points "
          f"vs torch, {differ}/{len(expected)} plates read differently")


def run(model, imgpath, batch_size=100, export_onnx=False, dynamic=False, onnx_path="model/LPRNet.onnx",
        device="auto", amp="off", threads=0, show=False, int8=False, calib_dir="", calib_count=200,
        int8_weight_bits="auto", plate_rules=False, two_rows="auto"):
    check_flags(("--batch_size", batch_size, batch_size >= 1, "at least 1"),
                ("--calib_count", calib_count, calib_count >= 1, "at least 1"))
    if int8 and not export_onnx:
        sys.exit("error: --int8 True needs --export_onnx True")
    if int8 and not calib_dir:
        sys.exit("error: --int8 True needs --calib_dir: a folder of plate crops to calibrate on")
    calibration, bits = int8_settings(calib_dir, calib_count, int8_weight_bits) if int8 else (None, None)
    try:
        engine = TorchEngine(model, device, amp, threads)
        paths, labels, bad_labels = labelled_images(imgpath)
    except (CheckpointError, EngineError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    warning = slow_bf16_warning(amp, engine.device)
    if warning:
        print(warning)
    read, plates, unreadable = load_plates(paths, two_rows=two_rows is True)
    truth = dict(zip(paths, labels))
    t0 = time.time()
    read_with = functools.partial(read_crops, crops=read, plates=plates, batch_size=batch_size,
                                  plate_rules=plate_rules, two_rows=two_rows)  # every engine reads alike
    readings, changed = read_with(engine)
    seconds = time.time() - t0
    if changed:
        print(two_row_note(two_rows, len(changed)))
    texts = [text for text, _ in readings]  # what the exported models must read alike

    score = Score.of([truth[p] for p in read], texts, read, [confidence for _, confidence in readings])
    if show:
        for path, want, got, confidence in score.misses:
            print(f"miss {path}: {want} -> {got or '(empty)'}  {confidence:.2f}")
    skipped = bad_labels + unreadable
    print(f"images: {score.total} read, {skipped} skipped | correct {score.correct}, "
          f"wrong length {score.wrong_length}, wrong characters {score.wrong_chars} | "
          f"{score.total / max(seconds, 1e-9):.0f} img/s ({engine.name}, batch {batch_size})")
    if not score.total:
        sys.exit(f"error: {imgpath}: no labelled image could be read ({skipped} skipped)")

    if export_onnx:
        accuracy = score.accuracy
        if amp != "off":  # the export is float32: it must read as torch does in float32
            texts = [text for text, _ in read_with(TorchEngine(model, device, "off", threads))[0]]
            accuracy = Score.of([truth[p] for p in read], texts).accuracy
            print("the float32 export is checked against torch in float32")
        try:
            export_checked(engine.model, onnx_path, dynamic, read_with, texts)
        except EngineError as e:
            sys.exit(f"error: {e}")
        if int8:
            export_int8(engine.model, onnx_path, read_with, texts, [truth[p] for p in read], accuracy,
                        calib_dir, calibration, bits, dynamic)
    print(score.summary())
    return score


def main(argv=None):
    run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    piped(main)
