import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from lprnet.device import torch_bf16_error
from tests.test_infer import load_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The shipped model and the demo plates (it reads all 12), with a file that is no image."""
    val = tmp_path_factory.mktemp("bench") / "val"
    shutil.copytree(REPO / "imgs", val)
    (val / "notes.txt").write_text("not an image")
    return str(REPO / "model" / "lprnet.pth"), str(val)


def test_bench_prints_one_row_per_engine_and_batch(setup):
    model, val = setup
    lines = []
    rows = load_script("bench_infer.py").run(model, val, calib_dir=val, calib_count=4,
                                             engines="torch,torch-bf16,ort-plain,ort,ort-int8,migraphx",
                                             batch_sizes="1,4", reps=2, round_s=0.001, log=lines.append)
    engines = ["torch", "torch-bf16", "ort-plain", "ort"] + ["ort-int8"]
    if torch_bf16_error("cpu"):  # torch 1.10
        engines.remove("torch-bf16")
        assert any(line.startswith("no torch bf16 row: --amp bf16: torch ") for line in lines)
    if importlib.util.find_spec("migraphx") is None:
        assert "no MIGraphX row: migraphx is not installed here" in lines
    else:
        engines.append("migraphx")
    assert [(name, batch) for name, batch, *_ in rows] == [(n, b) for b in (1, 4) for n in engines]
    compute, machine, data, table = lines[-4], lines[-3], lines[-2], lines[-1].splitlines()
    assert compute.startswith("compute: LPRNet is 0.289 GFLOP per plate; square matmuls run at ")
    assert re.search(r"GFLOP/s in float32 \((256|512|1024|2048)x\1; = \d+ plates/s\), ", compute)
    assert re.search(r"GFLOP/s in bfloat16 \((256|512|1024|2048)x\1; = \d+ plates/s\)$", compute)
    assert machine.startswith("CPU: ") and "onnxruntime" in machine and "torch" in machine
    assert data.startswith(f"12 labelled plates from {val}")
    assert table[0] == "| engine | batch | ms/img | img/s | vs ORT | accuracy |" and len(table) == 2 + len(rows)
    for name, _, _, ratio, score in rows:
        assert score.total == 12
        if name == "ort":
            assert ratio == 1.0
    by_engine = {(name, batch): score.correct for name, batch, _, _, score in rows}
    assert all(by_engine[(n, 1)] == by_engine[(n, 4)] for n in engines)  # the batch never changes a reading
    assert all(by_engine[(n, b)] == 12 for n in ("torch", "ort-plain", "ort") for b in (1, 4))
    assert "| ORT fp32 | 4 | " in lines[-1] and "| 100.00% |" in lines[-1]
    assert any(line.startswith("| ORT int8 | 4 | ") for line in table)


def test_bench_without_calibration_has_no_int8_row(setup):
    model, val = setup
    lines = []
    rows = load_script("bench_infer.py").run(model, val, engines="ort,ort-int8", batch_sizes="2", reps=1,
                                             round_s=0.001, log=lines.append)
    assert [name for name, *_ in rows] == ["ort"]
    assert "no ORT int8 row: pass --calib_dir (plate crops to calibrate on)" in lines


@pytest.mark.parametrize("kwargs,message", [
    (dict(engines="ort,tensorrt"), "error: --engines: unknown tensorrt"),
    (dict(batch_sizes="1,x"), "error: --batch_sizes 1,x: expected integers"),
    (dict(batch_sizes="0"), "error: --batch_sizes and --reps must be at least 1"),
    (dict(model="missing.pth", engines="torch"), "error: missing.pth: no such checkpoint file"),
])
def test_bench_mistakes_exit_with_one_line(setup, kwargs, message):
    model, val = setup
    with pytest.raises(SystemExit) as e:
        load_script("bench_infer.py").run(**{"model": model, "imgpath": val, **kwargs})
    assert str(e.value.code).startswith(message) and "\n" not in str(e.value.code)


def test_matmul_yardstick_shrinks_the_matrix_when_the_type_is_slow():
    bench = load_script("bench_infer.py")
    assert bench.matmul_gflops("float32", max_n=512, probe_s=60)[0] == 512  # fast enough: grows to the cap
    n, gflops = bench.matmul_gflops("bfloat16", probe_s=0)  # any size is "too slow": stays at the smallest
    assert n == 256 and gflops > 0
