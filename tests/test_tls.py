"""Lesson 14's TLS programs, for real: the four pairings with verification on, the
refusals, SSL_pending(), and the C TLS server attacked.

The C programs are the lesson's own cells (``%%c tls_echo_server``,
``tls_echo_client``, ``pending_client``), built here with AddressSanitizer and
UBSan and linked with the libraries their magic lines name (-l ssl -l crypto).
The Python server and client do what the lesson's do.  Certificates come from
socklab.certs: a CA made for this module, a good server certificate, one for
another name, one from a CA the clients were not given.  Everything runs on
loopback.
"""

import pathlib
import re
import shlex
import socket
import ssl
import types

import nbformat
import pytest

from socklab import c, certs
from socklab.checks import adversary
from socklab.checks.c_answer import Answer
from socklab.checks.report import Verdict
from socklab.servers import TCPServer
from test_c_servers import TCP_ATTACKS

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "14-tls.ipynb"
TIMEOUT = 5.0

pytestmark = [
    pytest.mark.skipif(c.shutil.which("gcc") is None, reason="gcc is not installed"),
    pytest.mark.skipif(not pathlib.Path("/usr/include/openssl/ssl.h").exists(),
                       reason="the OpenSSL headers are not installed (apt-get install libssl-dev)"),
]


def lesson_programs():
    """{name: (source, libraries)} of the lesson's C cells."""
    found = {}
    for cell in nbformat.read(LESSON, as_version=4).cells:
        if cell.cell_type == "code" and cell.source.startswith("%%c "):
            first, _, source = cell.source.partition("\n")
            words = shlex.split(first.split(" -- ")[0])
            libs = [words[i + 1] for i, word in enumerate(words) if word == "-l"]
            found[words[1]] = (source, libs)
    return found


@pytest.fixture(scope="module")
def tls():
    ca = certs.LocalCA("test CA")
    return types.SimpleNamespace(
        ca_file=ca.cert_file,
        good=ca.issue(),
        other_name=ca.issue("www.example.com"),
        name_only=ca.issue("localhost", name="localhost only"),  # no address in it
        stranger=certs.LocalCA("a stranger's CA").issue(name="stranger"),
    )


@pytest.fixture(scope="module")
def programs():
    """The lesson's OpenSSL programs, sanitized, under names of their own.
    (Its exercise, my_sniffer, needs no OpenSSL: tests/c_exercises/lesson14.py.)"""
    built, programs = {}, lesson_programs()
    for name in ("tls_echo_server", "tls_echo_client", "pending_client"):
        source, libs = programs[name]
        assert libs == ["ssl", "crypto"], f"{name}: the cell links {libs}"
        built[name] = f"t14_{name}"
        c.compile(source, built[name], sanitize=True, libs=libs)
    return built


@pytest.fixture
def c_server(programs, tls):
    program = c.start(programs["tls_echo_server"],
                      [tls.good.cert_file, tls.good.key_file], ready_timeout=10)
    with Answer("tls_echo_server", program) as answer:
        yield answer
        assert answer.death() is None
        assert program.sanitizer_report() is None


class PythonTLSServer(TCPServer):
    """The lesson's Python TLS echo server; ``failures`` notes failed handshakes."""

    def __init__(self, cert, host="127.0.0.1"):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert.cert_file, cert.key_file)
        self.failures = []
        super().__init__(self._echo, name="t14 python server", host=host)

    def _echo(self, conn):
        try:
            tls = self.context.wrap_socket(conn.sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.failures.append(getattr(exc, "reason", None) or type(exc).__name__)
            return
        conn.sock = tls
        try:
            while data := tls.recv(65536):
                tls.sendall(data)
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass


def python_client(host, port, cafile, message):
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(message)
            echo = b""
            while len(echo) < len(message):
                data = tls.recv(65536)
                assert data, "the server closed before the whole echo"
                echo += data
            version = tls.version()
            tls.unwrap()
    return version, echo


def c_client(programs, host, port, cafile, message):
    done = c.run(programs["tls_echo_client"], [host, port, cafile, message.decode()],
                 echo=False, check=False)
    assert c.sanitizer_report(programs["tls_echo_client"], done.stderr) is None
    return done


# -- socklab.certs --------------------------------------------------------------

def test_certificates_are_private_files_with_stable_fields(tls):
    folder = tls.good.cert_file.parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert tls.good.key_file.stat().st_mode & 0o777 == 0o600
    assert certs.describe(tls.good.cert_file).splitlines() == [
        "subject:    OU=server localhost,O=socklab",
        "issuer:     OU=test CA,O=socklab",
        "names:      localhost, 127.0.0.1, ::1",
        "valid from: 2000-01-01",
        "valid to:   3000-01-01",
        "is a CA:    no",
        "key:        elliptic curve secp256r1",
    ]
    assert "is a CA:    yes" in certs.describe(tls.ca_file)
    assert "names:      www.example.com\n" in certs.describe(tls.other_name.cert_file)
    assert str(folder) not in repr(tls.good)  # no path of the machine in an output


def test_a_new_ca_makes_new_keys_under_the_same_names():
    first, second = certs.LocalCA("same name"), certs.LocalCA("same name")
    assert first.cert_file.read_bytes() != second.cert_file.read_bytes()
    assert certs.describe(first.cert_file) == certs.describe(second.cert_file)
    context = ssl.create_default_context(cafile=first.cert_file)
    assert context.cert_store_stats()["x509_ca"] == 1  # ssl loads it as a CA


# -- the four pairings, verification on ------------------------------------------

@pytest.mark.parametrize("client_kind", ["C", "Python"])
@pytest.mark.parametrize("server_kind", ["C", "Python"])
def test_every_pairing_echoes_with_the_certificate_verified(
        programs, tls, server_kind, client_kind, request):
    if server_kind == "C":
        server = request.getfixturevalue("c_server")
        port = server.address[1]
    else:
        server = PythonTLSServer(tls.good)
        request.addfinalizer(server.stop)
        port = server.port
    message = f"{client_kind}-to-{server_kind}".encode()
    if client_kind == "C":
        done = c_client(programs, "localhost", port, tls.ca_file, message)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"TLSv1.3, verify result: ok\necho: {message.decode()}\n"
    else:
        assert python_client("localhost", port, tls.ca_file, message) == ("TLSv1.3", message)
    if server_kind == "Python":
        # The C client does not wait for the server's close_notify: let the
        # server's unwrap() finish before stop() shuts its socket down.
        server.events.wait_for("close")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_both_clients_verify_an_address_named_in_the_certificate(programs, tls, host):
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with PythonTLSServer(tls.good, host=host) as server:
        done = c_client(programs, host, server.port, tls.ca_file, b"by address")
        assert done.returncode == 0 and done.stdout.endswith("echo: by address\n"), done.stderr
        assert python_client(host, server.port, tls.ca_file, b"by address")[1] == b"by address"
        server.events.wait_for("close", 2)  # both connections ended before stop()


# -- what the clients must refuse -------------------------------------------------

REFUSALS = [
    # (certificate, host asked for, verify code, OpenSSL's words)
    ("other_name", "localhost", 62, "hostname mismatch"),
    ("name_only", "127.0.0.1", 64, "IP address mismatch"),
    ("stranger", "localhost", 20, "unable to get local issuer certificate"),
]


@pytest.mark.parametrize("cert, host, code, words", REFUSALS)
def test_the_c_client_refuses_and_says_why(programs, tls, cert, host, code, words):
    with PythonTLSServer(getattr(tls, cert)) as server:
        done = c_client(programs, host, server.port, tls.ca_file, b"hello?")
        assert done.returncode == 1
        assert "SSL_connect: error:0A000086:SSL routines::certificate verify failed" in done.stderr
        assert f"verify result {code}: {words}" in done.stderr
        assert "echo" not in done.stdout
        server.events.wait_for("close")
        assert len(server.failures) == 1  # the client's alert ended the handshake


@pytest.mark.parametrize("cert, host, code, words", REFUSALS)
def test_the_python_client_refuses_with_the_same_code(tls, cert, host, code, words):
    with PythonTLSServer(getattr(tls, cert)) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            python_client(host, server.port, tls.ca_file, b"hello?")
        assert refused.value.verify_code == code


def test_the_c_client_against_a_plain_text_server_fails_cleanly(programs, tls):
    def plain(conn):
        conn.sendall(b"hello, plain text here\r\n")
        while conn.recv(65536):
            pass

    with TCPServer(plain, name="t14 plain") as server:
        done = c_client(programs, "localhost", server.port, tls.ca_file, b"hello?")
    assert done.returncode == 1
    assert "SSL_connect: error:0A00010B:SSL routines::wrong version number" in done.stderr


def test_the_c_client_without_our_ca_refuses_the_good_server(programs, tls, c_server):
    done = c_client(programs, "localhost", c_server.address[1], "-", b"hello?")
    assert done.returncode == 1
    assert "verify result 20: unable to get local issuer certificate" in done.stderr
    c_server.program.wait_for_output("SSL_accept: error:0A000418:SSL routines::tlsv1 alert unknown ca")


# -- SSL_pending ------------------------------------------------------------------

def test_pending_client_shows_data_that_poll_cannot_see(programs, tls):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.good.cert_file, tls.good.key_file)

    def one_record(conn):
        tls_sock = context.wrap_socket(conn.sock, server_side=True)
        conn.sock = tls_sock
        tls_sock.sendall(b"hello, pending!\n")
        try:
            tls_sock.recv(1)
        except (ssl.SSLError, OSError):
            pass

    with TCPServer(one_record, name="t14 one record") as server:
        done = c.run(programs["pending_client"], ["localhost", server.port, tls.ca_file],
                     echo=False)
    assert done.stdout == (
        'SSL_read(ssl, buf, 5) = 5: "hello"\n'
        "poll(): readable now? no\n"
        "SSL_pending(ssl) = 11\n"
        'SSL_read(ssl, buf, 64) = 11: ", pending!\\n"\n')


# -- the C server attacked ------------------------------------------------------

def _client_hello(tls):
    """The bytes of a real ClientHello, made without a socket (ssl.MemoryBIO)."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    handshake = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        handshake.do_handshake()
    return outgoing.read()


def _resets_in_the_middle_of_the_handshake(answer, tls):
    hello = _client_hello(tls)
    for _ in range(5):
        with answer.connect() as sock:
            sock.sendall(hello)
            sock.settimeout(TIMEOUT)
            assert sock.recv(5)[:1] == b"\x16"  # the ServerHello's record has begun
            adversary.reset(sock)


def _half_a_client_hello_then_gone(answer, tls):
    hello = _client_hello(tls)
    with answer.connect() as sock:
        sock.sendall(hello[: len(hello) // 2])


def _silent_clients_do_not_block_the_others(answer, tls):
    silent = [answer.connect() for _ in range(5)]  # connect and say nothing
    try:
        echo = python_client("localhost", answer.address[1], tls.ca_file, b"not blocked")
        assert echo[1] == b"not blocked"
    finally:
        for sock in silent:
            sock.close()


def _a_hundred_handshakes(answer, tls):
    for number in range(100):
        message = f"handshake {number}".encode()
        assert python_client("localhost", answer.address[1], tls.ca_file, message)[1] == message


def _leaves_without_reading_its_echo(answer, tls):
    """SIGPIPE bait for SSL_write(): a client that sends and resets unread.

    64 KB: what loopback's buffers hold both ways, so sendall() never waits
    for a server that waits for us to read its echo."""
    context = ssl.create_default_context(cafile=tls.ca_file)
    for _ in range(3):
        with answer.connect() as sock:
            tls_sock = context.wrap_socket(sock, server_hostname="localhost")
            tls_sock.sendall(bytes(65_536))
            adversary.reset(tls_sock)  # the TLS socket holds the descriptor now


def _untrusting_clients(answer, tls):
    context = ssl.create_default_context()  # not our CA: the handshake fails
    for _ in range(3):
        with answer.connect() as sock:
            with pytest.raises(ssl.SSLCertVerificationError):
                context.wrap_socket(sock, server_hostname="localhost")


TLS_ATTACKS = [
    ("clients that reset in the middle of the handshake", _resets_in_the_middle_of_the_handshake),
    ("a client that sends half a ClientHello and leaves", _half_a_client_hello_then_gone),
    ("silent clients, while another is served", _silent_clients_do_not_block_the_others),
    ("a hundred TLS clients in a row", _a_hundred_handshakes),
    ("clients that send 64 KB over TLS and reset", _leaves_without_reading_its_echo),
    ("clients that refuse the certificate", _untrusting_clients),
]


def _without_certificates(attack):
    return lambda answer, tls: attack(answer)


def test_the_c_tls_server_survives_hostile_clients(c_server, tls):
    # The plain-TCP attackers of every lesson server first: to a TLS server
    # their bytes are a failed handshake, one connection each.
    attacks = [(description, _without_certificates(attack))
               for description, attack in TCP_ATTACKS] + TLS_ATTACKS
    for description, attack in attacks:
        try:
            attack(c_server, tls)
            verdict = c_server.judged(Verdict.ok())
        except (OSError, AssertionError) as exc:
            verdict = c_server.judged(Verdict.fail(f"{type(exc).__name__}: {exc}"))
        assert verdict.passed, f"after {description}:\n{verdict.hint}"
    assert python_client("localhost", c_server.address[1], tls.ca_file,
                         b"still answering") == ("TLSv1.3", b"still answering")
    assert c_server.zombies() == []  # SIGCHLD ignored: the kernel reaps the children
    output = c_server.program.output
    assert "SSL_accept: error:0A00010B:SSL routines::wrong version number" in output
    assert re.search(r"^SSL_accept: .*unknown ca$", output, re.MULTILINE)
