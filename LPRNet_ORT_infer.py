"""Recognise plate crops with an LPRNet ONNX model in ONNX Runtime.

    python LPRNet_ORT_infer.py                                          # model/LPRNet.onnx on imgs/
    python LPRNet_ORT_infer.py --model model/LPRNet.onnx --imgpath data/val --output results.csv
    python LPRNet_ORT_infer.py --imgpath imgs --save_vis runs/vis --providers cpu --threads 4
    python LPRNet_ORT_infer.py --model model/LPRNet_int8.onnx --imgpath data/val --spin False   # int8, busy CPU

Prints one line per image (`file  plate  confidence  ✓/✗`, the mark when the file name is a plate), the
accuracy of the labelled ones, and a last line `summary {json}`.
"""
import argparse

from lprnet import infer
from lprnet.cli import piped, str2bool
from lprnet.engines import OrtEngine, ort_providers


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/LPRNet.onnx", help="ONNX model, static or dynamic batch")
    infer.add_io_args(p)
    p.add_argument("--providers", default="auto", help="auto (those of MIGraphX, ROCm, CUDA this onnxruntime has, "
                   "in that order, then CPU), or a comma-separated list such as cuda,cpu or CUDAExecutionProvider")
    p.add_argument("--device_id", type=int, default=0, help="GPU the GPU providers run on")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime (0: one per core)")
    p.add_argument("--spin", type=str2bool, default=True, help="ONNX Runtime threads spin while waiting for work: "
                   "lower latency on an idle CPU; False on a CPU shared with other busy processes (True/False)")
    return p.parse_args(argv)


def run(model="model/LPRNet.onnx", imgpath="imgs", batch_size=64, output="", save_vis="", font="",
        providers="auto", device_id=0, threads=0, spin=True, plate_rules=False, two_rows="auto"):
    return infer.run(lambda: OrtEngine(model, ort_providers(providers), threads, spin, device_id, batch_size), model,
                     imgpath, batch_size, output, save_vis, font, plate_rules, two_rows)


def main(argv=None):
    return run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    piped(main)
