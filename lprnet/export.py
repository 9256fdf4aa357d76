"""Export LPRNet to ONNX: static batch 1 or dynamic batch, one file, opset 12, input `input`, output `output`."""
import inspect
import os

import torch

from .image import write_atomic
from .preprocess import INPUT_H, INPUT_W

OPSET = 12


def export_to_onnx(model, path, dynamic=False, batch=1):
    """Write `model` (eval mode, any device) to `path` atomically and check it with onnx.checker."""
    import onnx
    model = model.float().cpu().eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(batch, 3, INPUT_H, INPUT_W)
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=OPSET, do_constant_folding=True)
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.5 may default to the new exporter (opset 18, external data)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with torch.no_grad():
            torch.onnx.export(model, dummy, tmp, **kwargs)
        onnx.checker.check_model(onnx.load(tmp))

    write_atomic(path, write)
    return path
