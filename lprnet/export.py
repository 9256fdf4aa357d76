"""Export LPRNet to ONNX: a static batch (1 by default) or dynamic batch, one file, opset 13, input `input`, output
`output`.

By default the graph is that of `LeanLPRNet`, LPRNet rewritten for inference with the same predictions
(tests/test_quantize.py compares both exports plate by plate on the real validation crops):
- BatchNorm folded into the convolution before it, no Dropout, no Constant nodes;
- the two convolutions whose output LPRNet keeps only every 2nd / 4th channel of (`max_pool2d(x)[:, ::s]`)
  are split into one convolution for the kept channels and one for the others (which only the global context
  reads), so no Slice copies them: ONNX Runtime would otherwise leave its blocked fp32 layout around the Slice,
  and in int8 gather every s-th byte; max pooling then runs on the kept channels only;
- the global context is normalised once for all four feature maps: Concat, Mul, GlobalAveragePool, two 1x1
  convolutions (mean of squares per feature map, then back to its channels) and Div, where the plain export
  has a Pow, ReduceMean and Div per feature map;
- the final mean over the 4 rows stays one ReduceMean (folding it into the container as a 4x1 kernel saves no
  node and makes the file 25% bigger);
- a 36-column net interpolates its pooled context to 36 columns with one MatMul.
"""
import copy
import inspect
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .image import write_atomic
from .model import LPRNet, MaxPoolSubsample, SmallBasicBlock, channel_split
from .preprocess import INPUT_H, INPUT_W

OPSET = 13  # per-channel int8 (DequantizeLinear axis) needs 13; ONNX Runtime, MIGraphX and TensorRT all read it


def conv_with_outputs(conv, channels):
    """A copy of `conv` computing only the given output channels."""
    part = nn.Conv2d(conv.in_channels, len(channels), conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        part.weight.copy_(conv.weight[channels])
        part.bias.copy_(conv.bias[channels])
    return part


def split_at_pools(model):
    """LPRNet's backbone as its stages between the max pools (Dropout left out), and the pools. Each stage ends
    where the global context taps it."""
    stages, pools, ends = [[]], [], []
    for i, m in enumerate(model.backbone):
        if isinstance(m, MaxPoolSubsample):
            pools.append(m)
            stages.append([])
            ends.append(i - 1)
        elif not isinstance(m, nn.Dropout):
            stages[-1].append(m)
    if ends + [len(model.backbone) - 1] != list(model.taps):
        raise ValueError("LeanLPRNet expects the context taps at the end of each stage between max pools")
    return stages, pools


def folded(stage):
    """A stage's layers with SmallBasicBlocks unrolled, each BatchNorm folded into the conv before it, and the
    final ReLU left out (the caller applies it where the context reads it)."""
    layers = []
    for m in stage:
        if isinstance(m, SmallBasicBlock):
            layers.extend(m.block)
        elif isinstance(m, nn.BatchNorm2d):
            layers[-1] = fuse_conv_bn_eval(layers[-1], m)
        else:
            layers.append(m)
    assert isinstance(layers[-1], nn.ReLU)
    return layers[:-1]


def pool_as_depthwise_conv(pool, channels):
    """AvgPool2d as a fixed depthwise convolution: int8 ONNX Runtime runs it ~10x faster than QLinearAveragePool."""
    conv = nn.Conv2d(channels, channels, pool.kernel_size, pool.stride, groups=channels, bias=False)
    kh, kw = conv.kernel_size
    nn.init.constant_(conv.weight, 1.0 / (kh * kw))
    return conv


class LeanLPRNet(nn.Module):
    """An eval-mode LPRNet rebuilt for inference; same input and output, same readings (see module docstring).

    `pool_as_conv` writes the context's average pooling as depthwise convolutions: slower in fp32 ONNX Runtime,
    much faster once quantised (lprnet.quantize uses it).
    """

    def __init__(self, model, pool_as_conv=False):
        super().__init__()
        model = copy.deepcopy(model)  # the layers are reused: changing this model must not change that one
        stages, max_pools = split_at_pools(model)
        (stem,), (*layers1, last1), (*layers2, last2), tail = map(folded, stages)
        self.max_pools = [(p.channel_step, p.stride_w) for p in max_pools]
        self.stem, self.block1, self.block2 = stem, nn.Sequential(*layers1), nn.Sequential(*layers2)
        self.tail = nn.Sequential(*tail)

        (step1, _), (step2, _) = self.max_pools[1:]
        keep1, rest1 = channel_split(last1.out_channels, step1)
        keep2, rest2 = channel_split(last2.out_channels, step2)
        self.keep1, self.rest1 = conv_with_outputs(last1, keep1), conv_with_outputs(last1, rest1)
        self.keep2, self.rest2 = conv_with_outputs(last2, keep2), conv_with_outputs(last2, rest2)

        # the context in this order: stem, keep1, rest1, keep2, rest2, tail (the plain model: stem, 1, 2, tail)
        sizes = [self.stem.out_channels, last1.out_channels, last2.out_channels, self.tail[-1].out_channels]
        offsets = [sum(sizes[:i]) for i in range(4)]
        order = (list(range(sizes[0])) + [offsets[1] + c for c in keep1 + rest1]
                 + [offsets[2] + c for c in keep2 + rest2] + [offsets[3] + c for c in range(sizes[3])])
        pools = list(model.context_pools)[:3]
        if pool_as_conv:
            parts = (sizes[0], len(keep1), len(rest1), len(keep2), len(rest2))
            self.context_pools = nn.ModuleList(pool_as_depthwise_conv(pools[i], n)
                                               for i, n in zip((0, 1, 1, 2, 2), parts))
        else:
            self.context_pools = nn.ModuleList(pools[i] for i in (0, 1, 1, 2, 2))

        self.context_columns = model.context_columns if model.columns != 18 else None
        self.context_parts = (sizes[0], len(keep1), len(rest1), len(keep2), len(rest2), sizes[3])
        total = sum(sizes)
        group_mean = torch.zeros(4, total, 1, 1)
        to_channels = torch.zeros(total, 4, 1, 1)
        for g, (start, size) in enumerate(zip(offsets, sizes)):
            group_mean[g, start:start + size] = 1.0 / size
            to_channels[start:start + size, g] = 1.0
        self.register_buffer("group_mean", group_mean)
        self.register_buffer("to_channels", to_channels)

        container = model.container[0]
        self.head = nn.Conv2d(total, container.out_channels, 1)
        with torch.no_grad():
            self.head.weight.copy_(container.weight[:, order])
            self.head.bias.copy_(container.bias)
        self.eval()

    def channel_links(self):
        """(conv, the convs reading its ReLU output, where its channels start in the context or None) for every
        conv followed by ReLU. ReLU and max pooling commute with positive scales, and each context channel is
        read only by the two 1x1 convs of the head, so `divide_channels` can rescale any of them exactly."""
        chain1 = [m for m in self.block1 if isinstance(m, nn.Conv2d)]
        chain2 = [m for m in self.block2 if isinstance(m, nn.Conv2d)]
        starts = [sum(self.context_parts[:i]) for i in range(len(self.context_parts))]
        return ([(self.stem, chain1[:1], starts[0])]
                + [(a, [b], None) for a, b in zip(chain1, chain1[1:])] + [(chain1[-1], [self.keep1, self.rest1], None)]
                + [(self.keep1, chain2[:1], starts[1]), (self.rest1, [], starts[2])]
                + [(a, [b], None) for a, b in zip(chain2, chain2[1:])] + [(chain2[-1], [self.keep2, self.rest2], None)]
                + [(self.keep2, [self.tail[0]], starts[3]), (self.rest2, [], starts[4]),
                   (self.tail[0], [self.tail[2]], None), (self.tail[2], [], starts[5])])

    def divide_channels(self, link, scale):
        """Divide the output channels of link's conv by `scale` (> 0) and compensate where they are read."""
        conv, readers, start = link
        with torch.no_grad():
            conv.weight /= scale[:, None, None, None]
            conv.bias /= scale
            for reader in readers:
                reader.weight *= scale[None, :, None, None]
            if start is not None:
                part = slice(start, start + len(scale))
                self.group_mean[:, part] *= scale[None, :, None, None] ** 2
                self.head.weight[:, part] *= scale[None, :, None, None]

    def forward(self, x):
        (_, s0), (_, s1), (_, s2) = self.max_pools
        t0 = F.relu(self.stem(x))
        x = self.block1(F.max_pool2d(t0, 3, stride=(1, s0)))
        k1, r1 = F.relu(self.keep1(x)), F.relu(self.rest1(x))
        x = self.block2(F.max_pool2d(k1, 3, stride=(1, s1)))
        k2, r2 = F.relu(self.keep2(x)), F.relu(self.rest2(x))
        t3 = F.relu(self.tail(F.max_pool2d(k2, 3, stride=(1, s2))))
        pooled = [pool(f) for pool, f in zip(self.context_pools, (t0, k1, r1, k2, r2))]
        if self.context_columns is not None:  # 36 columns: one MatMul for the five pooled feature maps
            pooled = [self.context_columns(torch.cat(pooled, 1))]
        context = torch.cat(pooled + [t3], 1)
        mean_square = F.conv2d(F.conv2d(F.adaptive_avg_pool2d(context * context, 1), self.group_mean),
                               self.to_channels)
        return self.head(context / mean_square).mean(dim=2)


def tidy_graph(proto):
    """Constant nodes (axes) become initializers and Identity nodes (the exporter's aliases of equal weights)
    go: nodes a runtime would only have to optimise away."""
    from onnx import numpy_helper
    graph = proto.graph
    for node in [n for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0]))
        graph.node.remove(node)
    outputs = {o.name for o in graph.output}
    for node in [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in outputs]:
        for other in graph.node:
            other.input[:] = [node.input[0] if i == node.output[0] else i for i in other.input]
        graph.node.remove(node)
    return proto


def export_to_onnx(model, path, dynamic=False, batch=1, lean=True, pool_as_conv=False):
    """Write `model` (LPRNet or LeanLPRNet, eval mode, any device) to `path` atomically, checked with
    onnx.checker; `lean=False` exports LPRNet's own graph (for comparison)."""
    import onnx
    model = model.float().cpu().eval()
    if lean and isinstance(model, LPRNet):
        model = LeanLPRNet(model, pool_as_conv)
    model = model.to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(batch, 3, INPUT_H, INPUT_W)
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=OPSET, do_constant_folding=True)
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.5 may default to the new exporter (opset 18, external data)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        with torch.no_grad(), warnings.catch_warnings():
            # LPRNet's shape tests are constant for the fixed 24x94 input: the traced graph is right
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(model, dummy, tmp, **kwargs)
        proto = tidy_graph(onnx.load(tmp))
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

    write_atomic(path, write)
    return path
