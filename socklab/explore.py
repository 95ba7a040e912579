"""Small experiments on real sockets, whose answers the lessons show and explain.

The widgets of socklab.ui and the diagrams of socklab.viz are faces over these
functions; a script or a test calls them with nothing but the standard library:

    from socklab import explore
    explore.chunks_received("你好".encode(), 4)    # [b'\\xe4\\xbd\\xa0\\xe5', b'\\xa5\\xbd']
    print(explore.describe_chunks(_))              # why piece.decode() fails on them
    explore.udp_experiment(20, loss=0.2, seed=1)   # the numbers that came back, in order
    trace, capture = explore.watch(code)           # a snippet's system calls and packets
    explore.tcp_sockets()                          # this network's TCP sockets, as ss lists them
    explore.UnreadBytes(server, client).waiting()  # bytes a server has not read yet

How it is built, and why:

* **Answers that do not depend on timing**, so that a lesson can store them and
  the course's tests compare them on every run.  chunks_received() reads only
  once every byte has arrived; udp_experiment() counts datagrams instead of
  waiting a guessed time, and its relay decides every fate from a seed.
* **Everything is stopped and closed before a function returns**: each
  experiment starts its own server or listener on port 0 of 127.0.0.1 and stops
  it again, so nothing is left in socklab.running().
* **Every wait has a time limit**: REPLY_TIMEOUT, ARRIVAL_TIMEOUT, or a
  ``timeout`` argument.
"""

import codecs
import collections
import ctypes
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import unicodedata

from . import capture as capturing
from . import trace as tracing
from .relay import CLIENT_TO_SERVER, SERVER_TO_CLIENT, LossyRelay
from .servers import UDPEchoServer

__all__ = [
    "REPLY_TIMEOUT", "REPLY_QUIET", "read_reply", "split_evenly", "chunks_received",
    "describe_chunks", "udp_experiment", "describe_replies", "watch", "closed_udp_address",
    "NoNewNetwork", "in_new_network", "deafen", "tcp_sockets", "UnreadBytes",
]

REPLY_TIMEOUT = 2.0  # seconds to wait for the first byte of a reply
REPLY_QUIET = 0.2  # then: the reply is complete when nothing more comes for this long
ARRIVAL_TIMEOUT = 5.0  # seconds chunks_received() waits for its bytes to cross loopback
PROBE_TIMEOUT = 0.5  # seconds a port has to refuse a datagram (loopback: at once)


def read_reply(sock, first_timeout=REPLY_TIMEOUT, quiet=REPLY_QUIET):
    """Read a reply of unknown length: wait for the first bytes, then for a pause.

    A stream has no message boundaries (lesson 09), so a console that talks to any
    server can only guess where a reply ends.  It takes what arrives until the
    server has been quiet for ``quiet`` seconds.  Returns b"" if the server
    closed, None if nothing came at all.
    """
    sock.settimeout(first_timeout)
    try:
        reply = sock.recv(65536)
    except socket.timeout:
        return None
    sock.settimeout(quiet)
    while reply:
        try:
            more = sock.recv(65536)
        except socket.timeout:
            break
        if not more:
            break
        reply += more
    return reply


# -------------------------------------------------------------- recv() sizes


def split_evenly(data, parts):
    """``data`` cut into ``parts`` pieces of (nearly) equal size, none of them empty."""
    parts = max(1, min(parts, len(data)))
    size, extra = divmod(len(data), parts)
    pieces, start = [], 0
    for number in range(parts):
        end = start + size + (number < extra)
        pieces.append(data[start:end])
        start = end
    return pieces


def _wait_for_end_of_stream(sock, timeout):
    """Wait until the peer's FIN has reached ``sock``: then all its data has too.

    poll() reports POLLRDHUP once the peer has shut down its sending side, and TCP
    hands over a FIN only after every byte sent before it, in order.  So this
    waits for exactly "all the data is in the receive buffer", without looking
    again and again at how many bytes wait there (FIONREAD) with sleeps between.
    """
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    if not poller.poll(timeout * 1000):
        raise TimeoutError(f"the data did not cross loopback within {timeout:g} s")


def chunks_received(data, bufsize, sends=1):
    """Send ``data`` over a real TCP connection on loopback; return the recv(bufsize) pieces.

    The sender makes ``sends`` send() calls (the data cut evenly; TCP_NODELAY,
    so each goes out as a segment of its own), then closes its side.  Only when
    every byte has arrived does the reader start: it calls recv(bufsize) until
    it returns b''.  So the answer never depends on timing -- and it shows that
    each recv() returns at most ``bufsize`` bytes, whatever the send() calls were.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=ARRIVAL_TIMEOUT) as writer:
            writer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader, _ = listener.accept()
            with reader:
                reader.settimeout(ARRIVAL_TIMEOUT)
                for piece in split_evenly(data, sends):
                    writer.sendall(piece)
                writer.shutdown(socket.SHUT_WR)
                _wait_for_end_of_stream(reader, ARRIVAL_TIMEOUT)
                chunks = []
                while chunk := reader.recv(bufsize):
                    chunks.append(chunk)
    return chunks


def _width(text):
    """Columns ``text`` takes in a monospaced font: most Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows):
    """Rows of cells as lines of text, each column as wide as its widest cell."""
    widths = [max(_width(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell + " " * (width - _width(cell))
                      for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def describe_chunks(chunks):
    """A table, one line per chunk: its bytes, a naive decode, an incremental decode.

    Decoding each chunk on its own fails when a multi-byte UTF-8 character is
    split between two chunks; an incremental decoder keeps the incomplete bytes
    and finishes the character with the next chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    rows = [("recv", "bytes", "piece.decode()", "incremental decoder")]
    for number, chunk in enumerate(chunks, 1):
        try:
            naive = repr(chunk.decode("utf-8"))
        except UnicodeDecodeError as exc:
            naive = f"UnicodeDecodeError: {exc.reason}"
        text = decoder.decode(chunk)
        pending = len(decoder.getstate()[0])
        kept = f" + {pending} byte{'' if pending == 1 else 's'} kept" if pending else ""
        rows.append((f"#{number}", repr(chunk), naive, repr(text) + kept))
    return "\n".join(_table(rows))


# -------------------------------------------------------------- a bad network


def _copies(fates):
    """How many datagrams a flow delivers, given each one's fate."""
    return sum({"drop": 0, "duplicate": 2}.get(fate, 1) for fate in fates)


def udp_experiment(count=20, loss=0.2, duplicate=0.05, reorder=0.1, seed=1):
    """Send ``count`` numbered datagrams through a LossyRelay to an echo server.

    Returns the numbers of the replies in the order they arrived.  The relay
    decides every datagram's fate (both ways) from ``seed``, so the same settings
    give the same answer every time.  Rather than waiting for a guessed time, it
    counts: after the requests, the relay's fates say how many reach the server;
    the server answers each; the fates of the replies say how many come back.
    """
    with UDPEchoServer(name="udp-explorer-echo") as server, \
            LossyRelay(server.address, loss=loss, duplicate=duplicate, reorder=reorder,
                       delay=(0.0, 0.002), seed=seed, name="udp-explorer-relay") as relay, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(REPLY_TIMEOUT)
        for number in range(1, count + 1):
            client.sendto(b"%d" % number, relay.address)
        relay.wait_for_datagrams(count, CLIENT_TO_SERVER)
        at_server = _copies(relay.fates(CLIENT_TO_SERVER))
        relay.wait_for_datagrams(at_server, SERVER_TO_CLIENT)
        back = _copies(relay.fates(SERVER_TO_CLIENT))
        return [int(client.recvfrom(100)[0]) for _ in range(back)]


def describe_replies(count, replies):
    """What happened to datagrams 1..count, told from the replies that came back."""
    lost = [n for n in range(1, count + 1) if n not in replies]
    twice = sorted({n for n in replies if replies.count(n) > 1})
    late = [n for i, n in enumerate(replies) if any(m > n for m in replies[:i])]
    return "\n".join([
        f"sent     {' '.join(map(str, range(1, count + 1)))}",
        f"received {' '.join(map(str, replies))}",
        f"lost: {lost or 'none'}   twice: {twice or 'none'}   out of order: {late or 'none'}",
    ])


# -------------------------------------------------------------- calls and packets


def watch(code, timeout=20):
    """Run a self-contained Python snippet under strace, capturing its packets too.

    Returns (trace, capture); capture is None where this process may not
    capture packets (not root, no CAP_NET_RAW).  The capture keeps only the ports
    the snippet used -- read from the addresses in its bind(), connect() and
    getsockname() calls -- so Jupyter's own loopback traffic stays out.
    socklab.viz.sequence_diagram() draws the two on one timeline.
    """
    if not capturing.can_capture():
        return tracing.trace_python(code, timeout=timeout), None
    with capturing.Capture() as cap:
        trace = tracing.trace_python(code, timeout=timeout)
    ports = {int(port) for record in trace
             for port in re.findall(r"sin6?_port=htons\((\d+)\)", record.args)}
    cap.ports.update(ports - {0})
    return trace, cap


def closed_udp_address(host="127.0.0.1"):
    """A UDP address where nothing is bound -- and where nothing will be, by chance.

    Binding port 0 and closing the socket finds a port that is free now; on a
    machine shared by many learners, the kernel may hand that very port to
    someone else's socket the next moment.  But it hands out ports only from
    net.ipv4.ip_local_port_range (32768-60999 by default): a port below that
    range is taken only by a program that names it.  So the first port below
    the range that refuses a datagram -- an ICMP "port unreachable" comes back,
    which a connected socket reads as ECONNREFUSED (man 7 udp) -- stays closed.
    """
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        lowest = int(ports.read().split()[0])
    for port in range(lowest - 1, max(lowest - 200, 1023), -1):
        if _refuses(host, port):
            return (host, port)
    raise OSError(f"no closed UDP port on {host} below {lowest}: every one answered")


def _refuses(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        probe.connect((host, port))
        probe.send(b"")
        try:
            probe.recv(1)
        except ConnectionRefusedError:
            return True
        except OSError:  # a timeout: something is bound there, silent
            return False
        return False  # something is bound there, and answered


# -------------------------------------------------------------- the kernel's socket table

NETLINK_SOCK_DIAG = 4  # <linux/netlink.h>
SOCK_DIAG_BY_FAMILY = 20  # <linux/sock_diag.h>
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300  # <linux/netlink.h>
NLMSG_ERROR, NLMSG_DONE = 2, 3
ALL_STATES = 0xFFFFFFFF  # a bit per TCP state: every one
# The TCP states by number (<netinet/tcp.h>), named as ss prints them.
TCP_STATES = {1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
              6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN",
              11: "CLOSING", 12: "SYN-RECV"}

TCPSocket = collections.namedtuple("TCPSocket", "state recv_q send_q local peer")
TCPSocket.__doc__ = """One line of ``ss -tan``: local and peer are (host, port).

For a listening socket recv_q is how many connections wait for accept() and
send_q its backlog; for a connection, the bytes not yet read by the program
and the bytes sent but not yet acknowledged."""


def tcp_sockets():
    """This network's TCP sockets, IPv4 and IPv6, as ``ss -tan`` lists them.

    It asks the kernel what ss asks, the same way: a netlink socket of the
    family NETLINK_SOCK_DIAG (``man 7 sock_diag``), one dump request per
    address family.  For a listener the kernel fills Recv-Q and Send-Q from
    the accept queue's length and its limit (tcp_diag_get_info() in
    net/ipv4/tcp_diag.c).  The same table exists as text in /proc/net/tcp and
    /proc/net/tcp6 (``man 5 proc``), but there a listener's backlog is missing.
    Any user may read it; it needs no ss installed.
    """
    rows = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.settimeout(REPLY_TIMEOUT)
        for family in (socket.AF_INET, socket.AF_INET6):
            # struct inet_diag_req_v2 (<linux/inet_diag.h>): an empty inet_diag_sockid
            # (48 bytes) matches every socket of the family.
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0, ALL_STATES)
            netlink.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY,
                                     NLM_F_REQUEST | NLM_F_DUMP, family, 0) + request)
            rows += _dumped_sockets(netlink)
    return rows


def _dumped_sockets(netlink):
    """The TCPSockets of one dump, read until its NLMSG_DONE."""
    rows = []
    while True:
        data, offset = netlink.recv(1 << 16), 0
        while offset < len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind == NLMSG_DONE:
                return rows
            if kind == NLMSG_ERROR:  # struct nlmsgerr: a negative errno
                error = -struct.unpack_from("=i", data, offset + 16)[0]
                raise OSError(error, f"sock_diag: {os.strerror(error)}")
            # struct inet_diag_msg: family, state, timer, retrans; the sockid (ports
            # in network order, 16 bytes per address); expires, rqueue, wqueue ...
            family, state = struct.unpack_from("=BB", data, offset + 16)
            sport, dport = struct.unpack_from("!HH", data, offset + 20)
            size = 4 if family == socket.AF_INET else 16
            src = socket.inet_ntop(family, data[offset + 24:offset + 24 + size])
            dst = socket.inet_ntop(family, data[offset + 40:offset + 40 + size])
            recv_q, send_q = struct.unpack_from("=II", data, offset + 16 + 56)
            rows.append(TCPSocket(TCP_STATES.get(state, str(state)), recv_q, send_q,
                                  (src, sport), (dst, dport)))
            offset += (length + 3) & ~3  # NLMSG_ALIGN


DIAG_TIMEOUT = 1.0  # seconds for one question to the kernel's sock_diag
TCP_ESTABLISHED, TCP_CLOSE_WAIT = 1, 8  # <netinet/tcp.h>: the states that still read
NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: find the socket by its addresses alone


class UnreadBytes:
    """How many bytes wait, unread, in the server's end of one connection.

    A check that sends in lockstep with a server's recv() -- the next piece
    once the last is read -- cannot ask FIONREAD of a socket that belongs to
    another process (a C server).  The kernel tells it all the same through
    netlink (``man 7 sock_diag``, what `ss` asks): the receive
    queue of the TCP socket with these two addresses, some 10 µs a question.
    Where netlink is not allowed, /proc/net/tcp's rx_queue says the same,
    slower.  A connection the server has closed has nothing waiting.
    """

    def __init__(self, server, client):
        self.server, self.client = server, client  # (host, port): the server end's
        self.sequence = 0                          # own address, and its peer's
        try:
            self.netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                         NETLINK_SOCK_DIAG)
            self.netlink.settimeout(DIAG_TIMEOUT)
            self._ask()
        except OSError:  # no netlink here (a sandbox): read the table instead
            self.close()

    def close(self):
        if getattr(self, "netlink", None) is not None:
            self.netlink.close()
        self.netlink = None

    def waiting(self):
        return self._ask() if self.netlink is not None else self._from_proc()

    def _ask(self):
        (shost, sport), (chost, cport) = self.server, self.client
        sockid = (struct.pack("!HH", sport, cport) + socket.inet_aton(shost) + bytes(12)
                  + socket.inet_aton(chost) + bytes(12)
                  + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE))
        request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0,
                              ALL_STATES) + sockid
        self.sequence += 1
        self.netlink.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY,
                                      NLM_F_REQUEST, self.sequence, 0) + request)
        while True:  # the answer to this question (not one left from an earlier one)
            answer = self.netlink.recv(4096)
            if struct.unpack_from("=I", answer, 8)[0] == self.sequence:
                break
        if struct.unpack_from("=H", answer, 4)[0] == NLMSG_ERROR:
            return 0  # no such socket: closed
        state = answer[17]
        rqueue = struct.unpack_from("=I", answer, 16 + 4 + 48 + 4)[0]
        # A closed connection's addresses find the listener: not a reader.
        return rqueue if state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT) else 0

    def _from_proc(self):
        def hex_address(host, port):
            return f"{struct.unpack('<I', socket.inet_aton(host))[0]:08X}:{port:04X}"
        local, remote = hex_address(*self.server), hex_address(*self.client)
        with open("/proc/net/tcp") as table:
            for line in table:
                fields = line.split()
                if fields[1] == local and fields[2] == remote and fields[3] in ("01", "08"):
                    return int(fields[4].partition(":")[2], 16)
        return 0


# -------------------------------------------------------------- a network of its own


class NoNewNetwork(OSError):
    """This system will not give in_new_network() a network of its own (says why)."""


# Run in the new Python process before the snippet: the socklab kernel's steps,
# which a fresh process may take (a user namespace asks for a single thread).
_ENTER = """\
import sys
from socklab import kernel
try:
    kernel.enter_private_network()  # only lo, up; no route out
except OSError as exc:
    sys.stderr.write(str(exc))
    sys.exit(75)
del kernel
exec(compile(sys.argv[1], "<snippet>", "exec"), {"__name__": "__main__"})
"""
_REFUSED = 75  # the exit status of _ENTER when the namespace is refused


def in_new_network(code, needs=(), timeout=30):
    """Run a Python snippet in a network namespace of its own; return what it printed.

    The snippet's network has a loopback interface (up) and nothing else: no
    other interface, no route out.  So it can make network errors happen --
    "network is unreachable", "no route to host", a peer that stops answering
    -- without a packet leaving this machine, and it may change its network
    as it likes (``ip route add ...``, ``ip link set lo down``): the network
    vanishes when the snippet ends, and no other network, not even the socklab
    kernel's own, sees the change (man 7 network_namespaces).

    The snippet runs in a new Python process, which makes the namespace as the
    socklab kernel does: directly where it may (root, or root of the socklab
    kernel's user namespace), else as root of a new user namespace first,
    where Linux lets an ordinary user make one.  ``needs`` names the programs
    the snippet runs (such as "ip").  Raises NoNewNetwork, with the reason in
    words, where the namespace is refused or a program is missing, and
    RuntimeError with its error output if the snippet itself fails.
    """
    for program in needs:
        if shutil.which(program) is None:
            raise NoNewNetwork(f"the program {program!r} is not installed here")
    done = subprocess.run([sys.executable, "-c", _ENTER, code], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode == _REFUSED:
        raise NoNewNetwork(f"no network namespace here: {done.stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"the snippet failed (exit status {done.returncode}):\n"
                           f"{done.stderr}")
    return done.stdout


# ------------------------------------------------------------- a peer that vanishes

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module lacks the name


def deafen(sock):
    """Drop every packet that arrives for ``sock`` from now on: its peer sees it vanish.

    To the other end of the connection, this end behaves like a machine that
    lost its power or its cable: nothing sent to it -- data, retransmissions,
    keepalive probes -- is ever acknowledged, and no FIN or reset comes back.
    Nothing else changes: no other socket, no route, no interface; and no
    privilege is needed, so a lesson can show TCP keepalive and
    TCP_USER_TIMEOUT find a dead peer in the socklab kernel's own network.

    How: a socket filter (man 7 socket, SO_ATTACH_FILTER), a classic BPF
    program of one instruction, ``ret #0`` -- keep 0 bytes of the packet, that
    is, drop it.  TCP runs a socket's filter on each segment before it looks at
    it (tcp_v4_rcv() in net/ipv4/tcp_ipv4.c), so this socket's kernel never
    answers for it again.  (A relay in user space could not do this: keepalive
    probes carry no data, and the kernel on each side of a relay answers them
    itself.)  The kernel copies the program: nothing needs to stay alive here.

    Recent kernels let only a process with CAP_NET_ADMIN filter a TCP socket
    (Linux commit 5d39580f68e6, as gVisor's pull request 14478 notes; UDP
    sockets need nothing).  Root has it, and so has the socklab kernel in
    its network of its own; elsewhere this raises PermissionError, whose
    strerror says so in words.
    """
    ret_0 = struct.pack("HBBI", 0x06, 0, 0, 0)  # struct sock_filter: BPF_RET|BPF_K, k=0
    program = ctypes.create_string_buffer(ret_0, len(ret_0))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}, native layout
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except PermissionError as exc:
        from . import kernel  # here only: most of explore never needs it
        kind, why = kernel.network()
        where = ("in its network of its own" if kind == "private"
                 else f"in a network of its own, which it has not here: {why}")
        raise PermissionError(exc.errno, (
            "this Linux lets only a process with the capability CAP_NET_ADMIN put a "
            "filter on a TCP socket; root has it, and so has the socklab kernel "
            f"{where}")) from exc
