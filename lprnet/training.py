"""The training loop behind train.py: CTC + RMSprop with a one-cycle schedule, per-epoch validation,
atomic last/best checkpoints, CSV log and plot. Runs single-process or under torchrun (DDP)."""
import csv
import dataclasses
import math
import os
import time
import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .augment import CONTEXT_FRAMING, PHOTOMETRIC
from .charset import BLANK
from .cli import check_flags
from .cpu import usable_cores
from .dataset import PlateDataset, collate, load_samples
from .device import (
    autocast,
    bf16_unavailable,
    configure_cpu,
    resolve_amp,
    resolve_workers,
    select_device,
    slow_bf16_warning,
)
from .evaluate import score_dataset
from .image import write_atomic, write_lines
from .model import CheckpointError, LPRNet, checkpoint_columns, load_model, read_checkpoint, save_checkpoint

WARMUP = 0.15        # fraction of the schedule spent rising to the peak lr
START_DIV = 25.0     # the schedule starts at lr / START_DIV ...
FINAL_DIV = 1e3      # ... and ends at lr / FINAL_DIV


def one_cycle(progress):
    """lr multiplier at `progress` in [0, 1]: cosine up to 1, then cosine down; never rises again."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < WARMUP:
        lo, t = 1 / START_DIV, progress / WARMUP
    else:
        lo, t = 1 / FINAL_DIV, 1 - (progress - WARMUP) / (1 - WARMUP)
    return lo + (1 - lo) * (1 - math.cos(math.pi * t)) / 2


class Distributed:
    """Rank bookkeeping; a plain `python train.py` is world size 1 and never touches torch.distributed."""

    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            # nccl on CUDA, which ROCm/DCU builds of torch map to RCCL; gloo on CPU
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend)
            print(f"[rank {self.rank}/{self.world}] {backend} process group ready", flush=True)

    @property
    def main(self):
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def mean(self, value):
        """A scalar tensor averaged over all processes, as a float."""
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world
        return value.item()

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


def ctc_loss(logits, labels, lengths):
    log_probs = F.log_softmax(logits.float(), dim=1).permute(2, 0, 1)  # [T, N, C]
    input_lengths = torch.full((logits.shape[0],), logits.shape[2], dtype=torch.long)
    return F.ctc_loss(log_probs, labels, input_lengths, lengths, blank=BLANK, reduction="mean",
                      zero_infinity=True)


def make_optimizer(model, lr):
    return torch.optim.RMSprop(model.parameters(), lr=lr, alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=2e-5)


def train_step(model, optimizer, images, labels, lengths, device, amp):
    """One optimisation step; returns the (detached) CTC loss."""
    with autocast(device, amp):
        logits = model(images)
    loss = ctc_loss(logits, labels, lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def start_state(pretrained_model, resume_epoch, max_epoch, log, columns=0, save_folder=""):
    """(model, checkpoint or None, exact_resume). An exact resume continues the saved run's optimizer and
    schedule; anything else fine-tunes the weights on a fresh schedule from resume_epoch to max_epoch.
    `columns` (0: the checkpoint's, or 18 from scratch) sets the net's output columns."""
    if not pretrained_model:
        return LPRNet(columns=columns or 18), None, False
    model, ckpt = load_model(pretrained_model, columns=columns or None)
    saved = ckpt.get("schedule", {})
    same_run = (checkpoint_columns(ckpt) == model.columns and "optimizer" in ckpt
                and saved.get("max_epoch") == max_epoch and "start_epoch" in saved)
    exact = same_run and ckpt.get("epoch") == resume_epoch
    # a typo in --resume_epoch would restart the run's schedule and trim its logs
    if same_run and is_in_folder(pretrained_model, save_folder) and not exact:
        raise SystemExit(f"error: {pretrained_model} is this run's checkpoint after epoch {ckpt.get('epoch')}: "
                         f"--resume_epoch {ckpt.get('epoch')} goes on with it (to fine-tune it, give another "
                         "--save_folder)")
    log(f"{'resuming' if exact else 'fine-tuning from'} {pretrained_model} "
        f"(epoch {ckpt.get('epoch', 0)}), training epochs {resume_epoch + 1}..{max_epoch}, {model.columns} columns")
    return model, ckpt, exact


def is_in_folder(path, folder):
    return bool(path and folder) and os.path.realpath(os.path.dirname(path)) == os.path.realpath(folder)


def best_so_far(save_folder, keep_history):
    """The val accuracy best.pth holds where this run goes on with the folder's history, else -1 (any first epoch
    is an improvement: every run leaves a best.pth)."""
    best = os.path.join(save_folder, "best.pth")
    if not (keep_history and os.path.isfile(best)):
        return -1.0
    try:
        ckpt = read_checkpoint(best)
    except CheckpointError:  # not ours: the first epoch replaces it
        return -1.0
    return float(ckpt.get("val_accuracy", ckpt.get("best_accuracy", -1.0)))


def set_dropout(model, p):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p


def write_log_row(path, row):
    new = not os.path.exists(path)
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def keep_log_rows(path, last_epoch):
    """Keep the header and the whole rows of epochs up to `last_epoch` of a CSV log whose first column is the
    epoch: a resumed run replaces what the killed one logged after its last checkpoint; a new run (0) starts afresh."""
    if not os.path.exists(path):
        return
    if not last_epoch:
        os.remove(path)
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()

    def kept(line):
        first = line.split(",", 1)[0]
        return line.endswith("\n") and (not first.isdigit() or int(first) <= last_epoch)

    rows = [line for line in lines if kept(line)]
    if rows != lines:
        write_lines(path, rows)


def plot_log(csv_path, png_path):
    # numpy < 2 warns on every np.finfo (which matplotlib calls) while torch has denormals flushed
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The value of the smallest subnormal")
        draw_log(csv_path, png_path)


def draw_log(csv_path, png_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(csv_path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [float(r["train_loss"]) for r in rows], "b-o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("CTC loss", color="b")
    ax2 = ax.twinx()
    ax2.plot(epochs, [100 * float(r["val_accuracy"]) for r in rows], "r-s", ms=3)
    ax2.set_ylabel("val accuracy %", color="r")
    fig.tight_layout()
    write_atomic(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def train(train_img_dirs, test_img_dirs, pretrained_model="", resume_epoch=0, max_epoch=40,
          batch_size=64, lr=2e-3, save_folder="weights", device="auto", workers=-1, seed=0,
          no_augment=False, amp="auto", threads=0, dropout=0.5, sync_bn=True, columns=0,
          near_windows=CONTEXT_FRAMING.near, cut_windows=CONTEXT_FRAMING.cut, gray=PHOTOMETRIC.gray,
          min_jpeg_quality=PHOTOMETRIC.jpeg_quality[0], log=None):
    # the flags' own checks come before any data is read
    jpeg_top = PHOTOMETRIC.jpeg_quality[1]
    check_flags(("--min_jpeg_quality", min_jpeg_quality, 1 <= min_jpeg_quality < jpeg_top, f"1 to {jpeg_top - 1}"),
                ("--batch_size", batch_size, batch_size >= 1, "at least 1"),
                ("--lr", lr, lr > 0, "above 0"),
                ("--dropout", dropout, 0 <= dropout < 1, "from 0 to below 1"),
                ("--resume_epoch", resume_epoch, resume_epoch >= 0, "0 or more"),
                ("--resume_epoch", resume_epoch, resume_epoch < max_epoch, f"below --max_epoch {max_epoch}"),
                ("--threads", threads, threads >= 0, "0 (every core) or more"))
    if pretrained_model and not os.path.isfile(pretrained_model):
        raise SystemExit(f"error: {pretrained_model}: no such checkpoint file")
    if resume_epoch and not pretrained_model:
        raise SystemExit(f"error: --resume_epoch {resume_epoch} needs --pretrained_model (the checkpoint to go on "
                         "from)")
    if os.path.exists(save_folder) and not os.path.isdir(save_folder):
        raise SystemExit(f"error: --save_folder {save_folder}: a file, not a folder")
    device = select_device(device)
    ddp = Distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", ddp.local_rank)
        torch.cuda.set_device(device)
    log = log or (print if ddp.main else (lambda *a, **k: None))
    configure_cpu(max(1, (threads or usable_cores()) // ddp.world))
    amp = resolve_amp(amp, device)
    problem = bf16_unavailable(amp, device)
    if problem:
        raise SystemExit(f"error: {problem}")
    warning = slow_bf16_warning(amp, device)
    if warning:
        log(warning)
    workers = resolve_workers(workers, device)
    torch.manual_seed(seed)

    model, ckpt, exact = start_state(pretrained_model, resume_epoch, max_epoch, log, columns, save_folder)
    train_samples, skipped = load_samples(train_img_dirs, log=log)
    val_samples, val_skipped = load_samples(test_img_dirs, log=log, store_width=None)  # read as test.py reads
    if not train_samples:
        raise SystemExit(f"error: no usable training images in {train_img_dirs}")
    framed = sum(s.framed for s in val_samples)
    if framed:
        log(f"note: {framed} validation images are read cropped to their boxes.tsv box (test.py reads whole images)")
    log(f"train: {len(train_samples)} images ({skipped} skipped), val: {len(val_samples)} ({val_skipped} skipped), "
        f"device {device}, amp {amp}, world size {ddp.world}")

    set_dropout(model, dropout)
    model = model.to(device).to(memory_format=torch.channels_last)
    if ddp.world > 1 and device.type == "cuda" and sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if ddp.world > 1:
        # channels_last 1x1 conv weights have other (equivalent) strides than DDP's flat buckets: harmless here
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    framing = dataclasses.replace(CONTEXT_FRAMING, near=near_windows, cut=cut_windows)
    photo = dataclasses.replace(PHOTOMETRIC, gray=gray, jpeg_quality=(min_jpeg_quality, PHOTOMETRIC.jpeg_quality[1]))
    train_set = PlateDataset(train_samples, train=not no_augment, seed=seed, framing=framing, photo=photo)
    val_set = PlateDataset(val_samples)
    # One process draws the same per-epoch permutation as N processes together, so a global batch
    # holds the same plates whatever N is (only BatchNorm statistics are per process on CPU).
    sampler = torch.utils.data.DistributedSampler(train_set, ddp.world, ddp.rank, seed=seed)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, sampler=sampler, collate_fn=collate, drop_last=True,
        num_workers=workers)  # not persistent: a worker's copy of train_set would keep epoch 1's set_epoch
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise SystemExit(f"error: {len(train_samples)} training images make no batch of {batch_size} "
                         f"per process; lower --batch_size")

    optimizer = make_optimizer(model, lr)
    # a fine-tune's schedule starts at its resume epoch; an exact resume continues the saved one, wherever it started
    schedule = {"start_epoch": ckpt["schedule"]["start_epoch"] if exact else resume_epoch, "max_epoch": max_epoch,
                "lr": lr}
    done = resume_epoch - schedule["start_epoch"]
    total = max_epoch - schedule["start_epoch"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle((done + step / steps_per_epoch) / total))
    if exact:
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr * one_cycle(done / total)
    # going on from this folder's own checkpoint (an exact resume, or more epochs in place) keeps its history
    keep_history = exact or (resume_epoch > 0 and is_in_folder(pretrained_model, save_folder))
    best = best_so_far(save_folder, keep_history)

    os.makedirs(save_folder, exist_ok=True)
    csv_path = os.path.join(save_folder, "log.csv")
    steps_path = os.path.join(save_folder, "steps.csv")
    if ddp.main:
        for log_path in (csv_path, steps_path):
            keep_log_rows(log_path, resume_epoch if keep_history else 0)
    step_log = open(steps_path, "a", encoding="utf-8") if ddp.main else None  # epoch, loss averaged over ranks
    args = dict(train_img_dirs=train_img_dirs, test_img_dirs=test_img_dirs, batch_size=batch_size, lr=lr,
                max_epoch=max_epoch, seed=seed, no_augment=no_augment, amp=amp, dropout=dropout,
                near_windows=near_windows, cut_windows=cut_windows, world_size=ddp.world)

    for epoch in range(resume_epoch, max_epoch):
        model.train()
        torch.manual_seed(seed * 1000 + epoch + 7919 * ddp.rank)  # dropout masks: by epoch (resumable) and rank
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        t0, seen, loss_sum = time.time(), 0, 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{max_epoch}", disable=not ddp.main, leave=False)
        for images, labels, lengths in bar:
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            step_lr = scheduler.get_last_lr()[0]  # the lr this step uses
            loss = train_step(model, optimizer, images, labels, lengths, device, amp)
            scheduler.step()
            seen += images.shape[0] * ddp.world
            step_loss = ddp.mean(loss)
            loss_sum += step_loss
            if ddp.main:
                step_log.write(f"{epoch + 1},{step_loss:.6f}\n")
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{step_lr:.2e}",
                            img_s=f"{seen / (time.time() - t0):.0f}")
        train_seconds = time.time() - t0
        if ddp.main:
            step_log.flush()
        if ddp.main:
            net = getattr(model, "module", model)
            net.eval()
            score = score_dataset(net, val_set, device) if len(val_set) else None
            accuracy = score.accuracy if score else 0.0
            row = {"epoch": epoch + 1, "train_loss": f"{loss_sum / steps_per_epoch:.4f}",
                   "val_accuracy": f"{accuracy:.4f}", "lr": f"{step_lr:.3e}",
                   "img_per_s": f"{seen / train_seconds:.1f}", "seconds": f"{time.time() - t0:.1f}"}
            improved = accuracy > best
            best = max(best, accuracy)
            state = dict(optimizer=optimizer.state_dict(), schedule=schedule, epoch=epoch + 1,
                         best_accuracy=best, val_accuracy=accuracy, args=args)
            if improved:
                save_checkpoint(os.path.join(save_folder, "best.pth"), model, **state)
            write_log_row(csv_path, row)
            save_checkpoint(os.path.join(save_folder, "last.pth"), model, **state)  # last: the epoch's commit point
            plot_log(csv_path, os.path.join(save_folder, "log.png"))
            log(f"epoch {epoch + 1}/{max_epoch}  loss {row['train_loss']}  "
                f"val {score.summary() if score else 'n/a'}  {row['img_per_s']} img/s  {row['seconds']}s"
                + ("  [best]" if improved else ""))
        ddp.barrier()
    if ddp.main:
        step_log.close()
    ddp.close()
    return best
