"""Every C server a lesson presents as correct survives hostile clients.

The lessons start C servers in the background (`%%c NAME --bg`, or c.start()).
A learner copies them, so each must do what the C discipline (docs/authoring.md)
promises: outlive any one client.  Here each is built with AddressSanitizer and
UBSan, started, and attacked by the clients the exercise checks use -- a hundred
at once, resets before and after the server reads, a client that leaves before
the server answers (SIGPIPE), one byte at a time, half-close, garbage -- and
must then still be alive, with no sanitizer report, and answer an ordinary
client correctly.

Servers that are naive on purpose are listed in NOT_ATTACKED with the reason.
"""

import errno
import pathlib
import socket
import struct

import nbformat
import pytest

from socklab import c
from socklab.checks import adversary
from socklab.checks.c_answer import Answer
from socklab.checks.report import Verdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT = 5.0

NOT_ATTACKED = {
    "reuseport_server": "lesson 01: it only holds a port to show SO_REUSEPORT; it never accepts",
    "queue_server": "lesson 03: it never accepts, on purpose, to fill its backlog",
    "tls_echo_server": "lesson 14: attacked in tests/test_tls.py, which links OpenSSL "
                       "and gives it a certificate",
    "mcast_receiver": "lesson 07: a multicast member; datagrams go to its group, not to "
                      "127.0.0.1: attacked in tests/test_multicast.py",
}


# -- what an ordinary client expects of each server ----------------------------

def echo(sock):
    sock.sendall(b"ping\n")
    assert _read(sock, 5) == b"ping\n"


def greets(sock):
    """A server that speaks first, then closes: it must say something."""
    sock.shutdown(socket.SHUT_WR)
    assert _read_all(sock), "the server sent nothing"


def frames(sock):
    """Lesson 09: a 4-byte big-endian length, then that many bytes; a frame back."""
    sock.sendall(struct.pack("!I", 5) + b"hello")
    (size,) = struct.unpack("!I", _read(sock, 4))
    assert 0 < size < 65536 and len(_read(sock, size)) == size


def resets(sock):
    """Lesson 06's slam_server: it reads a request and resets the connection."""
    sock.sendall(b"request\n")
    with pytest.raises(ConnectionResetError):
        _read_all(sock)


def udp(address):
    """One datagram out, its echo back (any case: udp_upper shouts it).

    The probe's port may be one an attacking client had a moment ago, so the
    server's late replies to that client can arrive first: replies to the
    attack's b"bye" are skipped, anything else is a wrong answer.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(b"ping", address)
        reply = b"bye"
        while reply.lower() == b"bye":
            reply, _ = sock.recvfrom(65536)
        assert reply.lower() == b"ping"


def http_get(sock):
    """Lesson 13's http_c, serving the repository's images/: a file, whole."""
    name = sorted(p.name for p in (ROOT / "images").glob("*.svg"))[0]
    sock.sendall(f"GET /{name} HTTP/1.1\r\nHost: localhost\r\n"
                 "Connection: close\r\n\r\n".encode())
    head, _, body = _read_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head[:100]
    assert body == (ROOT / "images" / name).read_bytes()


PROBES = {
    "echo_server": echo, "threaded": echo, "iterative": echo, "mux": echo,
    "whoami_server": greets, "hello_server": greets, "sender": greets,
    "frame_server": frames, "slam_server": resets, "http_c": http_get,
    "udp_echo_server": udp, "udp_upper": udp,
}


def _read(sock, count):
    data = b""
    while len(data) < count:
        more = sock.recv(count - len(data))
        assert more, f"the connection closed after {len(data)} of {count} bytes"
        data += more
    return data


def _read_all(sock):
    data = b""
    while more := sock.recv(65536):
        data += more
    return data


# -- the servers, as the lessons have them --------------------------------------

def lesson_servers():
    """(lesson, program name, source, args) of every background C server."""
    found = []
    for path in sorted((ROOT / "notebooks" / "en").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        sources = {}
        for cell in nb.cells:
            if cell.cell_type != "code" or not cell.source.startswith("%%c "):
                continue
            first, _, source = cell.source.partition("\n")
            name = first.split()[1]
            sources[name] = source
            if "--bg" in first.split() and "raises-exception" not in cell.metadata.get("tags", []):
                # lesson 13's http_c serves the folder it is given: here, images/
                args = ("images",) if name == "http_c" else ()
                found.append((path.stem[:2], name, source, args))
        if "mux" in sources:  # lesson 10 starts it with c.start("mux", [kind])
            found += [(path.stem[:2], "mux", sources["mux"], (kind,))
                      for kind in ("select", "poll", "epoll")]
    return found


SERVERS = lesson_servers()


def test_every_lesson_server_is_attacked_or_excused():
    names = {name for _, name, _, _ in SERVERS}
    assert names - set(NOT_ATTACKED) <= set(PROBES), "a new server needs a probe here"
    assert len(names) >= 10


@pytest.mark.skipif(c.shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize(
    "lesson, name, source, args",
    [pytest.param(*server, id="-".join([server[0], server[1], *server[3]]))
     for server in SERVERS if server[1] not in NOT_ATTACKED],
)
def test_lesson_server_survives_hostile_clients(lesson, name, source, args):
    unique = f"attacked_{lesson}_{name}_{'_'.join(args)}".rstrip("_")
    c.compile(source, unique, sanitize=True)
    probe = PROBES[name]
    program_args = [str(ROOT / arg) if name == "http_c" else arg for arg in args]
    with Answer(unique, c.start(unique, program_args, ready_timeout=10)) as answer:
        if probe is udp:
            _attack_udp(answer)
            assert answer.death() is None
            udp(answer.address)
        else:
            _attack_tcp(answer)
            assert answer.death() is None
            with answer.connect() as sock:
                sock.settimeout(TIMEOUT)
                probe(sock)
        assert answer.death() is None
        assert answer.program.sanitizer_report() is None


def _attack_tcp(answer):
    """Each hostile client in turn; after each, the server must still be there."""
    for description, attack in TCP_ATTACKS:
        try:
            attack(answer)
            verdict = answer.judged(Verdict.ok())
        except OSError as exc:  # refused, reset, timed out: is the server gone?
            verdict = answer.judged(Verdict.fail(f"{type(exc).__name__}: {exc}"))
        assert verdict.passed, f"after {description}:\n{verdict.hint}"


def _hundred_in_a_row(answer):
    for _ in range(100):
        with answer.connect() as sock:
            _ignore_resets(sock.sendall, b"hello\n")


def _resets_before_the_server_reads(answer):
    for _ in range(3):  # one at a time: a lesson's backlog may be tiny
        with answer.paused():
            with answer.connect() as sock:
                adversary.reset(sock)


def _resets_after_sending(answer):
    for _ in range(5):
        with answer.connect() as sock:
            _ignore_resets(sock.sendall, b"data then a reset\n")
            adversary.reset(sock)


def _leaves_before_the_answer(answer):  # SIGPIPE bait
    with answer.paused():
        with answer.connect() as sock:
            sock.sendall(bytes(100_000))


def _one_byte_at_a_time(answer):
    with answer.connect() as sock:
        sock.settimeout(TIMEOUT)
        for byte in b"slow\n":
            _ignore_resets(sock.sendall, bytes([byte]))
        _ignore_resets(sock.shutdown, socket.SHUT_WR)
        _ignore_resets(_read_all, sock)


def _garbage(answer):
    with answer.connect() as sock:
        _ignore_resets(sock.sendall, bytes(range(256)) * 4)


def _ignore_resets(function, *args):
    """A server may close or reset a client early (lesson 06 does it on purpose):
    the client's call then fails, and that is no failure of the server's."""
    try:
        return function(*args)
    except (ConnectionError, OSError) as exc:
        if isinstance(exc, (ConnectionError,)) or exc.errno == errno.ENOTCONN:
            return None
        raise


TCP_ATTACKS = [
    ("a hundred clients in a row, each saying a line and leaving", _hundred_in_a_row),
    ("clients that reset before the server reads", _resets_before_the_server_reads),
    ("clients that send, then reset", _resets_after_sending),
    ("a client that sends 100 KB and leaves before the answer", _leaves_before_the_answer),
    ("a client that sends one byte at a time, then half-closes", _one_byte_at_a_time),
    ("a client that sends 1 KB of garbage", _garbage),
]


def _attack_udp(answer):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in (b"", bytes(65507), b"\xff" * 100):
            sock.sendto(datagram, answer.address)
    for _ in range(50):  # clients that send and are gone before the reply
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"bye", answer.address)
    assert answer.death() is None
