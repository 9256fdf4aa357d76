"""cut_ccpd.py end to end: all 622 real CCPD photos of ../shared, and the command line."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import bench_cut_ccpd
import cut_ccpd
from lprnet.ccpd import photo_key
from lprnet.charset import label_from_filename
from lprnet.image import list_images, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "ccpd_sample"

# The CCPD README's tables, independent of lprnet.ccpd: the test's own decoding of the names.
PROVINCES = "皖沪津渝冀晋蒙辽吉黑苏浙京闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新警学O"
ALPHABETS = "ABCDEFGHJKLMNPQRSTUVWXYZO"
ADS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789O"


def plate_of(ccpd_file):
    indices = [int(i) for i in os.path.basename(ccpd_file).split("-")[4].split("_")]
    text = PROVINCES[indices[0]] + ALPHABETS[indices[1]] + "".join(ADS[i] for i in indices[2:])
    return text.replace("O", "")


def read_manifest(folder):
    with open(folder / "manifest.tsv", encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t") for line in f if not line.startswith("#"))


def luma(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real CCPD photos not found at {SAMPLE}")
def test_all_sample_photos(tmp_path, capsys):
    out = tmp_path / "crops"
    cut_ccpd.main(["--ccpdpath", str(SAMPLE), "--savepath", str(out), "--workers", "2"])
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    photos = list_images(str(SAMPLE))
    assert len(photos) == 622
    assert summary.startswith("written 622, already there 0, skipped 0;"), summary

    manifest = read_manifest(out)
    assert sorted(manifest) == sorted(photo_key(p) for p in photos)
    crops = sorted(f for f in os.listdir(out) if f.endswith(".jpg"))
    assert sorted(manifest.values()) == crops  # one crop per photo, each its own
    green = 0
    diffs, sharpness = [], []
    for k, (photo, crop) in enumerate(sorted(manifest.items())):
        plate = plate_of(photo)
        assert label_from_filename(crop) == plate, (photo, crop)
        img = read_image(str(out / crop))
        assert img.shape == (24, 94, 3)
        green += len(plate) == 8
        if k % 3:
            continue
        # the crop is the photo's bbox as a full decode gives it (JPEG chroma aside); every third photo
        x1, y1, x2, y2 = (int(v) for v in os.path.basename(photo).split("-")[2].replace("_", "&").split("&"))
        full = cv2.resize(read_image(photo)[y1:y2 + 1, x1:x2 + 1], (94, 24), interpolation=cv2.INTER_AREA)
        diffs.append(np.abs(luma(img) - luma(full)).mean())
        sharpness.append(cv2.Laplacian(luma(img), cv2.CV_64F).var() / cv2.Laplacian(luma(full), cv2.CV_64F).var())
    assert green == 5
    with capsys.disabled():
        print(f"\nvs full decode: luma diff mean {np.mean(diffs):.2f} max {np.max(diffs):.2f}, "
              f"sharpness ratio median {np.median(sharpness):.3f}")
    assert np.mean(diffs) < 3 and np.max(diffs) < 8  # moving the box by one pixel makes 5.6 on average
    assert np.median(sharpness) > 0.85
    with open(out / "skipped.tsv", encoding="utf-8") as f:
        assert f.read().splitlines() == ["# file\treason\tdetail"]

    stamps = {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)}
    cut_ccpd.main(["--ccpdpath", str(SAMPLE), "--savepath", str(out), "--workers", "2"])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("written 0, already there 622, skipped 0;")
    assert {f: os.stat(out / f).st_mtime_ns for f in os.listdir(out)} == stamps  # nothing rewritten


def photo(folder, name, box=(100, 500, 250, 550)):
    img = np.full((1160, 720, 3), (30, 30, 210), np.uint8)
    cv2.rectangle(img, box[:2], box[2:], (200, 80, 20), -1)
    os.makedirs(folder, exist_ok=True)
    write_image(os.path.join(folder, name), img)


GOOD = "025-90_89-100&500_250&550-250&550_100&550_100&500_250&500-0_0_22_27_27_33_16-120-15.jpg"  # 皖AY339S
POLICE = "025-90_89-100&500_250&550-250&550_100&550_100&500_250&500-31_0_22_27_27_33_16-120-15.jpg"


def test_script_runs_and_reports(tmp_path):
    photo(tmp_path / "in", GOOD)
    photo(tmp_path / "in", POLICE)
    result = subprocess.run([sys.executable, str(ROOT / "cut_ccpd.py"), "--ccpdpath", str(tmp_path / "in"),
                             "--savepath", str(tmp_path / "out"), "--workers", "1", "--size", "94x24"],
                            capture_output=True, text=True, encoding="utf-8", cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("written 1, already there 0, skipped 1 (bad_plate 1) -> skipped.tsv;")
    assert any(POLICE in ln and "警" in ln for ln in lines[:-1])
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path / "out") and (tmp_path / "out" / "皖AY339S.jpg").is_file()


def test_user_mistakes_end_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path / "nowhere"), "--savepath", str(tmp_path / "out")])
    assert str(e.value).startswith("error: ") and "nowhere" in str(e.value)
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path), "--savepath", str(tmp_path / "out"), "--split_file",
                       str(tmp_path / "no_split.txt")])
    assert str(e.value).startswith("error: ") and "no_split.txt" in str(e.value)
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path), "--savepath", str(tmp_path / "out"), "--size", "94by24"])
    assert e.value.code == 2 and "94x24" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path), "--savepath", str(tmp_path / "out"), "--size", "70000x24"])
    assert e.value.code == 2 and "--size 70000x24: at most 4096 pixels a side" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path / "empty"), "--savepath", str(tmp_path / "out")])
    assert str(e.value) == (f"error: no crop in {tmp_path / 'out'}: every photo was skipped or none was found "
                            "(see above)")

    photo(tmp_path / "in", GOOD)
    cut_ccpd.main(["--ccpdpath", str(tmp_path / "in"), "--savepath", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        cut_ccpd.main(["--ccpdpath", str(tmp_path / "in"), "--savepath", str(tmp_path / "out"), "--warp"])
    assert str(e.value).startswith("error: ") and "--overwrite" in str(e.value)


def test_flags():
    opt = cut_ccpd.parse_opt(["--ccpdpath", "a", "--savepath", "b"])
    assert (opt.size, opt.workers, opt.split_file, opt.warp, opt.overwrite) == ((94, 24), 0, "", False, False)
    opt = cut_ccpd.parse_opt(["--ccpdpath", "a", "--savepath", "b", "--size", "188x48", "--warp", "--overwrite",
                              "True", "--workers", "3"])
    assert (opt.size, opt.workers, opt.warp, opt.overwrite) == ((188, 48), 3, True, True)


def test_benchmark_prints_rates(tmp_path, capsys):
    photo(tmp_path, GOOD)
    bench_cut_ccpd.main(["--ccpdpath", str(tmp_path), "--workers", "1,2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("workers=1: 1 photos in ") and "photos per CPU-second" in lines[1]
    assert lines[2].startswith("workers=2: 1 photos in ")
    assert os.listdir(tmp_path) == [GOOD]  # the crops went to a temporary folder


@pytest.mark.parametrize("workers, message", [("0", "error: --workers '0': counts must be at least 1"),
                                              ("1", "error: {tmp}: no photo with a CCPD file name to cut")])
def test_benchmark_refuses_no_workers_and_a_folder_without_ccpd_photos(tmp_path, workers, message):
    photo(tmp_path, "皖A12345.jpg")  # a plate crop's name, not a CCPD photo's
    with pytest.raises(SystemExit) as e:
        bench_cut_ccpd.main(["--ccpdpath", str(tmp_path), "--workers", workers])
    assert str(e.value.code) == message.format(tmp=tmp_path)
