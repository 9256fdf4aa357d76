import os

import numpy as np
import pytest
import torch

import test as test_script
import train as train_script
from lprnet import device as device_module
from lprnet.device import configure_cpu, resolve_amp, slow_bf16_warning, torch_bf16_error
from lprnet.image import write_image
from lprnet.model import save_checkpoint
from tests.test_model import trained_like

SLOW = "warning: this CPU has no AMX/AVX512-BF16: bf16 runs several times slower than fp32 here (--amp off is faster)"


def test_bf16_is_chosen_and_warned_about_by_what_the_cpu_has(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    assert resolve_amp("auto", cpu) == "off"
    assert slow_bf16_warning("bf16", cpu) == SLOW and slow_bf16_warning("off", cpu) == ""
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(device_module, "torch_bf16_error", lambda device_type: "")  # a torch that runs it
    assert resolve_amp("auto", cpu) == "bf16" and slow_bf16_warning("bf16", cpu) == ""


def two_plates_and_a_model(folder):
    rng = np.random.default_rng(0)
    for i, plate in enumerate(["皖A12345", "苏E88888"]):
        write_image(str(folder / f"{plate}_{i}.jpg"), rng.integers(0, 256, (24, 94, 3), dtype=np.uint8))
    model = str(folder / "m.pth")
    save_checkpoint(model, trained_like(1))
    return model


def test_test_py_warns_once_before_reading_in_slow_bf16(tmp_path, monkeypatch, capsys):
    if torch_bf16_error("cpu"):
        pytest.skip(f"torch {torch.__version__} cannot run LPRNet in bf16 on CPU")
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    model = two_plates_and_a_model(tmp_path)
    score = test_script.run(model, str(tmp_path), amp="bf16", device="cpu")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == SLOW and sum(line == SLOW for line in out) == 1 and score.total == 2
    test_script.run(model, str(tmp_path), amp="off", device="cpu")
    assert "warning" not in capsys.readouterr().out


def test_a_torch_without_bf16_lprnet_trains_and_reads_in_fp32_and_says_why_not_bf16(tmp_path, monkeypatch):
    """torch 1.10 (DCU images) has no bf16 max_pool2d on CPU: `auto` picks fp32, an explicit bf16 is one error
    line from test.py and train.py, not a traceback mid-run."""
    assert torch_bf16_error("cpu") == "" or "BFloat16" in torch_bf16_error("cpu")
    cpu = torch.device("cpu")
    missing = "\"max_pool2d\" not implemented for 'BFloat16'"
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(device_module, "torch_bf16_error", lambda device_type: missing)
    assert resolve_amp("auto", cpu) == "off"
    model = two_plates_and_a_model(tmp_path)
    expected = (f"error: --amp bf16: torch {torch.__version__} cannot run LPRNet in bf16 on cpu ({missing}); "
                "use --amp off")
    with pytest.raises(SystemExit) as e:
        test_script.run(model, str(tmp_path), amp="bf16", device="cpu")
    assert e.value.code == expected
    with pytest.raises(SystemExit) as e:
        train_script.main(["--train_img_dirs", str(tmp_path), "--test_img_dirs", str(tmp_path), "--amp", "bf16",
                           "--device", "cpu", "--save_folder", str(tmp_path / "w")])
    assert e.value.code == expected and not (tmp_path / "w").exists()


def test_threads_default_to_the_cores_this_process_may_use(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # as under taskset -c 3
        configure_cpu(0)
        assert torch.get_num_threads() == 1
        configure_cpu(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
