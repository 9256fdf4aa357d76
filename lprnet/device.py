"""Device, precision and thread choices shared by training and torch inference."""
import contextlib
import os

import torch


def select_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_fast_bf16():
    """True on CPUs with AMX or AVX512-BF16, where bf16 convolutions beat fp32 several times over."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_amp(amp, device):
    """'auto' -> 'bf16' where it is fast (AMX/AVX512-BF16 CPUs, bf16-capable GPUs), else 'off'."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "off"
    return "bf16" if cpu_has_fast_bf16() else "off"


def autocast(device, amp):
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_cpu(threads=0):
    """Flush denormals (a third of some published weights are denormal: ~10x slower) and set threads."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)
    elif os.cpu_count():
        torch.set_num_threads(os.cpu_count())
