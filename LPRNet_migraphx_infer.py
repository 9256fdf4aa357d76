"""Recognise plate crops with MIGraphX on a DCU/ROCm GPU.

    python LPRNet_migraphx_infer.py --model model/LPRNet.onnx --imgpath imgs   # compiles, saves model/LPRNet.mxr
    python LPRNet_migraphx_infer.py --model model/LPRNet.onnx --imgpath imgs   # loads model/LPRNet.mxr
    python LPRNet_migraphx_infer.py --model model/LPRNet.mxr --imgpath imgs --output results.json

An .onnx is compiled once for the GPU and saved to --savepath; later runs load that .mxr while it is newer
than the .onnx and compiled for the same batch. A static-batch .onnx is compiled for its own batch, a
dynamic one for --batch_size. Output is the same as LPRNet_ORT_infer.py's.
MIGraphX ships only with DCU/ROCm images (DTK); elsewhere use LPRNet_ORT_infer.py.
"""
import argparse
import sys

from lprnet import infer
from lprnet.cli import piped, str2bool
from lprnet.engines import MIGraphXEngine, MIGraphXUnavailable, import_migraphx


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model/LPRNet.onnx", help=".onnx (compiled, then cached) or compiled .mxr")
    infer.add_io_args(p)
    p.add_argument("--savepath", default="", help="where the compiled .mxr goes "
                   "(default: next to the .onnx, LPRNet.mxr or LPRNet_fp16.mxr)")
    p.add_argument("--fp16", type=str2bool, nargs="?", const=True, default=False,
                   help="compile in fp16 (migraphx.quantize_fp16); --fp16 or --fp16 True")
    p.add_argument("--device_id", type=int, default=0, help="GPU, where the installed MIGraphX accepts device_id")
    return p.parse_args(argv)


def run(model="model/LPRNet.onnx", imgpath="imgs", batch_size=64, output="", save_vis="", font="",
        savepath="", fp16=False, device_id=0, plate_rules=False, two_rows="auto"):
    try:
        import_migraphx()
    except MIGraphXUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return infer.run(lambda: MIGraphXEngine(model, batch_size, savepath, fp16, device_id), model, imgpath,
                     batch_size, output, save_vis, font, plate_rules, two_rows)


def main(argv=None):
    return run(**vars(parse_opt(argv)))


if __name__ == "__main__":
    piped(main)
