"""lprnet.ccpd on generated CCPD-named photos: name parsing, cropping, skips, naming, resuming."""
import os

import cv2
import numpy as np
import pytest

from lprnet import ccpd as ccpd_module
from lprnet.ccpd import (
    MANIFEST,
    SKIPPED,
    CcpdNameError,
    CutError,
    choose_reduction,
    cut_ccpd,
    parse_ccpd_name,
)
from lprnet.ccpd_tables import plate_to_indices
from lprnet.charset import LabelError
from lprnet.image import read_image, write_image

BLUE, RED, GREEN = (200, 80, 20), (30, 30, 210), (60, 200, 60)  # BGR


def ccpd_name(plate, box, corners=None, head="025"):
    """A CCPD file name; `corners` are TL, TR, BR, BL (default: the box's)."""
    x1, y1, x2, y2 = box
    tl, tr, br, bl = corners if corners is not None else [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    vertices = "_".join(f"{x}&{y}" for x, y in (br, bl, tl, tr))
    indices = "_".join(map(str, plate_to_indices(plate) if isinstance(plate, str) else plate))
    return f"{head}-90_89-{x1}&{y1}_{x2}&{y2}-{vertices}-{indices}-120-15.jpg"


def make_photo(folder, plate, box, colour=BLUE, size=(720, 1160), corners=None, head="025"):
    """A red photo with a plate-coloured quad (the box, or `corners`) and white bars inside; returns its path."""
    w, h = size
    img = np.full((h, w, 3), RED, np.uint8)
    x1, y1, x2, y2 = box
    quad = np.int32(corners if corners is not None else [(x1, y1), (x2, y1), (x2, y2), (x1, y2)])
    cv2.fillConvexPoly(img, quad, colour)
    for k in range(1, 7):  # character-like white bars inside the box
        cx = x1 + (x2 - x1) * k // 7
        cv2.rectangle(img, (cx - 2, y1 + (y2 - y1) // 4), (cx + 2, y2 - (y2 - y1) // 4), (255, 255, 255), -1)
    path = os.path.join(folder, ccpd_name(plate, box, corners, head))
    os.makedirs(folder, exist_ok=True)
    write_image(path, img)
    return path


def cut(src, dst, **kw):
    lines = []
    kw.setdefault("workers", 1)
    summary = cut_ccpd(str(src), str(dst), progress=False, log=lines.append, **kw)
    return summary, lines


def skipped_rows(folder):
    with open(os.path.join(folder, SKIPPED), encoding="utf-8") as f:
        return {os.path.basename(r[0]): r[1] for r in (line.rstrip("\n").split("\t") for line in f)
                if not r[0].startswith("#")}


def crops(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))


def luma(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)


def mean_colour(path):
    return read_image(path).reshape(-1, 3).mean(axis=0)


# --- names ---------------------------------------------------------------------------------------

def test_parse_real_name_and_long_id():
    name = "0254-91_84-220&469_341&511-328&514_224&510_224&471_328&475-10_2_5_22_31_31_27-103-12.jpg"
    label = parse_ccpd_name(os.path.join("some", "dir", name))
    assert label.plate == "苏CFY773"
    assert label.box == (220, 469, 341, 511)
    np.testing.assert_array_equal(label.corners, [[224, 471], [328, 475], [328, 514], [224, 510]])
    long_id = parse_ccpd_name("003748802682" + name[4:])
    assert long_id.plate == label.plate and long_id.box == label.box
    green = parse_ccpd_name("004504310344827586-86_270-291&474_390&516-390&513_293&516_291&483_387&474-"
                            "0_0_3_25_25_25_30_30-228-16.jpg")
    assert green.plate == "皖AD11166"  # 8 characters
    # 'O' (index 34 of the last table) means no character
    assert parse_ccpd_name(ccpd_name([0, 0, 3, 25, 34, 25, 30, 30], (10, 20, 110, 60))).plate == "皖AD1166"


@pytest.mark.parametrize("name", [
    "皖A12345.jpg",                                                           # a crop, not a photo
    "1005.jpg",                                                               # ccpd_np: no plate
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120.jpg",  # 6 fields
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15-9.jpg",  # 8 fields
    "025-90_89-10&20_110-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # bbox of 3 numbers
    "025-90_89-10&20_1x0&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # letter in bbox
    "025-90_89-10&20_110&60-110&60_10&60_10&20-0_0_1_2_3_4_5-120-15.jpg",  # 3 vertices
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4-120-15.jpg",  # 6 indices
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5_6_7-120-15.jpg",  # 9 indices
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_35_4_5-120-15.jpg",  # index past ADS
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&20-34_0_1_2_3_4_5-120-15.jpg",  # past PROVINCES
    "025-90_89-110&20_10&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # x2 < x1
    "025-90-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # tilt of one number
    "abc-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # area not a number
    "025-90_89-10&20_110&60-50&40_50&40_50&40_50&40-0_0_1_2_3_4_5-120-15.jpg",  # the corners one point
    "025-90_89-10&20_110&60-110&60_10&60_10&58_110&58-0_0_1_2_3_4_5-120-15.jpg",  # a sliver
    "025-90_89-10&20_110&60-410&60_310&60_310&20_410&20-0_0_1_2_3_4_5-120-15.jpg",  # far right of the bbox
    "025-90_89-10&20_110&60-10&20_110&20_110&60_10&60-0_0_1_2_3_4_5-120-15.jpg",  # from the top-left: upside down
    "025-90_89-10&20_110&60-110&60_110&20_10&20_10&60-0_0_1_2_3_4_5-120-15.jpg",  # counter-clockwise: mirrored
    "025-90_89-10&20_110&60-110&60_10&60_10&20_110&60-0_0_1_2_3_4_5-120-15.jpg",  # a corner twice
    "０２５-90_89-10&20_110&60-110&60_10&60_10&20_110&20-0_0_1_2_3_4_5-120-15.jpg",  # full-width digits
])
def test_parse_rejects_malformed_names(name):
    with pytest.raises(CcpdNameError):
        parse_ccpd_name(name)


@pytest.mark.parametrize("indices, char", [
    ([31, 0, 1, 2, 3, 4, 5], "警"),
    ([32, 0, 1, 2, 3, 4, 5], "学"),
    ([33, 0, 1, 2, 3, 4, 5], None),   # 'O' province: 6 characters
    ([0, 0, 1, 2, 3, 4, 34], None),   # 'O' last character
    ([0, 24, 1, 2, 3, 4, 5], None),   # 'O' letter
    ([0, 0, 26, 2, 3, 4, 5, 6], None),  # 8 characters without D/F: not a green plate
])
def test_parse_rejects_plates_outside_charset(indices, char):
    with pytest.raises(LabelError) as e:
        parse_ccpd_name(ccpd_name(indices, (10, 20, 110, 60)))
    if char:
        assert char in str(e.value)


def test_choose_reduction_keeps_plate_one_and_a_half_times_the_output():
    assert choose_reduction(100, 30, (94, 24)) == 1
    assert choose_reduction(281, 80, (94, 24)) == 1   # 140.5 wide at 1/2: under 1.5 x 94
    assert choose_reduction(282, 72, (94, 24)) == 2
    assert choose_reduction(600, 143, (94, 24)) == 2  # 35.75 high at 1/4: under 1.5 x 24
    assert choose_reduction(600, 160, (94, 24)) == 4
    assert choose_reduction(1200, 320, (94, 24)) == 8
    assert choose_reduction(1200, 320, (300, 80)) == 2


# --- cutting -------------------------------------------------------------------------------------

def test_cut_writes_plate_crop_named_by_text(tmp_path):
    src = tmp_path / "数据" / "ccpd_base"
    make_photo(src, "皖A12345", (100, 500, 250, 550))
    make_photo(src / "sub", "京N1J626", (300, 600, 700, 720), colour=GREEN)      # big: reduced decode
    make_photo(src, "皖AD11166", (200, 300, 420, 370), colour=GREEN, head="004504310344827586")
    summary, _ = cut(src, tmp_path / "训练")
    assert (summary.written, summary.already_there, sum(summary.skipped.values())) == (3, 0, 0)
    out = tmp_path / "训练"
    assert crops(out) == ["京N1J626.jpg", "皖A12345.jpg", "皖AD11166.jpg"]
    for name in crops(out):
        img = read_image(str(out / name))
        assert img.shape == (24, 94, 3)
        # the tight box holds only the plate: its colour and the white bars, no red background
        assert img[..., 2].mean() < 150
    assert skipped_rows(out) == {}


def test_size_flag(tmp_path):
    make_photo(tmp_path / "in", "皖A12345", (100, 500, 700, 700))
    cut(tmp_path / "in", tmp_path / "out", size=(188, 48))
    assert read_image(str(tmp_path / "out" / "皖A12345.jpg")).shape == (48, 188, 3)


def textured_photo(folder, name):
    """A photo of smooth random texture (details a few output pixels across, like characters)."""
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (40, 25, 3), dtype=np.uint8), (720, 1160), interpolation=cv2.INTER_CUBIC)
    os.makedirs(folder, exist_ok=True)
    write_image(os.path.join(folder, name), img)
    return read_image(os.path.join(folder, name))


def test_reduced_decode_crop_matches_full_decode(tmp_path):
    """A box large enough for a 1/4 decode gives the crop a full decode gives."""
    box = (61, 403, 673, 581)  # odd corners: not on the 1/4 grid
    assert choose_reduction(box[2] - box[0] + 1, box[3] - box[1] + 1, (94, 24)) == 4
    full = textured_photo(tmp_path / "in", ccpd_name("皖A12345", box))
    cut(tmp_path / "in", tmp_path / "out")
    x1, y1, x2, y2 = box
    expected = cv2.resize(full[y1:y2 + 1, x1:x2 + 1], (94, 24), interpolation=cv2.INTER_AREA)
    # luma: JPEG's 4:2:0 chroma at 94x24 would hide everything else
    diff = np.abs(luma(read_image(str(tmp_path / "out" / "皖A12345.jpg"))) - luma(expected))
    assert diff.mean() < 2  # whole-pixel rounding of the box at 1/4 makes 3.7


def test_reduced_decode_warp_matches_full_decode(tmp_path):
    corners = np.float32([(101, 455), (653, 403), (667, 570), (97, 611)])  # TL, TR, BR, BL
    full = textured_photo(tmp_path / "in", ccpd_name("皖A12345", (97, 403, 667, 611), corners.astype(int)))
    w = max(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3]))
    h = max(np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]))
    assert choose_reduction(w, h, (94, 24)) == 4
    rect = np.float32([[0, 0], [round(w), 0], [round(w), round(h)], [0, round(h)]])  # corner pixels' centres
    rectified = cv2.warpPerspective(full, cv2.getPerspectiveTransform(corners, rect), (round(w) + 1, round(h) + 1))
    expected = cv2.resize(rectified, (94, 24), interpolation=cv2.INTER_AREA)
    cut(tmp_path / "in", tmp_path / "out", warp=True)
    diff = np.abs(luma(read_image(str(tmp_path / "out" / "皖A12345.jpg"))) - luma(expected))
    assert diff.mean() < 2


def test_warp_of_an_upright_plate_is_its_bbox_crop(tmp_path):
    """Corners are pixel centres, as the bbox's are inclusive: the rectified plate keeps the last column and row."""
    box = (100, 500, 219, 539)  # small enough for a full decode
    textured_photo(tmp_path / "in", ccpd_name("皖A12345", box))
    cut(tmp_path / "in", tmp_path / "box")
    cut(tmp_path / "in", tmp_path / "warp", warp=True)
    box_crop, warped = (read_image(str(tmp_path / f / "皖A12345.jpg")).astype(int) for f in ("box", "warp"))
    assert np.abs(box_crop - warped).max() <= 2


@pytest.mark.parametrize("x2, inside", [(721, True), (722, True), (723, True), (724, False)])
def test_box_at_the_right_edge_on_a_reduced_decode(tmp_path, x2, inside):
    """723 pixels decode to 181 at 1/4, which alone cannot tell a box ending at 723 from one at 724."""
    make_photo(tmp_path / "in", "皖A12345", (100, 500, x2, 680), size=(723, 1160))
    summary, lines = cut(tmp_path / "in", tmp_path / "out")
    if inside:
        assert summary.written == 1
        right = read_image(str(tmp_path / "out" / "皖A12345.jpg"))[:, -1]
        assert right[..., 2].mean() < 150  # the plate, not the red background
    else:
        assert summary.skipped["box_outside"] == 1 and summary.written == 0
        assert "723x1160" in lines[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_skips_are_counted_listed_and_cut_goes_on(tmp_path, workers):
    src, out = tmp_path / "in", tmp_path / "out"
    good = make_photo(src, "皖A12345", (100, 500, 250, 550))
    make_photo(src, [31, 0, 1, 2, 3, 4, 5], (100, 500, 250, 550))            # 警
    make_photo(src, "皖B12345", (600, 500, 800, 550))                        # box past the 720 width
    make_photo(src, "皖C12345", (100, 1200, 250, 1250))                      # box below the photo
    truncated = make_photo(src, "皖D12345", (100, 500, 250, 550))
    with open(truncated, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[:len(data) // 2])
    (src / "notes.jpg").write_bytes(b"not a ccpd photo")
    empty = src / ccpd_name("皖E12345", (100, 500, 250, 550))
    empty.write_bytes(b"")
    summary, lines = cut(src, out, workers=workers)
    assert summary.written == 1
    assert dict(summary.skipped) == {"bad_plate": 1, "box_outside": 2, "unreadable": 2, "bad_name": 1}
    rows = skipped_rows(out)
    assert sorted(rows.values()) == ["bad_name", "bad_plate", "box_outside", "box_outside", "unreadable",
                                     "unreadable"]
    assert rows["notes.jpg"] == "bad_name" and rows[os.path.basename(truncated)] == "unreadable"
    assert os.path.basename(good) not in rows
    skip_lines = [ln for ln in lines if ln.startswith("skipped ")]
    assert len(skip_lines) == 6 and all(str(src) in ln for ln in skip_lines)
    assert "警" in next(ln for ln in skip_lines if "bad_plate" in ln)
    assert lines[-1].startswith("written 1, already there 0, skipped 6 (bad_name 1, bad_plate 1, unreadable 2, "
                                "box_outside 2)")
    assert "; 5 photos processed in " in lines[-1] and "photos/s" in lines[-1]  # 1 written, 4 skipped by workers
    assert crops(out) == ["皖A12345.jpg"]

    # the truncated photo gets repaired: the next run cuts it and drops its skipped.tsv line
    with open(truncated, "wb") as f:
        f.write(data)
    summary, _ = cut(src, out)
    assert (summary.written, summary.already_there) == (1, 1)
    assert sorted(skipped_rows(out).values()) == ["bad_name", "bad_plate", "box_outside", "box_outside",
                                                  "unreadable"]


def test_same_plate_gets_suffixes_that_stay_with_their_photo(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_photo(src / "a", "皖A12345", (100, 500, 250, 550), colour=BLUE)
    make_photo(src / "b", "皖A12345", (100, 500, 250, 550), colour=GREEN)
    summary, _ = cut(src, out, workers=2)
    assert summary.written == 2 and crops(out) == ["皖A12345.jpg", "皖A12345_1.jpg"]
    assert mean_colour(str(out / "皖A12345.jpg"))[0] > 150    # a/ (blue) sorts first
    assert mean_colour(str(out / "皖A12345_1.jpg"))[1] > 150  # b/ (green)
    stamp = {f: os.stat(out / f).st_mtime_ns for f in crops(out)}

    summary, _ = cut(src, out)
    assert (summary.written, summary.already_there) == (0, 2)
    assert {f: os.stat(out / f).st_mtime_ns for f in crops(out)} == stamp

    # a third photo of the plate, sorting first: earlier photos keep their names
    make_photo(src / "0", "皖A12345", (100, 500, 250, 550), colour=(128, 128, 128))
    os.remove(out / "皖A12345_1.jpg")
    summary, _ = cut(src, out)
    assert (summary.written, summary.already_there) == (2, 1)
    assert crops(out) == ["皖A12345.jpg", "皖A12345_1.jpg", "皖A12345_2.jpg"]
    assert mean_colour(str(out / "皖A12345.jpg"))[0] > 150
    assert mean_colour(str(out / "皖A12345_1.jpg"))[1] > 150  # b/ re-cut under its own name
    assert np.ptp(mean_colour(str(out / "皖A12345_2.jpg"))) < 30  # the gray one


def test_foreign_files_are_never_overwritten(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_photo(src, "皖A12345", (100, 500, 250, 550))
    out.mkdir()
    (out / "皖A12345.jpg").write_bytes(b"someone else's crop")
    (out / ".皖A12345_9.jpg.4242.tmp").write_bytes(b"half a crop from a killed run")
    cut(src, out)
    assert (out / "皖A12345.jpg").read_bytes() == b"someone else's crop"
    assert crops(out) == ["皖A12345.jpg", "皖A12345_1.jpg"]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_manifest_maps_photos_to_crops(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    a = make_photo(src, "皖A12345", (100, 500, 250, 550))
    cut(src, out)
    with open(out / MANIFEST, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines == ["# cut_ccpd size=94x24 crop=bbox", f"{os.path.abspath(a)}\t皖A12345.jpg"]


def test_overwrite_and_settings_mismatch(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_photo(src, "皖A12345", (100, 500, 250, 550))
    make_photo(src, "皖B12345", (100, 700, 250, 750))
    cut(src, out)
    summary, _ = cut(src, out, overwrite=True)
    assert (summary.written, summary.already_there) == (2, 0) and crops(out) == ["皖A12345.jpg", "皖B12345.jpg"]
    with pytest.raises(CutError, match="crop=bbox"):
        cut(src, out, warp=True)
    summary, _ = cut(src, out, warp=True, overwrite=True)
    assert summary.written == 2
    with open(out / MANIFEST, encoding="utf-8") as f:
        assert f.readline().strip() == "# cut_ccpd size=94x24 crop=warp"


def test_warp_rectifies_a_tilted_plate(tmp_path):
    src = tmp_path / "in"
    corners = [(150, 500), (600, 420), (610, 540), (160, 620)]  # TL, TR, BR, BL: tilted up to the right
    make_photo(src, "皖A12345", (150, 420, 610, 620), corners=corners)
    cut(src, tmp_path / "box")
    cut(src, tmp_path / "warp", warp=True)

    def red_fraction(folder):
        img = read_image(str(tmp_path / folder / "皖A12345.jpg")).astype(int)
        return ((img[..., 2] > 150) & (img[..., 0] < 100)).mean()

    assert red_fraction("box") > 0.3    # the axis-aligned box takes in the background
    assert red_fraction("warp") < 0.05  # the rectified plate does not


def test_split_file_and_missing_photos(tmp_path):
    root = tmp_path / "CCPD2019"
    a = make_photo(root / "ccpd_base", "皖A12345", (100, 500, 250, 550))
    make_photo(root / "ccpd_base", "皖B12345", (100, 500, 250, 550))
    split = root / "splits" / "train.txt"
    split.parent.mkdir()
    split.write_text(f"ccpd_base/{os.path.basename(a)}\nccpd_base/gone.jpg\n\n", encoding="utf-8")
    summary, _ = cut(root, tmp_path / "out", split_file=str(split))
    assert summary.written == 1 and crops(tmp_path / "out") == ["皖A12345.jpg"]
    assert skipped_rows(tmp_path / "out") == {"gone.jpg": "missing"}


def test_save_folder_inside_the_ccpd_folder_is_not_read_back(tmp_path):
    make_photo(tmp_path, "皖A12345", (100, 500, 250, 550))
    cut(tmp_path, tmp_path / "crops")
    summary, _ = cut(tmp_path, tmp_path / "crops")
    assert (summary.written, summary.already_there, sum(summary.skipped.values())) == (0, 1, 0)


def test_a_save_folder_that_holds_the_photos_is_refused(tmp_path):
    make_photo(tmp_path / "ccpd", "皖A12345", (100, 500, 250, 550))
    for save in (tmp_path / "ccpd", tmp_path):
        with pytest.raises(CutError, match=f"--savepath {save} holds --ccpdpath {tmp_path / 'ccpd'}"):
            cut(tmp_path / "ccpd", save)
    assert sorted(os.listdir(tmp_path / "ccpd")) == [os.path.basename(ccpd_name("皖A12345", (100, 500, 250, 550)))]


def test_the_same_photos_through_a_link_are_not_cut_twice(tmp_path):
    make_photo(tmp_path / "ccpd", "皖A12345", (100, 500, 250, 550))
    os.symlink(tmp_path / "ccpd", tmp_path / "link")
    cut(tmp_path / "ccpd", tmp_path / "out")
    summary, _ = cut(tmp_path / "link", tmp_path / "out")
    assert (summary.written, summary.already_there) == (0, 1) and crops(tmp_path / "out") == ["皖A12345.jpg"]
    manifest = (tmp_path / "out" / MANIFEST).read_text("utf-8")  # as earlier versions wrote it through the link
    (tmp_path / "out" / MANIFEST).write_text(manifest.replace(str(tmp_path / "ccpd"), str(tmp_path / "link")), "utf-8")
    summary, _ = cut(tmp_path / "ccpd", tmp_path / "out")
    assert (summary.written, summary.already_there) == (0, 1) and crops(tmp_path / "out") == ["皖A12345.jpg"]


def test_linked_photos_are_labelled_by_the_links_names(tmp_path):
    """Datasets kept as links to content-named blobs (DVC, git-annex, caches)."""
    blob = make_photo(tmp_path / "blobs", "皖A12345", (100, 500, 250, 550))
    os.rename(blob, tmp_path / "blobs" / "sha1")
    (tmp_path / "ccpd").mkdir()
    os.symlink(tmp_path / "blobs" / "sha1", tmp_path / "ccpd" / os.path.basename(blob))
    summary, _ = cut(tmp_path / "ccpd", tmp_path / "out")
    assert summary.written == 1 and crops(tmp_path / "out") == ["皖A12345.jpg"]


def test_a_split_file_may_cut_into_the_ccpd_root(tmp_path):
    a = make_photo(tmp_path / "ccpd" / "ccpd_base", "皖A12345", (100, 500, 250, 550))
    (tmp_path / "train.txt").write_text(f"ccpd_base/{os.path.basename(a)}\n", encoding="utf-8")
    summary, _ = cut(tmp_path / "ccpd", tmp_path, split_file=str(tmp_path / "train.txt"))
    assert summary.written == 1


def test_a_split_file_with_a_bom(tmp_path):
    a = make_photo(tmp_path / "ccpd_base", "皖A12345", (100, 500, 250, 550))
    split = tmp_path / "train.txt"
    split.write_text(f"ccpd_base/{os.path.basename(a)}\r\n", encoding="utf-8-sig")  # as Windows Notepad saves it
    summary, _ = cut(tmp_path, tmp_path / "out", split_file=str(split))
    assert summary.written == 1 and sum(summary.skipped.values()) == 0


def test_a_folder_name_that_is_not_utf8_is_one_skip(tmp_path):
    make_photo(tmp_path / "ccpd", "皖A12345", (100, 500, 250, 550))
    gbk = os.path.join(os.fsencode(str(tmp_path / "ccpd")), "车牌".encode("gbk"))  # as Windows zip tools unpack it
    os.mkdir(gbk)
    name = ccpd_name("皖B12345", (100, 500, 250, 550))
    with open(os.path.join(gbk, name.encode()), "wb") as f:
        f.write(cv2.imencode(".jpg", np.zeros((1160, 720, 3), np.uint8))[1].tobytes())
    summary, lines = cut(tmp_path / "ccpd", tmp_path / "out")
    assert summary.written == 1 and summary.skipped["bad_name"] == 1
    assert [line for line in lines if "not UTF-8" in line][0].startswith(f"skipped {tmp_path / 'ccpd'}/\ufffd")
    assert skipped_rows(tmp_path / "out") == {name: "bad_name"}


def test_overwrite_with_new_settings_cannot_leave_other_photos_crops_behind(tmp_path):
    make_photo(tmp_path / "a", "皖A12345", (100, 500, 250, 550))
    make_photo(tmp_path / "b", "皖B12345", (100, 500, 250, 550))
    cut(tmp_path / "a", tmp_path / "out")
    with pytest.raises(CutError, match="holds 1 crops made with size=94x24 crop=bbox of photos this run does not cut"):
        cut(tmp_path / "b", tmp_path / "out", warp=True, overwrite=True)
    for name in crops(tmp_path / "out"):
        os.remove(tmp_path / "out" / name)
    summary, _ = cut(tmp_path / "b", tmp_path / "out", warp=True)  # a manifest without its crops is no conflict
    assert summary.written == 1


def test_skipped_photos_keep_no_name_and_gone_ones_leave_skipped_tsv(tmp_path):
    inside = make_photo(tmp_path / "in", "苏CFY773", (100, 500, 250, 550))
    outside = make_photo(tmp_path / "in", "苏CFY773", (600, 500, 750, 550), size=(700, 1160))  # box past the edge
    summary, _ = cut(tmp_path / "in", tmp_path / "out")
    assert summary.skipped["box_outside"] == 1
    with open(tmp_path / "out" / MANIFEST, encoding="utf-8") as f:
        assert [line.split("\t")[0] for line in f.read().splitlines()[1:]] == [os.path.realpath(inside)]
    os.remove(outside)
    cut(tmp_path / "in", tmp_path / "out")
    assert skipped_rows(tmp_path / "out") == {}


def test_overwrite_with_new_settings_removes_the_old_crop_it_cannot_redo(tmp_path):
    a = make_photo(tmp_path / "in", "皖A12345", (100, 500, 250, 550))
    make_photo(tmp_path / "in", "皖B12345", (100, 500, 250, 550))
    cut(tmp_path / "in", tmp_path / "out")
    with open(a, "r+b") as f:
        f.truncate(100)  # unreadable now
    summary, _ = cut(tmp_path / "in", tmp_path / "out", warp=True, overwrite=True)
    assert summary.skipped["unreadable"] == 1 and crops(tmp_path / "out") == ["皖B12345.jpg"]  # no bbox crop left
    with open(tmp_path / "out" / MANIFEST, encoding="utf-8") as f:
        assert [line.split("\t")[1] for line in f.read().splitlines()[1:]] == ["皖B12345.jpg"]


def test_missing_ccpd_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        cut(tmp_path / "nowhere", tmp_path / "out")


def test_workers_0_means_the_cores_this_process_may_use(tmp_path, monkeypatch):
    """Under taskset or docker --cpuset-cpus, os.cpu_count() still counts every core of the machine."""
    for plate in ("皖A12345", "皖B12345", "皖C12345"):
        make_photo(tmp_path / "in", plate, (100, 500, 250, 550))
    used = []

    def run_jobs(jobs, workers):
        used.append(workers)
        yield from ()

    monkeypatch.setattr(ccpd_module, "usable_cores", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(ccpd_module, "run_jobs", run_jobs)
    cut(tmp_path / "in", tmp_path / "out", workers=0)
    assert used == [2]
