"""socklab.c and the %%c magic: real gcc, real processes, real sockets on loopback."""

import hashlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import re
import textwrap
import threading
import time

import pytest

import socklab
from socklab import c

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 10

pytestmark = pytest.mark.skipif(
    c.shutil.which("gcc") is None, reason="gcc is not installed (apt-get install gcc)"
)


def compile_file(path, name=None):
    return c.compile(path.read_text(), name or path.stem)


@pytest.fixture(scope="module")
def programs():
    """Compile the test programs once for this module."""
    compile_file(HERE / "c" / "tcp_echo_server.c", "c_echo_server")
    for name in ("pipe_client", "udp_echo_server", "udp_client"):
        compile_file(HERE / "c" / f"{name}.c")


def children():
    """PIDs of this process's child processes (from /proc)."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:  # field 4: the parent's pid
                found.append(int(entry))
    return found


def recv_all(sock):
    data = bytearray()
    while part := sock.recv(1 << 20):
        data += part
    return bytes(data)


def python_client(address, data):
    """Send data, half-close, read the echo until the server closes."""
    import threading

    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        writer = threading.Thread(
            target=lambda: (sock.sendall(data), sock.shutdown(socket.SHUT_WR))
        )
        writer.start()
        reply = recv_all(sock)
        writer.join(TIMEOUT)
    return reply


SIZES = [0, 1, 1000, 65536 + 7, 3 << 20]


# ------------------------------------------------------------ interop


@pytest.mark.parametrize("size", SIZES)
def test_c_echo_server_with_python_client(programs, size):
    data = os.urandom(size)
    with c.start("c_echo_server") as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert python_client(server.address, data) == data


@pytest.mark.parametrize("size", SIZES)
def test_python_server_with_c_client(programs, size):
    data = os.urandom(size)
    with socklab.TCPEchoServer() as server:
        done = c.run("pipe_client", [server.port], input=data, echo=False)
    assert len(done.stdout_bytes) == size
    assert hashlib.sha256(done.stdout_bytes).digest() == hashlib.sha256(data).digest()


def test_c_client_with_c_server(programs):
    data = os.urandom(1 << 20)
    with c.start("c_echo_server") as server:
        done = c.run("pipe_client", [server.port], input=data, echo=False)
    assert done.stdout_bytes == data


def test_ten_c_clients_at_once(programs):
    with socklab.TCPEchoServer() as server:
        payloads = [os.urandom(100_000 + i) for i in range(10)]
        clients = [
            subprocess.Popen(
                ["./pipe_client", str(server.port)],
                cwd=c.build_dir(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            for _ in payloads
        ]
        replies = [client.communicate(data, timeout=TIMEOUT)[0]
                   for client, data in zip(clients, payloads)]
        assert [client.returncode for client in clients] == [0] * 10
        assert replies == payloads
        server.events.wait_for("close", count=10, timeout=TIMEOUT)
        assert len(server.events.of_kind("accept")) == 10


def test_c_udp_server_with_python_client(programs):
    with c.start("udp_echo_server") as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            for data in (b"", b"x", os.urandom(65507)):
                sock.sendto(data, server.address)
                assert sock.recvfrom(65536) == (data, server.address)


def test_c_udp_client_with_python_server(programs):
    with socklab.UDPEchoServer() as server:
        done = c.run("udp_client", [server.port, 0, 1, 1400, 65507], echo=False)
    assert done.stdout.split("\n")[:-1] == ["0 ok", "1 ok", "1400 ok", "65507 ok"]


def test_stop_all_leaves_no_child_process(programs):
    before = set(children())
    for _ in range(3):
        c.start("c_echo_server")  # the same name: each replaces the one before
    c.start("udp_echo_server")
    assert len(set(children()) - before) == 2
    assert socklab.stop_all() == 2
    assert set(children()) - before == set()


# ------------------------------------------------------------ compile and run


def test_compile_error_shows_gccs_message_with_the_cells_line_numbers():
    source = "#include <stdio.h>\n\nint main(void)\n{\n    int unused;\n    return 0;\n}\n"
    with pytest.raises(c.CompileError) as caught:
        c.compile(source, "unused_var")
    message = str(caught.value)
    assert "unused_var.c:5:9: error: unused variable 'unused'" in message
    assert "nothing was run" in message
    assert str(c.build_dir()) not in message


def test_a_compile_error_runs_nothing_even_after_an_old_build():
    c.compile('#include <stdio.h>\nint main(void) { puts("old"); return 0; }\n', "replaced")
    with pytest.raises(c.CompileError):
        c.compile("int main(void) { return missing; }\n", "replaced")
    with pytest.raises(FileNotFoundError):  # the old program is gone, not run instead
        c.run("replaced")


def test_run_reports_exit_status_and_signals_by_name():
    c.compile("int main(void) { return 3; }\n", "three")
    with pytest.raises(c.ProgramFailed, match="three exited with status 3"):
        c.run("three")
    assert c.run("three", check=False).returncode == 3
    c.compile(
        "#include <signal.h>\nint main(void) { raise(SIGPIPE); return 0; }\n", "piped"
    )
    with pytest.raises(c.ProgramFailed, match="killed by SIGPIPE"):
        c.run("piped")


def test_run_passes_arguments_and_streams_output(capsys):
    c.compile(
        '#include <stdio.h>\n'
        'int main(int argc, char **argv) {\n'
        '    for (int i = 0; i < argc; i++) printf("%d=%s\\n", i, argv[i]);\n'
        '    fprintf(stderr, "to stderr\\n");\n'
        '    return 0;\n'
        '}\n',
        "args",
    )
    c.run("args", ["one", "two words"])
    captured = capsys.readouterr()
    assert captured.out == "0=./args\n1=one\n2=two words\n"
    assert captured.err == "to stderr\n"


def test_run_time_limit_kills_the_program():
    c.compile("#include <unistd.h>\nint main(void) { pause(); return 0; }\n", "forever")
    before = set(children())
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="more than 0.5 s"):
        c.run("forever", timeout=0.5)
    assert time.monotonic() - started < TIMEOUT
    assert set(children()) - before == set()


def within(limit, function, *args, **kwargs):
    """``function(*args, **kwargs)``, or a failed test if it has not returned in ``limit`` s.

    It runs in a daemon thread, so a hang fails the test instead of hanging the
    whole run (a hung program then dies with this process: PR_SET_PDEATHSIG).
    """
    outcome = []

    def call():
        try:
            outcome.append((function(*args, **kwargs), None))
        except BaseException as exc:
            outcome.append((None, exc))

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(limit)
    assert outcome, f"{function.__name__}() had not returned after {limit} s"
    [(result, error)] = outcome
    if error is not None:
        raise error
    return result


COPY_IN_4K_PIECES = r"""#include <unistd.h>

int main(void)
{
    char piece[4096];
    ssize_t n;
    while ((n = read(0, piece, sizeof piece)) > 0)
        if (write(1, piece, n) != n)
            return 1;
    return n < 0;
}
"""


def test_a_filter_gets_more_input_than_a_pipe_holds():
    """The first filter a learner writes: its stdin is fed while its stdout is read.

    1 MiB fills both 64 KiB pipes, so written all at once before reading, the
    input would wait for the program and the program for us.
    """
    c.compile(COPY_IN_4K_PIECES, "copy4k")
    data = os.urandom(1 << 20)
    done = within(TIMEOUT, c.run, "copy4k", input=data, timeout=TIMEOUT, echo=False)
    assert done.stdout_bytes == data


def test_a_program_that_never_reads_its_input_still_has_a_time_limit():
    c.compile("#include <unistd.h>\nint main(void) { sleep(60); return 0; }\n", "deaf")
    before = set(children())
    with pytest.raises(TimeoutError, match="more than 2 s"):
        within(2 + 5, c.run, "deaf", input=b"x" * (1 << 20), timeout=2, echo=False)
    assert set(children()) - before == set()


def test_a_program_that_exits_without_reading_its_input_is_no_error():
    c.compile("int main(void) { return 0; }\n", "early")
    done = within(TIMEOUT, c.run, "early", input=b"x" * (1 << 20), echo=False)
    assert done.returncode == 0


def test_start_fails_clearly_when_no_listening_line_comes():
    c.compile('#include <stdio.h>\nint main(void) { puts("oops"); return 4; }\n', "quitter")
    with pytest.raises(c.ProgramFailed, match="exited with status 4"):
        c.start("quitter")
    c.compile("#include <unistd.h>\nint main(void) { pause(); return 0; }\n", "silent")
    with pytest.raises(TimeoutError, match="did not print 'LISTENING <port>'"):
        c.start("silent", ready_timeout=0.5)
    assert socklab.running() == []


def test_bad_names_and_unknown_programs():
    with pytest.raises(ValueError, match="not a usable program name"):
        c.compile("int main(void){return 0;}", "../escape")
    with pytest.raises(FileNotFoundError, match="never-built"):
        c.run("never-built")


def test_build_folder_is_private():
    assert c.build_dir().stat().st_mode & 0o777 == 0o700


HOLD_BUILD_DIR = (
    "import sys, time, socklab.c as c\n"
    "print(c.build_dir(), flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_killed_processs_build_folder_is_removed_by_the_next(tmp_path):
    """No exit handler runs in a killed kernel; the next one tidies up after it."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a temporary folder of our own
    started = []

    def holder():
        process = subprocess.Popen([sys.executable, "-c", HOLD_BUILD_DIR], env=env,
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        return pathlib.Path(process.stdout.readline().strip())

    try:
        killed = holder()
        started[0].kill()
        started[0].wait(TIMEOUT)
        assert killed.is_dir(), "a killed process cannot remove its build folder"
        alive = holder()  # builds: removes the dead one's folder
        assert not killed.exists()
        another = holder()  # builds too: a live process's folder stays
        assert alive.is_dir() and another.is_dir() and another != alive
    finally:
        for process in started:
            process.kill()
            process.wait(TIMEOUT)
            process.stdout.close()
    old_format = tmp_path / "socklab-c-old"  # no lock: left alone, not ours to judge
    old_format.mkdir()
    holder()
    started[-1].kill()
    started[-1].wait(TIMEOUT)
    started[-1].stdout.close()
    assert old_format.is_dir()


def test_without_gcc_the_message_says_how_to_get_one(tmp_path):
    script = (
        "import socklab.c as c\n"
        "try:\n"
        "    c.compile('int main(void){return 0;}', 'x')\n"
        "except c.GccMissing as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    assert "sudo apt-get install gcc" in done.stdout
    assert "xcode-select --install" in done.stdout
    assert "conda install -c conda-forge c-compiler" in done.stdout


# ------------------------------------------------------------ waiting for output


TICKER = r"""#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    printf("LISTENING 1\n");  /* start() waits for it; nobody connects */
    fflush(stdout);
    for (int i = 1; i <= 3; i++) {
        usleep(100000);
        printf("tick %d\n", i);
        fflush(stdout);
    }
    if (argc > 1 && strcmp(argv[1], "quit") == 0) {
        usleep(500000);  /* ends a while after its last line, not with it */
        return 0;
    }
    pause();
    return 0;
}
"""


def test_wait_for_output_returns_once_the_text_is_printed():
    c.compile(TICKER, "ticker")
    with c.start("ticker") as ticker:
        started = time.monotonic()
        assert ticker.wait_for_output("tick 3", timeout=60)[0] == "tick 3"
        assert time.monotonic() - started < TIMEOUT, "not woken by the line it waited for"
        assert ticker.output.endswith("tick 1\ntick 2\ntick 3\n")
        lines = ticker.wait_for_output(re.compile(r"(.*\n){4}"), timeout=TIMEOUT)
        assert lines[0] == "LISTENING 1\ntick 1\ntick 2\ntick 3\n"


def test_wait_for_output_times_out_showing_what_was_printed():
    c.compile(TICKER, "ticker")
    with c.start("ticker") as ticker:
        ticker.wait_for_output("tick 3", timeout=TIMEOUT)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"'tick 4' \(not within 0.5 s\)") as caught:
            ticker.wait_for_output("tick 4", timeout=0.5)
        assert 0.5 <= time.monotonic() - started < TIMEOUT
        assert "tick 3" in str(caught.value)


def test_wait_for_output_stops_waiting_when_the_program_ends():
    c.compile(TICKER, "ticker")
    with c.start("ticker", ["quit"]) as ticker:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="ended without printing it"):
            ticker.wait_for_output("tick 4", timeout=60)
        assert time.monotonic() - started < TIMEOUT, "not woken when its output closed"
        # the text is a substring, not a regular expression: "." is a dot
        with pytest.raises(TimeoutError):
            ticker.wait_for_output("tick.1")


# ------------------------------------------------------------ no orphans


ORPHAN_SCRIPT = textwrap.dedent(
    """
    import pathlib, sys, time, socklab.c as c
    c.compile(pathlib.Path(sys.argv[1]).read_text(), "srv")
    server = c.start("srv")
    print(server.pid, flush=True)
    if sys.argv[2] == "hang":
        time.sleep(60)
    else:
        sys.stdin.read()  # exit only once the test has seen the server alive
    """
)


def alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_gone(pid, limit=TIMEOUT):
    deadline = time.monotonic() + limit
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_no_orphan_when_the_kernel_exits_or_is_killed(how):
    """A kernel restart ends the process (atexit); a crash kills it (PDEATHSIG)."""
    source = HERE / "c" / "tcp_echo_server.c"
    process = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(source), "hang" if how == "kill" else "exit"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    pid = int(process.stdout.readline())
    assert alive(pid)
    if how == "kill":
        process.kill()  # no atexit: only PR_SET_PDEATHSIG can end the C server
    process.stdin.close()  # "exit": a normal end, so atexit must stop the server
    process.wait(TIMEOUT)
    process.stdout.close()
    assert wait_until_gone(pid), f"C server {pid} outlived its Python process ({how})"


# ------------------------------------------------------------ the %%c magic


@pytest.fixture
def shell():
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "socklab")
    return ip


def test_magic_compiles_runs_and_passes_arguments(shell, capsys):
    shell.run_cell_magic(
        "c", "greet -- socket world",
        '#include <stdio.h>\nint main(int argc, char **argv)\n'
        '{\n    printf("hello, %s %s (%d arguments)\\n", argv[1], argv[2], argc - 1);\n'
        '    return 0;\n}\n',
    )
    assert capsys.readouterr().out == "hello, socket world (2 arguments)\n"


def test_magic_background_server_answers_python(shell, programs):
    source = (HERE / "c" / "tcp_echo_server.c").read_text()
    handle = shell.run_cell_magic("c", "magic_echo --bg", source)
    assert c.handle("magic_echo") is handle
    assert python_client(handle.address, b"via magic") == b"via magic"
    stopped = "magic_echo was killed by SIGTERM (signal 15): it was asked to stop"
    assert handle.stop() == stopped and not handle.alive
    assert handle.stop() == stopped  # a second stop() does nothing, says the same


ARGS_PROGRAM = ('#include <stdio.h>\nint main(int argc, char **argv)\n'
                '{\n    for (int i = 1; i < argc; i++) printf("[%s]", argv[i]);\n'
                '    printf("\\n");\n    return 0;\n}\n')


@pytest.mark.parametrize("line, printed", [
    ("args_order --timeout 5 -- a b", "[a][b]"),   # options, then -- and arguments
    ("args_order a --timeout 5 b", "[a][b]"),      # options between arguments
    ("args_order -- --bg x", "[--bg][x]"),         # after --, even --bg is an argument
])
def test_magic_takes_options_before_and_between_the_programs_arguments(
        shell, capsys, line, printed):
    shell.run_cell_magic("c", line, ARGS_PROGRAM)
    assert capsys.readouterr().out == printed + "\n"


def test_magic_background_server_with_options_before_its_arguments(shell, programs):
    # "%%c NAME --bg -- ARGS" once failed with "unrecognized arguments"
    source = (HERE / "c" / "tcp_echo_server.c").read_text()
    handle = shell.run_cell_magic("c", "magic_echo_args --bg -- unused", source)
    assert python_client(handle.address, b"with args") == b"with args"
    handle.stop()


def test_magic_without_a_name_says_so(shell):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="needs a program name"):
        shell.run_cell_magic("c", "--bg", "int main(void) { return 0; }\n")


def test_magic_compile_error_raises_with_gccs_text(shell):
    with pytest.raises(c.CompileError, match=r"bad\.c:1:"):
        shell.run_cell_magic("c", "bad --compile-only", "int main(void) { return x; }\n")


WAITER = r"""#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("waiting %d\n", (int)getpid());
    fflush(stdout);
    pause();
    return 0;
}
"""

INTERRUPTED_KERNEL = textwrap.dedent(
    """
    import signal, sys
    import socklab.c as c
    # As a Jupyter kernel does: SIGINT raises KeyboardInterrupt, even where
    # the test runs as a background job (those start with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    c.compile(sys.argv[1], "waiter")
    try:
        c.run("waiter", timeout=60)  # echoes "waiting <pid>": run() is in its loop
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    sys.stdin.read()  # a kernel lives on after an interrupt; so do we, until told
    """
)


def test_interrupting_a_foreground_program_ends_it_before_run_returns():
    """Kernel > Interrupt sends SIGINT to the kernel: run() must end its program.

    The program must be gone while the "kernel" still lives: once the Python
    process exits, PR_SET_PDEATHSIG ends the program anyway, and would hide a
    run() that forgot to.
    """
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTED_KERNEL, WAITER],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(TIMEOUT, process.kill)  # a hang fails, not hangs
    watchdog.start()
    try:
        line = process.stdout.readline()
        assert line.startswith("waiting "), f"the C program did not start: {line!r}"
        waiter = int(line.split()[1])
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline() == "interrupted\n"
        assert not alive(waiter), "KeyboardInterrupt left run() with its program running"
        assert process.poll() is None, "looked too late: the 'kernel' had exited"
    finally:
        watchdog.cancel()
        process.stdin.close()
        process.wait(TIMEOUT)
        process.stdout.close()


# -- sanitizers: compile(sanitize=True) and %%c NAME --sanitize ---------------

OVERRUN = r"""#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    char name[8];
    (void)argc;
    strcpy(name, argv[0]);  /* "./overrun" is 10 bytes with its '\0' */
    printf("%s\n", name);
    return 0;
}
"""

OVERFLOW = r"""#include <limits.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int x = INT_MAX;
    (void)argv;
    x += argc;
    printf("%d\n", x);
    return 0;
}
"""


def test_a_sanitized_overrun_names_the_cells_line_and_variable():
    c.compile(OVERRUN, "overrun", sanitize=True)
    with pytest.raises(c.ProgramFailed) as failed:
        c.run("overrun", echo=False)
    report = failed.value.report
    assert report.splitlines()[:2] == ["AddressSanitizer: stack-buffer-overflow",
                                       "  a write of 10 byte(s)"]
    assert "  in main() at overrun.c:8" in report
    assert "variable 'name' (line 6)" in report
    assert report in str(failed.value)
    assert str(c.build_dir()) not in str(failed.value)


def test_a_sanitized_overflow_is_reported_by_ubsan():
    c.compile(OVERFLOW, "overflow", sanitize=True)
    with pytest.raises(c.ProgramFailed) as failed:
        c.run("overflow", echo=False)
    assert failed.value.report.startswith("UBSan: overflow.c:8: signed integer overflow")


def test_without_sanitize_the_same_program_runs_and_reports_nothing():
    c.compile(OVERFLOW, "overflow", sanitize=True)
    c.compile(OVERFLOW, "overflow")
    done = c.run("overflow", echo=False)
    assert done.stdout == "-2147483648\n"
    assert c.sanitizer_report("overflow", done.stderr) is None


def test_a_sanitized_background_server_reports_its_crash():
    source = r"""#include "socklab.h"

int main(void)
{
    alarm(60);
    int listener = listen_on("127.0.0.1", "0", 8);
    if (listener < 0 || announce_port(listener) < 0)
        return 1;
    int fd = accept_client(listener, NULL, NULL);
    if (fd < 0)
        return 1;
    char small[4];
    ssize_t n = recv(fd, small, 64, 0);  /* the bug: 64 is not sizeof small */
    printf("%zd\n", n);
    return 0;
}
"""
    c.compile(source, "crashy", sanitize=True)
    with c.start("crashy") as program:
        with socket.create_connection(program.address, timeout=5) as client:
            client.sendall(b"x" * 64)
            client.settimeout(5)
            assert client.recv(1) == b""  # it died, and the kernel closed its socket
    report = program.sanitizer_report()
    assert report.startswith("AddressSanitizer: stack-buffer-overflow")
    assert "  in main() at crashy.c:13" in report


def test_magic_sanitize_reports_the_first_error_in_the_cells_lines(shell):
    with pytest.raises(c.ProgramFailed) as failed:
        shell.run_cell_magic("c", "magic_overrun --sanitize", OVERRUN)
    assert "  in main() at magic_overrun.c:8" in failed.value.report


# ------------------------------------------------------------ linking libraries (-l)

OPENSSL_VERSION = r"""#include <stdio.h>
#include <openssl/crypto.h>

int main(void)
{
    /* OpenSSL_version() lives in libcrypto: without -lcrypto, no program */
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    return 0;
}
"""

needs_openssl = pytest.mark.skipif(
    not pathlib.Path("/usr/include/openssl/crypto.h").exists(),
    reason="the OpenSSL headers are not installed (apt-get install libssl-dev)")


@needs_openssl
def test_a_library_function_does_not_link_without_its_library():
    with pytest.raises(c.CompileError, match=r"undefined reference to .OpenSSL_version"):
        c.compile(OPENSSL_VERSION, "no_libcrypto")


@needs_openssl
def test_compile_links_the_libraries_it_is_given(capsys):
    c.compile(OPENSSL_VERSION, "with_libcrypto", libs=["crypto"])
    assert c.run("with_libcrypto", echo=False).stdout.startswith("OpenSSL ")


@needs_openssl
@pytest.mark.parametrize("line", ["magic_libcrypto -l crypto", "magic_libcrypto -lcrypto",
                                  "magic_libcrypto -l ssl -l crypto --timeout 5"])
def test_magic_links_libraries_named_with_l_like_gcc(shell, capsys, line):
    shell.run_cell_magic("c", line, OPENSSL_VERSION)
    assert capsys.readouterr().out.startswith("OpenSSL ")


@pytest.mark.parametrize("bad", ["-lssl", "ssl crypto", "../evil", "", "ssl;rm"])
def test_a_library_name_is_a_name_not_an_option_or_a_path(bad):
    with pytest.raises(ValueError, match="library name"):
        c.compile("int main(void) { return 0; }\n", "bad_library", libs=[bad])
