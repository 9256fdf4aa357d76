import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

from lprnet import model as model_module
from lprnet.model import (
    CheckpointError,
    ColumnsDoubled,
    Dropout,
    LPRNet,
    MaxPoolSubsample,
    average_checkpoints,
    avg_pool_in_strips,
    load_model,
    save_checkpoint,
)


def original_forward(model, x):
    """LPRNet_Pytorch's forward, written out: MaxPool3d on 4-D tensors, normalisation by a batch-wide mean."""
    pool3d = {1: nn.MaxPool3d((1, 3, 3), (1, 1, 1)), 2: nn.MaxPool3d((1, 3, 3), (2, 1, 2)),
              4: nn.MaxPool3d((1, 3, 3), (4, 1, 2))}
    keep = []
    for i, layer in enumerate(model.backbone):
        x = pool3d[layer.channel_step](x) if isinstance(layer, MaxPoolSubsample) else layer(x)
        if i in (2, 6, 13, 22):
            keep.append(x)
    context = []
    for i, f in enumerate(keep):
        if i in (0, 1):
            f = nn.AvgPool2d(5, 5)(f)
        if i == 2:
            f = nn.AvgPool2d((4, 10), (4, 2))(f)
        context.append(f / torch.mean(torch.pow(f, 2)))
    return torch.mean(model.container(torch.cat(context, 1)), dim=2)


def trained_like(seed=0, columns=18):
    """A model with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = LPRNet(columns=columns)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_taps_are_where_lprnet_pytorch_keeps_features():
    assert LPRNet().taps == [2, 6, 13, 22]


def test_2d_pooling_equals_maxpool3d():
    x = torch.randn(2, 128, 20, 90)
    for step, stride_w in ((1, 1), (2, 2), (4, 2)):
        ref = nn.MaxPool3d((1, 3, 3), (step, 1, stride_w))(x)
        assert torch.equal(MaxPoolSubsample(step, stride_w)(x), ref)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(MaxPoolSubsample(step, stride_w)(channels_last), ref)


@pytest.mark.parametrize("bytes_from_words", [True, False])  # False: torch 1.10, which cannot view int64 as bytes
@pytest.mark.parametrize("channels_last", [False, True])
def test_dropout_keeps_half_scaled_and_is_seeded(channels_last, bytes_from_words, monkeypatch):
    if bytes_from_words and not model_module.can_view_as_bytes():
        pytest.skip(f"torch {torch.__version__} cannot view int64 as bytes")
    monkeypatch.setattr(model_module, "can_view_as_bytes", lambda: bytes_from_words)
    x = torch.rand(8, 64, 16, 18) + 0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    drop = Dropout(0.5).train()
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    assert torch.allclose(y[kept], 2 * x[kept])
    for dim in (1, 2, 3):  # no pattern along any axis (a wrong layout view would repeat the mask)
        assert not torch.equal(kept.narrow(dim, 0, 1), kept.narrow(dim, 1, 1))
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


@pytest.mark.parametrize("channels_last,momentum,columns", [(False, 0.1, 18), (True, 0.1, 18), (False, None, 18),
                                                            (True, 0.1, 36)])
def test_cpu_training_pass_with_split_taps_equals_the_plain_pass(channels_last, momentum, columns):
    """Training on CPU computes the subsampled taps' kept and other channels apart; outputs, gradients and
    BatchNorm statistics must be those of the plain pass (which CUDA and eval mode use)."""
    torch.manual_seed(0)
    split = LPRNet(dropout=0.0, columns=columns).train()
    for m in split.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = momentum
    plain = copy.deepcopy(split)
    plain.split_blocks = []
    assert split.split_blocks == [4, 11]
    x = torch.randn(6, 3, 24, 94)
    if channels_last:
        split, plain = (m.to(memory_format=torch.channels_last) for m in (split, plain))
        x = x.contiguous(memory_format=torch.channels_last)
    weights = torch.randn(6, 68, columns)
    y_split, y_plain = split(x), plain(x)
    assert torch.allclose(y_split, y_plain, atol=1e-5)
    (y_split * weights).sum().backward()
    (y_plain * weights).sum().backward()
    scale = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, a), b in zip(split.named_parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-4 * scale), name
    for (name, a), b in zip(split.state_dict().items(), plain.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    assert split.state_dict()["backbone.5.num_batches_tracked"] == 1


def test_avg_pool_in_strips_equals_the_overlapping_pool():
    x = torch.rand(2, 8, 18, 44)
    pool = nn.AvgPool2d((4, 10), (4, 2))
    assert torch.allclose(avg_pool_in_strips(pool, x), pool(x), atol=1e-6)
    for other in (nn.AvgPool2d(5, 5), nn.AvgPool2d(3, 1), nn.Identity()):  # nothing to gain: unchanged
        assert torch.equal(avg_pool_in_strips(other, x), other(x))


def test_single_plate_output_equals_lprnet_pytorch():
    model = trained_like()
    x = torch.randn(1, 3, 24, 94)
    with torch.no_grad():
        ours, theirs = model(x), original_forward(model, x)
    assert ours.shape == (1, 68, 18)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_prediction_does_not_depend_on_batch():
    model = trained_like()
    x = torch.randn(64, 3, 24, 94)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(64)])
        original = original_forward(model, x)
    assert torch.allclose(batched, single, atol=1e-5)
    assert not torch.allclose(original[:1], single[:1], atol=1e-3)  # the batch-wide mean did leak


def test_lprnet_pytorch_state_dict_loads_and_predicts_the_same(tmp_path):
    model = trained_like(1)
    path = tmp_path / "Final_LPRNet_model.pth"
    torch.save(model.state_dict(), path)  # a bare state_dict, as LPRNet_Pytorch saves it
    loaded, ckpt = load_model(str(path))
    x = torch.randn(1, 3, 24, 94)
    with torch.no_grad():
        assert torch.allclose(loaded(x), original_forward(model, x), atol=1e-5)
    assert ckpt["epoch"] == 0


def test_denormal_weights_are_flushed_without_changing_predictions(tmp_path):
    model = trained_like(2)
    state = model.state_dict()
    w = state["backbone.4.block.2.weight"]
    w.view(torch.int32)[w.abs() < 0.01] = 1000  # denormal (~1.4e-42), by its bits: see denormals()
    torch.save(state, tmp_path / "m.pth")
    loaded, _ = load_model(str(tmp_path / "m.pth"))

    def denormals(t):  # by their bits: with torch.set_flush_denormal(True) (an earlier test) they compare as 0
        bits = t.contiguous().view(torch.int32)
        return int((((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)).sum())
    assert denormals(w) > 100
    assert denormals(loaded.state_dict()["backbone.4.block.2.weight"]) == 0
    x = torch.randn(4, 3, 24, 94)
    model.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_bad_checkpoints_raise_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_model(str(tmp_path / "junk.pth"))
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(CheckpointError, match=r"exported model, not a torch checkpoint \(.pth\); LPRNet_ORT_infer.py"):
        load_model(str(tmp_path / "m.onnx"))
    state = LPRNet().state_dict()
    state["backbone.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="wrong-shape"):
        load_model(str(tmp_path / "wrong.pth"))
    torch.save({"container.0.weight": torch.zeros(70, 586, 1, 1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="68-character"):
        load_model(str(tmp_path / "other.pth"))


def test_reference_checkpoint_loads_unmodified(reference_checkpoint):
    model, _ = load_model(str(reference_checkpoint))
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 24, 94))
    assert out.shape == (2, 68, 18) and np.isfinite(out.numpy()).all()


def test_columns_doubled_keeps_the_columns_and_puts_their_mean_between():
    x = torch.tensor([[1.0, 3.0, 7.0]])
    assert torch.equal(ColumnsDoubled(3)(x), torch.tensor([[1.0, 2.0, 3.0, 5.0, 7.0, 7.0]]))


def test_36_columns_compute_the_18_column_features_at_even_columns_with_the_same_parameters():
    narrow = trained_like(6)
    wide = LPRNet(columns=36).eval()
    wide.load_state_dict(narrow.state_dict())  # strict: the same parameter names and shapes
    x = torch.randn(3, 3, 24, 94)
    with torch.no_grad():
        f18, f36 = narrow.backbone(x), wide.backbone(x)
        out = wide(x)
    assert f18.shape[-1] == 18 and f36.shape[-1] == 36 and out.shape == (3, 68, 36)
    assert torch.allclose(f36[..., ::2], f18, atol=1e-5)


def test_checkpoint_remembers_its_columns_and_18_column_weights_load_as_36(tmp_path):
    path = str(tmp_path / "wide.pth")
    save_checkpoint(path, trained_like(7, columns=36))
    assert load_model(path)[0].columns == 36
    narrow = str(tmp_path / "narrow.pth")
    torch.save(trained_like(7).state_dict(), narrow)  # a bare state_dict, as LPRNet_Pytorch saves: 18 columns
    assert load_model(narrow)[0].columns == 18
    wide = load_model(narrow, columns=36)[0]
    with torch.no_grad():
        assert wide(torch.zeros(1, 3, 24, 94)).shape == (1, 68, 36)
    with pytest.raises(ValueError, match="columns must be one of"):
        LPRNet(columns=24)


def test_average_checkpoints_writes_the_weighted_mean_of_every_float(tmp_path):
    a, b = trained_like(1), trained_like(2)
    for m, count in ((a, 5), (b, 9)):
        for bn in m.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.num_batches_tracked.fill_(count)
    paths = [str(tmp_path / "a.pth"), str(tmp_path / "b.pth")]
    save_checkpoint(paths[0], a, epoch=49)
    save_checkpoint(paths[1], b, epoch=51)
    out = str(tmp_path / "soup.pth")
    average_checkpoints(paths, out, weights=[1, 3])
    soup, ckpt = load_model(out)
    sa, sb, ss = a.state_dict(), b.state_dict(), soup.state_dict()
    for name, value in ss.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.25 * sa[name] + 0.75 * sb[name], atol=1e-6), name
        else:
            assert torch.equal(value, sa[name]), name  # batch counts: the first checkpoint's
    assert not torch.allclose(ss["container.0.weight"], sa["container.0.weight"])
    assert ckpt["epoch"] == 51 and ckpt["averaged_from"] == paths and ckpt["averaged_weights"] == [0.25, 0.75]


def test_average_of_one_model_with_itself_is_that_model_bit_for_bit(tmp_path):
    path, out = str(tmp_path / "a.pth"), str(tmp_path / "soup.pth")
    save_checkpoint(path, trained_like(3))
    average_checkpoints([path, path, path], out)
    for name, value in load_model(out)[0].state_dict().items():
        assert torch.equal(value, trained_like(3).state_dict()[name]), name


def test_average_checkpoints_refuses_mixed_columns_and_bad_weights(tmp_path):
    narrow, wide = str(tmp_path / "n.pth"), str(tmp_path / "w.pth")
    save_checkpoint(narrow, trained_like(1))
    save_checkpoint(wide, trained_like(1, columns=36))
    with pytest.raises(CheckpointError, match="different numbers of columns"):
        average_checkpoints([narrow, wide], str(tmp_path / "x.pth"))
    for weights in ([1], [0, 0], [1, -1], [1, float("nan")]):
        with pytest.raises(ValueError, match="need as many weights"):
            average_checkpoints([narrow, narrow], str(tmp_path / "x.pth"), weights=weights)
    assert not (tmp_path / "x.pth").exists()
