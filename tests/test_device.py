import numpy as np
import torch

import test as test_script
from lprnet import device as device_module
from lprnet.device import resolve_amp, slow_bf16_warning
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
    assert resolve_amp("auto", cpu) == "bf16" and slow_bf16_warning("bf16", cpu) == ""


def test_test_py_warns_once_before_reading_in_slow_bf16(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    rng = np.random.default_rng(0)
    for i, plate in enumerate(["皖A12345", "苏E88888"]):
        write_image(str(tmp_path / f"{plate}_{i}.jpg"), rng.integers(0, 256, (24, 94, 3), dtype=np.uint8))
    model = str(tmp_path / "m.pth")
    save_checkpoint(model, trained_like(1))
    score = test_script.run(model, str(tmp_path), amp="bf16", device="cpu")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == SLOW and sum(line == SLOW for line in out) == 1 and score.total == 2
    test_script.run(model, str(tmp_path), amp="off", device="cpu")
    assert "warning" not in capsys.readouterr().out
