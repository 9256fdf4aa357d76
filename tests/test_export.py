import numpy as np
import onnx
import pytest
import torch

from lprnet.engines import OrtEngine
from lprnet.export import export_to_onnx
from tests.test_model import trained_like


@pytest.mark.parametrize("dynamic,columns", [(False, 18), (True, 18), (True, 36)])
def test_onnx_matches_torch(tmp_path, dynamic, columns):
    model = trained_like(3, columns)
    path = str(tmp_path / "m.onnx")
    export_to_onnx(model, path, dynamic=dynamic)
    proto = onnx.load(path)
    assert [f for f in tmp_path.iterdir()] == [tmp_path / "m.onnx"]  # one file, no external data
    assert proto.opset_import[0].version >= 11
    assert not any(n.op_type == "MaxPool" and len(n.attribute) and n.input[0].endswith("3d")
                   for n in proto.graph.node)
    engine = OrtEngine(path)
    assert engine.fixed_batch == (None if dynamic else 1)
    x = np.random.default_rng(0).standard_normal((5, 3, 24, 94)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = engine(x)  # a static model is fed one plate at a time
    assert got.shape == (5, 68, columns)
    assert np.allclose(got, expected, atol=1e-4)
