"""Watch the packets a block of code sends over loopback.

    >>> import socket, socklab
    >>> from socklab.capture import Capture
    >>> with socklab.TCPEchoServer() as srv, Capture(servers=[srv]) as cap:
    ...     with socket.create_connection(srv.address, timeout=5) as s:
    ...         s.sendall(b"hello")
    ...         s.recv(1024)
    ...     srv.events.wait_for("close")      # the server has sent its FIN too
    >>> cap                                   # doctest: +SKIP
    client > server  SYN                   seq=0
    server > client  SYN,ACK               seq=0 ack=1
    client > server  ACK                   seq=1 ack=1
    client > server  PSH,ACK          5 B  seq=1 ack=1
    ...

How it is built, and why:

* **An AF_PACKET socket on "lo".**  ``socket(AF_PACKET, SOCK_RAW, ...)`` hands us
  every frame that crosses an interface, headers included -- what tcpdump and
  Wireshark read, without needing either.  It is opened with protocol 0 (it then
  receives nothing) and only bind(("lo", ETH_P_ALL)) starts the flow: opened with
  ETH_P_ALL straight away, as most C examples do, it would receive the frames of
  *every* interface for the moment between socket() and bind().  The course
  watches loopback only.

* **Linux only, and privileged.**  The kernel gives packet sockets only to a
  process with the CAP_NET_RAW capability (root has it).  Without it the socket
  cannot be opened and Capture raises CaptureNotPermitted, which says why and what
  to do.  The lessons then show a capture recorded earlier (load_recorded(),
  live_or_recorded()).

* **Every frame arrives twice on lo, and one copy is dropped.**  A packet sent to
  127.0.0.1 goes out of the loopback interface (the packet socket sees it with
  pkttype PACKET_OUTGOING) and comes straight back in (pkttype PACKET_HOST).  We
  keep the incoming copy only, as libpcap (tcpdump) does on lo.

* **A background thread reads, the caller's code runs.**  The thread waits in a
  selector on the packet socket and on one end of a socketpair; stop() writes a
  byte to the other end.  Before it ends, the thread reads on until no frame has
  come for 50 ms (1 s at most): the other side's last segments (a server thread's
  FIN, say) are often sent a moment after the ``with`` block has ended.  The thread
  never prints; errors are kept and raised again by stop().

* **Filtering happens when you read.**  The thread parses every TCP and UDP
  segment on lo; ``cap.segments`` keeps those to or from ``cap.ports`` (and
  ``cap.host``).  A port may therefore be added at any time before reading --
  handy, as a server's port is known only once it exists.  Give ports in a
  notebook: Jupyter's own kernel talks over loopback too (its ZeroMQ channels),
  and those segments would be listed with yours.

* **... and in the kernel too, once ports are known.**  A packet socket's queue
  is small next to what loopback can carry: another program's bulk transfer
  (iperf3, say) fills it in a fraction of a millisecond, and then frames are
  dropped -- yours among them.  So while ``cap.ports`` is not empty, a small
  BPF program attached to the socket (SO_ATTACH_FILTER, ``man 7 socket``) lets
  the kernel queue only TCP and UDP frames to or from those ports.  It is
  attached before bind(), when the ports are given to the constructor, and
  replaced whenever ``cap.ports`` changes.

* **Text that is the same on every run.**  ``cap.text()`` (and the repr) names the
  two sides "client" (who sent the first SYN; for UDP, who spoke first) and
  "server", never by their port, and shows sequence numbers relative to each
  side's first one, as Wireshark does.  Ports and initial sequence numbers change
  on every run; stored lesson outputs must not.  The full details stay in each
  Segment.

The parsing is plain ``struct`` over the bytes of a frame (parse_frame), so you
can read it alongside the header diagrams: Ethernet, then IPv4 or IPv6, then TCP
or UDP.
"""

import bisect
import contextlib
import ctypes
import datetime
import importlib.resources
import json
import os
import platform
import selectors
import socket
import struct
import sys
import threading
import time
import typing

from .background import Background

__all__ = [
    "Segment",
    "parse_frame",
    "port_filter",
    "attach_filter",
    "tcp_flags",
    "describe",
    "roles",
    "relative_numbers",
    "Capture",
    "CaptureNotPermitted",
    "RecordedCapture",
    "can_capture",
    "load_recorded",
    "live_or_recorded",
    "recording",
]

# Linux constants the socket module does not name (values from <linux/if_ether.h>,
# <linux/if_packet.h> and <asm-generic/socket.h>).
ETH_P_ALL = 0x0003  # "every protocol": IPv4, IPv6, ARP ...
SOL_PACKET = 263
PACKET_STATISTICS = 6  # how many frames the kernel delivered and dropped
SO_TIMESTAMPNS = 35  # the kernel stamps each frame when it arrives (nanoseconds)
SO_RCVBUFFORCE = 33  # SO_RCVBUF above net.core.rmem_max; needs CAP_NET_ADMIN
SO_ATTACH_FILTER = 26  # a classic BPF program that decides which frames to queue

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17

SNAPLEN = 256  # bytes kept of each frame: all headers plus PAYLOAD_KEPT (tcpdump -s)
PAYLOAD_KEPT = 64  # payload bytes kept in a Segment; lengths come from the headers
RECEIVE_BUFFER = 4 << 20  # 4 MiB: a 64 KiB loopback segment takes 64 KiB of it
DRAIN_QUIET = 0.05  # seconds without a frame after which the drain stops ...
DRAIN_LIMIT = 1.0  # ... or after this long in all, whatever comes first
IDLE_WAKE = 1.0  # the reader's selector returns at least this often
MAX_SEGMENTS = 50_000  # segments kept; later ones are counted in `dropped`
MAX_FILTERED_PORTS = 50  # more ports than this: no kernel filter (BPF jumps are short)
RECORDED_DIR = "data"  # socklab/data/recorded_<name>.json

# TCP flag bits in header order, lowest first; flags are always shown in this order.
TCP_FLAG_BITS = (
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ECE", 0x40),
    ("CWR", 0x80),
)


class Segment(typing.NamedTuple):
    """One TCP segment or UDP datagram, as seen on the wire.

    time    -- seconds since the capture started
    proto   -- "tcp" or "udp"
    src     -- (host, port) that sent it
    dst     -- (host, port) it was sent to
    flags   -- TCP flags such as "SYN", "SYN,ACK", "PSH,ACK", "RST"; "" for UDP
    seq     -- TCP sequence number, as on the wire (None for UDP)
    ack     -- TCP acknowledgment number, as on the wire (None for UDP)
    length  -- payload bytes the segment carries (its headers not counted)
    payload -- the first 64 bytes of that payload
    window  -- the TCP window field as sent (None for UDP).  After the handshake
               the receiver multiplies it by 2**scale, the window-scale option the
               SYNs agreed on: a small number such as 64 is not the real window.
    """

    time: float
    proto: str
    src: tuple
    dst: tuple
    flags: str
    seq: "int | None"
    ack: "int | None"
    length: int
    payload: bytes
    window: "int | None" = None


# ---------------------------------------------------------------- parsing


def tcp_flags(bits):
    """The TCP flag byte as text: 0x12 -> "SYN,ACK", 0x19 -> "FIN,PSH,ACK"."""
    return ",".join(name for name, bit in TCP_FLAG_BITS if bits & bit)


def parse_frame(frame, time=0.0):
    """The TCP or UDP segment in an Ethernet frame, or None for anything else.

    Loopback frames have Ethernet framing with all-zero MAC addresses.  None is
    returned for what the course does not look at (ARP, ICMP, IP fragments, IPv6
    extension headers) and for frames too short to hold their headers.  The frame
    may be cut short after the headers (see SNAPLEN): payload lengths come from
    the IP and UDP length fields, not from the size of ``frame``.
    """
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)  # after two 6-byte MACs
    if ethertype == ETHERTYPE_IPV4:
        packet = _parse_ipv4(frame, 14)
    elif ethertype == ETHERTYPE_IPV6:
        packet = _parse_ipv6(frame, 14)
    else:
        return None
    if packet is None:
        return None
    src, dst, proto, start, length = packet
    if proto == IPPROTO_TCP:
        return _parse_tcp(frame, start, length, src, dst, time)
    if proto == IPPROTO_UDP:
        return _parse_udp(frame, start, length, src, dst, time)
    return None


def _parse_ipv4(frame, start):
    """(src, dst, protocol, where the payload starts, payload length) or None."""
    if len(frame) < start + 20:
        return None
    version_ihl, total_length, fragment, proto = struct.unpack_from("!BxHxxHxB", frame, start)
    header_length = (version_ihl & 0x0F) * 4  # IHL counts 32-bit words; options make it > 20
    if version_ihl >> 4 != 4 or header_length < 20 or len(frame) < start + header_length:
        return None
    if fragment & 0x3FFF:  # "more fragments" set or an offset: not a whole packet
        return None
    src = socket.inet_ntop(socket.AF_INET, frame[start + 12:start + 16])
    dst = socket.inet_ntop(socket.AF_INET, frame[start + 16:start + 20])
    return src, dst, proto, start + header_length, total_length - header_length


def _parse_ipv6(frame, start):
    """(src, dst, next header, where the payload starts, payload length) or None."""
    if len(frame) < start + 40:
        return None
    version, payload_length, next_header = struct.unpack_from("!BxxxHB", frame, start)
    if version >> 4 != 6:
        return None
    src = socket.inet_ntop(socket.AF_INET6, frame[start + 8:start + 24])
    dst = socket.inet_ntop(socket.AF_INET6, frame[start + 24:start + 40])
    # Extension headers (hop-by-hop, routing, ...) would come first and have other
    # next-header values: parse_frame returns None for them.
    return src, dst, next_header, start + 40, payload_length


def _parse_tcp(frame, start, length, src, dst, time):
    if len(frame) < start + 20:
        return None
    sport, dport, seq, ack, offset, bits, window = struct.unpack_from("!HHIIBBH", frame, start)
    header_length = (offset >> 4) * 4  # the data offset: 20 bytes plus options
    if header_length < 20 or len(frame) < start + header_length or length < header_length:
        return None
    payload_start = start + header_length
    payload_length = length - header_length
    payload = bytes(frame[payload_start:payload_start + min(payload_length, PAYLOAD_KEPT)])
    return Segment(
        time, "tcp", (src, sport), (dst, dport), tcp_flags(bits),
        seq, ack, payload_length, payload, window,
    )


def _parse_udp(frame, start, length, src, dst, time):
    if len(frame) < start + 8:
        return None
    sport, dport, udp_length = struct.unpack_from("!HHH", frame, start)
    if udp_length < 8:
        return None
    payload_length = udp_length - 8
    payload = bytes(frame[start + 8:start + 8 + min(payload_length, PAYLOAD_KEPT)])
    return Segment(time, "udp", (src, sport), (dst, dport), "", None, None, payload_length, payload)


# ---------------------------------------------------------------- stable text


def _conversation(segment):
    """Both directions of one connection (or UDP exchange) share this key."""
    return segment.proto, frozenset((segment.src, segment.dst))


def _is_opening_syn(segment):
    flags = segment.flags.split(",")
    return "SYN" in flags and "ACK" not in flags


def _clients(segments):
    """conversation -> the endpoint that started it (see roles())."""
    spoke_first, sent_syn = {}, {}
    for segment in segments:
        key = _conversation(segment)
        spoke_first.setdefault(key, segment.src)
        if _is_opening_syn(segment):
            sent_syn.setdefault(key, segment.src)
    return {key: sent_syn.get(key, first) for key, first in spoke_first.items()}


def roles(segments):
    """For each segment, "client" or "server": the role of the side that sent it.

    The client of a conversation is the side that sent its first SYN.  When the
    capture began after the handshake (or for UDP), it is the side that spoke
    first.  This is socklab's one definition: capture.text() names the sides by
    it, and socklab.viz draws its lanes and TCP states by it.
    """
    segments = list(segments)
    clients = _clients(segments)
    return ["client" if segment.src == clients[_conversation(segment)] else "server"
            for segment in segments]


def _names(segments):
    """(conversation, endpoint) -> "client" or "server", numbered if there are several.

    Names, not ports: the kernel picks a new client port on every run.
    """
    clients = _clients(segments)
    client_endpoints, server_endpoints = [], []
    for segment in segments:
        key = _conversation(segment)
        for endpoint in (segment.src, segment.dst):
            found = client_endpoints if endpoint == clients[key] else server_endpoints
            if endpoint not in found:
                found.append(endpoint)
    names = {}
    for key, client in clients.items():
        server = next(iter(key[1] - {client}), client)  # a socket may talk to itself
        names[key, client] = _numbered("client", client, client_endpoints)
        names[key, server] = _numbered("server", server, server_endpoints)
    return names


def _numbered(role, endpoint, endpoints):
    if len(endpoints) == 1:
        return role
    return f"{role} {endpoints.index(endpoint) + 1}"


def _direction(names, segment):
    key = _conversation(segment)
    return f"{names[key, segment.src]} > {names[key, segment.dst]}"


def relative_numbers(segments):
    """For each segment, its (seq, ack) relative to each side's first sequence number.

    Like Wireshark: the SYN has seq=0, the first data byte seq=1.  The ack is None
    unless the ACK flag is set.  (None, None) for UDP.
    """
    first_seq = {}  # (conversation, endpoint) -> its initial sequence number
    numbers = []
    for segment in segments:
        if segment.proto != "tcp":
            numbers.append((None, None))
            continue
        key = _conversation(segment)
        mine = first_seq.setdefault((key, segment.src), segment.seq)
        theirs = first_seq.get((key, segment.dst))
        seq = (segment.seq - mine) % 2**32  # sequence numbers wrap around at 2**32
        ack = None
        if "ACK" in segment.flags.split(",") and theirs is not None:
            ack = (segment.ack - theirs) % 2**32
        numbers.append((seq, ack))
    return numbers


def describe(segments):
    """One line of stable text per segment (see the module docstring)."""
    segments = list(segments)
    if not segments:
        return []
    names = _names(segments)
    directions = [_direction(names, segment) for segment in segments]
    width = max(len(direction) for direction in directions)
    lines = []
    for direction, segment, (seq, ack) in zip(directions, segments, relative_numbers(segments)):
        flags = segment.flags if segment.proto == "tcp" else "UDP"
        size = f"{segment.length} B" if segment.length else ""
        numbers = "" if seq is None else f"seq={seq}" + ("" if ack is None else f" ack={ack}")
        lines.append(f"{direction:<{width}}  {flags:<11} {size:>7}  {numbers}".rstrip())
    return lines


class _Segments:
    """What a live and a recorded capture share: a list of Segments and its text."""

    segments = ()

    def flags_sequence(self):
        """[(direction, flags), ...], e.g. ("client > server", "SYN") first."""
        segments = self.segments
        names = _names(segments)
        return [(_direction(names, segment), segment.flags) for segment in segments]

    def _notes(self):
        return [], []  # lines before and after the segments

    def text(self):
        """The segments, one line each, the same on every run (no ports, relative seq)."""
        before, after = self._notes()
        lines = describe(self.segments) or ["(no packets captured)"]
        return "\n".join(before + lines + after)

    def __repr__(self):
        return self.text()

    def __len__(self):
        return len(self.segments)

    def __iter__(self):
        return iter(self.segments)

    def __getitem__(self, index):
        return self.segments[index]


# ---------------------------------------------------------------- kernel filter

# Classic BPF instructions (<linux/filter.h>): what each code below means.
BPF_LDH_ABS = 0x28  # A = 16 bits at [k]
BPF_LDB_ABS = 0x30  # A = 8 bits at [k]
BPF_LDX_IHL = 0xB1  # X = 4 * ([k] & 0x0F): an IPv4 header's length
BPF_LDH_IND = 0x48  # A = 16 bits at [X + k]
BPF_JEQ = 0x15  # if A == k: skip jt instructions, else jf
BPF_JSET = 0x45  # if A & k: skip jt instructions, else jf
BPF_RET = 0x06  # keep k bytes of the frame (0: drop it)
KEEP_ALL = 0xFFFFFFFF


def port_filter(ports):
    """A BPF program that keeps TCP and UDP frames to or from ``ports``, as instructions.

    Each instruction is (code, jt, jf, k).  No ports (or too many): keep everything.
    IPv4 and IPv6 (without extension headers) on an Ethernet-framed device like lo.
    """
    ports = sorted(ports)
    if not ports or len(ports) > MAX_FILTERED_PORTS:
        return [(BPF_RET, 0, 0, KEEP_ALL)]
    program = []
    jumps = []  # (index of a jump, "keep" or "drop"): fixed up at the end

    def emit(code, k=0, jt=None, jf=None):
        for target, which in ((jt, 1), (jf, 2)):
            if target is not None:
                jumps.append((len(program), which, target))
        program.append([code, 0, 0, k])

    def ports_at(load, offsets):
        for offset in offsets:  # source port, then destination port
            emit(load, offset)
            for port in ports:
                emit(BPF_JEQ, port, jt="keep")

    emit(BPF_LDH_ABS, 12)                      # the Ethernet type
    emit(BPF_JEQ, ETHERTYPE_IPV4, jf="ipv6")
    emit(BPF_LDB_ABS, 14 + 9)                  # IPv4: the protocol
    emit(BPF_JEQ, IPPROTO_TCP, jt="ipv4 ports")
    emit(BPF_JEQ, IPPROTO_UDP, jf="drop")
    jumps.append(("label", "ipv4 ports", len(program)))
    emit(BPF_LDH_ABS, 14 + 6)                  # a fragment after the first has no ports
    emit(BPF_JSET, 0x1FFF, jt="drop")
    emit(BPF_LDX_IHL, 14)
    ports_at(BPF_LDH_IND, (14, 16))            # after the IPv4 header: the ports
    emit(BPF_RET, 0)
    jumps.append(("label", "ipv6", len(program)))
    emit(BPF_JEQ, ETHERTYPE_IPV6, jf="drop")
    emit(BPF_LDB_ABS, 14 + 6)                  # IPv6: the next header
    emit(BPF_JEQ, IPPROTO_TCP, jt="ipv6 ports")
    emit(BPF_JEQ, IPPROTO_UDP, jf="drop")
    jumps.append(("label", "ipv6 ports", len(program)))
    ports_at(BPF_LDH_ABS, (14 + 40, 14 + 42))
    jumps.append(("label", "drop", len(program)))
    emit(BPF_RET, 0)
    jumps.append(("label", "keep", len(program)))
    emit(BPF_RET, KEEP_ALL)

    labels = {name: where for kind, name, where in jumps if kind == "label"}
    for index, which, target in (j for j in jumps if j[0] != "label"):
        program[index][which] = labels[target] - index - 1  # jumps count from the next one
    return [tuple(instruction) for instruction in program]


def attach_filter(sock, program):
    """Attach a BPF ``program`` (a list like port_filter's) to a packet socket.

    From then on the kernel queues only the frames the program keeps.  The kernel
    copies the program: the buffer may go once setsockopt() has returned.
    """
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HP", len(program), ctypes.addressof(buffer)))


class _Ports(set):
    """``cap.ports``: a set that tells its capture when it changes (to refilter)."""

    def __init__(self, ports, changed):
        super().__init__(ports)
        self._changed = changed


def _telling(name):
    def method(self, *args):
        result = getattr(set, name)(self, *args)
        self._changed()
        return result
    method.__name__ = name
    return method


for _name in ("add", "discard", "remove", "pop", "clear", "update", "difference_update",
              "intersection_update", "symmetric_difference_update",
              "__ior__", "__iand__", "__isub__", "__ixor__"):
    setattr(_Ports, _name, _telling(_name))
del _name


# ---------------------------------------------------------------- privilege


class CaptureNotPermitted(RuntimeError):
    """This process may not open an AF_PACKET socket (or this is not Linux).

    The message says why and what to do.  In IPython it is shown without a
    traceback: the learner did nothing wrong.
    """

    def _render_traceback_(self):
        return [f"CaptureNotPermitted: {line}" if number == 0 else line
                for number, line in enumerate(str(self).splitlines())]


def _not_permitted_message(system=None, euid=None):
    """Why capturing is impossible here, what to do, and what the lessons do instead."""
    system = system or platform.system()
    if system != "Linux":
        return (
            f"packet capture needs an AF_PACKET socket, which exists only on Linux; "
            f"this is {system}.\n"
            "Run the lab on Linux (a virtual machine or a container will do) to watch "
            "packets live.\n"
            "Until then the lessons show a recorded capture instead "
            "(socklab.capture.load_recorded())."
        )
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        why = ("you are root, but this process has no CAP_NET_RAW (a container started "
               "without it, e.g. docker run --cap-drop=NET_RAW)")
        what = ("  - start the container with the capability: docker run --cap-add=NET_RAW ...")
    else:
        why = f"you are not root (uid {euid}) and this Python has no CAP_NET_RAW"
        what = (
            "  - run the lab as root, or\n"
            "  - give this Python binary the capability:\n"
            f"      sudo setcap cap_net_raw+ep {os.path.realpath(sys.executable)}\n"
            "    (then every user of that binary can watch all traffic: not on a shared machine)"
        )
    return (
        "packet capture needs an AF_PACKET socket, which Linux opens only for a process "
        "with the CAP_NET_RAW capability.\n"
        f"Here {why}.\n"
        f"To watch packets live, on a private machine only:\n{what}\n"
        "Until then the lessons show a recorded capture instead "
        "(socklab.capture.load_recorded())."
    )


def _open_packet_socket(ports=()):
    """An AF_PACKET socket on lo, or CaptureNotPermitted saying why not.

    With ``ports``, the kernel queues only their frames from the start (port_filter).
    """
    if not hasattr(socket, "AF_PACKET"):
        raise CaptureNotPermitted(_not_permitted_message())
    try:
        # Protocol 0: the socket receives nothing until bind() names lo.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError as exc:
        raise CaptureNotPermitted(_not_permitted_message()) from exc
    try:
        if ports:
            attach_filter(sock, port_filter(ports))
        sock.bind(("lo", ETH_P_ALL))  # Python converts the protocol to network order
    except BaseException:
        sock.close()
        raise
    return sock


def can_capture():
    """True if this process may capture loopback packets (tries, then closes)."""
    try:
        _open_packet_socket().close()
    except CaptureNotPermitted:
        return False
    return True


# ---------------------------------------------------------------- live capture


def _kernel_time(ancillary):
    """The arrival time the kernel stamped on a frame (SO_TIMESTAMPNS), or None."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack_from("@ll", data)  # a struct timespec
            return seconds + nanoseconds / 1e9
    return None


@contextlib.contextmanager
def _timestamps_on(limit=5.0):
    """Inside the block, Linux stamps every frame as it arrives.

    Linux turns arrival stamps on for the whole machine when the first socket
    asks (SO_TIMESTAMPNS), but a moment later, from a work queue
    (net_enable_timestamp() in net/core/dev.c).  Until then a frame is stamped
    when it is read: later than a frame that came after it.  A datagram sent to
    ourselves shows which: stamped on arrival, its time is before the moment we
    read it.  The socket that asked keeps the stamps on while the block runs, so
    the capture's own socket, asking inside it, finds them on.  The wait is
    usually a few milliseconds; a machine busy with twenty learners can take
    over a second to run the work queue, hence the generous limit.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.settimeout(limit)  # a datagram to ourselves on lo is not lost; still
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:  # after that, go on: times may be late
            sender.sendto(b"?", receiver.getsockname())
            time.sleep(0.001)
            reading = time.time()
            _, ancillary, _, _ = receiver.recvmsg(1, socket.CMSG_SPACE(struct.calcsize("@ll")))
            if (_kernel_time(ancillary) or reading) < reading:
                break
        yield


class Capture(_Segments, Background):
    """Capture TCP and UDP segments on loopback while a block of code runs.

    ``ports``   -- keep segments to or from these ports (a set; add more with
                   ``cap.ports.add(srv.port)``); empty or None keeps every port
    ``host``    -- keep segments to or from this address ("127.0.0.1", "::1");
                   None (the default) keeps every loopback address
    ``servers`` -- servers (or anything with ``.address``) whose ports to add

    Capturing starts when the constructor returns; ``with`` (or stop()) ends it.
    Raises CaptureNotPermitted where packets cannot be captured.
    """

    live = True

    default_name = "capture"

    def __init__(self, ports=None, host=None, *, servers=()):
        if isinstance(ports, int):
            ports = [ports]
        self._sock = None
        self.ports = _Ports(ports or (), self._refilter)
        self.ports.update(server.address[1] for server in servers)
        self.host = host
        self._found = []  # every TCP/UDP segment on lo; filtered when read
        self._missed = 0  # segments not kept once _found had MAX_SEGMENTS
        self._kernel_drops = 0  # frames the kernel dropped: our queue was full
        self._lock = threading.Lock()
        self._started = time.time()  # kernel timestamps use the same clock
        super().__init__()  # socklab.background: open(), then serve() in a thread

    def open(self):
        with _timestamps_on():
            self._sock = _open_packet_socket(self.ports)
            self._prepare(self._sock)

    @staticmethod
    def _prepare(sock):
        sock.setblocking(False)  # read only when the selector says so; never block
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # A queue too small drops frames during a bulk transfer; lift the limit
        # (net.core.rmem_max) when we may, ask within it otherwise.
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def _refilter(self):
        """cap.ports changed: tell the kernel which frames to queue from now on.

        The frames queued before were not filtered.  On a busy machine (other
        learners' bulk transfers on lo) they fill the queue faster than the
        reader thread empties it, and the kernel would drop the first frames of
        the traffic the caller makes next: a capture without its handshake.  So
        the queue is read here, before cap.ports.add() returns (for a second at
        most), and only wanted frames are kept.
        """
        if self._sock is None or not self.alive:
            return  # not open yet (the constructor attaches it), or closed
        try:
            attach_filter(self._sock, port_filter(self.ports))
        except OSError:
            if self.alive:  # stop() may have closed it meanwhile
                raise
            return
        deadline = time.monotonic() + DRAIN_LIMIT
        try:
            while time.monotonic() < deadline and self._read_frame():
                pass
        except OSError:
            if self.alive:
                raise

    # -- the reader thread ---------------------------------------------------
    def serve(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self.wake_reader, selectors.EVENT_READ)
            while (ready := self.wait_readable(selector, IDLE_WAKE)) is not None:
                if ready:
                    self._read_frame()
            selector.unregister(self.wake_reader)
            self._drain(selector)

    def _drain(self, selector):
        """Read what is still coming: until 50 ms pass without a frame, 1 s at most."""
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline and selector.select(DRAIN_QUIET):
            self._read_frame()

    def _read_frame(self):
        """Read one queued frame and keep its segment if wanted; False if none was queued."""
        try:
            frame, ancillary, _, address = self._sock.recvmsg(
                SNAPLEN, socket.CMSG_SPACE(struct.calcsize("@ll"))
            )
        except BlockingIOError:
            return False
        # address is (interface, protocol, pkttype, hatype, MAC).  On lo each
        # frame comes once as PACKET_OUTGOING and once more as PACKET_HOST.
        if address[2] == socket.PACKET_OUTGOING:
            return True
        arrived = _kernel_time(ancillary) or time.time()
        segment = parse_frame(frame, round(arrived - self._started, 6))
        # Frames queued before the kernel filter may be anybody's: not kept.
        if segment is None or (self.ports and not self._wanted(segment)):
            return True
        with self._lock:
            if len(self._found) < MAX_SEGMENTS:
                # In the order they were sent: each CPU delivers the frames it
                # queued, and two CPUs may deliver theirs out of order.
                bisect.insort(self._found, segment, key=lambda found: found.time)
            else:
                self._missed += 1
        return True

    # -- what the caller sees ------------------------------------------------
    def _wanted(self, segment):
        ports_match = not self.ports or bool({segment.src[1], segment.dst[1]} & self.ports)
        host_match = self.host is None or self.host in (segment.src[0], segment.dst[0])
        return ports_match and host_match

    @property
    def started(self):
        """Wall-clock time (time.time()) of the capture's time 0."""
        return self._started

    @property
    def segments(self):
        """The segments captured so far that match ports and host, oldest first."""
        with self._lock:
            found = list(self._found)
        return [segment for segment in found if self._wanted(segment)]

    @property
    def dropped(self):
        """Frames lost because the capture could not keep up (0 when all is well)."""
        return self._kernel_drops + self._missed

    def _notes(self):
        if not self.dropped:
            return [], []
        return [], [f"({self.dropped} frames were lost: the capture could not keep up, "
                    "so segments may be missing)"]

    def close(self):
        """After the reader thread: count the kernel's drops, close the socket."""
        if self._sock is not None:
            if not self.threads:  # reading the counters resets them: only when done
                self._kernel_drops = self._read_kernel_drops()
            self._sock.close()

    def _read_kernel_drops(self):
        try:
            _, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return 0
        return drops



# ---------------------------------------------------------------- recorded


class RecordedCapture(_Segments):
    """A capture made earlier (by tools/record_capture.py), shown where live is impossible.

    It has the segments and text of a live Capture; its text begins by saying
    when and where it was recorded.
    """

    live = False

    def __init__(self, segments, recorded_on, system):
        self.segments = list(segments)
        self.recorded_on = recorded_on  # "YYYY-MM-DD"
        self.system = system  # e.g. "Linux 6.8.0-45-generic"

    def _notes(self):
        return [f"(recorded on {self.recorded_on} on {self.system}; not captured live)"], []


def recording(segments, description=""):
    """A JSON-ready dict of segments, in the form load_recorded() reads."""

    def endpoint(address):
        return [address[0], address[1]]

    return {
        "description": description,
        "recorded_on": datetime.date.today().isoformat(),
        "system": f"{platform.system()} {platform.release()}",
        "segments": [
            {
                **segment._asdict(),
                "src": endpoint(segment.src),
                "dst": endpoint(segment.dst),
                # latin-1 maps each byte to one character: readable, and reversible
                "payload": segment.payload.decode("latin-1"),
            }
            for segment in segments
        ],
    }


def _segment_from_json(fields):
    fields = dict(fields)
    fields["src"] = tuple(fields["src"])
    fields["dst"] = tuple(fields["dst"])
    fields["payload"] = fields["payload"].encode("latin-1")
    return Segment(**fields)


def load_recorded(name="handshake"):
    """The capture recorded as socklab/data/recorded_<name>.json.

    "handshake": a TCPEchoServer and a client on 127.0.0.1 -- connect, send
    "hello", read the echo, close.
    """
    data_dir = importlib.resources.files("socklab") / RECORDED_DIR
    source = data_dir / f"recorded_{name}.json"
    if not source.is_file():
        known = sorted(entry.name[len("recorded_"):-len(".json")] for entry in data_dir.iterdir()
                       if entry.name.startswith("recorded_") and entry.name.endswith(".json"))
        raise ValueError(f"no recorded capture named {name!r}; there are: {', '.join(known)}")
    data = json.loads(source.read_text(encoding="utf-8"))
    segments = [_segment_from_json(fields) for fields in data["segments"]]
    return RecordedCapture(segments, data["recorded_on"], data["system"])


def live_or_recorded(exchange, recorded="handshake", **capture_options):
    """Run ``exchange(cap)`` under a live Capture; where that is impossible, show a recording.

    ``exchange`` is a function that makes the traffic, given the Capture so that it
    can add its server's port: ``cap.ports.add(srv.port)``.  ``capture_options``
    go to Capture.  Returns the Capture, or -- when this process may not capture
    -- the recorded capture ``recorded`` *without running exchange*, since its
    packets could not be seen anyway.  Either way, ``.live`` says which it is and
    the text says so for a recording.
    """
    if not can_capture():
        return load_recorded(recorded)
    with Capture(**capture_options) as cap:
        exchange(cap)
    return cap
