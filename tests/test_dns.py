"""Lesson 15's resolver and C programs, read from the notebook (English edition), against
the lesson's three name servers (socklab.dns) on 127.0.53.1-3, and against peers that
misbehave on purpose.

- the iterative resolver walks root -> test. -> socklab.test. and each server hears
  exactly one question; NXDOMAIN ends the walk; a referral without glue makes it
  resolve the name server's name first (a fourth server);
- TC: the UDP answer is truncated, the resolver asks again over TCP, two-byte length;
- a lost query: the server drops it, the resolver times out and asks again; a server
  that never answers gets TRIES datagrams and then TimeoutError; a reply with another
  ID (a forgery) is ignored;
- the C query program (built with the sanitizers) reads answers, referrals and TC,
  and refuses a reply whose counts promise records that are not there;
- the C name parser of the solution refuses pointer loops without hanging or
  crashing, with AddressSanitizer and UBSan watching.
"""

import contextlib
import io
import pathlib
import shutil
import socket
import struct
import threading

import nbformat
import pytest

import socklab
from socklab import c, dns

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "notebooks" / "en" / "15-dns.ipynb"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def lesson_cells():
    return [cell.source for cell in nbformat.read(LESSON, as_version=4).cells
            if cell.cell_type == "code"]


def resolver_code():
    """The setup cell (it starts the servers) and the resolver's cells, each cut
    before its demonstration where that needs state of other cells."""
    cells = lesson_cells()

    def the(marker, cut=None):
        source, = [source for source in cells if marker in source]
        return source.split(cut)[0] if cut else source

    return "\n\n".join([
        the("SERVERS = start_name_servers(ZONES)").replace("%load_ext socklab", ""),
        the("def build_query("),
        the("def decode_name(", "\n\nparse_message(referral)"),
        the("def ask("),
        the("def ask_tcp(", "\n\ncrowd = ask("),
        the("def resolve(", "\n\nresolve("),
    ])


def c_source(program, solution=True):
    """The source of the lesson's `%%c program` cell (the last one: the solution)."""
    found = [source for source in lesson_cells() if source.startswith(f"%%c {program} ")]
    return found[-1 if solution else 0].partition("\n")[2]


@pytest.fixture
def lesson():
    """The lesson's namespace, its three servers running; stopped afterwards."""
    names = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(resolver_code(), str(LESSON), "exec"), names)
    try:
        yield names
    finally:
        for server in names["SERVERS"]:
            server.stop()


def walk(lesson, name, qtype=1):
    log = []
    return lesson["resolve"](name, qtype, log=log.append), log


def asked(log):
    return [line.split(" at ")[1].split(":")[0] for line in log if line.startswith("ask ")]


def test_the_servers_share_one_port_on_three_addresses(lesson):
    hosts = [server.address for server in lesson["SERVERS"]]
    assert [host for host, _ in hosts] == ["127.0.53.1", "127.0.53.2", "127.0.53.3"]
    assert len({port for _, port in hosts}) == 1 and hosts[0][1] == lesson["PORT"]


def test_the_resolver_walks_from_the_root_to_the_answer(lesson):
    addresses, log = walk(lesson, "www.socklab.test.")
    assert addresses == ["127.0.0.1"]
    assert asked(log) == ["127.0.53.1", "127.0.53.2", "127.0.53.3"]
    assert "referral: test. is served by ns.test. at 127.0.53.2" in "\n".join(log)
    for server in lesson["SERVERS"]:  # one question each, over UDP
        assert [h[:3] for h in server.heard] == [("udp", "www.socklab.test.", "A")]


def test_names_are_compared_without_case(lesson):
    addresses, _ = walk(lesson, "WWW.SockLab.TEST.")
    assert addresses == ["127.0.0.1"]


def test_a_name_that_does_not_exist_ends_with_nxdomain(lesson):
    addresses, log = walk(lesson, "nothing.socklab.test.")
    assert addresses == [] and "NXDOMAIN" in log[-1]
    assert lesson["SERVERS"][2].heard[-1][3] == "NXDOMAIN"


def test_a_truncated_answer_is_asked_again_over_tcp(lesson):
    addresses, log = walk(lesson, "crowd.socklab.test.")
    assert addresses == [f"127.0.1.{i}" for i in range(1, 41)]
    assert "  truncated (TC): asking again over TCP" in log
    assert [(h[0], h[3]) for h in lesson["SERVERS"][2].heard] == [
        ("udp", "truncated (TC)"), ("tcp", "answer: 40 record(s)")]


def test_the_truncated_udp_reply_fits_in_512_bytes(lesson):
    query_id, query = lesson["build_query"]("crowd.socklab.test.")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.53.3", lesson["PORT"]))
        sock.send(query)
        reply = sock.recv(65535)
    parsed = lesson["parse_message"](reply)
    assert len(reply) <= 512 and parsed.tc and parsed.id == query_id


def test_a_lost_query_is_sent_again_after_the_timeout(lesson):
    addresses, log = walk(lesson, "shy.socklab.test.")
    assert addresses == ["127.0.0.2"]
    assert log.count(f"  no reply in {lesson['TIMEOUT']} s: asking again") == 1
    assert [h[3] for h in lesson["SERVERS"][2].heard] == ["dropped", "answer: 1 record(s)"]


def test_a_server_that_never_answers_gets_tries_queries_then_timeout_error(lesson):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.53.9", 0))
        lesson["PORT"] = silent.getsockname()[1]
        lesson["TIMEOUT"] = 0.2
        log = []
        with pytest.raises(TimeoutError):
            lesson["ask"]("127.0.53.9", "www.socklab.test.", log=log.append)
        silent.setblocking(False)
        queries = []
        with contextlib.suppress(BlockingIOError):
            while True:
                queries.append(silent.recv(512))
    assert len(queries) == lesson["TRIES"] == len(log)
    assert len(set(queries)) == 1  # the same query again, same ID


def test_a_reply_with_another_id_is_ignored(lesson):
    """A forger's reply (wrong ID, another address) arrives first; ask() keeps waiting."""
    domain = lesson["SERVERS"][2]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fake:
        fake.bind(("127.0.53.8", 0))
        fake.settimeout(5)
        lesson["PORT"] = fake.getsockname()[1]

        def forger():
            query, peer = fake.recvfrom(512)
            real = domain.answer(query, "udp")
            forged = bytearray(real)
            forged[0] ^= 0xFF  # another ID ...
            forged[-4:] = socket.inet_aton("127.6.6.6")  # ... and another address
            fake.sendto(bytes(forged), peer)
            fake.sendto(real, peer)

        thread = threading.Thread(target=forger)
        thread.start()
        try:
            reply = lesson["ask"]("127.0.53.8", "www.socklab.test.", log=print)
        finally:
            thread.join(10)
    assert [r.value for r in reply.answers] == ["127.0.0.1"]


def test_a_referral_without_glue_resolves_the_servers_name_first(lesson):
    """far.test. is served by ns.socklab.test., and test. gives no address for it."""
    for server in lesson["SERVERS"]:
        server.stop()
    zones = [
        (".", "127.0.53.1", [("test.", "NS", "ns.test."), ("ns.test.", "A", "127.0.53.2")]),
        ("test.", "127.0.53.2", [
            ("socklab.test.", "NS", "ns1.socklab.test."),
            ("ns1.socklab.test.", "A", "127.0.53.3"),
            ("far.test.", "NS", "ns.socklab.test."),  # no A record here: no glue
        ]),
        ("socklab.test.", "127.0.53.3", [("ns.socklab.test.", "A", "127.0.53.4")]),
        ("far.test.", "127.0.53.4", [("www.far.test.", "A", "127.0.0.44")]),
    ]
    lesson["SERVERS"] = servers = dns.start_name_servers(zones)
    lesson["PORT"] = servers[0].port
    addresses, log = walk(lesson, "www.far.test.")
    assert addresses == ["127.0.0.44"]
    assert asked(log) == ["127.0.53.1", "127.0.53.2",  # far.test.: no glue
                          "127.0.53.1", "127.0.53.2", "127.0.53.3",  # ns.socklab.test.
                          "127.0.53.4"]


def test_a_referral_loop_ends_with_an_error(lesson):
    """A server that refers to itself for ever: MAX_STEPS ends the walk."""
    for server in lesson["SERVERS"]:
        server.stop()
    delegation = [("test.", "NS", "ns.test."), ("ns.test.", "A", "127.0.53.2")]
    zones = [(".", "127.0.53.1", delegation),
             (".", "127.0.53.2", delegation)]  # refers test. to itself
    lesson["SERVERS"] = servers = dns.start_name_servers(zones)
    lesson["PORT"] = servers[0].port
    with pytest.raises(ValueError, match="referral loop"):
        walk(lesson, "www.test.")


def test_the_parser_refuses_a_pointer_loop_in_a_reply(lesson):
    reply = struct.pack("!6H", 1, 0x8400, 1, 1, 0, 0) + b"\x01a\x00\x00\x01\x00\x01"
    looped = reply + b"\xc0\x17" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(4)
    with pytest.raises(ValueError, match="not back"):
        lesson["parse_message"](looped)


# -- the C programs ---------------------------------------------------------------

@needs_gcc
def test_the_c_query_program_reads_answers_referrals_and_asks_again_over_tcp(lesson):
    c.compile(c_source("dns_query", solution=False), "t15_dns_query", sanitize=True)
    port = lesson["PORT"]
    runs = {(host, name): c.run("t15_dns_query", [host, port, name], check=False,
                                echo=False)
            for host, name in [("127.0.53.3", "www.socklab.test"),
                               ("127.0.53.1", "www.socklab.test"),
                               ("127.0.53.3", "crowd.socklab.test")]}
    for run in runs.values():
        assert run.returncode == 0 and not c.sanitizer_report("t15_dns_query", run.stderr)
    answer = runs["127.0.53.3", "www.socklab.test"].stdout
    referral = runs["127.0.53.1", "www.socklab.test"].stdout
    crowd = runs["127.0.53.3", "crowd.socklab.test"].stdout
    assert "AA 1" in answer and "answer     A 127.0.0.1 (ttl 3600)" in answer
    assert "AA 0" in referral and "additional A 127.0.53.2 (ttl 3600)" in referral
    assert "TC 1: asking again over TCP" in crowd
    assert "reply: 676 bytes, rcode 0, AA 1, TC 0" in crowd  # 40 records, over TCP
    assert "answer     ... 40 records in all" in crowd


@needs_gcc
def test_the_c_query_program_refuses_a_reply_that_promises_missing_records():
    def liar(query, peer):
        qid, = struct.unpack_from("!H", query)
        end = dns._read_question(query)[5]
        # five answers promised, none there
        return struct.pack("!6H", qid, 0x8400, 1, 5, 0, 0) + query[12:end]

    c.compile(c_source("dns_query", solution=False), "t15_dns_query", sanitize=True)
    with socklab.serve(liar, kind="udp", name="t15-liar") as server:
        run = c.run("t15_dns_query", [server.host, server.port, "www.socklab.test"],
                    check=False, echo=False)
    assert run.returncode == 1 and "a malformed reply" in run.stderr
    assert not c.sanitizer_report("t15_dns_query", run.stderr)


@needs_gcc
@pytest.mark.parametrize("message, offset", [
    (bytes(12) + b"\xc0\x0c", 12),                      # a pointer to itself
    (bytes(12) + b"\xc0\x0e\xc0\x0c", 14),              # two, at each other
    (bytes(12) + b"\x01a\xc0\x0c", 12),                 # a label, then back to it
    (bytes(12) + b"\x01a\x00\xc0\xff", 15),             # past the end
], ids=["self", "two", "label-and-back", "past-the-end"])
def test_the_c_name_parser_refuses_a_pointer_loop_under_the_sanitizers(message, offset):
    c.compile(c_source("my_names"), "t15_my_names", sanitize=True)
    run = c.run("t15_my_names", [offset], input=message, timeout=5, check=False, echo=False)
    assert run.returncode == 1 and run.stdout.strip() == "refused"
    assert not c.sanitizer_report("t15_my_names", run.stderr)


def test_the_servers_refuse_other_zones_say_formerr_and_never_answer_a_reply(lesson):
    build_query, port = lesson["build_query"], lesson["PORT"]
    _, outside = build_query("www.example.com.")
    _, reply_not_query = build_query("www.socklab.test.")
    reply_not_query = reply_not_query[:2] + b"\x80" + reply_not_query[3:]  # QR set
    broken = struct.pack("!6H", 0x0BAD, 0, 1, 0, 0, 0) + b"\x09ab"  # a name cut short
    _, good = build_query("www.socklab.test.", query_id=0x600D)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.53.3", port))
        got = []
        for query in (outside, broken, reply_not_query, good):
            sock.send(query)
        for _ in range(3):  # replies come in order: the reply with QR set gets none
            got.append(dns.read_message(sock.recv(512)))
    assert got[0]["rcode"] == 5 and not got[0]["aa"]
    assert got[1]["id"] == 0x0BAD and got[1]["rcode"] == 1  # FORMERR
    assert got[2]["id"] == 0x600D and got[2]["answers"][0][3] == "127.0.0.1"
