"""LPRNet (Zherzdev & Gruzdev, 2018) with LPRNet_Pytorch's parameter names, plus checkpoint I/O.

Two deliberate differences from LPRNet_Pytorch, both prediction-preserving for a single plate:
- Its `MaxPool3d(kernel=(1,3,3), stride=(sc,1,sw))` applied to a 4-D tensor pools 3x3 spatially and
  keeps every sc-th channel; it exports to an invalid ONNX node and crashes on channels_last, so we
  write it as `max_pool2d(x, 3, stride=(1, sw))[:, ::sc]`.
- Its global-context features are divided by a mean over the whole batch, so a plate's reading
  depended on its batch-mates; here the mean is per sample.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .charset import NUM_CLASSES
from .image import write_atomic

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
        n = x.numel()
        words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 7) // 8,), dtype=torch.int64)
        keep = words.view(torch.uint8)[:n] >= drop
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape
            keep = keep.view(b, h, w, c).permute(0, 3, 1, 2)
        else:
            keep = keep.view(x.shape)
        return x * keep * (256 / (256 - drop))


class LPRNet(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, dropout=0.5):
        super().__init__()
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
        add(MaxPoolSubsample(4, 2))
        add(Dropout(dropout), nn.Conv2d(64, 256, kernel_size=(1, 4)), nn.BatchNorm2d(256), nn.ReLU())
        add(Dropout(dropout), nn.Conv2d(256, num_classes, kernel_size=(13, 1)),
            nn.BatchNorm2d(num_classes), nn.ReLU(), tap=True)
        self.backbone = nn.Sequential(*layers)
        # the taps pooled to the 4x18 grid of the last feature map
        self.context_pools = nn.ModuleList([
            nn.AvgPool2d(5, 5), nn.AvgPool2d(5, 5), nn.AvgPool2d((4, 10), (4, 2)), nn.Identity()])
        self.container = nn.Sequential(nn.Conv2d(64 + 128 + 256 + num_classes, num_classes, kernel_size=1))

    def forward(self, x):
        features = []
        for i, layer in enumerate(self.backbone):
            x = layer(x)
            if i in self.taps:
                features.append(x)
        context = []
        for f, pool in zip(features, self.context_pools):
            f = pool(f)
            context.append(f / f.pow(2).mean(dim=(1, 2, 3), keepdim=True))
        x = self.container(torch.cat(context, 1))
        return x.mean(dim=2)  # [N, num_classes, 18]


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


def load_model(path, device="cpu"):
    """Build LPRNet from any checkpoint we accept; returns (model in eval mode, checkpoint dict)."""
    ckpt = read_checkpoint(path)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["model"].items()}
    num_classes = state["container.0.weight"].shape[0] if "container.0.weight" in state else 0
    if num_classes != NUM_CLASSES:
        raise CheckpointError(f"{path}: not an LPRNet checkpoint for the 68-character set "
                              f"(container.0.weight has {num_classes or 'no'} classes)")
    model = LPRNet()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or wrong:
        example = (missing + wrong)[0]
        raise CheckpointError(f"{path}: not an LPRNet checkpoint "
                              f"({len(missing)} missing, {len(wrong)} wrong-shape tensors, e.g. {example})")
    model.load_state_dict(flush_denormals_({k: state[k].float() for k in expected}))
    return model.to(device).eval(), ckpt


def save_checkpoint(path, model, **extra):
    """Write {'format', 'model', **extra} atomically (temp file + rename)."""
    model = getattr(model, "module", model)
    state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), **extra}
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def strip_checkpoint(src, dst):
    """Copy a training checkpoint without its optimizer state: the ~2 MB file to ship."""
    model, ckpt = load_model(src)
    keep = {k: ckpt[k] for k in ("epoch", "args", "val_accuracy") if k in ckpt}
    save_checkpoint(dst, model, **keep)
