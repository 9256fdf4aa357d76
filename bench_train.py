"""Training throughput benchmark: img/s of the real training step (augmentation, forward, CTC, backward,
RMSprop) under each precision and memory layout, on this machine.

    python bench_train.py --imgdir ../shared/data/plates/train --steps 30
"""
import argparse
import os
import sys
import time

import torch

from lprnet.cli import check_flags
from lprnet.cpu import cpu_description, cpu_has_fast_bf16
from lprnet.dataset import PlateDataset, collate, load_samples
from lprnet.device import SLOW_BF16, DeviceError, configure_cpu, resolve_workers, torch_bf16_error
from lprnet.model import LPRNet
from lprnet.training import make_optimizer, train_step

CONFIGS = [("fp32 NCHW", "off", False), ("fp32 channels_last", "off", True), ("bf16 channels_last", "bf16", True)]


def parse_opt(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgdir", default="data/train")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per configuration (after 3 warm-up steps)")
    p.add_argument("--workers", type=int, default=-1, help="data-loading processes (-1: as train.py, none on CPU)")
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def measure(samples, batch_size, steps, workers, amp, channels_last):
    device = torch.device("cpu")
    model = LPRNet().train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, 1e-3)
    loader = torch.utils.data.DataLoader(PlateDataset(samples, train=True), batch_size=batch_size, shuffle=True,
                                         collate_fn=collate, drop_last=True, num_workers=workers)
    done, t0 = 0, None
    while done < steps + 3:
        for images, labels, lengths in loader:
            if done == 3:
                t0 = time.time()
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            train_step(model, optimizer, images, labels, lengths, device, amp)
            done += 1
            if done == steps + 3:
                break
    return steps * batch_size / (time.time() - t0)


def run(imgdir, batch_size=64, steps=30, workers=-1, threads=0):
    check_flags(("--batch_size", batch_size, batch_size >= 1, "at least 1"),
                ("--steps", steps, steps >= 1, "at least 1"),
                ("--workers", workers, workers >= -1, "-1 (as train.py) or more"))
    configure_cpu(threads)
    workers = resolve_workers(workers, torch.device("cpu"))
    samples, skipped = load_samples(imgdir)
    if skipped:
        print(f"skipped {skipped} images (each named above)")
    if len(samples) < batch_size:  # drop_last would leave the loader empty and the timing loop endless
        raise SystemExit(f"error: {imgdir}: {len(samples)} usable images, fewer than --batch_size {batch_size}")
    print(f"machine: {cpu_description()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, fast bf16: {cpu_has_fast_bf16()}")
    print("| configuration | img/s |\n| --- | ---: |")
    results = {}
    for name, amp, channels_last in CONFIGS:
        if amp == "bf16" and not cpu_has_fast_bf16():
            print(f"| {name} | skipped: {SLOW_BF16} |")
            continue
        unavailable = torch_bf16_error("cpu") if amp == "bf16" else ""
        if unavailable:
            print(f"| {name} | skipped: torch {torch.__version__} cannot run it ({unavailable}) |")
            continue
        results[name] = measure(samples, batch_size, steps, workers, amp, channels_last)
        print(f"| {name} | {results[name]:.0f} |", flush=True)
    return results


def main(argv=None):
    try:
        run(**vars(parse_opt(argv)))
    except (DeviceError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
