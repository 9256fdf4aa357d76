"""The synthetic plate generator: valid labels, determinism, CCPD names and context corners that match
what was drawn."""
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import gen_plates
from lprnet import ccpd
from lprnet import synth as synth_module
from lprnet.ccpd_tables import ADS, ALPHABETS, PROVINCES, indices_to_plate, plate_to_indices
from lprnet.charset import DIGITS, LETTERS, check_plate, label_from_filename
from lprnet.dataset import BoxesError, load_samples, read_boxes
from lprnet.image import list_images, read_image
from lprnet.synth import (
    CCPD_SIZE,
    Effects,
    FontError,
    PlateSynth,
    TextStyle,
    effects_from_spec,
    file_names,
    generate,
    plan_plates,
    random_plate,
    style_from_spec,
)
from lprnet.synth_text import KINDS
from tests.conftest import ROOT, no_fonts


@pytest.fixture(scope="module")
def synth():
    try:
        return PlateSynth()
    except FontError as e:
        no_fonts(e)


def run(tmp_path, name, **kw):
    out = str(tmp_path / name)
    generate(savepath=out, log=lambda *a: None, **kw)
    return out


# ------------------------------------------------------------------------------------------ labels

@pytest.mark.parametrize("kind", KINDS)
def test_labels_are_valid_plates_of_their_kind(kind):
    rng = np.random.default_rng(0)
    texts = [random_plate(kind, rng) for _ in range(400)]
    for t in texts:
        check_plate(t)
        assert "I" not in t and "O" not in t
    if kind in ("blue", "yellow", "yellow_double"):
        assert all(len(t) == 7 for t in texts)
        assert any(c in LETTERS for t in texts for c in t[2:]) and any(t[2:].isdigit() for t in texts)
    elif kind == "green_small":  # D/F third, then a letter or digit, then four digits
        assert all(len(t) == 8 and t[2] in "DF" and t[4:].isdigit() for t in texts)
    else:  # large vehicles: five digits, then D/F
        assert all(len(t) == 8 and t[2:7].isdigit() and t[7] in "DF" for t in texts)
    assert len({t[0] for t in texts}) > 25  # uniform provinces by default: nearly all 31 appear


def test_province_weights():
    rng = np.random.default_rng(1)
    only = style_from_spec("皖,苏,*=0")
    assert {random_plate("blue", rng, only)[0] for _ in range(200)} == {"皖", "苏"}
    heavy = style_from_spec("皖=300")
    share = np.mean([random_plate("blue", rng, heavy)[0] == "皖" for _ in range(1000)])
    assert 0.86 < share < 0.96  # 300 / (300 + 30)
    with pytest.raises(ValueError, match="unknown province"):
        style_from_spec("X=3")


def test_plan_mixes_types_and_names_files_by_label():
    plan = plan_plates(300, seed=4, types="blue=2,green,yellow")
    kinds = [k for k, _ in plan]
    assert 0.4 < kinds.count("blue") / 300 < 0.6 and "yellow" in kinds
    assert {"green_small", "green_large"} <= set(kinds)
    names = file_names(plan)
    assert all(label_from_filename(n) == t for n, (_, t) in zip(names, plan))
    assert names[17] == f"{plan[17][1]}_17.jpg"
    plain = file_names([("blue", "皖A12345"), ("blue", "皖A12345")], numbered=False)
    assert plain == ["皖A12345.jpg", "皖A12345_1.jpg"]
    with pytest.raises(ValueError):
        plan_plates(3, 0, types="red")


def test_effect_spec():
    e = effects_from_spec(0.5, "dirt=0,blur=2")
    assert (e.dirt, e.blur, e.noise, e.scale) == (0, 2, 0.5, Effects().scale)
    with pytest.raises(ValueError, match="unknown name"):
        effects_from_spec(1.0, "sparkle=1")


def test_ccpd_tables_round_trip():
    rng = np.random.default_rng(2)
    for kind in KINDS:
        for _ in range(50):
            text = random_plate(kind, rng)
            indices = plate_to_indices(text)
            assert len(indices) == len(text)
            assert indices_to_plate(indices) == text
    assert plate_to_indices("皖A12345") == [0, 0, 25, 26, 27, 28, 29]
    # the example from the data README
    assert indices_to_plate([10, 2, 5, 22, 31, 31, 27]) == "苏CFY773"
    assert len(PROVINCES) == 34 and len(ALPHABETS) == 25 and len(ADS) == 35
    assert set(LETTERS) | set(DIGITS) == set(ADS) - {"O"}


# ---------------------------------------------------------------------------------------- rendering

def test_crops_have_the_size_asked_and_read_back_as_a_dataset(synth, tmp_path):
    out = run(tmp_path, "crops", num=12, types="blue,green,yellow", size="94x24", seed=5)
    paths = list_images(out)
    assert len(paths) == 12
    assert all(read_image(p).shape == (24, 94, 3) for p in paths)
    samples, skipped = load_samples(out, log=lambda *a: None)
    assert len(samples) == 12 and skipped == 0
    big = run(tmp_path, "big", num=2, size="188x48", seed=5)
    assert all(read_image(p).shape == (48, 188, 3) for p in list_images(big))


def test_two_row_plates_are_written_joined_into_one_row_or_as_photographed(synth, tmp_path):
    joined = run(tmp_path, "joined", num=4, types="yellow_double", seed=5)
    photographed = run(tmp_path, "photographed", num=4, types="yellow_double", seed=5, join_rows=False)
    assert [read_image(p).shape for p in list_images(joined)] == [(24, 94, 3)] * 4
    assert [read_image(p).shape for p in list_images(photographed)] == [(48, 94, 3)] * 4
    assert sorted(os.listdir(joined)) == sorted(os.listdir(photographed))


def test_a_two_row_plate_has_the_small_upper_row_above_the_serial(synth):
    clean = PlateSynth(effects=Effects().scaled(0))
    plate, outline = clean.flat_plate("yellow_double", "皖A12345", np.random.default_rng(0))
    ink = (plate.mean(axis=2) < 100) & (outline > 0.5)  # black print on yellow
    rows = ink[3:-3, 8:-8].any(axis=1)  # inside the border line
    starts = np.flatnonzero(rows[1:] & ~rows[:-1]) + 1
    ends = np.flatnonzero(rows[:-1] & ~rows[1:])
    (top0, top1), (low0, low1) = [(s, e) for s, e in zip(starts, ends) if e - s > 10]
    assert plate.shape[:2] == (88, 176)  # 220 x 440 mm
    assert 1.5 < (low1 - low0) / (top1 - top0) < 2.1  # 110 mm under 60 mm characters


def test_same_seed_same_images_whatever_the_workers(synth, tmp_path):
    a = run(tmp_path, "a", num=10, seed=7, workers=1)
    b = run(tmp_path, "b", num=10, seed=7, workers=2)
    c = run(tmp_path, "c", num=10, seed=8, workers=1)
    files = sorted(os.listdir(a))
    assert files == sorted(os.listdir(b))
    for f in files:
        with open(os.path.join(a, f), "rb") as fa, open(os.path.join(b, f), "rb") as fb:
            assert fa.read() == fb.read(), f
    assert sorted(os.listdir(c)) != files


def test_clean_plate_shows_its_colours(synth):
    clean = PlateSynth(effects=Effects().scaled(0))
    for kind, check in (("blue", lambda b, g, r: b > r + 60), ("yellow", lambda b, g, r: r > b + 60),
                        ("green_small", lambda b, g, r: g > r + 10), ("yellow_double", lambda b, g, r: r > b + 60)):
        rng = np.random.default_rng(3)
        img = clean.crop(kind, random_plate(kind, rng), rng).astype(int)
        b, g, r = np.median(img[4:20, 10:84].reshape(-1, 3), axis=0)
        assert check(b, g, r), (kind, b, g, r)


def parse_ccpd_name(name):
    """Test-side reading of a CCPD name: (text, bbox x1 y1 x2 y2, vertices TL TR BR BL)."""
    fields = os.path.splitext(name)[0].split("-")
    assert len(fields) == 7, name
    assert re.fullmatch(r"\d{3}", fields[0]) and re.fullmatch(r"\d+_\d+", fields[1])
    assert fields[5].isdigit() and fields[6].isdigit()
    (x1, y1), (x2, y2) = [[int(v) for v in p.split("&")] for p in fields[2].split("_")]
    br, bl, tl, tr = [[int(v) for v in p.split("&")] for p in fields[3].split("_")]
    text = indices_to_plate([int(i) for i in fields[4].split("_")])
    return text, (x1, y1, x2, y2), np.float32([tl, tr, br, bl])


def test_ccpd_scene_names_decode_to_the_drawn_plate(synth, tmp_path):
    out = run(tmp_path, "ccpd", num=4, types="blue", seed=11, strength=0.0, ccpd=True)
    names = sorted(os.listdir(out))
    assert len(names) == 4
    planned = sorted(t for _, t in plan_plates(4, 11, "blue"))
    assert sorted(parse_ccpd_name(n)[0] for n in names) == planned
    for name in names:
        text, (x1, y1, x2, y2), quad = parse_ccpd_name(name)
        check_plate(text)
        img = read_image(os.path.join(out, name))
        assert img.shape[:2] == (CCPD_SIZE[1], CCPD_SIZE[0])
        assert 0 <= x1 < x2 < CCPD_SIZE[0] and 0 <= y1 < y2 < CCPD_SIZE[1]
        assert (quad >= (x1, y1)).all() and (quad <= (x2, y2)).all()
        # the plate is there: inside its corners (a little in from them) the pixels are plate blue
        mask = np.zeros(img.shape[:2], np.uint8)
        inner = quad.mean(axis=0) + 0.8 * (quad - quad.mean(axis=0))
        cv2.fillConvexPoly(mask, np.round(inner).astype(np.int32), 1)
        b, g, r = img[mask > 0].astype(int).T
        assert np.mean(b > r + 40) > 0.6, name


def test_context_corners_in_boxes_tsv(synth, tmp_path):
    out = run(tmp_path, "ctx", num=6, types="blue", seed=2, strength=0.0, context=True)
    boxes = read_boxes(out)
    paths = list_images(out)
    assert len(paths) == 6 and set(boxes) == {os.path.normpath(os.path.abspath(p)) for p in paths}
    for path in paths:
        quad, rows = boxes[os.path.normpath(os.path.abspath(path))]
        assert rows == 1
        img = read_image(path)
        h, w = img.shape[:2]
        assert (quad >= -1).all() and (quad[:, 0] <= w + 1).all() and (quad[:, 1] <= h + 1).all()
        pw = np.linalg.norm(quad[1] - quad[0])
        assert pw < 0.8 * w  # surroundings on both sides
        centre = np.round(quad.mean(axis=0)).astype(int)
        patch = img[centre[1] - 2:centre[1] + 3, centre[0] - 8:centre[0] + 9].astype(int)
        assert np.mean(patch[..., 0] > patch[..., 2]) > 0.5  # blue plate under the corners
    samples, _ = load_samples(out, log=lambda *a: None)
    assert all(s.framed for s in samples)


def test_a_second_context_run_into_the_folder_keeps_the_first_runs_boxes(synth, tmp_path):
    out = run(tmp_path, "ctx", num=6, types="blue", seed=2, strength=0.0, context=True)
    run(tmp_path, "ctx", num=2, types="green", seed=3, strength=0.0, context=True)
    paths = list_images(out)
    assert len(paths) == 8 and set(read_boxes(out)) == {os.path.normpath(os.path.abspath(p)) for p in paths}
    with open(os.path.join(out, "boxes.tsv"), encoding="utf-8") as f:
        assert len(f.readlines()) == 9  # the header and one row each
    samples, _ = load_samples(out, log=lambda *a: None)
    assert len(samples) == 8 and all(s.framed for s in samples)


def test_malformed_boxes_rows_and_images_without_a_row_are_reported(synth, tmp_path):
    out = run(tmp_path, "ctx", num=3, types="blue", seed=2, strength=0.0, context=True)
    tsv = os.path.join(out, "boxes.tsv")
    with open(tsv, encoding="utf-8") as f:
        header, first, second, third = f.readlines()
    with open(tsv, "w", encoding="utf-8") as f:
        f.writelines([header, first.replace("\t", ",") + "\n", second])  # a row with commas; the third one gone
    lines = []
    samples, skipped = load_samples(out, log=lines.append)
    assert skipped == 0 and sorted(s.framed for s in samples) == [False, False, True]
    assert lines == [f"warning: {tsv} line 2: not 'file<TAB>bbox<TAB>x&y_x&y_x&y_x&y corners', ignored",
                     f"warning: {out}: 2 of 3 images have no row in boxes.tsv, so no corners (training reads them "
                     "as tight crops, bench_framing.py leaves them out)"]
    with open(tsv, "w", encoding="gbk") as f:
        f.writelines([header, first])  # saved from a Chinese Excel
    with pytest.raises(BoxesError, match=f"^{re.escape(tsv)}: not UTF-8 text"):
        load_samples(out, log=lines.append)


def test_missing_font_is_one_clear_error(tmp_path):
    with pytest.raises(FontError, match="font file not found"):
        PlateSynth(font_cn=str(tmp_path / "nope.ttf"))
    with pytest.raises(SystemExit, match="^error: font file not found"):
        gen_plates.main(["--num", "1", "--savepath", str(tmp_path / "x"), "--font_en", str(tmp_path / "no.ttf")])
    with pytest.raises(SystemExit, match="^error: size"):
        gen_plates.main(["--num", "1", "--savepath", str(tmp_path / "x"), "--size", "94by24"])


def test_text_style_defaults_are_sane():
    style = TextStyle()
    assert abs(style.province_probs().sum() - 1) < 1e-9
    assert len(style.province_probs()) == 31


def test_cut_ccpd_reads_generated_scenes(synth, tmp_path):
    src = run(tmp_path, "scenes", num=3, types="blue,green", seed=12, strength=0.5, ccpd=True)
    for name in os.listdir(src):
        label = ccpd.parse_ccpd_name(name)
        text, box, quad = parse_ccpd_name(name)
        assert (label.plate, label.box) == (text, box) and np.allclose(label.corners, quad)
    dst = str(tmp_path / "cut")
    ccpd.cut_ccpd(src, dst, workers=1, progress=False, log=lambda *a: None)
    crops = list_images(dst)
    assert sorted(label_from_filename(p) for p in crops) == sorted(t for _, t in plan_plates(3, 12, "blue,green"))
    assert all(read_image(p).shape == (24, 94, 3) for p in crops)


def test_m_is_drawn_like_the_plate_font(synth):
    """The plate's M has upright legs and a V that ends at mid-height (as the mean M of the real crops
    shows); a sans M takes it to the baseline, and a model trained on those reads real Ms as H."""
    for bank in synth.en:
        m = bank.large("M")
        h, w = m.shape
        centre = m[:, w // 2 - 1:w // 2 + 2].max(axis=1) > 127
        assert centre[int(h * 0.4):int(h * 0.5)].any(), bank.name   # the point of the V
        assert not centre[int(h * 0.6):].any(), bank.name           # open below it
        assert not centre[:int(h * 0.1)].any(), bank.name           # and between the diagonals above


def test_three_has_the_plate_fonts_flat_top(synth):
    """The plate's 3 starts with a straight bar across the top; a sans 3's round top reads as 5's."""
    for bank in synth.en:
        three = bank.large("3")
        h, w = three.shape
        top = three[:max(2, h // 20)].max(axis=0) > 127
        assert top[int(w * 0.1):int(w * 0.9)].all(), bank.name
        left = three[:, :max(2, w // 10)].max(axis=1) > 127
        assert not left[int(h * 0.3):int(h * 0.6)].any(), bank.name  # a diagonal, not a bowl, on the left


@pytest.mark.parametrize("flags, message", [(["--num", "-3"], "error: --num -3 must be at least 1"),
                                            (["--quality", "500"], "error: --quality 500 must be from 1 to 100"),
                                            (["--strength", "-1"], "error: --strength -1.0 must be 0 or more"),
                                            (["--workers", "0"], "error: --workers 0 must be at least 1"),
                                            (["--types", "blue=2,green=-1"],
                                             "error: weight '-1' of 'green' is below 0"),
                                            (["--effects", "perspective=-1"],
                                             "error: weight '-1' of 'perspective' is below 0"),
                                            (["--context", "--ccpd"], "error: choose one of --context and --ccpd")])
def test_gen_plates_refuses_bad_numbers_in_one_line(tmp_path, flags, message):
    with pytest.raises(SystemExit) as e:
        gen_plates.main(["--savepath", str(tmp_path / "out"), *flags])
    assert str(e.value.code) == message and not (tmp_path / "out").exists()


def test_gen_plates_checks_the_folder_and_its_boxes_before_rendering(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "boxes.tsv").write_bytes("file\tbbox\n皖A12345.jpg\t1&2_3&4\n".encode("gbk"))
    for flags, message in [(["--savepath", str(tmp_path / "file" / "out")],
                            f"error: --savepath {tmp_path / 'file' / 'out'}: cannot write there ({tmp_path / 'file'} "
                            "is a file)"),
                           (["--savepath", str(tmp_path / "ctx"), "--context"],
                            f"error: {tmp_path / 'ctx' / 'boxes.tsv'}: cannot add to it (not UTF-8 text)")]:
        with pytest.raises(SystemExit) as e:
            gen_plates.main(["--num", "3", *flags])
        assert str(e.value.code) == message
    assert os.listdir(str(tmp_path / "ctx")) == ["boxes.tsv"]  # nothing rendered


@pytest.mark.parametrize("mode", [{}, {"context": True}, {"ccpd": True}])
def test_a_strong_pose_still_renders_a_plate_in_every_mode(synth, tmp_path, mode):
    """Past ~70 degrees a plate would turn edge-on and flip (it crashed at --strength 4 and 10)."""
    written, skipped = generate(num=8, savepath=str(tmp_path / "out"), seed=2, strength=10, log=lambda *a: None,
                                **mode)
    assert (written, skipped) == (8, 0)


def test_an_interrupted_context_run_keeps_the_rows_of_what_it_wrote(synth, tmp_path, monkeypatch, capsys):
    render = synth_module._render_job

    def interrupted_at_the_third(job):
        if job[0] == 2:
            raise KeyboardInterrupt  # Ctrl-C
        return render(job)
    monkeypatch.setattr(synth_module, "_render_job", interrupted_at_the_third)
    with pytest.raises(SystemExit) as e:
        gen_plates.main(["--num", "5", "--savepath", str(tmp_path), "--context", "--seed", "3"])
    assert str(e.value.code).startswith("interrupted: run the same command again")
    assert (f"stopped after 2 of 5 images, which are kept in {tmp_path} with their boxes.tsv rows (0 unfinished ones "
            "removed)") in capsys.readouterr().out
    images = sorted(f for f in os.listdir(tmp_path) if f.endswith(".jpg"))
    samples, skipped = load_samples(str(tmp_path), log=lambda *a: None)
    assert len(images) == 2 and skipped == 0 and all(s.framed for s in samples)


def test_ctrl_c_on_a_context_run_with_workers_is_one_line_and_leaves_no_image_without_its_row(synth, tmp_path):
    run = subprocess.Popen([sys.executable, str(ROOT / "gen_plates.py"), "--num", "20000", "--savepath", str(tmp_path),
                            "--context", "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           start_new_session=True)  # its own process group, as a terminal's Ctrl-C reaches them all
    time.sleep(4)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and b"Traceback" not in err and err.strip().endswith(b"gives the same plates)")
    assert "images, which are kept in" in out.decode()
    images = [f for f in os.listdir(tmp_path) if f.endswith(".jpg")]
    samples, skipped = load_samples(str(tmp_path), log=lambda *a: None)
    assert 0 < len(images) < 20000 and len(samples) == len(images) and all(s.framed for s in samples)
