"""Every figure in images/ is exactly what tools/make_images.py draws, and says what it shows."""

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


def test_every_image_in_a_lesson_says_what_it_shows():
    """Issue 15: figures readable without sight.  Each Markdown image in both
    editions has an alt text of a few words at least (not "figure")."""
    import json
    import re

    short = []
    for path in sorted(ROOT.glob("notebooks/*/*.ipynb")):
        for number, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            for alt in re.findall(r"!\[([^\]]*)\]\(", text):
                if len(alt.split()) < 4 and len(alt) < 12:  # Chinese has no spaces
                    short.append(f"{path.parent.name}/{path.name} cell {number}: {alt!r}")
            if "<img" in text and not re.search(r"<img[^>]*\balt=\"[^\"]{12,}", text):
                short.append(f"{path.parent.name}/{path.name} cell {number}: <img> without alt")
    assert short == []
