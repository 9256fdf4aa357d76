"""LPRNet (Zherzdev & Gruzdev, 2018) with LPRNet_Pytorch's parameter names, plus checkpoint I/O.

Two deliberate differences from LPRNet_Pytorch, both prediction-preserving for a single plate:
- Its `MaxPool3d(kernel=(1,3,3), stride=(sc,1,sw))` applied to a 4-D tensor pools 3x3 spatially and
  keeps every sc-th channel; it exports to an invalid ONNX node and crashes on channels_last, so we
  write it as `max_pool2d(x, 3, stride=(1, sw))[:, ::sc]`.
- Its global-context features are divided by a mean over the whole batch, so a plate's reading
  depended on its batch-mates; here the mean is per sample.

`LPRNet(columns=36)` reads 36 columns instead of 18, with the same parameters: the last max pool keeps every
column and the convolution after it skips one (dilation 2), so the even columns hold the values the 18-column
net computes and the odd ones lie between them; the global context, pooled to 18 columns, is
interpolated to 36. Where a plate fills only part of the crop (a loose box), 18 columns leave no room for the
blank CTC needs between two equal characters (8 characters in 12-16 columns); 36 do.
"""
import functools
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from .charset import NUM_CLASSES
from .image import write_atomic
from .preprocess import OUTPUT_COLUMNS

CHECKPOINT_FORMAT = "lprnet-checkpoint-v1"


class SmallBasicBlock(nn.Module):
    def __init__(self, ch_in, ch_out):
        super().__init__()
        mid = ch_out // 4
        self.block = nn.Sequential(
            nn.Conv2d(ch_in, mid, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(mid, mid, kernel_size=(3, 1), padding=(1, 0)),
            nn.ReLU(),
            nn.Conv2d(mid, mid, kernel_size=(1, 3), padding=(0, 1)),
            nn.ReLU(),
            nn.Conv2d(mid, ch_out, kernel_size=1),
        )

    def forward(self, x):
        return self.block(x)


class MaxPoolSubsample(nn.Module):
    """3x3 spatial max pooling with stride (1, stride_w), then every `channel_step`-th channel."""

    def __init__(self, channel_step, stride_w):
        super().__init__()
        self.channel_step, self.stride_w = channel_step, stride_w

    def forward(self, x):
        # pooling is per channel, so dropping channels first gives the same values for a half or a quarter
        # of the work (pooling was the largest cost of a training step)
        if self.channel_step > 1:
            x = x[:, ::self.channel_step]
        return self.pool_kept(x)

    def pool_kept(self, x):
        """The pooling alone, for a tensor that holds only the kept channels."""
        return F.max_pool2d(x, 3, stride=(1, self.stride_w))


class Dropout(nn.Dropout):
    """nn.Dropout drawing one random byte per element on CPU: torch's CPU bernoulli takes ~10 ns per element,
    which made LPRNet's two dropouts a sixth of a training step. Keeps each element with probability
    1 - round(256 p) / 256 (exactly 1 - p for the default 0.5); elsewhere, or when not training, nn.Dropout."""

    def forward(self, x):
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        drop = round(self.p * 256)
        if drop >= 256:
            return torch.zeros_like(x)
        keep = random_bytes(x.numel()) >= drop
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape
            keep = keep.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            keep = keep.view(x.shape)
        return x * keep.to(x.dtype).mul_(256 / (256 - drop))  # one multiply forward and backward


def random_bytes(n):
    """n uniformly random uint8 values: eight from each int64 drawn where torch can view int64 as bytes."""
    if not can_view_as_bytes():
        return torch.randint(0, 256, (n,), dtype=torch.uint8)
    return torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 7) // 8,), dtype=torch.int64).view(torch.uint8)[:n]


@functools.lru_cache(maxsize=None)
def can_view_as_bytes():
    """Tensor.view to a smaller dtype came in torch 1.11."""
    try:
        torch.zeros(1, dtype=torch.int64).view(torch.uint8)
    except RuntimeError:
        return False
    return True


class ColumnsDoubled(nn.Module):
    """[..., n] -> [..., 2n]: the even columns are the input's, each odd one the mean of its two neighbours
    (the last repeats the last column). One MatMul with a fixed matrix in an ONNX graph."""

    def __init__(self, n):
        super().__init__()
        spread = torch.zeros(n, 2 * n)
        for i in range(n):
            spread[i, 2 * i] = 1.0
            spread[i, 2 * i + 1] += 0.5
            spread[min(i + 1, n - 1), 2 * i + 1] += 0.5
        self.register_buffer("spread", spread, persistent=False)

    def forward(self, x):
        return x @ self.spread


class LPRNet(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, dropout=0.5, columns=18):
        super().__init__()
        if columns not in OUTPUT_COLUMNS:
            raise ValueError(f"columns must be one of {OUTPUT_COLUMNS}, not {columns}")
        self.columns = columns
        dense = columns == 36
        layers, self.taps = [], []

        def add(*modules, tap=False):
            layers.extend(modules)
            if tap:  # the output of the last module added feeds the global context
                self.taps.append(len(layers) - 1)

        add(nn.Conv2d(3, 64, kernel_size=3), nn.BatchNorm2d(64), nn.ReLU(), tap=True)
        add(MaxPoolSubsample(1, 1))
        add(SmallBasicBlock(64, 128), nn.BatchNorm2d(128), nn.ReLU(), tap=True)
        add(MaxPoolSubsample(2, 2))
        add(SmallBasicBlock(64, 256), nn.BatchNorm2d(256), nn.ReLU())
        add(SmallBasicBlock(256, 256), nn.BatchNorm2d(256), nn.ReLU(), tap=True)
        add(MaxPoolSubsample(4, 1 if dense else 2))
        add(Dropout(dropout), nn.Conv2d(64, 256, kernel_size=(1, 4), dilation=(1, 2 if dense else 1)),
            nn.BatchNorm2d(256), nn.ReLU())
        add(Dropout(dropout), nn.Conv2d(256, num_classes, kernel_size=(13, 1)),
            nn.BatchNorm2d(num_classes), nn.ReLU(), tap=True)
        self.backbone = nn.Sequential(*layers)
        # blocks whose BatchNorm + ReLU output is tapped, then max pooled keeping every n-th channel
        self.split_blocks = [i for i, m in enumerate(layers[:-3]) if isinstance(m, SmallBasicBlock)
                             and i + 2 in self.taps and isinstance(layers[i + 3], MaxPoolSubsample)
                             and layers[i + 3].channel_step > 1]
        # the taps pooled to the 4x18 grid of the 18-column net's last feature map
        self.context_pools = nn.ModuleList([
            nn.AvgPool2d(5, 5), nn.AvgPool2d(5, 5), nn.AvgPool2d((4, 10), (4, 2)), nn.Identity()])
        self.context_columns = ColumnsDoubled(18) if dense else nn.Identity()
        self.container = nn.Sequential(nn.Conv2d(64 + 128 + 256 + num_classes, num_classes, kernel_size=1))

    def forward(self, x):
        # Training on CPU computes a subsampled tap's kept and other channels apart: the same values, without
        # copying the kept channels out for pooling and a full-size gradient back in (~10% of a CPU step).
        split = self.training and x.device.type == "cpu"
        features, i = [], 0  # (tapped tensors, the tap's channel index of each of their channels or None)
        while i < len(self.backbone):
            if split and i in self.split_blocks:
                block, norm, _, pool = self.backbone[i:i + 4]
                kept, rest, channels = block_output_split(block, norm, x, pool.channel_step)
                features.append(([kept, rest], channels))
                x = pool.pool_kept(kept)
                i += 4
                continue
            x = self.backbone[i](x)
            if i in self.taps:
                features.append(([x], None))
            i += 1
        context = []
        for (parts, _), pool in zip(features, self.context_pools):
            pooled = [avg_pool_in_strips(pool, p) if split else pool(p) for p in parts]
            f = pooled[0] if len(pooled) == 1 else torch.cat(pooled, 1)
            if f.shape[-1] != x.shape[-1]:
                f = self.context_columns(f)
            context.append(f / f.pow(2).mean(dim=(1, 2, 3), keepdim=True))
        x = torch.cat(context, 1)
        if split:  # the container reads the split taps' channels in their new order
            container = self.container[0]
            x = F.conv2d(x, container.weight[:, context_order(features)], container.bias)
        else:
            x = self.container(x)
        return x.mean(dim=2)  # [N, num_classes, columns]


def context_order(features):
    """For each context channel of the split pass, the channel of the plain pass it holds."""
    order, offset = [], 0
    for parts, channels in features:
        count = sum(p.shape[1] for p in parts)
        order.append(offset + (channels if channels is not None else torch.arange(count)))
        offset += count
    return torch.cat(order)


def avg_pool_in_strips(pool, x):
    """pool(x) for an AvgPool2d whose windows overlap along the width only (the (4, 10) pool with stride
    (4, 2)): the mean over stride-wide strips, then over kernel/stride adjacent strips. Same values; the
    overlapping pool's backward took ~4% of a CPU training step."""
    if not isinstance(pool, nn.AvgPool2d):
        return pool(x)
    (kh, kw), (sh, sw) = _pair(pool.kernel_size), _pair(pool.stride)
    if kh != sh or kw == sw or kw % sw or _pair(pool.padding) != (0, 0):
        return pool(x)
    return F.avg_pool2d(F.avg_pool2d(x, (kh, sw), (sh, sw)), (1, kw // sw), 1)


def channel_split(channels, step):
    """(every step-th channel, the others) as index lists."""
    keep = list(range(0, channels, step))
    return keep, [c for c in range(channels) if c % step]


def block_output_split(block, norm, x, step):
    """relu(norm(block(x))) as its every step-th channel and its other channels, each computed on its own, and
    the original channel index of each channel of the two; in training, the BatchNorm statistics are updated
    as by one call."""
    *inner, last = block.block
    for layer in inner:
        x = layer(x)
    momentum = 0.0
    if norm.training:
        norm.num_batches_tracked += 1
        # as nn.BatchNorm2d: a momentum of None is a cumulative average
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
    parts = []
    split = [torch.tensor(c) for c in channel_split(last.out_channels, step)]
    for channels in split:
        y = F.conv2d(x, last.weight[channels], last.bias[channels], last.stride, last.padding)
        mean, var = norm.running_mean[channels], norm.running_var[channels]  # copies
        y = F.batch_norm(y, mean, var, norm.weight[channels], norm.bias[channels], norm.training,
                         momentum, norm.eps)
        if norm.training:
            with torch.no_grad():
                norm.running_mean[channels], norm.running_var[channels] = mean, var
        parts.append(F.relu(y))
    return parts[0], parts[1], torch.cat(split)


class CheckpointError(ValueError):
    """A file is not an LPRNet checkpoint this code can load."""


def flush_denormals_(state_dict):
    """Zero the denormal floats some published checkpoints are full of: they slow CPUs ~10x, change nothing."""
    tiny = torch.finfo(torch.float32).tiny
    for t in state_dict.values():
        if t.is_floating_point():
            t[t.abs() < tiny] = 0
    return state_dict


def read_checkpoint(path):
    """The checkpoint dict at `path` (our format) or a bare LPRNet_Pytorch state_dict wrapped in one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.lower().endswith((".onnx", ".ort", ".mxr")):
        raise CheckpointError(f"{path}: an exported model, not a torch checkpoint (.pth); "
                              "LPRNet_ORT_infer.py reads and scores .onnx models")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False) if _has_weights_only() \
            else torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many types for a non-checkpoint file
        raise CheckpointError(f"{path}: not a torch checkpoint ({type(e).__name__}: {str(e)[:80]})") from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return {"format": CHECKPOINT_FORMAT, "model": obj, "epoch": 0}
    raise CheckpointError(f"{path}: neither an LPRNet checkpoint nor a state_dict")


def _has_weights_only():
    import inspect
    return "weights_only" in inspect.signature(torch.load).parameters


def checkpoint_columns(ckpt):
    """The output columns a checkpoint was trained with; LPRNet_Pytorch's and older ones do not say: 18."""
    return ckpt.get("columns", 18)


def load_model(path, columns=None):
    """Build LPRNet from any checkpoint we accept; returns (model in eval mode, checkpoint dict). The net reads
    the checkpoint's number of output columns (18 where it does not say), or `columns`: the parameters are
    the same."""
    ckpt = read_checkpoint(path)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["model"].items()}
    num_classes = state["container.0.weight"].shape[0] if "container.0.weight" in state else 0
    if num_classes != NUM_CLASSES:
        raise CheckpointError(f"{path}: not an LPRNet checkpoint for the 68-character set "
                              f"(container.0.weight has {num_classes or 'no'} classes)")
    model = LPRNet(columns=columns or checkpoint_columns(ckpt))
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or wrong:
        example = (missing + wrong)[0]
        raise CheckpointError(f"{path}: not an LPRNet checkpoint "
                              f"({len(missing)} missing, {len(wrong)} wrong-shape tensors, e.g. {example})")
    model.load_state_dict(flush_denormals_({k: state[k].float() for k in expected}))
    return model.eval(), ckpt


def save_checkpoint(path, model, **extra):
    """Write {'format', 'model', 'columns', **extra} atomically (temp file + rename)."""
    model = getattr(model, "module", model)
    state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "columns": model.columns, **extra}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def strip_checkpoint(src, dst):
    """Copy a training checkpoint without its optimizer state: the ~2 MB file to ship."""
    model, ckpt = load_model(src)
    keep = {k: ckpt[k] for k in ("epoch", "args", "val_accuracy") if k in ckpt}
    save_checkpoint(dst, model, **keep)


def average_checkpoints(sources, dst, weights=None):
    """Write the weighted mean of several fine-tunes of one model (a "model soup", Wortsman et al. 2022): it
    keeps what they share and averages out what each run's seed and data added. Only fine-tunes from one starting
    point average well (the code cannot tell). Floats are averaged (BatchNorm's running statistics too), integer
    buffers come from the first checkpoint; the result keeps the highest epoch and names its sources, not the
    runs' training arguments."""
    weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
    if (not sources or len(weights) != len(sources) or not all(math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0):
        raise ValueError(f"average_checkpoints: {len(sources)} checkpoints need as many weights >= 0, "
                         f"not all 0 (got {weights})")
    loaded = [load_model(path) for path in sources]
    if len({model.columns for model, _ in loaded}) > 1:
        raise CheckpointError("average_checkpoints: the checkpoints read different numbers of columns")
    states = [model.state_dict() for model, _ in loaded]
    total = sum(weights)
    mean = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            mean[name] = (sum(s[name].double() * w for s, w in zip(states, weights)) / total).float()
        else:
            mean[name] = first
    model = loaded[0][0]
    model.load_state_dict(mean)
    save_checkpoint(dst, model, epoch=max(ckpt.get("epoch", 0) for _, ckpt in loaded),
                    averaged_from=[str(path) for path in sources], averaged_weights=[w / total for w in weights])
