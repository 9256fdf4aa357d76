import cv2
import numpy as np
import pytest

import bench_train


def test_missing_folder_exits_with_one_line(tmp_path):
    with pytest.raises(SystemExit) as e:
        bench_train.main(["--imgdir", str(tmp_path / "nowhere"), "--steps", "1"])
    assert str(e.value) == f"error: {tmp_path / 'nowhere'}: no such file or folder"


def test_fewer_images_than_a_batch_exits_instead_of_waiting_forever(tmp_path):
    for name in ("皖A12345.jpg", "京B67890.jpg"):
        cv2.imencode(".jpg", np.full((24, 94, 3), 128, np.uint8))[1].tofile(str(tmp_path / name))
    with pytest.raises(SystemExit) as e:
        bench_train.main(["--imgdir", str(tmp_path), "--steps", "1", "--batch_size", "4"])
    assert str(e.value) == f"error: {tmp_path}: 2 usable images, fewer than --batch_size 4"


@pytest.mark.parametrize("flags,message", [(["--steps", "0"], "--steps 0 must be at least 1"),
                                           (["--batch_size", "-4"], "--batch_size -4 must be at least 1"),
                                           (["--workers", "-3"], "--workers -3 must be -1 (as train.py) or more")])
def test_flags_out_of_range_are_one_line(tmp_path, flags, message):
    with pytest.raises(SystemExit) as e:
        bench_train.main(["--imgdir", str(tmp_path)] + flags)
    assert str(e.value) == f"error: {message}"


def test_one_timed_step_on_a_folder_with_a_bad_image(tmp_path, capsys):
    for name in ("皖A12345.jpg", "京B67890.jpg"):
        cv2.imencode(".jpg", np.full((24, 94, 3), 128, np.uint8))[1].tofile(str(tmp_path / name))
    (tmp_path / "沪C11111.jpg").write_bytes(b"no image")
    results = bench_train.run(str(tmp_path), batch_size=2, steps=1)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"skipped {tmp_path / '沪C11111.jpg'}: not a readable image (corrupt or unsupported format)",
                       "skipped 1 images (each named above)"]
    assert results["fp32 NCHW"] > 0 and f"| fp32 NCHW | {results['fp32 NCHW']:.0f} |" in out
