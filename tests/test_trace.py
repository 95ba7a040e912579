"""socklab.trace: strace's output parsed, and real programs traced (no mocks)."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest

from socklab import c, trace
from socklab.trace import Syscall

needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None,
    reason="strace is not installed (sudo apt-get install strace); CI installs it")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

# What `strace -f -q -ttt` wrote for a threaded echo exchange, cut and edited to
# have one of every kind of line the parser must know.
SAMPLE = """\
100 1700000000.000000 execve("/usr/bin/python3", ["python3", "-c", "..."], 0x7ffd /* 9 vars */) = 0
100 1700000000.100000 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
100 1700000000.100100 bind(3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
101 1700000000.200000 accept4(3,  <unfinished ...>
100 1700000000.200500 connect(5, {sa_family=AF_INET, sin_port=htons(41234), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
101 1700000000.201000 <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(50000), sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 4
100 1700000000.202000 sendto(5, "a) = 7", 6, 0, NULL, 0) = 6
100 1700000000.203000 connect(6, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused)
100 1700000000.204000 poll([{fd=5, events=POLLIN}], 1, 5000) = 1 ([{fd=5, revents=POLLIN}])
100 1700000000.205000 recvfrom(5, 0x7f72a0efd670, 10, 0, NULL, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
strace: Process 102 attached
101 1700000000.300000 --- SIGPIPE {si_signo=SIGPIPE, si_code=SI_USER, si_pid=101, si_uid=0} ---
101 1700000000.300100 +++ killed by SIGPIPE +++
100 1700000000.400000 exit_group(0)                     = ?
100 1700000000.400100 +++ exited with 0 +++
"""

EXPECTED = [
    Syscall(100, 0.0, "execve", '"/usr/bin/python3", ["python3", "-c", "..."], 0x7ffd /* 9 vars */', 0),
    Syscall(100, 0.1, "socket", "AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP", 3),
    Syscall(100, 0.1001, "bind",
            '3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16', 0),
    # the two halves of accept4 are one record, where and when it began
    Syscall(101, 0.2, "accept4",
            '3, {sa_family=AF_INET, sin_port=htons(50000), sin_addr=inet_addr("127.0.0.1")}, '
            "[16], SOCK_CLOEXEC", 4),
    Syscall(100, 0.2005, "connect",
            '5, {sa_family=AF_INET, sin_port=htons(41234), sin_addr=inet_addr("127.0.0.1")}, 16', 0),
    Syscall(100, 0.202, "sendto", '5, "a) = 7", 6, 0, NULL, 0', 6),
    Syscall(100, 0.203, "connect",
            '6, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")}, 16',
            -1, "ECONNREFUSED", "Connection refused"),
    Syscall(100, 0.204, "poll", "[{fd=5, events=POLLIN}], 1, 5000", 1),
    # interrupted by a signal: no result, and strace shows the buffer's address
    Syscall(100, 0.205, "recvfrom", "5, 0x7f72a0efd670, 10, 0, NULL, NULL", None,
            "ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    Syscall(101, 0.3, "SIGPIPE", "si_signo=SIGPIPE, si_code=SI_USER, si_pid=101, si_uid=0", None,
            kind="signal"),
    Syscall(101, 0.3001, "killed", "SIGPIPE", None, kind="exit"),
    Syscall(100, 0.4, "exit_group", "0", None),
    Syscall(100, 0.4001, "exited", "", 0, kind="exit"),
]


def test_parse_gives_exact_records():
    assert trace.parse(SAMPLE) == EXPECTED


def test_parse_without_pids_or_times():
    records = trace.parse('socket(AF_INET, SOCK_DGRAM, IPPROTO_IP) = 3\n'
                          'recvfrom(3,  <unfinished ...>\n'
                          '<... recvfrom resumed>"x", 64, 0, NULL, NULL) = 1\n')
    assert records == [Syscall(0, 0.0, "socket", "AF_INET, SOCK_DGRAM, IPPROTO_IP", 3),
                       Syscall(0, 0.0, "recvfrom", '3, "x", 64, 0, NULL, NULL', 1)]


def test_a_call_that_never_resumed_keeps_its_place_without_result():
    records = trace.parse("7 1.0 accept(3,  <unfinished ...>\n7 2.0 +++ killed by SIGKILL +++\n")
    assert [r.brief for r in records] == ["accept(3) = ?", "+++ killed by SIGKILL +++"]


def test_brief_hides_the_ports_the_kernel_chose_but_not_port_0():
    briefs = [record.brief for record in trace.parse(SAMPLE)]
    assert briefs[2] == 'bind(3, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'
    assert briefs[3].startswith("accept4(3, {sa_family=AF_INET, sin_port=htons(PORT), ")
    assert briefs[6].endswith("16) = -1 ECONNREFUSED")
    assert briefs[8] == "recvfrom(5, 0x..., 10, 0, NULL, NULL) = ? ERESTARTSYS"
    assert briefs[9:] == ["--- SIGPIPE ---", "+++ killed by SIGPIPE +++", "exit_group(0) = ?",
                          "+++ exited with 0 +++"]
    assert "htons(50000)" in trace.parse(SAMPLE)[3].args  # the raw text keeps it


def test_trace_is_list_like_with_views():
    t = trace.Trace(trace.parse(SAMPLE))
    assert len(t) == 13 and t[1].call == "socket" and isinstance(t[1:3], trace.Trace)
    assert t.calls[:3] == ["execve", "socket", "bind"]
    assert list(t.by_pid()) == [100, 101]
    assert [r.call for r in t.by_pid()[101]] == ["accept4", "SIGPIPE", "killed"]
    started = t.from_first_socket()
    assert started.calls[0] == "socket" and started[0].time == 0.0 and started[1].time == 0.0001
    lines = t.text().splitlines()  # threads numbered in order of appearance, not by pid
    assert lines[1] == "[1] socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3"
    assert lines[10] == "[2] +++ killed by SIGPIPE +++"
    assert repr(t) == t.text()


def test_side_by_side_counts_accept4_as_accept_on_sample_text():
    c_side = trace.Trace(trace.parse("socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3\n"
                                     "accept(3, NULL, NULL) = 4\n"
                                     'sendto(4, "hi", 2, 0, NULL, 0) = 2\n'))
    py_side = trace.Trace(trace.parse("socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3\n"
                                      "accept4(3, NULL, NULL, SOCK_CLOEXEC) = 4\n"
                                      "getsockname(4, {sa_family=AF_INET}, [16]) = 0\n"
                                      'sendto(4, "hi", 2, 0, NULL, 0) = 2\n'))
    assert trace.side_by_side(c_side, py_side) == textwrap.dedent("""\
        C                                            | Python
        ---------------------------------------------+----------------------------------------------------------
        socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3 | socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3
        accept(3, NULL, NULL) = 4                    | accept4(3, NULL, NULL, SOCK_CLOEXEC) = 4
                                                     | getsockname(4, {...}, [16]) = 0
        sendto(4, "hi", 2, 0, NULL, 0) = 2           | sendto(4, "hi", 2, 0, NULL, 0) = 2""")


def test_ptrace_refusal_is_recognized_and_explained():
    trace.check_strace_errors("hello from the program\n")  # no complaint: nothing raised
    with pytest.raises(trace.TraceNotPermitted) as caught:
        trace.check_strace_errors(
            "strace: ptrace(PTRACE_TRACEME, ...): Operation not permitted\n+++ exited with 1 +++\n")
    assert isinstance(caught.value, trace.StraceMissing)  # one except clause for both
    assert "--cap-add=SYS_PTRACE" in str(caught.value)
    assert caught.value._render_traceback_()[0].startswith("TraceNotPermitted: strace is installed")
    with pytest.raises(trace.TraceNotPermitted, match="PTRACE_SEIZE"):
        trace.check_strace_errors("strace: attach: ptrace(PTRACE_SEIZE, 12): Operation not permitted")


# -- Real programs under strace ----------------------------------------------------------

# One process, one thread: connect() completes into the listen backlog before
# accept(), so the order of the calls is the same on every run.
PY_ECHO = """\
import socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
address = srv.getsockname()
cli = socket.socket()
cli.connect(address)
conn, _ = srv.accept()
cli.sendall(b"hello")
conn.sendall(conn.recv(64))
assert cli.recv(64) == b"hello"
conn.close(); cli.close(); srv.close()
"""

C_ECHO = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    alarm(5);  /* watchdog */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    bind(srv, (struct sockaddr *)&addr, sizeof addr);
    listen(srv, 1);
    getsockname(srv, (struct sockaddr *)&addr, &len);
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    connect(cli, (struct sockaddr *)&addr, sizeof addr);
    int conn = accept(srv, NULL, NULL);
    char buf[64];
    send(cli, "hello", 5, 0);
    ssize_t n = recv(conn, buf, sizeof buf, 0);
    send(conn, buf, n, 0);
    recv(cli, buf, sizeof buf, 0);
    close(conn); close(cli); close(srv);
    return 0;
}
"""


def rows(text):
    """side_by_side's rows as (left, right) pairs of stripped text."""
    return [tuple(part.strip() for part in line.split(" | ")) for line in text.splitlines()[2:]]


@needs_strace
def test_python_echo_makes_the_calls_in_order():
    t = trace.trace_python(PY_ECHO)
    assert t.returncode == 0
    assert t.calls == ["socket", "bind", "listen", "getsockname", "socket", "connect",
                       "accept4", "getsockname", "sendto", "recvfrom", "sendto", "recvfrom",
                       "close", "close", "close", "exited"]
    accept = t.only("accept4")[0]
    assert accept.args.endswith("SOCK_CLOEXEC") and accept.result == 5
    assert "SOCK_CLOEXEC" in t[0].args  # every socket Python makes is close-on-exec
    assert t[8].brief == 'sendto(4, "hello", 5, 0, NULL, 0) = 5'  # sendall() is sendto()
    assert t[0].time == 0.0 and t[-1].time >= t[0].time


@needs_strace
def test_threads_are_followed_and_a_blocked_accept_is_one_record():
    t = trace.trace_python(textwrap.dedent("""\
        import socket, threading
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
        def serve():
            conn, _ = srv.accept()
            conn.sendall(conn.recv(64)); conn.close()
        thread = threading.Thread(target=serve); thread.start()
        cli = socket.create_connection(srv.getsockname())
        cli.sendall(b"hi"); cli.recv(64); cli.close(); thread.join(); srv.close()
        """))
    assert len(t.by_pid()) == 2
    accept = t.only("accept4")[0]
    connect = t.only("connect")[0]
    assert accept.pid != connect.pid
    assert accept.args.startswith("3, {sa_family=AF_INET") and accept.args.endswith("SOCK_CLOEXEC")
    assert accept.result == 4  # merged from <unfinished ...> and <... resumed>
    assert t.text().splitlines()[0].startswith("[1] socket(")


@needs_strace
def test_refused_connection_shows_econnrefused():
    # A port that is bound but not listening refuses connections: no race with
    # another program taking a port that was closed.
    t = trace.trace_python(textwrap.dedent("""\
        import socket
        idle = socket.socket(); idle.bind(("127.0.0.1", 0))
        try:
            socket.socket().connect(idle.getsockname())
        except ConnectionRefusedError:
            print("refused")
        """))
    connect = t.only("connect")[0]
    assert (connect.result, connect.errno, connect.errno_text) == (-1, "ECONNREFUSED",
                                                                  "Connection refused")
    assert connect.brief.endswith("16) = -1 ECONNREFUSED")
    assert t.stdout == "refused\n"


@needs_strace
def test_a_timeout_shows_as_poll_and_a_nonblocking_connect():
    t = trace.trace_python(textwrap.dedent("""\
        import socket
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
        cli = socket.create_connection(srv.getsockname(), timeout=5)
        cli.close(); srv.close()
        """), calls=trace.NETWORK_CALLS + trace.WAIT_CALLS)
    assert t.only("connect")[0].errno == "EINPROGRESS"
    assert "poll" in t.calls


@needs_strace
def test_only_sockets_are_shown_closing():
    t = trace.trace_python(PY_ECHO, from_first_socket=False)
    sockets = {r.result for r in t if r.call in ("socket", "accept4")}
    closed = {int(r.args) for r in t if r.call == "close"}
    assert closed == sockets == {3, 4, 5}


@needs_strace
def test_the_traced_process_is_the_interpreter_itself():
    t = trace.trace_python("import socket; socket.socket().close()", from_first_socket=False)
    execs = t.only("execve")
    assert len(execs) == 1, "a launcher or shell would show a second execve"
    assert t.executable == sys.executable
    assert os.path.realpath(t.executable) == os.path.realpath(sys.executable)
    assert execs[0].args.startswith(f'"{sys.executable}", ["{sys.executable}", "-c", ')
    assert execs[0].pid == t.only("socket")[0].pid  # the same process made the socket


@needs_strace
def test_a_failing_snippet_raises_with_its_error_and_trace():
    with pytest.raises(trace.TracedProgramFailed, match="ZeroDivisionError") as caught:
        trace.trace_python("import socket; socket.socket(); 1 / 0")
    assert caught.value.trace.calls[0] == "socket"
    assert "exited with status 1" in str(caught.value)


@needs_strace
@needs_gcc
def test_c_program_uses_accept_and_lines_up_with_python():
    c.compile(C_ECHO, "trace_echo")
    c_trace = trace.trace_c("trace_echo")
    assert "accept" in c_trace.calls and "accept4" not in c_trace.calls
    assert c_trace[0].brief == "socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3"  # no SOCK_CLOEXEC
    assert c_trace.only("sendto")[0].brief == 'sendto(4, "hello", 5, 0, NULL, 0) = 5'
    view = trace.side_by_side(c_trace, trace.trace_python(PY_ECHO))
    pairs = rows(view)
    assert view.splitlines()[0].split(" | ") == [f"{'C':<44}", "Python"]
    assert pairs[:4] == [
        ("socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3",
         "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3"),
        ("bind(3, {...}, 16) = 0", "bind(3, {...}, 16) = 0"),
        ("listen(3, 1) = 0", "listen(3, 1) = 0"),
        ("getsockname(3, {...}, [16]) = 0", "getsockname(3, {...}, [16]) = 0"),
    ]
    assert ("accept(3, NULL, NULL) = 5", "accept4(3, {...}, [16], SOCK_CLOEXEC) = 5") in pairs
    assert ('sendto(4, "hello", 5, 0, NULL, 0) = 5', 'sendto(4, "hello", 5, 0, NULL, 0) = 5') in pairs


@needs_strace
def test_trace_c_needs_a_compiled_program():
    with pytest.raises(FileNotFoundError, match="never_compiled"):
        trace.trace_c("never_compiled")


@needs_strace
def test_timeout_kills_the_program_and_strace():
    marker = f"socklab-trace-test-{uuid.uuid4().hex}"
    with pytest.raises(TimeoutError, match="more than 1 s"):
        trace.trace_python(f"import time; time.sleep(30)  # {marker}", timeout=1)
    left = []
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:  # the process ended while we looked
            pass
    assert left == [], f"processes left behind: {left}"


def test_without_strace_the_message_says_how_to_install_it(tmp_path):
    # An empty folder as PATH: strace cannot be found.  sys.executable is absolute.
    probe = textwrap.dedent("""\
        from socklab import trace
        try:
            trace.trace_python("pass")
        except trace.StraceMissing as error:
            print("\\n".join(error._render_traceback_()))
        """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("StraceMissing: strace was not found")
    assert "sudo apt-get install strace" in done.stdout
    assert "--cap-add=SYS_PTRACE" in done.stdout


def test_brief_hides_a_buffer_address_of_any_length_but_not_a_small_number():
    """Debian's python3 (no PIE) placed a buffer at 0x9597080, 7 hex digits;
    a 4-digit 0x... is a value, not where a buffer lives."""
    records = trace.parse('7 1.0 recvfrom(5, 0x9597080, 10, 0, NULL, NULL) = 3\n'
                          '7 1.1 setsockopt(3, SOL_IP, 0x1111, [1], 4) = 0\n')
    assert [r.brief for r in records] == ["recvfrom(5, 0x..., 10, 0, NULL, NULL) = 3",
                                          "setsockopt(3, SOL_IP, 0x1111, [1], 4) = 0"]
