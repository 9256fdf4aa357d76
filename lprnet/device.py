"""Device, precision and thread choices shared by training and torch inference."""
import contextlib
import ctypes
import os

import torch

from .cpu import cpu_has_fast_bf16

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def select_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_amp(amp, device):
    """'auto' -> 'bf16' where it is fast (AMX/AVX512-BF16 CPUs, bf16-capable GPUs), else 'off'."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    return "bf16" if cpu_has_fast_bf16() else "off"


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
    torch.set_flush_denormal(True)
    keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    elif os.cpu_count():
        torch.set_num_threads(os.cpu_count())
