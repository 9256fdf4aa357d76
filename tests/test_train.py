"""A short real training run, a resume, and test.py on what it wrote (needs ../shared)."""
import csv
import math
import os

import pytest
import torch

import test as test_script
import train as train_script
from lprnet import training
from lprnet.device import resolve_workers
from lprnet.model import read_checkpoint
from tests.conftest import copy_subset, shared_path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    train = copy_subset(shared_path("data", "plates", "train"), str(root / "train"), 96)
    val = copy_subset(shared_path("data", "plates", "val"), str(root / "val"), 32)
    weights = str(root / "weights")
    train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "1",
                       "--batch_size", "32", "--save_folder", weights, "--workers", "0", "--amp", "off"])
    return train, val, weights


def read_log(weights):
    with open(os.path.join(weights, "log.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_one_epoch_writes_checkpoints_log_and_plot(small_run):
    _, _, weights = small_run
    assert {"last.pth", "best.pth", "log.csv", "log.png", "steps.csv"} <= set(os.listdir(weights))
    rows = read_log(weights)
    assert [r["epoch"] for r in rows] == ["1"] and math.isfinite(float(rows[0]["train_loss"]))
    ckpt = read_checkpoint(os.path.join(weights, "last.pth"))
    assert ckpt["epoch"] == 1 and {"model", "optimizer", "schedule", "args"} <= set(ckpt)
    assert (ckpt["args"]["near_windows"], ckpt["args"]["cut_windows"]) == (0.25, 0.0)  # the framing defaults
    assert not [f for f in os.listdir(weights) if f.endswith(".tmp")]


def test_a_longer_max_epoch_fine_tunes_on_a_fresh_schedule(small_run, tmp_path, capsys):
    train, val, weights = small_run
    tuned = str(tmp_path / "tuned")  # not the shared run's folder: the later tests start from its epoch 1
    train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "2",
                       "--batch_size", "32", "--save_folder", tuned, "--workers", "0", "--amp", "off",
                       "--pretrained_model", os.path.join(weights, "last.pth"), "--resume_epoch", "1"])
    out = capsys.readouterr().out
    # max_epoch changed from 1 to 2, so this is a fine-tune on a fresh schedule, not an exact resume
    assert "fine-tuning from" in out and "training epochs 2..2" in out
    assert [r["epoch"] for r in read_log(tuned)] == ["2"]
    assert read_checkpoint(os.path.join(tuned, "last.pth"))["epoch"] == 2
    assert read_checkpoint(os.path.join(weights, "last.pth"))["epoch"] == 1


def test_resuming_a_run_in_place_from_the_wrong_epoch_is_refused(small_run):
    train, val, weights = small_run
    last = os.path.join(weights, "last.pth")
    with pytest.raises(SystemExit) as e:
        train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "1", "--save_folder",
                           weights, "--pretrained_model", last, "--resume_epoch", "0"])
    assert str(e.value) == (f"error: {last} is this run's checkpoint after epoch 1: --resume_epoch 1 goes on with it "
                            "(to fine-tune it, give another --save_folder)")
    assert read_checkpoint(last)["epoch"] == 1


def test_best_pth_is_written_only_when_val_improves(tmp_path, capsys):
    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imgs")
    train_script.main(["--train_img_dirs", demo, "--test_img_dirs", demo, "--max_epoch", "2", "--batch_size", "4",
                       "--save_folder", str(tmp_path / "w"), "--workers", "0", "--amp", "off"])
    rows = read_log(str(tmp_path / "w"))
    assert [r["val_accuracy"] for r in rows] == ["0.0000", "0.0000"]  # 2 epochs on 12 plates read none
    marks = [line.endswith("[best]") for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert marks == [True, False]


def test_killed_run_resumes_exactly(tmp_path, small_run, monkeypatch, capsys):
    train, val, _ = small_run

    def run(folder, *extra):
        train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "2",
                           "--batch_size", "32", "--save_folder", str(tmp_path / folder), "--workers", "0",
                           "--amp", "off", *extra])

    run("full")
    full = [r["train_loss"] for r in read_log(str(tmp_path / "full"))]

    def killed(*args):  # the process dies right after epoch 1 was saved
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(training, "plot_log", killed)
        with pytest.raises(SystemExit, match="interrupted: continue with --pretrained_model"):
            run("killed")
    capsys.readouterr()
    run("killed", "--pretrained_model", str(tmp_path / "killed" / "last.pth"), "--resume_epoch", "1")
    assert "resuming" in capsys.readouterr().out
    assert [r["train_loss"] for r in read_log(str(tmp_path / "killed"))] == full


def test_test_script_reads_the_trained_checkpoint(small_run, capsys):
    _, val, weights = small_run
    score = test_script.run(os.path.join(weights, "best.pth"), val, batch_size=7)
    out = capsys.readouterr().out.strip().splitlines()
    assert score.total == 32 and out[-1] == score.summary()


def test_test_script_shows_each_misread_with_its_confidence(small_run, capsys):
    _, val, weights = small_run
    score = test_script.run(os.path.join(weights, "best.pth"), val, batch_size=7, show=True)
    misses = [line for line in capsys.readouterr().out.splitlines() if line.startswith("miss ")]
    assert len(misses) == score.total - score.correct > 0  # two epochs on 64 plates misread most of them
    for line, (path, want, got, confidence) in zip(misses, score.misses):
        assert line == f"miss {path}: {want} -> {got or '(empty)'}  {confidence:.2f}" and 0 <= confidence <= 1


def test_data_loading_stays_in_the_training_process_on_cpu_by_default():
    # a loader process fights the compute threads for the cores on CPU; GPUs get up to 4
    assert resolve_workers(-1, torch.device("cpu")) == 0
    assert resolve_workers(3, torch.device("cpu")) == 3
    assert 1 <= resolve_workers(-1, torch.device("cuda")) <= 4


def test_framing_help_states_the_framing_in_use(capsys, monkeypatch):
    monkeypatch.setattr(train_script, "CUT_SHIFT", 0.05)
    with pytest.raises(SystemExit):
        train_script.parse_opt(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    shift = train_script.CONTEXT_FRAMING.shift
    assert f"shifts sideways 5%-{shift * 100:.0f}% of the box width" in help_text


def test_fine_tuning_with_36_columns_keeps_them_and_test_py_and_onnx_read_them(small_run, tmp_path, capsys):
    train, val, weights = small_run
    wide = str(tmp_path / "wide")
    train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "2", "--batch_size", "32",
                       "--save_folder", wide, "--workers", "0", "--amp", "off", "--columns", "36",
                       "--pretrained_model", os.path.join(weights, "last.pth"), "--resume_epoch", "1"])
    assert "fine-tuning from" in capsys.readouterr().out  # 18 -> 36 columns is never an exact resume
    assert read_checkpoint(os.path.join(wide, "last.pth"))["columns"] == 36
    onnx_path = str(tmp_path / "wide.onnx")
    score = test_script.run(os.path.join(wide, "last.pth"), val, batch_size=7, export_onnx=True, dynamic=True,
                            onnx_path=onnx_path)
    assert score.total == 32
    out = capsys.readouterr().out
    assert "ONNX Runtime agrees with torch on all 32 plates" in out


def test_data_that_makes_no_batch_is_one_line(tmp_path, capsys):
    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imgs")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "皖A12345.jpg").write_bytes(b"no image")
    (tmp_path / "two").mkdir()
    for name in ("皖X10391.jpg", "沪AD36956.jpg"):
        with open(os.path.join(demo, name), "rb") as f:
            (tmp_path / "two" / name).write_bytes(f.read())
    for folder, message in [("bad", f"error: no usable training images in {tmp_path / 'bad'}"),
                            ("two", "error: 2 training images make no batch of 4 per process; lower --batch_size")]:
        with pytest.raises(SystemExit) as e:
            train_script.main(["--train_img_dirs", str(tmp_path / folder), "--test_img_dirs", str(tmp_path / "two"),
                               "--batch_size", "4", "--save_folder", str(tmp_path / "w"), "--workers", "0"])
        assert str(e.value) == message
    assert f"skipped {tmp_path / 'bad' / '皖A12345.jpg'}: not a readable image" in capsys.readouterr().out


def test_bad_flag_values_are_refused_before_any_data_is_read(tmp_path):
    absent = str(tmp_path / "absent")  # reading it would fail with "no such file or folder"
    for flags, message in [(["--min_jpeg_quality", "95"], "error: --min_jpeg_quality 95 must be 1 to 89"),
                           (["--resume_epoch", "5", "--max_epoch", "5"], "error: --resume_epoch 5 must be below "
                                                                         "--max_epoch 5"),
                           (["--batch_size", "0"], "error: --batch_size 0 must be at least 1"),
                           (["--lr", "-1"], "error: --lr -1.0 must be above 0"),
                           (["--dropout", "2"], "error: --dropout 2.0 must be from 0 to below 1"),
                           (["--resume_epoch", "-3"], "error: --resume_epoch -3 must be 0 or more"),
                           (["--threads", "-1"], "error: --threads -1 must be 0 (every core) or more"),
                           (["--resume_epoch", "3"], "error: --resume_epoch 3 needs --pretrained_model (the checkpoint "
                                                     "to go on from)"),
                           (["--pretrained_model", absent + ".pth"], f"error: {absent}.pth: no such checkpoint file"),
                           (["--save_folder", __file__], f"error: --save_folder {__file__}: a file, not a folder")]:
        with pytest.raises(SystemExit) as e:
            train_script.main(["--train_img_dirs", absent, "--test_img_dirs", absent, *flags])
        assert str(e.value) == message


def test_killed_fine_tune_resumes_exactly_and_keeps_its_log(tmp_path, small_run, monkeypatch, capsys):
    """A fine-tune (its schedule starts at --resume_epoch 1) killed in epoch 3, resumed from epoch 2's last.pth,
    logs what the uninterrupted run logs: the same losses, and each step once."""
    train, val, weights = small_run

    def run(folder, *extra):
        train_script.main(["--train_img_dirs", train, "--test_img_dirs", val, "--max_epoch", "3",
                           "--batch_size", "32", "--save_folder", str(tmp_path / folder), "--workers", "0",
                           "--amp", "off", *extra])

    start = ["--pretrained_model", os.path.join(weights, "last.pth"), "--resume_epoch", "1"]
    run("full", *start)
    full = tmp_path / "full"
    steps = []

    def dies_in_epoch_3(*args):
        steps.append(1)
        if len(steps) == 5:  # 3 steps an epoch: the second step of epoch 3, after epoch 2 was saved
            raise KeyboardInterrupt
        return original(*args)

    original = training.train_step
    with monkeypatch.context() as m:
        m.setattr(training, "train_step", dies_in_epoch_3)
        with pytest.raises(SystemExit, match="interrupted: continue with --pretrained_model"):
            run("killed", *start)
    killed = tmp_path / "killed"
    with open(str(killed / "steps.csv"), "a", encoding="utf-8") as f:
        f.write("3,0.5\n3,0.4")  # rows of the unfinished epoch, the last one cut short
    capsys.readouterr()
    run("killed", "--pretrained_model", str(killed / "last.pth"), "--resume_epoch", "2")
    assert "resuming" in capsys.readouterr().out
    assert [r["train_loss"] for r in read_log(str(killed))] == [r["train_loss"] for r in read_log(str(full))]
    assert (killed / "steps.csv").read_text() == (full / "steps.csv").read_text()


DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imgs")


def demo_run(folder, *extra):
    train_script.main(["--train_img_dirs", DEMO, "--test_img_dirs", DEMO, "--batch_size", "4", "--amp", "off",
                       "--save_folder", str(folder), *extra])


def test_loader_processes_augment_each_epoch_anew(tmp_path, monkeypatch):
    batches = []
    step = training.train_step

    def recording(model, optimizer, images, *rest):
        batches.append({hash(img.numpy().tobytes()) for img in images.cpu()})
        return step(model, optimizer, images, *rest)
    monkeypatch.setattr(training, "train_step", recording)
    demo_run(tmp_path / "w", "--max_epoch", "2", "--workers", "2")  # 12 plates: 3 steps an epoch
    first, second = set().union(*batches[:3]), set().union(*batches[3:])
    assert len(batches) == 6 and len(first) == len(second) == 12 and not first & second  # persistent: all the same


def test_more_epochs_in_place_keep_the_folders_history(tmp_path, capsys):
    demo_run(tmp_path / "w", "--max_epoch", "1", "--workers", "0")
    first_best = read_checkpoint(str(tmp_path / "w" / "best.pth"))
    demo_run(tmp_path / "w", "--max_epoch", "2", "--workers", "0", "--pretrained_model",
             str(tmp_path / "w" / "last.pth"), "--resume_epoch", "1")
    assert [r["epoch"] for r in read_log(str(tmp_path / "w"))] == ["1", "2"]
    best = read_checkpoint(str(tmp_path / "w" / "best.pth"))
    assert best["val_accuracy"] == first_best["val_accuracy"] == 0.0 and best["epoch"] == 1  # 0% then 0%: no gain


def test_an_exact_resume_into_another_folder_leaves_a_best_pth(tmp_path, monkeypatch):
    def killed(*args):  # right after epoch 1 was saved
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(training, "plot_log", killed)
        with pytest.raises(SystemExit, match="interrupted"):
            demo_run(tmp_path / "a", "--max_epoch", "2", "--workers", "0")
    demo_run(tmp_path / "b", "--max_epoch", "2", "--workers", "0", "--pretrained_model",
             str(tmp_path / "a" / "last.pth"), "--resume_epoch", "1")
    assert os.path.isfile(tmp_path / "b" / "best.pth")
    assert read_checkpoint(str(tmp_path / "b" / "last.pth"))["epoch"] == 2


def test_a_new_run_from_the_folders_own_checkpoint_starts_a_new_history(tmp_path):
    demo_run(tmp_path / "w", "--max_epoch", "1", "--workers", "0")
    demo_run(tmp_path / "w", "--max_epoch", "2", "--workers", "0", "--pretrained_model",
             str(tmp_path / "w" / "last.pth"))  # --resume_epoch 0: a fine-tune over epochs 1..2
    assert [r["epoch"] for r in read_log(str(tmp_path / "w"))] == ["1", "2"]
    best = read_checkpoint(str(tmp_path / "w" / "best.pth"))
    assert best["schedule"]["max_epoch"] == 2  # this run's, not the old run's best.pth
