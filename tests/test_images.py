"""Every figure in images/ is exactly what tools/make_images.py draws."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_images_are_up_to_date():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_images.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
