"""Unicode-safe image reading, atomic writing and image listing (Chinese file names are the norm)."""
import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """An image file cannot be used; the message names the problem, the caller names the file."""


def to_bgr8(img):
    """Any decoded image (gray, BGRA, 16-bit, float) -> 8-bit 3-channel BGR. Float images are 0-255, or 0-1
    where none is above 1 (as numpy and torch pipelines often keep them)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.clip(img * 255 if img.max() <= 1 else img, 0, 255).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def is_cut_short_jpeg(data):
    """A JPEG with no end-of-image marker after its last scan: the file was cut short. OpenCV before 4.11 decodes
    such a file anyway, the missing part grey; later versions refuse it. (A marker byte 0xFF inside a scan is
    always followed by 0x00 or a restart code, so the last 0xFFDA and 0xFFD9 are real markers.)"""
    return data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def read_image(path, reduce=1):
    """Read `path` as 8-bit BGR; `reduce` in (1, 2, 4, 8) decodes at that fraction of the resolution."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"cannot read ({e.strerror})") from None
    if not data:
        raise ImageError("empty file")
    if is_cut_short_jpeg(data):
        raise ImageError("not a readable image (a JPEG cut short)")
    # a reduced decode would apply an EXIF rotation that the full decode (IMREAD_UNCHANGED) does not
    flags = cv2.IMREAD_UNCHANGED if reduce == 1 else cv2.IMREAD_IGNORE_ORIENTATION | {
        2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ImageError("not a readable image (corrupt or unsupported format)")
    return to_bgr8(img)


def write_atomic(path, write):
    """Call write(tmp_path), then rename onto `path`: an interrupted run never leaves half a file."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_lines(path, lines):
    """Write text lines (each ending in a newline) to `path` atomically, as UTF-8 with \n line ends on every OS."""
    def dump(tmp):
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)

    write_atomic(path, dump)


def jpeg_roundtrip(img, quality):
    """`img` (8-bit BGR) as it comes back from a JPEG file of that quality."""
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])[1], cv2.IMREAD_COLOR)


def write_image(path, img, quality=95):
    """Write an image atomically under a Unicode-safe name; the format follows the extension."""
    ext = os.path.splitext(path)[1] or ".jpg"
    params = []
    if ext.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):  # full colour resolution: 4:2:0 blurs small plates
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ImageError(f"cannot encode as {ext}")

    def dump(tmp):
        with open(tmp, "wb") as f:
            f.write(buf.tobytes())

    write_atomic(path, dump)


def is_image_file(path):
    return path.lower().endswith(IMAGE_EXTENSIONS)


def list_images(path):
    """Image files in a folder (recursive, sorted) or the single file given; [] if there are none.

    Raises FileNotFoundError when `path` does not exist.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in sorted(files) if is_image_file(f) and not f.startswith("."))
    return found


def unwritable_folder(folder):
    """Why files cannot be written into `folder` (made where missing), or None: checked before any image is read."""
    folder = os.path.abspath(folder)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file"
    if not os.access(existing, os.W_OK):
        return f"{existing} is not writable"
    return None
