"""The exercise checkers must accept right answers and reject wrong ones, in words."""

import socket
import time

import socklab.checks as checks


def ask_right(address, message):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(message)
        reply = b""
        while len(reply) < len(message):
            part = sock.recv(65536)
            if not part:
                break
            reply += part
        return reply


def ask_one_recv(address, message):
    """The classic mistake: one recv() and hope it is all there."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(message)
        return sock.recv(1024) if message else b""


def ask_str(address, message):
    return ask_right(address, message).decode("latin-1")


def ask_forever(address, message):
    """Waits for a reply to an empty message: recv() blocks until the peer closes."""
    with socket.create_connection(address) as sock:
        sock.sendall(message)
        return sock.recv(1 << 20)


def ask_unwritten(address, message):
    raise NotImplementedError


def test_check_ask_accepts_a_right_answer():
    report = checks.check_ask(ask_right)
    assert report.ok, report
    assert repr(report).endswith("All 4 checks passed.")


def test_check_ask_explains_a_single_recv():
    report = checks.check_ask(ask_one_recv)
    assert not report.ok
    assert "call it in a loop" in repr(report)


def test_check_ask_rejects_str():
    report = checks.check_ask(ask_str)
    assert not report.ok
    assert "sockets carry bytes" in repr(report)


def test_check_ask_explains_a_hang_without_hanging():
    report = checks.check_ask(ask_forever)
    assert not report.ok
    assert "recv() waits until at least one" in repr(report)


def test_check_ask_says_not_written_yet():
    assert "is it written yet?" in repr(checks.check_ask(ask_unwritten))


def shout_right(conn):
    while True:
        data = conn.recv(1024)
        if not data:
            return
        conn.sendall(data.upper())


def shout_lower(conn):
    while data := conn.recv(1024):
        conn.sendall(data.lower())


def shout_spins_on_eof(conn):
    """The seed's bug: never leaves the loop when recv() returns b''.

    (Bounded to 4 s here, so that the test ends by itself.)
    """
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        data = conn.recv(1024)
        conn.sendall(data.upper())


def shout_crashes(conn):
    conn.recv(1024)
    raise RuntimeError("oops")


def test_check_shout_accepts_a_right_answer():
    report = checks.check_shout(shout_right)
    assert report.ok, report


def test_check_shout_rejects_wrong_replies():
    report = checks.check_shout(shout_lower)
    assert not report.ok
    assert "got b'hello'" in repr(report)


def test_check_shout_spots_the_seeds_eof_bug():
    report = checks.check_shout(shout_spins_on_eof)
    assert not report.ok
    assert "b'' means the client has closed" in repr(report)


def test_check_shout_reports_a_crash():
    report = checks.check_shout(shout_crashes)
    assert not report.ok
    assert "RuntimeError: oops" in repr(report)


def test_unwritten_stubs_get_a_friendly_word():
    def ask(address, message):
        ...

    def shout(conn):
        ...

    assert "is it written yet?" in repr(checks.check_ask(ask))
    assert "is it written yet?" in repr(checks.check_shout(shout))


# ------------------------------------------------------------ Verdict and Report

def test_verdicts_say_passed_hint_and_final():
    from socklab.checks.report import NOT_WRITTEN, Verdict
    assert Verdict.ok() == Verdict(True, "", False)
    assert Verdict.fail("why") == Verdict(False, "why", False)
    assert Verdict.fail("why", final=True).final
    assert Verdict.not_written() == Verdict(False, NOT_WRITTEN, True)
    assert Verdict.fail("why").final_if_failed() == Verdict(False, "why", True)
    assert Verdict.ok().final_if_failed() == Verdict.ok()


def test_a_verdict_is_not_a_truth_value_and_a_pass_has_no_hint():
    import pytest
    from socklab.checks.report import Verdict
    with pytest.raises(TypeError, match="verdict.passed or verdict.final"):
        bool(Verdict.fail("why"))
    with pytest.raises(ValueError):
        Verdict(True, "a hint for a pass")
    with pytest.raises(ValueError):
        Verdict(True, final=True)


def test_a_case_that_cannot_be_checked_here_is_a_skip_not_a_pass():
    """Review D23: a case this machine cannot check was shown as PASS."""
    import pytest
    from socklab.checks.report import Report, Verdict
    report = Report("Checking f():")
    report.add("one", Verdict.ok())
    report.add("over IPv6", Verdict.skip("this machine has no IPv6 loopback"))
    assert report.ok and report.failures == []
    assert repr(report) == ("Checking f():\n"
                            "  PASS  one\n"
                            "  SKIP  over IPv6\n"
                            "        this machine has no IPv6 loopback\n"
                            "All 1 checks passed.  1 could not be checked on this machine.")
    report.add("two", Verdict.fail("wrong"))
    assert not report.ok
    assert repr(report).endswith("1 of 2 checks failed.  1 could not be checked on this machine.")
    only_skipped = Report("Checking g():")
    only_skipped.add("over IPv6", Verdict.skip("no IPv6"))
    assert not only_skipped.ok  # nothing was checked: not a pass
    with pytest.raises(ValueError):
        Verdict(False, "", skipped=True)  # a skip says why


def test_report_add_records_and_returns_the_verdict():
    import pytest
    from socklab.checks.report import Report, Verdict
    report = Report("Checking f():")
    assert report.add("one", Verdict.ok()) == Verdict.ok()
    failed = report.add("two", Verdict.fail("first line\nsecond line", final=True))
    assert failed.final
    assert report.failures == [("two", "first line\nsecond line")]
    assert not report.ok
    assert repr(report) == ("Checking f():\n"
                            "  PASS  one\n"
                            "  FAIL  two\n"
                            "        first line\n"
                            "        second line\n"
                            "1 of 2 checks failed.")
    with pytest.raises(TypeError):
        report.add("three", True)  # the old add(passed, description, hint)
