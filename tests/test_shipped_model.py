"""The files in model/: what a fresh clone runs first (`python LPRNet_ORT_infer.py` on imgs/)."""
from pathlib import Path

import numpy as np

from lprnet.charset import label_from_filename
from lprnet.engines import OrtEngine, TorchEngine
from lprnet.image import list_images
from lprnet.preprocess import greedy_decode, load_plates, to_input

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_model_reads_every_demo_image_in_torch_and_onnx_alike():
    paths, plates, skipped = load_plates(list_images(str(ROOT / "imgs")))
    assert skipped == 0 and len(paths) == 12
    x = to_input(plates)
    torch_logits = TorchEngine(str(ROOT / "model" / "lprnet.pth"), device="cpu")(x)
    ort_logits = OrtEngine(str(ROOT / "model" / "LPRNet.onnx"))(x)
    labels = [label_from_filename(p) for p in paths]
    assert greedy_decode(torch_logits) == labels
    assert greedy_decode(ort_logits) == labels
    assert np.abs(torch_logits - ort_logits).max() < 1e-3 * np.abs(torch_logits).max()


def test_the_shipped_files_stay_small():
    for name in ("lprnet.pth", "LPRNet.onnx"):
        assert 1.5e6 < (ROOT / "model" / name).stat().st_size < 2.5e6
