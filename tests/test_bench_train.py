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
