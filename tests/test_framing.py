import cv2
import numpy as np
import pytest

import bench_framing
from lprnet.augment import CUT_SHIFT, Framing, box_crop, corners_of_image, frame_window, make_window, warp_window
from lprnet.dataset import Sample, load_samples
from lprnet.engines import OrtEngine
from lprnet.evaluate import read_texts
from lprnet.framing import SHIFTED, VARIANTS, crops, end_character_kept, read_right, read_right_by_variant, table
from lprnet.preprocess import resize_plate, to_plate
from lprnet.synth import FontError, generate
from tests.conftest import ROOT, no_fonts, shared_path


def scene_with_plate(rng):
    """A noisy scene with a bright 94x24 plate pasted at a known place."""
    img = rng.integers(0, 80, (120, 240, 3), dtype=np.uint8)
    img[40:64, 70:164] = 230
    quad = np.float32([[70, 40], [164, 40], [164, 64], [70, 64]])
    return Sample(img, quad, "皖A12345", True)


def test_windows_grow_shift_and_rotate_as_asked():
    box = np.float32([[0, 0], [100, 0], [100, 20], [0, 20]])
    assert np.allclose(make_window(box, (0.1, 0.2, 0.5, 0)), [[-10, -10], [120, -10], [120, 20], [-10, 20]])
    assert np.allclose(make_window(box, shift=(0.1, -0.5)), box + [10, -10])
    turned = make_window(box, angle=90)
    assert np.allclose(turned.mean(axis=0), box.mean(axis=0), atol=1e-4)
    assert np.allclose(np.linalg.norm(turned[1] - turned[0]), 100, atol=1e-3)


def test_variants_are_seeded_and_frame_the_plate():
    rng = np.random.default_rng(0)
    samples = [scene_with_plate(rng) for _ in range(4)]
    for variant in VARIANTS:
        a, b = crops(samples, variant, seed=1), crops(samples, variant, seed=1)
        assert a.shape == (4, 24, 94, 3) and np.array_equal(a, b)
    tight = crops(samples, "tight")
    assert tight.min() == 230  # exactly the plate
    loose = crops(samples, "loose (+5-25% each side)")
    assert loose.mean() < tight.mean() - 20  # surroundings came in
    assert not np.array_equal(crops(samples, SHIFTED, 1), crops(samples, SHIFTED, 2))
    assert np.array_equal(warp_window(samples[0].image, samples[0].quad), tight[0])


def test_benchmark_command_on_a_handful_of_real_plates(reference_checkpoint, capsys):
    folder = shared_path("data", "plates_context", "val")
    out = bench_framing.run(str(reference_checkpoint), str(folder), limit=12, cut_detail=True)
    variants, detail = out.split("\n\n")
    rows = variants.splitlines()
    assert rows[0] == "| framing | plates_context/val (12) |"
    assert [r.split("|")[1].strip() for r in rows[2:]] == list(VARIANTS)
    accuracies = [float(r.split("|")[2].strip().rstrip("%")) for r in rows[2:]]
    assert accuracies[0] >= 75  # LPRNet_Pytorch reads tight crops
    bins = detail.splitlines()[2:]
    assert [r.split("|")[1].strip() for r in bins][::5] == ["0.00-0.25", "0.80-1.00"]
    counts = [int(r.split("(")[-1].split(")")[0]) for r in bins]
    assert sum(counts) == 12  # every shifted crop falls in one bin
    shifted_right = round(float(rows[2 + list(VARIANTS).index(SHIFTED)].split("|")[2].strip().rstrip("%")) * 12 / 100)
    right_in_bins = sum(round(float(r.split("|")[2].split("%")[0]) * n / 100) for r, n in zip(bins, counts) if n)
    assert right_in_bins == shifted_right  # the same crops, read the same way
    ruled = bench_framing.run(str(reference_checkpoint), str(folder), limit=12, plate_rules=True).splitlines()
    ruled_accuracies = [float(r.split("|")[2].strip().rstrip("%")) for r in ruled[2:]]
    assert all(b >= a for a, b in zip(accuracies, ruled_accuracies))  # mending never breaks a right reading


def test_a_set_without_framed_plates_gets_empty_cells_not_a_crash():
    def engine(x):
        raise AssertionError("nothing to read")

    right = read_right_by_variant(engine, {"empty": []})
    assert all(len(per_set["empty"]) == 0 for per_set in right.values())
    rows = table(right).splitlines()
    assert rows[0] == "| framing | empty (0) |"
    assert rows[2:] == [f"| {variant} | - |" for variant in VARIANTS]


def test_a_shifted_window_keeps_the_share_of_the_end_character_the_plate_layout_says():
    blue = np.float32([[0, 0], [440, 0], [440, 140], [0, 140]])  # GA 36 millimetres: characters 45 wide from 15.5
    assert end_character_kept(blue, "皖A12345", (0.0, 0.0)) == 1.0
    assert np.isclose(end_character_kept(blue, "皖A12345", (0.10, 0.05)), (60.5 - 44) / 45)  # province cut
    assert np.isclose(end_character_kept(blue, "皖A12345", (-0.10, 0.0)), (396 - 379.5) / 45)  # last one cut
    assert end_character_kept(blue, "皖A12345", (0.5, 0.0)) == 0.0
    green = np.float32([[0, 0], [480, 0], [480, 140], [0, 140]])  # last of 8 characters: 43 wide from 421.5
    assert np.isclose(end_character_kept(green, "皖AD12345", (-0.10, 0.0)), (432 - 421.5) / 43)
    # top edge 20 to the right: the box is 460 wide and the characters sit where the plate's middle line has them
    leaning = blue + np.float32([[20, 0], [20, 0], [0, 0], [0, 0]])
    assert np.isclose(end_character_kept(leaning, "皖A12345", (0.10, 0.0)), (10 + 60.5 - 46) / 45)


def test_training_windows_sometimes_stay_near_the_box_so_shifts_cut_into_the_plate():
    box = np.float32([[0, 0], [100, 0], [100, 20], [0, 20]])
    still = dict(shift=0.0, rotate=0.0, skew=0.0, rectify=0.0)

    def side_margins(framing, n=400):
        rng = np.random.default_rng(0)
        w = np.stack([frame_window(box, rng, framing) for _ in range(n)])
        return np.stack([-w[:, 0, 0] / 100, w[:, 1, 0] / 100 - 1], axis=1)  # left, right, as fractions

    near = side_margins(Framing(near=1.0, **still))
    assert near.min() >= -0.03 - 1e-6 and near.max() <= 0.04 + 1e-6
    wide = side_margins(Framing(near=0.0, **still))
    assert wide.max() > 0.2
    mixed = side_margins(Framing(near=0.25, **still))
    share_near = np.mean(mixed.max(axis=1) <= 0.04)
    assert 0.2 < share_near < 0.35  # the near windows plus the few wide ones that happen to be narrow


def test_cut_windows_shift_a_near_window_sideways_into_an_end_character():
    box = np.float32([[0, 0], [100, 0], [100, 20], [0, 20]])
    still = dict(near_margin=(0.0, 0.0), shift=0.10, rotate=0.0, skew=0.0, rectify=0.0)

    def sideways(framing, n=400):  # the window's sideways shift as a fraction of the box width
        rng = np.random.default_rng(0)
        return np.array([frame_window(box, rng, framing)[0, 0] / 100 for _ in range(n)])

    cut = sideways(Framing(near=1.0, cut=1.0, **still))
    assert np.abs(cut).min() >= CUT_SHIFT - 1e-6 and np.abs(cut).max() <= 0.10 + 1e-6
    assert 0.4 < np.mean(cut > 0) < 0.6  # into the first character as often as into the last
    plain = sideways(Framing(near=1.0, cut=0.0, **still))
    assert 0.3 < np.mean(np.abs(plain) < CUT_SHIFT) < 0.5  # uniform in +-10%
    half = sideways(Framing(near=1.0, cut=0.5, **still))
    assert 0.1 < np.mean(np.abs(half) < CUT_SHIFT) < 0.3
    # without cut windows the random draws are those from before cut windows existed: old recipes reproduce
    before = [[-5.274, -4.717], [101.401, 2.344], [100.650, 22.368], [0.185, 15.050]]
    assert np.allclose(frame_window(box, np.random.default_rng(3), Framing(near=0.5)), before, atol=1e-3)


def test_large_windows_are_area_averaged_like_resize_plate_not_aliased():
    stripes = np.zeros((96, 376, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel columns: a 4x shrink must average them to grey, not pick every 4th
    window = corners_of_image(stripes)
    out = warp_window(stripes, window).astype(float)
    assert abs(out.mean() - 127.5) < 2 and out.std() < 3
    halves = np.zeros((72, 282, 3), np.uint8)
    halves[:, 141:] = 255  # the edge lands exactly between output columns 46 and 47, as resize_plate puts it
    out = warp_window(halves, corners_of_image(halves))
    assert np.array_equal(out, resize_plate(halves))
    assert (out[:, :47] == 0).all() and (out[:, 47:] == 255).all()


def test_box_crop_cuts_whole_pixels_and_repeats_the_border_outside_the_image():
    img = np.arange(40 * 200 * 3, dtype=np.uint32).reshape(40, 200, 3).astype(np.uint8)
    inside = np.float32([[10.2, 5.7], [150.0, 5.7], [150.0, 30.1], [10.2, 30.1]])
    assert np.array_equal(box_crop(img, inside), resize_plate(img[5:31, 10:150]))
    outside = np.float32([[-20, -4], [220, -4], [220, 50], [-20, 50]])
    padded = cv2.copyMakeBorder(img, 4, 10, 20, 20, cv2.BORDER_REPLICATE)
    assert np.array_equal(box_crop(img, outside), resize_plate(padded))


def test_two_row_plates_are_framed_then_joined_and_the_shipped_model_reads_them(tmp_path, capsys):
    try:
        generate(num=40, savepath=str(tmp_path), types="yellow_double", seed=8, context=True, log=lambda *a: None)
    except FontError as e:
        no_fonts(e)
    samples, _ = load_samples(str(tmp_path), store_width=None)
    assert all(s.two_rows for s in samples)  # boxes.tsv says so
    s = samples[0]
    x0, y0 = np.floor(s.quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(s.quad.max(axis=0)).astype(int)
    assert np.array_equal(crops(samples, "tight", two_rows=True)[0], to_plate(s.image[y0:y1, x0:x1], two_rows=True))
    for variant in VARIANTS:
        assert crops(samples, variant, seed=1, two_rows=True).shape == (40, 24, 94, 3)
    onnx = str(ROOT / "model" / "LPRNet.onnx")
    # a loose box moves the fixed row cuts off the rows: read trimmed too, as the scripts do, the shipped model
    # reads 37 of these 40 plates rather than 31
    engine, loose = OrtEngine(onnx), "loose (+5-25% each side)"
    as_cut = sum(t == s.text for t, s in zip(read_texts(engine, crops(samples, loose), 64), samples))
    assert read_right(engine, samples, loose).sum() >= as_cut + 4
    marked = bench_framing.run(onnx, str(tmp_path)).splitlines()
    tsv = tmp_path / "boxes.tsv"  # the same set from a tool that does not mark two-row plates
    marks = tsv.read_text("utf-8")
    tsv.write_text("".join(line.rsplit("\t", 1)[0] + "\n" for line in tsv.read_text("utf-8").splitlines()), "utf-8")
    squeezed = bench_framing.run(onnx, str(tmp_path)).splitlines()
    joined = bench_framing.run(onnx, str(tmp_path), two_rows=True).splitlines()
    capsys.readouterr()
    percent = [[float(r.split("|")[2].strip().rstrip("%")) for r in rows[2:]] for rows in (joined, squeezed)]
    assert percent[0][0] >= 85 and percent[0][-1] >= 85  # tight and rectified: the shipped model reads all 40
    assert max(percent[1]) == 0
    assert marked[2:] == joined[2:]
    tsv.write_text(marks, "utf-8")
    with pytest.raises(SystemExit, match="--cut_detail measures one-row plates"):
        bench_framing.run(onnx, str(tmp_path), cut_detail=True)  # marked in boxes.tsv, no flag


def test_cut_detail_is_for_one_row_plates_only():
    with pytest.raises(SystemExit, match="--cut_detail measures one-row plates"):
        bench_framing.run(str(ROOT / "model" / "LPRNet.onnx"), str(ROOT / "imgs"), cut_detail=True, two_rows=True)


@pytest.mark.parametrize("flags,message", [(dict(batch_size=0), "--batch_size 0 must be at least 1"),
                                           (dict(limit=-1), "--limit -1 must be 0 or more"),
                                           (dict(seed=-1), "--seed -1 must be 0 or more"),
                                           (dict(sets=" , "), "--sets names no folder")])
def test_benchmark_refuses_flags_out_of_range(flags, message):
    with pytest.raises(SystemExit) as e:
        bench_framing.run(**{"model": "model/LPRNet.onnx", "sets": "nowhere", **flags})
    assert str(e.value.code) == f"error: {message}"


def crops_without_corners(folder):
    for name in ("皖X10391.jpg", "沪AD36956.jpg"):  # tight crops, no boxes.tsv
        (folder / name).write_bytes((ROOT / "imgs" / name).read_bytes())
    (folder / "皖A12345.jpg").write_bytes(b"no image")
    return folder


def test_plates_without_corners_are_said_and_counted(tmp_path, capsys):
    crops_without_corners(tmp_path)
    with pytest.raises(SystemExit) as e:  # nothing to measure at all
        bench_framing.run(str(ROOT / "model" / "LPRNet.onnx"), str(tmp_path))
    assert str(e.value.code) == f"error: --sets {tmp_path}: no plate with corners to frame (3 images skipped)"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"skipped {tmp_path / '皖A12345.jpg'}: not a readable image (corrupt or unsupported format)"
    assert out[1].startswith(f"warning: {tmp_path}: no boxes.tsv gives corners for its 2 plates, so none can be framed")


def test_a_set_without_corners_beside_one_with_them_is_counted(tmp_path, capsys):
    framed, bare = shared_path("data", "plates_context", "val"), crops_without_corners(tmp_path)
    result = bench_framing.run(str(ROOT / "model" / "LPRNet.onnx"), f"{framed},{bare}", limit=2)
    assert capsys.readouterr().out.splitlines()[-1] == ("skipped 3 images (unreadable, unlabelled or without "
                                                        "corners: each reported above)")
    assert result.splitlines()[0] == f"| framing | plates_context/val (2) | {bare.parent.name}/{bare.name} (0) |"
