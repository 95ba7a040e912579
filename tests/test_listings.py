"""Every C listing in every lesson compiles with -Wall -Wextra -Werror.

The English lessons are compiled; the Chinese edition's code cells are the same
text, byte for byte (tests/test_editions.py fails otherwise), so compiling them
again would test nothing new.
"""

import pathlib
import re
import shlex

import nbformat
import pytest

from socklab import c

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/en/*.ipynb"))


def c_cells():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            broken_on_purpose = "raises-exception" in cell.metadata.get("tags", [])
            if cell.cell_type == "code" and cell.source.startswith("%%c") and not broken_on_purpose:
                yield pytest.param(path, index, cell, id=f"{path.parent.name}/{path.stem}#{index}")


LISTINGS = list(c_cells())


def test_lessons_have_c_listings():
    assert LISTINGS, "no %%c cell found in any lesson"


def libraries(first_line):
    """The libraries a %%c line links, as gcc's -l names them: "-l ssl", "-lssl"."""
    words = shlex.split(first_line)[2:]
    if "--" in words:
        words = words[:words.index("--")]  # the program's own arguments follow
    libs = []
    for word, following in zip(words, words[1:] + [""]):
        if word == "-l":
            libs.append(following)
        elif word.startswith("-l"):
            libs.append(word[2:])
    return libs


def test_libraries_are_read_from_the_magic_line_as_gcc_would():
    assert libraries("%%c srv --bg -l ssl -lcrypto -- -l x") == ["ssl", "crypto"]
    assert libraries("%%c hello") == []


@pytest.mark.skipif(c.shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize("path, index, cell", LISTINGS)
def test_c_listing_compiles(path, index, cell):
    first_line, _, source = cell.source.partition("\n")
    name = shlex.split(first_line)[1]
    # Compiled under a name of its own, so that a program the kernel of another
    # test may be running is not replaced.
    unique = re.sub(r"\W", "_", f"listing_{path.parent.name}_{path.stem}_{index}_{name}")
    # Lesson 14's listings link OpenSSL (-l ssl -l crypto), as their cells ask.
    c.compile(source, unique, libs=libraries(first_line))


@pytest.mark.parametrize("path, index, cell", LISTINGS)
def test_c_cells_are_tagged_lang_c(path, index, cell):
    assert "lang-c" in cell.metadata.get("tags", [])
