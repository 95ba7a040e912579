"""socklab.icmp, and lesson 11's cells where privileges matter.

* The checksum, the echo request and the parsers, on bytes (no privileges).
* A real echo to 127.0.0.1 on a raw socket (root only; CI runs as root).
* changed_sysctl() puts the old value back even when the block fails -- and so
  does the lesson's own cell.  Both run in a network namespace of their own
  (unshare --net), where net.ipv4.ping_group_range is a private copy: the
  machine's setting is never touched by these tests.
* The lesson's privilege-dependent cells, run by a process that has given up
  root: each says in plain words what it cannot do, shows what root sees from
  the recording (labelled as one), and none raises.
* That recording (socklab/data/lesson11_root_outputs.json) is what the same
  cells print as root: the notebook's stored outputs, and a fresh run.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap

import nbformat
import pytest

from socklab import c, icmp

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "11-raw-sockets.ipynb"
TIMEOUT = 60  # seconds for a child process
NOBODY = 65534
RANGE = "net.ipv4.ping_group_range"

RECORDED_CELLS = ["privileges-others-py", "echo-py-code", "reply-apart-py", "filter-py",
                  "ping-change-py", "ping-py-code", "packet-py"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def lesson_cells():
    return {cell.id: cell.source for cell in nbformat.read(LESSON, as_version=4).cells}


# ---------------------------------------------------------------- bytes


def test_checksum_of_rfc_1071_example():
    # RFC 1071, section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after folding).
    assert icmp.internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_checksum_edge_cases():
    assert icmp.internet_checksum(b"") == 0xFFFF
    assert icmp.internet_checksum(b"\x01") == 0xFEFF  # padded after: the word 0100
    assert icmp.internet_checksum(b"\xff\xff") == 0
    assert icmp.internet_checksum(b"\xff\xff\x00\x01") == 0xFFFE  # 0x10000 folds to 1
    assert icmp.internet_checksum(b"\xff" * 1501) == 0x00FF


def test_echo_request_layout_and_checksum():
    request = icmp.echo_request(0x1111, 1, b"socklab!")
    assert request.hex(" ") == "08 00 41 90 11 11 00 01 73 6f 63 6b 6c 61 62 21"
    assert icmp.internet_checksum(request) == 0
    assert icmp.parse_echo(request) == icmp.Echo(8, 0, 0x4190, 0x1111, 1, b"socklab!")
    for payload in (b"", b"x", bytes(57)):
        assert icmp.internet_checksum(icmp.echo_request(0xFFFF, 0xFFFF, payload)) == 0


def ipv4(message, options=b""):
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(message), 7, 0x4000,
                         64, 1, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])) + options
    return header + message


def test_split_ipv4_reads_ihl():
    message = icmp.echo_request(1, 2, b"abc")
    header, rest = icmp.split_ipv4(ipv4(message, options=b"\x01" * 8))
    assert header.header_length == 28 and rest == message
    assert (header.src, header.dst, header.protocol, header.dont_fragment) == (
        "127.0.0.1", "127.0.0.2", 1, True)
    assert icmp.parse_reply(ipv4(message, options=b"\x01" * 40)) == (8, 0, 1, 2, b"abc")


def test_parsers_refuse_what_is_too_short():
    for bad in (b"", bytes(19), b"\x46" + bytes(19), b"\x65" + bytes(19)):
        with pytest.raises(ValueError):
            icmp.split_ipv4(bad)
    with pytest.raises(ValueError):
        icmp.parse_echo(bytes(7))


@needs_root
def test_a_real_echo_on_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        raw.settimeout(5)
        raw.sendto(icmp.echo_request(0x7E57, 1, b"test"), ("127.0.0.1", 0))
        seen = []
        while icmp.ECHO_REPLY not in seen:
            kind, _, ident, seq, payload = icmp.parse_reply(raw.recv(65535))
            if (ident, seq) == (0x7E57, 1):
                assert payload == b"test"
                seen.append(kind)
    # On lo the raw socket sees our own request come in before the reply.
    assert seen == [icmp.ECHO_REQUEST, icmp.ECHO_REPLY]


@needs_root
def test_privileges_as_root():
    found = icmp.privileges()
    assert (found.euid, found.cap_net_raw, found.raw_icmp, found.packet) == (0, True, None, None)
    text = repr(found)
    assert "raw ICMP socket:       allowed" in text and "packet socket:         allowed" in text


# ---------------------------------------------------------------- the sysctl, restored


def in_new_network_namespace(code):
    """Run Python ``code`` as root in a network namespace of its own; its stdout."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (util-linux) for a private network namespace")
    child = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
    )
    if child.returncode != 0 and child.stderr.startswith("unshare"):
        pytest.skip(f"unshare cannot make a network namespace here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    return child.stdout


def test_changed_sysctl_restores_when_the_block_raises():
    before = icmp.read_sysctl(RANGE)
    out = in_new_network_namespace(textwrap.dedent(f"""
        from socklab import icmp
        first = icmp.read_sysctl({RANGE!r})
        try:
            with icmp.changed_sysctl({RANGE!r}, "0 0") as old:
                inside = icmp.read_sysctl({RANGE!r})
                raise RuntimeError("the block fails")
        except RuntimeError:
            pass
        print(first, "|", old, "|", inside, "|", icmp.read_sysctl({RANGE!r}))
    """))
    first, old, inside, after = (part.strip() for part in out.split("|"))
    assert inside == "0 0" and first == old == after
    assert icmp.read_sysctl(RANGE) == before  # and this namespace's was never touched


def test_the_lessons_ping_cell_restores_the_range_when_it_fails():
    """The cell changes the range, then fails in the middle (an injected error)."""
    cells = lesson_cells()
    setup = cells["setup"].replace("%load_ext socklab", "")
    code = textwrap.dedent("""
        import json, subprocess, sys
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        import socklab, socklab.c, socklab.icmp
        seen = {}

        def failing_run(*args, **kwargs):
            seen["inside"] = socklab.icmp.read_sysctl("net.ipv4.ping_group_range")
            raise RuntimeError("injected: the C program failed")

        socklab.c.run = failing_run
        names = {}
        for source in json.loads(sys.stdin.read()):
            try:
                exec(source, names)
            except RuntimeError as error:
                seen["error"] = str(error)
        seen["after"] = socklab.icmp.read_sysctl("net.ipv4.ping_group_range")
        seen["original"] = names["ORIGINAL_PING_RANGE"]
        print(json.dumps(seen))
    """)
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (util-linux) for a private network namespace")
    child = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", code],
        input=json.dumps([setup, cells["ping-range-py"], cells["ping-change-py"]]),
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
    )
    assert child.returncode == 0, child.stderr
    seen = json.loads(child.stdout.splitlines()[-1])
    assert seen["error"] == "injected: the C program failed"
    assert seen["inside"] == "0 0"
    assert seen["after"] == seen["original"] == "1 0"


# ---------------------------------------------------------------- no root


def test_why_not_raw_states_the_risk_and_names_no_path():
    message = icmp.why_not_raw()
    assert "throwaway VM or container" in message
    assert "every script it runs sniff and forge packets" in message
    assert not re.search(r"(^|\s)/", message)  # no path of this machine in an output


def test_lesson_cells_as_nobody_say_why_in_plain_words(tmp_path):
    """The cells that need CAP_NET_RAW, run as nobody: words, no traceback."""
    import unprivileged  # tests/: root only, so imported here

    if not unprivileged.can_become_nobody():
        pytest.skip("this test runs the cells as nobody; it needs to start as root")
    cells = lesson_cells()
    wanted = ["privileges-py", "privileges-report-py", "privileges-others-py",
              "echo-py-code", "reply-apart-py", "filter-py", "ping-range-py",
              "ping-change-py", "ping-py-code", "packet-py", "handshake-py",
              "diagram-py", "states-py"]
    sources = [cells["setup"].replace("%load_ext socklab", "")] + [cells[i] for i in wanted]
    # Each cell runs as IPython runs it: the body, then the last expression shown.
    # The whole child is nobody, from any folder (a clone in a 0700 folder too):
    # tests/unprivileged.py keeps the project and the interpreter within its reach.
    code = textwrap.dedent("""
        import json, sys
        import matplotlib
        matplotlib.use("Agg")
        sys.path.insert(0, "tools")
        from record_lesson11 import run_cell   # the recorder's own cell runner
        sources = json.loads(sys.stdin.read())
        names = {}
        exec(sources[0], names)                 # the lesson's imports
        print(json.dumps([run_cell(source, names) for source in sources[1:]]))
    """)
    child = unprivileged.run(
        [sys.executable, "-c", code], tmp_path, input=json.dumps(sources),
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
    )
    assert child.returncode == 0, child.stderr  # no cell raised
    shown = dict(zip(wanted, json.loads(child.stdout)))
    assert "effective user id: 65534" in shown["privileges-py"]
    assert "CAP_NET_RAW in CapEff: False" in shown["privileges-py"]
    assert "can_capture(): False" in shown["privileges-py"]
    report = shown["privileges-report-py"]
    assert "65534 (not root)" in report
    assert "raw ICMP socket:       refused (EPERM): needs CAP_NET_RAW (man 7 raw)" in report
    assert "your own row is the report above" in shown["privileges-others-py"]
    message = shown["echo-py-code"]
    assert "Raw sockets need the capability CAP_NET_RAW" in message
    assert "you are not root (uid 65534)" in message
    assert "from a recording" in message and "setcap cap_net_raw+ep /" not in message
    assert "Not root: only root may change net.ipv4.ping_group_range" in shown["ping-change-py"]
    assert "needs CAP_NET_RAW (man 7 packet)" in shown["packet-py"]
    # Each cell that needs root shows, last, what root sees -- labelled.
    recording = json.loads((ROOT / "socklab" / "data" / icmp.RECORDED_OUTPUTS).read_text())
    assert set(recording["outputs"]) == set(RECORDED_CELLS)
    label = re.compile(r"\(recorded as root on \d{4}-\d\d-\d\d, Linux [^:\n]+: [^\n]+\)\n")
    for cell in RECORDED_CELLS:
        found = label.search(shown[cell])
        assert found, (cell, shown[cell])
        assert shown[cell][found.end():] == recording["outputs"][cell], cell
        assert "Traceback" not in shown[cell]
    assert "this machine does not allow raw sockets)" in shown["echo-py-code"]
    assert "only root may change net.ipv4.ping_group_range)" in shown["ping-change-py"]
    assert shown["handshake-py"].startswith("(recorded on ")
    assert "Figure" in shown["diagram-py"]
    assert "TIME-WAIT" in shown["states-py"]


def test_c_programs_as_nobody_say_why_in_plain_words():
    """The lesson's C programs that need CAP_NET_RAW, run as nobody: words, exit 0."""
    if os.geteuid() != 0:
        pytest.skip("this test starts the programs as nobody; it needs root")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    cells = lesson_cells()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="socklab-lesson11-"))
    try:
        folder.chmod(0o755)
        outputs = {}
        for cell_id in ("echo-c-code", "packet-c-code", "ping-c-code"):
            first_line, _, source = cells[cell_id].partition("\n")
            name = f"lesson11_nobody_{first_line.split()[1]}"
            program = folder / name
            shutil.copy(c.compile(source, name), program)
            program.chmod(0o755)
            run = subprocess.run([str(program)], user=NOBODY, group=NOBODY, extra_groups=[],
                                 capture_output=True, text=True, timeout=TIMEOUT, cwd="/")
            assert run.returncode == 0, (cell_id, run.stdout, run.stderr)
            outputs[cell_id] = run.stdout + run.stderr
    finally:
        shutil.rmtree(folder)
    assert "EPERM: raw sockets need\nroot or CAP_NET_RAW (man 7 raw)" in outputs["echo-c-code"]
    assert "needs root or CAP_NET_RAW (man 7 packet): Operation not permitted" in \
        outputs["packet-c-code"]
    for cell_id in ("echo-c-code", "packet-c-code"):  # they point to the recording
        assert "The Python version below shows the same two" in outputs[cell_id]
        assert "from a recording" in outputs[cell_id]
    assert "= -1 EACCES (Permission denied)" in outputs["ping-c-code"]


# ---------------------------------------------------------------- the recording


def test_recorded_output_is_labelled_and_names_unknown_cells():
    text = icmp.recorded_output("filter-py")
    assert re.match(r"\(recorded as root on \d{4}-\d\d-\d\d, Linux \S+: "
                    r"this machine does not allow raw sockets\)\n", text)
    assert text.endswith("ICMP type 0\n")
    assert "no ping socket" in icmp.recorded_output("ping-py-code", "no ping socket")
    with pytest.raises(ValueError, match="there are: echo-py-code, filter-py"):
        icmp.recorded_output("no-such-cell")


def test_recording_is_what_the_notebook_stores_from_its_root_run():
    """The stored outputs come from a root run (make execute, checked by nbval)."""
    recording = json.loads((ROOT / "socklab" / "data" / icmp.RECORDED_OUTPUTS).read_text())
    stored = {}
    for cell in nbformat.read(LESSON, as_version=4).cells:
        if cell.cell_type == "code":
            stored[cell.id] = "".join(output.get("text", "") for output in cell.outputs
                                      if output.output_type == "stream")
    for cell_id in RECORDED_CELLS:
        assert recording["outputs"][cell_id] == stored[cell_id], cell_id


@needs_root
def test_a_fresh_root_run_prints_what_was_recorded():
    """tools/record_lesson11.py --check: the cells, run live as root, print the recording.

    In a network namespace of its own, so that the ping cell's change of
    net.ipv4.ping_group_range touches a private copy only.
    """
    if shutil.which("unshare") is None or not icmp.has_cap_net_raw():
        pytest.skip("needs unshare (util-linux) and CAP_NET_RAW")
    child = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c",
         f'ip link set lo up && exec "{sys.executable}" tools/record_lesson11.py --check'],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
    )
    assert child.returncode == 0, child.stdout + child.stderr


def test_lesson_cells_as_root_without_cap_net_raw_show_the_recording():
    """Root in a container started with --cap-drop=NET_RAW (made with setpriv):
    the raw and packet cells end with the labelled recording, and none raises."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux)")
    wanted = ["echo-py-code", "reply-apart-py", "filter-py", "packet-py"]
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, "tools")
        import nbformat, record_lesson11
        from socklab import icmp
        cells = {{cell.id: cell.source
                 for cell in nbformat.read(record_lesson11.LESSON, as_version=4).cells}}
        names = {{}}
        record_lesson11.run_cell(cells["setup"], names)
        shown = {{cell_id: record_lesson11.run_cell(cells[cell_id], names)
                  for cell_id in {wanted!r}}}
        print(json.dumps([icmp.has_cap_net_raw(), shown]))
    """)
    child = subprocess.run(
        [setpriv, "--bounding-set=-net_raw", "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
    )
    if child.returncode != 0 and child.stderr.startswith("setpriv"):
        pytest.skip(f"setpriv cannot drop the capability here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr  # no cell raised
    has_cap, shown = json.loads(child.stdout.splitlines()[-1])
    assert has_cap is False
    assert "you are root, but this process has no CAP_NET_RAW" in shown["echo-py-code"]
    for cell in wanted:
        assert shown[cell].endswith(
            icmp.recorded_output(cell).split("\n", 1)[1]), (cell, shown[cell])
        assert "(recorded as root on " in shown[cell]
        assert "this machine does not allow raw sockets)\n" in shown[cell]
