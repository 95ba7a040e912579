"""Lesson 15's Python checks pass the lesson's solutions, say "is it written yet?" for
the stubs, and name the typical wrong answers in plain words.

The solutions and the helpers they use (decode_name, unpack, TYPE_A ...) are read
from the lesson (English edition); each wrong answer is the solution with one typical
mistake put in by a text substitution, after asserting that the substitution applies
(a reworded solution cannot make a test a silent no-op).  The server exercise is
judged over real UDP on loopback.  The C exercise's wrong answers are in
tests/c_exercises/lesson15.py.
"""

import pathlib

import nbformat
import pytest

from socklab.checks import lesson15

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "15-dns.ipynb"
IMPORTS = "import secrets, socket, struct, typing\n"


def lesson_code():
    """{what: source} of the lesson cells these tests need."""
    cells = [cell.source for cell in nbformat.read(LESSON, as_version=4).cells
             if cell.cell_type == "code"]

    def the(marker, cut=None):
        source, = [source for source in cells if marker in source]
        return source.split(cut)[0] if cut else source

    return {
        "helpers": IMPORTS + the("def build_query(") + "\n\n"
        + the("def decode_name(", "\n\nparse_message(referral)"),
        "wire_solution": the("def solution_wire_name(", "\nsocklab.checks"),
        "wire_stub": the("def wire_name(name):", "\nsocklab.checks"),
        "answer_solution": the("def solution_answer_query(", "\nsocklab.checks"),
        "answer_stub": the("def answer_query(query):", "\nsocklab.checks"),
    }


CODE = lesson_code()


def function(source, name):
    names = {}
    exec(compile(CODE["helpers"], str(LESSON), "exec"), names)
    # the stub cell defines ZONE, which the solution's default argument uses
    exec(compile(CODE["answer_stub"], str(LESSON), "exec"), names)
    exec(compile(source, str(LESSON), "exec"), names)
    return names[name]


def hints(report):
    return "\n".join(hint for _, hint in report.failures)


def mistaken(source, old, new):
    assert old in source, f"the solution no longer has {old!r}"
    return source.replace(old, new)


ZONE = {"www.socklab.test.": "127.0.0.1", "mail.socklab.test.": "127.0.0.25"}


# -- exercise 1: wire_name -------------------------------------------------------

def test_wire_name_solution_passes():
    report = lesson15.check_wire_name(function(CODE["wire_solution"], "solution_wire_name"))
    assert report.ok, repr(report)


def test_wire_name_stub_is_not_written_yet():
    report = lesson15.check_wire_name(function(CODE["wire_stub"], "wire_name"))
    assert not report.ok and "is it written yet?" in hints(report)
    assert len(report.results) == 1


WIRE_MISTAKES = [
    ("no-root-label", '    wire += b"\\0"\n', "", "final zero byte is missing"),
    ("dots-kept", "wire += bytes([len(data)]) + data",
     "wire += bytes([len(data)]) + data + b'.'", "dots are still there"),
    ("no-length-byte", "wire += bytes([len(data)]) + data", "wire += data",
     "needs its length"),
    ("no-63-limit", "if len(data) > 63:", "if len(data) > 64:", "a label of 64 bytes"),
    ("no-255-limit", "if len(wire) > 255:", "if len(wire) > 256:", "256 bytes"),
    ("empty-label-accepted", "if not data:", "if False:", "an empty label"),
    ("root-not-special", '    if name == ".":\n        return b"\\0"\n',
     "", "for '.', it raised ValueError"),
    ("wrong-exception", 'raise ValueError(f"a label of', 'raise OverflowError(f"a label of',
     "raise ValueError"),
]


@pytest.mark.parametrize("old, new, expected", [m[1:] for m in WIRE_MISTAKES],
                         ids=[m[0] for m in WIRE_MISTAKES])
def test_wire_name_wrong_answer_is_named(old, new, expected):
    wrong = function(mistaken(CODE["wire_solution"], old, new), "solution_wire_name")
    report = lesson15.check_wire_name(wrong)
    assert not report.ok
    assert expected in hints(report), repr(report)


def test_wire_name_that_returns_text_is_told_to_return_bytes():
    report = lesson15.check_wire_name(lambda name: name)
    assert not report.ok and "return bytes" in hints(report)


# -- exercise 3: answer_query ------------------------------------------------------

def test_answer_query_solution_passes():
    answer = function(CODE["answer_solution"], "solution_answer_query")
    report = lesson15.check_answer_query(answer, ZONE)
    assert report.ok, repr(report)


def test_answer_query_stub_is_not_written_yet():
    report = lesson15.check_answer_query(function(CODE["answer_stub"], "answer_query"), ZONE)
    assert not report.ok and "is it written yet?" in hints(report)
    assert len(report.results) == 1


ANSWER_MISTAKES = [
    ("id-not-copied", "struct.pack(\"!6H\", qid, flags,", "struct.pack(\"!6H\", 0, flags,",
     "copy the query's"),
    ("qr-not-set", "flags = 0x8000 | (flags & 0x7900)", "flags = (flags & 0x7900)",
     "QR is 0"),
    ("rd-not-copied", "(flags & 0x7900)", "(flags & 0x7800)", "RD is not the query's"),
    ("no-aa", 'key, aa, answers = name.lower(), 0x0400, []',
     'key, aa, answers = name.lower(), 0, []', "AA is 0"),
    ("no-nxdomain", "rcode = 3  # NXDOMAIN", "rcode = 0", "want 3 (NXDOMAIN)"),
    ("case-sensitive", "key, aa, answers = name.lower(),", "key, aa, answers = name,",
     "the answer section holds"),
    ("no-refused", "rcode, aa = 5, 0", "rcode, aa = 3, 0x0400", "want 5 (REFUSED)"),
    ("a-for-every-type", "answers = [zone[key]] if qtype == TYPE_A else []",
     "answers = [zone[key]]", "want nothing"),
    ("question-lower-cased", "+ query[12:end + 4] + records)",
     "+ encode_name(key) + query[end:end + 4] + records)", "copy the query's, as it came"),
    ("raises-on-garbage", "    except ValueError:  # UnicodeDecodeError is one too\n"
     "        return None  # nothing we can read: no reply\n",
     "    except ValueError:\n        raise\n", "must not fail because of one bad datagram"),
    ("answers-a-reply", "if flags & 0x8000 or qdcount != 1:", "if qdcount != 1:",
     "never answer a reply"),
    ("rdlength-wrong", "3600, 4)", "3600, 5)", "not a DNS message"),
]


@pytest.mark.parametrize("old, new, expected", [m[1:] for m in ANSWER_MISTAKES],
                         ids=[m[0] for m in ANSWER_MISTAKES])
def test_answer_query_wrong_answer_is_named(old, new, expected):
    wrong = function(mistaken(CODE["answer_solution"], old, new), "solution_answer_query")
    report = lesson15.check_answer_query(wrong, ZONE)
    assert not report.ok
    assert expected in hints(report), repr(report)


def test_answer_query_that_never_returns_is_cut_off():
    import threading
    stop = threading.Event()
    try:
        report = lesson15.check_answer_query(lambda query: stop.wait(30), ZONE)
    finally:
        stop.set()  # let the helper thread end
    assert not report.ok and "did not return within 5 s" in hints(report)
