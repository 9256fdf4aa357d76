import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))


def shared_path(*parts):
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the real data in ../shared is not present)")
    return path


def no_fonts(error):
    """Skip a test that renders plates where no CJK font is installed; fail it where .ci/run installed the fonts
    (LPR_REQUIRE_FONTS=1), so a font that stops being found cannot turn the generator's tests into skips."""
    message = f"no system fonts for rendering ({error})"
    if os.environ.get("LPR_REQUIRE_FONTS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def load_script(name):
    """A top-level script (`LPRNet_ORT_infer.py`), imported as a module."""
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), str(ROOT / name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_subset(src, dst, count):
    """Copy the first `count` images of a shared folder into a temporary folder (never into the repo)."""
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src))[:count]:
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    return dst


@pytest.fixture(scope="session")
def reference_checkpoint():
    return shared_path("reference", "Final_LPRNet_model.pth")
