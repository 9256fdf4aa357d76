"""What the CPU can do, from /proc/cpuinfo (no torch here: the ONNX Runtime engine asks too)."""
import contextlib
import os
import platform


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


def cpu_has_int8_dot_product():
    """True on x86 CPUs with VNNI or AMX-INT8: ONNX Runtime's uint8 x int8 kernels then sum products in 32 bits.
    Without them (plain AVX2, AVX-512 without VNNI) pairs of products are summed in saturating 16 bits."""
    flags = cpu_info()[1]
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_fast_bf16():
    """True on CPUs with AMX or AVX512-BF16, where bf16 convolutions beat fp32 several times over."""
    flags = cpu_info()[1]
    return "amx_bf16" in flags or "avx512_bf16" in flags


def usable_cores():
    """The cores this process may run on (taskset, docker --cpuset-cpus), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
