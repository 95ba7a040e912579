"""socklab.checks.lesson14: fetch_echo() against real TLS servers on loopback.

A right answer passes; each typical wrong answer is rejected with a hint that
names its mistake.
"""

import socket
import ssl

from socklab.checks import lesson14


def right(host, port, cafile, message):
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((host, port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(message)
            echo = bytearray()
            while len(echo) < len(message):
                data = tls.recv(65536)
                if not data:
                    raise EOFError("the server closed early")
                echo += data
            return bytes(echo)


def with_context(make_context, reads=None):
    """right(), with another context (and optionally one recv only)."""
    def fetch_echo(host, port, cafile, message):
        context = make_context(cafile)
        with socket.create_connection((host, port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                tls.sendall(message)
                if reads == "once":
                    return tls.recv(65536)
                echo = b""
                while len(echo) < len(message):
                    echo += tls.recv(65536)
                return echo
    return fetch_echo


def failures(report):
    return dict(report.failures)


def test_a_right_answer_passes():
    report = lesson14.check_fetch_echo(right)
    assert report.ok, report
    assert len(report.results) == 6


def test_the_stub_is_not_written_yet():
    def fetch_echo(host, port, cafile, message):
        ...  # your code here

    report = lesson14.check_fetch_echo(fetch_echo)
    assert not report.ok
    assert "is it written yet" in report.failures[0][1]
    assert len(report.results) == 1


def test_verification_turned_off_is_named():
    def no_verification(cafile):
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    report = lesson14.check_fetch_echo(with_context(no_verification))
    hints = failures(report)
    assert len(hints) == 2, report
    other, untrusted = hints.values()
    assert "accepted a certificate for www.example.com" in other
    assert "check_hostname = False" in other and "CERT_NONE" in untrusted
    assert "no CA it trusts signed" in untrusted


def test_a_client_that_does_not_check_the_host_name_is_caught():
    def no_hostname_check(cafile):
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = False  # the CA is still checked
        return context

    report = lesson14.check_fetch_echo(with_context(no_hostname_check))
    hints = failures(report)
    assert list(hints) == ["a certificate for www.example.com, asked for localhost: refused"]
    assert "host name was not checked" in hints[list(hints)[0]]


def test_a_client_that_does_not_load_the_ca_file_is_told_to():
    report = lesson14.check_fetch_echo(
        with_context(lambda cafile: ssl.create_default_context()))
    (description, hint), = report.failures
    assert description.startswith("a good server")
    assert "does not trust its CA" in hint and "cafile=cafile" in hint


def test_one_recv_is_not_enough_for_100_000_bytes():
    report = lesson14.check_fetch_echo(with_context(
        lambda cafile: ssl.create_default_context(cafile=cafile), reads="once"))
    hints = failures(report)
    assert list(hints) == ["a message of 100,000 bytes: more than one TLS record"]
    assert "at most one record, 16 KiB" in list(hints.values())[0]


def test_a_client_without_tls_is_told_to_wrap_the_socket():
    def plain(host, port, cafile, message):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(message)
            return sock.recv(65536)

    report = lesson14.check_fetch_echo(plain)
    (description, hint), = report.failures
    assert "received plain bytes, not TLS" in hint


def test_a_client_that_swallows_the_verification_error_is_caught():
    def swallows(host, port, cafile, message):
        try:
            return right(host, port, cafile, message)
        except ssl.SSLError:
            return None

    report = lesson14.check_fetch_echo(swallows)
    hints = failures(report)
    assert len(hints) == 3, report
    assert all("returned None instead of raising" in hint for hint in hints.values())


# ------------------------------------------------------------------ read_ready

def ready_right(tls):
    data = bytearray()
    while True:
        try:
            piece = tls.recv(65536)
        except ssl.SSLWantReadError:
            break
        if not piece:
            break
        data += piece
    return bytes(data)


def test_read_ready_right_answer_passes():
    report = lesson14.check_read_ready(ready_right)
    assert report.ok, report
    assert len(report.results) == 5


def test_read_ready_stub_is_not_written_yet():
    def read_ready(tls):
        ...  # your code here

    report = lesson14.check_read_ready(read_ready)
    assert "is it written yet" in report.failures[0][1] and len(report.results) == 1


def test_asking_select_first_misses_what_openssl_holds():
    import select

    def select_first(tls):
        data = b""
        while select.select([tls], [], [], 0)[0]:
            try:
                piece = tls.recv(65536)
            except ssl.SSLWantReadError:
                break
            if not piece:
                break
            data += piece
        return data

    report = lesson14.check_read_ready(select_first)
    first = report.failures[0]
    assert first[0].startswith("one record of 16 bytes")
    assert "OpenSSL held 11 decrypted bytes" in first[1] and "select()" in first[1]


def test_one_recv_is_one_record():
    def once(tls):
        try:
            return tls.recv(65536)
        except ssl.SSLWantReadError:
            return b""

    report = lesson14.check_read_ready(once)
    hints = failures(report)
    assert "three records (10, 1,000 and 5 bytes), 3 read already: all the rest" in hints
    assert any("data of\none record at most" in hint for hint in hints.values())


def test_pending_alone_misses_the_records_in_the_kernel():
    def pending_only(tls):
        return tls.recv(tls.pending()) if tls.pending() else b""

    report = lesson14.check_read_ready(pending_only)
    assert "three records (10, 1,000 and 5 bytes), 3 read already: all the rest" in failures(report)


def test_not_catching_want_read_is_named():
    def uncaught(tls):
        data = b""
        while piece := tls.recv(65536):
            data += piece
        return data

    report = lesson14.check_read_ready(uncaught)
    assert any("SSLWantReadError" in hint and "catch it" in hint
               for hint in failures(report).values())


def test_looping_on_the_end_of_the_session_is_stopped():
    def endless(tls):
        data = b""
        while True:
            try:
                data += tls.recv(65536)   # b"" at the end: loops for ever
            except ssl.SSLWantReadError:
                return data

    report = lesson14.check_read_ready(endless)
    (description, hint), = report.failures
    assert description.startswith("a record, then the peer ends the session")
    assert "loop on b''" in hint
