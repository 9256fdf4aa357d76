"""Device, precision and thread choices shared by training and torch inference."""
import contextlib
import os
import platform

import torch


def select_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_info():
    """(model name, set of ISA flags) from /proc/cpuinfo; flags are empty where it does not exist."""
    name, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return name, flags


def cpu_description():
    """The CPU model and the instruction sets that decide LPRNet's speed, for benchmark headers."""
    name, flags = cpu_info()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
           if f in flags]
    return f"{name} ({', '.join(isa) or 'no AVX2'})"


def cpu_has_fast_bf16():
    """True on CPUs with AMX or AVX512-BF16, where bf16 convolutions beat fp32 several times over."""
    flags = cpu_info()[1]
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
