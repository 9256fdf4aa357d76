"""Device, precision and thread choices shared by training and torch inference."""
import contextlib
import ctypes
import functools
import os

import torch

from .cpu import cpu_has_fast_bf16, usable_cores

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


class DeviceError(ValueError):
    """A --device or --threads value this machine cannot use; the message says which and why."""


def select_device(name="auto"):
    """auto (a GPU/DCU where torch sees one, else the CPU), cpu, cuda or cuda:N (ROCm builds name DCUs cuda)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: not a device here (auto, cpu, cuda, cuda:1 ...)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: this torch sees no GPU/DCU (torch {torch.__version__}); use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: there are {torch.cuda.device_count()} GPUs/DCUs")
    return device


def resolve_amp(amp, device):
    """'auto' -> 'bf16' where it is fast (AMX/AVX512-BF16 CPUs, bf16-capable GPUs) and this torch runs LPRNet in
    bf16 there, else 'off'."""
    if amp != "auto":
        return amp
    fast = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
    return "bf16" if fast and not torch_bf16_error(device.type) else "off"


@functools.lru_cache(maxsize=None)
def torch_bf16_error(device_type):
    """'' where this torch runs LPRNet in bf16 autocast on `device_type` as training and inference do (training
    forward and backward; the folded inference net, channels_last), else why not (torch 1.10 has no bf16
    max_pool2d on CPU)."""
    from .export import LeanLPRNet
    from .model import LPRNet
    device = torch.device(device_type)
    model = LPRNet().to(device).train()
    x = torch.zeros(2, 3, 24, 94, device=device)
    try:
        with autocast(device, "bf16"):
            model(x).float().sum().backward()
            lean = LeanLPRNet(model.eval()).to(memory_format=torch.channels_last)
            with torch.no_grad():
                lean(x.contiguous(memory_format=torch.channels_last))
    except RuntimeError as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return ""


def bf16_unavailable(amp, device):
    """One line for --amp bf16 on a torch that cannot run LPRNet in bf16 on `device`, else ''."""
    error = torch_bf16_error(device.type) if amp == "bf16" else ""
    if error:
        return (f"--amp bf16: torch {torch.__version__} cannot run LPRNet in bf16 on {device.type} ({error}); "
                "use --amp off")
    return ""


SLOW_BF16 = "this CPU has no AMX/AVX512-BF16: bf16 runs several times slower than fp32 here"


def slow_bf16_warning(amp, device):
    """One line for bf16 asked for on a CPU without AMX or AVX512-BF16 (an AVX2-only EPYC read plates ~8x
    slower in bf16 than in fp32), else ''."""
    if amp == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        return f"warning: {SLOW_BF16} (--amp off is faster)"
    return ""


def resolve_workers(workers, device):
    """Data-loading processes; -1: none on CPU, where a loader process fights the compute threads for the
    cores (2-core Xeon: 184-187 img/s with one, 193-197 loading in the training process), up to 4 on a GPU."""
    if workers >= 0:
        return workers
    return 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)


def autocast(device, amp):
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse. By default it hands blocks over ~32 MB (a training batch's
    activations) back to the OS on free, and every step then page-faults them in again: training ran ~15%
    slower. No-op where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)


def configure_cpu(threads=0):
    """Flush denormals (a third of some published weights are denormal: ~10x slower), keep freed memory,
    set threads."""
    if threads < 0:
        raise DeviceError(f"--threads {threads}: must be 0 (every core) or more")
    torch.set_flush_denormal(True)
    keep_freed_memory()
    torch.set_num_threads(threads or usable_cores())
