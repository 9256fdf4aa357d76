import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

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
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [13]  # README says 13
    pools = [n for n in proto.graph.node if n.op_type == "MaxPool"]  # LPRNet_Pytorch's were 3-D
    assert [helper.get_attribute_value(a) for n in pools for a in n.attribute if a.name == "kernel_shape"] == [
        [3, 3]] * 3
    engine = OrtEngine(path)
    assert engine.fixed_batch == (None if dynamic else 1)
    x = np.random.default_rng(0).standard_normal((5, 3, 24, 94)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = engine(x)  # a static model is fed one plate at a time
    assert got.shape == (5, 68, columns)
    assert np.allclose(got, expected, atol=1e-4)


def test_export_of_lprnets_own_graph_warns_nothing_to_the_user(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_to_onnx(trained_like(3), str(tmp_path / "plain.onnx"), dynamic=True, lean=False)
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
