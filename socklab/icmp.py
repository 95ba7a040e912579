"""ICMP echo by hand, and the privileges that raw packets need (lesson 11).

    >>> from socklab import icmp
    >>> request = icmp.echo_request(0x1111, 1, b"socklab!")
    >>> request.hex(" ")
    '08 00 41 90 11 11 00 01 73 6f 63 6b 6c 61 62 21'
    >>> icmp.internet_checksum(request)      # a correct message sums to 0
    0

What is here, and why:

* **The internet checksum** (RFC 1071) and an **echo request** laid out as RFC 792
  describes it: type 8, code 0, checksum, identifier, sequence number, data.  The
  lesson builds both by hand; these are the reference its exercises are checked
  against, written to be read.

* **Taking a reply apart.**  A raw socket (``SOCK_RAW``) hands over the IP header
  too (``man 7 raw``: "For receiving, the IP header is always included in the
  packet").  Its length is in the header: IHL counts 32-bit words, 5 without
  options, up to 15 -- never assume 20 bytes.  A ping socket (``SOCK_DGRAM``)
  hands over the ICMP message alone.

* **Privileges.**  Raw and packet sockets need the capability CAP_NET_RAW;
  ping sockets need a group inside the setting net.ipv4.ping_group_range
  instead.  privileges() says what this process may do, in plain words;
  why_not_raw() says what to do about it.

* **A setting changed for a moment.**  changed_sysctl() writes a kernel setting
  and puts the old value back in a ``finally``, whatever happens in between.

* **What root sees, for everyone else.**  show_recorded() prints what one of the
  lesson's cells printed as root, from socklab/data/lesson11_root_outputs.json,
  under a label that says so.  tools/record_lesson11.py makes that file by
  running the lesson's own cells as root; a test checks it still matches.
"""

import contextlib
import errno
import importlib.resources
import json
import os
import socket
import struct
import typing

__all__ = [
    "ECHO_REPLY", "ECHO_REQUEST", "internet_checksum", "echo_request",
    "IPv4Header", "Echo", "split_ipv4", "parse_echo", "parse_reply",
    "read_sysctl", "write_sysctl", "changed_sysctl",
    "has_cap_net_raw", "Privileges", "privileges", "why_not_raw",
    "recorded_output", "show_recorded",
]

ECHO_REPLY = 0  # ICMP types, RFC 792
ECHO_REQUEST = 8
CAP_NET_RAW = 13  # the capability's bit number, <linux/capability.h>
ICMP_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence


# ---------------------------------------------------------------- building


def internet_checksum(data):
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words.

    The words are big-endian (network order); an odd last byte is padded with a
    zero byte.  Carries out of the top bit are added back in at the bottom ("end
    around carry") -- folding until none is left.
    """
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(identifier, sequence, payload=b""):
    """An ICMP echo request (RFC 792), checksum included.

    The checksum is computed over the whole message with its own field 0, then
    written into that field.
    """
    unsummed = ICMP_HEADER.pack(ECHO_REQUEST, 0, 0, identifier, sequence) + payload
    checksum = internet_checksum(unsummed)
    return ICMP_HEADER.pack(ECHO_REQUEST, 0, checksum, identifier, sequence) + payload


# ---------------------------------------------------------------- taking apart


class IPv4Header(typing.NamedTuple):
    """The fields of an IPv4 header a learner looks at (RFC 791)."""

    version: int
    header_length: int  # bytes: IHL * 4
    total_length: int
    identification: int
    dont_fragment: bool
    ttl: int
    protocol: int
    checksum: int
    src: str
    dst: str


class Echo(typing.NamedTuple):
    """An ICMP echo request or reply."""

    type: int
    code: int
    checksum: int
    identifier: int
    sequence: int
    payload: bytes


def split_ipv4(packet):
    """(IPv4Header, what follows the header) of a packet read from a raw socket."""
    if len(packet) < 20:
        raise ValueError(f"{len(packet)} bytes: too short for an IPv4 header")
    version_ihl, _, total, ident, fragment, ttl, proto, checksum = struct.unpack_from(
        "!BBHHHBBH", packet)
    header_length = (version_ihl & 0x0F) * 4  # IHL counts 32-bit words
    if version_ihl >> 4 != 4 or header_length < 20 or len(packet) < header_length:
        raise ValueError("not an IPv4 header")
    header = IPv4Header(
        version_ihl >> 4, header_length, total, ident, bool(fragment & 0x4000), ttl, proto,
        checksum, socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20]),
    )
    return header, bytes(packet[header_length:])


def parse_echo(message):
    """The fields of an ICMP echo message (no IP header in front)."""
    if len(message) < ICMP_HEADER.size:
        raise ValueError(f"{len(message)} bytes: too short for an ICMP echo message")
    return Echo(*ICMP_HEADER.unpack_from(message), bytes(message[ICMP_HEADER.size:]))


def parse_reply(packet):
    """(type, code, identifier, sequence, payload) of what a raw ICMP socket read.

    The answer to lesson 11's third exercise.
    """
    _, message = split_ipv4(packet)
    echo = parse_echo(message)
    return echo.type, echo.code, echo.identifier, echo.sequence, echo.payload


# ---------------------------------------------------------------- kernel settings


def _sysctl_path(name):
    """"net.ipv4.ping_group_range" -> /proc/sys/net/ipv4/ping_group_range."""
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name):
    """A kernel setting as one line of text: "1 0" (tabs become single spaces)."""
    with open(_sysctl_path(name), "rb") as setting:
        return " ".join(setting.read().decode().split())


def write_sysctl(name, value):
    """Set a kernel setting (root only).  The settings under net. belong to the
    network namespace: this one changes for every process in it."""
    with open(_sysctl_path(name), "wb") as setting:
        setting.write(value.encode())


@contextlib.contextmanager
def changed_sysctl(name, value):
    """Set ``name`` to ``value`` inside the ``with`` block; the old value comes back after.

    Yields the old value.  The old value is written back in a ``finally``: when the
    block raises, is interrupted, or returns early.  If the first write fails
    (not root, /proc/sys read-only), nothing was changed and the error is raised.
    """
    original = read_sysctl(name)
    write_sysctl(name, value)
    try:
        yield original
    finally:
        write_sysctl(name, original)


# ---------------------------------------------------------------- privileges


def has_cap_net_raw():
    """True if CAP_NET_RAW is in this process's effective set (/proc/self/status)."""
    try:
        # Binary: a process that gave up root may no longer load text codecs.
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except OSError:
        pass
    return False


def _try_socket(family_name, kind, proto):
    """None if the socket can be made, else the errno name that refused it."""
    family = getattr(socket, family_name, None)
    if family is None:
        return "EAFNOSUPPORT"
    try:
        socket.socket(family, kind, proto).close()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return None


def _ping_groups_text():
    """Why a ping socket is refused: the range and this process's groups."""
    try:
        value = read_sysctl("net.ipv4.ping_group_range")
    except OSError:
        return "net.ipv4.ping_group_range cannot be read here"
    groups = sorted(set(os.getgroups()) | {os.getegid()})
    return f'net.ipv4.ping_group_range is "{value}", and none of your groups {groups} is inside'


class Privileges(typing.NamedTuple):
    """What this process may do with ICMP and packets; shown as plain text."""

    euid: int
    cap_net_raw: bool
    raw_icmp: "str | None"  # None: allowed; else the errno name that refused it
    packet: "str | None"
    ping: "str | None"

    def __repr__(self):
        who = "root" if self.euid == 0 else "not root"

        def verdict(refused, why):
            return "allowed" if refused is None else f"refused ({refused}): {why}"

        rows = [
            ("effective user id", f"{self.euid} ({who})"),
            ("CAP_NET_RAW in effect", "yes" if self.cap_net_raw else "no"),
            ("raw ICMP socket", verdict(self.raw_icmp, "needs CAP_NET_RAW (man 7 raw)")),
            ("packet socket", verdict(self.packet, "needs CAP_NET_RAW (man 7 packet)")),
            ("ping socket", verdict(self.ping, _ping_groups_text())),
        ]
        return "\n".join(f"{label + ':':<23}{value}" for label, value in rows)


def privileges():
    """Try each kind of socket (and close it at once); say what was allowed."""
    return Privileges(
        os.geteuid(),
        has_cap_net_raw(),
        _try_socket("AF_INET", socket.SOCK_RAW, socket.IPPROTO_ICMP),
        _try_socket("AF_PACKET", socket.SOCK_RAW, 0),
        _try_socket("AF_INET", socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
    )


def why_not_raw():
    """Plain words for a learner whose raw socket was refused."""
    if os.geteuid() == 0:
        why = ("you are root, but this process has no CAP_NET_RAW (as in a container\n"
               "started with docker run --cap-drop=NET_RAW)")
    else:
        why = f"you are not root (uid {os.geteuid()}) and this Python has no CAP_NET_RAW"
    return (
        "Raw sockets need the capability CAP_NET_RAW (man 7 raw, man 7 capabilities).\n"
        f"Here {why}:\nsocket() failed with EPERM, and nothing was sent.\n"
        "To run it live, use a throwaway VM or container of your own and run the lab\n"
        "there as root.  Giving this Python the capability (setcap cap_net_raw+ep)\n"
        "would let every script it runs sniff and forge packets: if at all, only on a\n"
        "private copy of the interpreter, never on the one the system shares.\n"
        "What root sees follows, from a recording."
    )


# ---------------------------------------------------------------- recorded outputs

RECORDED_OUTPUTS = "lesson11_root_outputs.json"  # in socklab/data/


def _recorded_outputs():
    source = importlib.resources.files("socklab") / "data" / RECORDED_OUTPUTS
    return json.loads(source.read_text(encoding="utf-8"))


def recorded_output(cell, reason="this machine does not allow raw sockets"):
    """What lesson 11's cell ``cell`` (its id) printed as root, under a label.

    The label says when and on which kernel it was recorded, and why it is
    shown instead of a live run.
    """
    recording = _recorded_outputs()
    outputs = recording["outputs"]
    if cell not in outputs:
        raise ValueError(f"no recorded output for cell {cell!r}; "
                         f"there are: {', '.join(sorted(outputs))}")
    label = (f"(recorded as root on {recording['recorded_on']}, "
             f"{recording['system']}: {reason})")
    return label + "\n" + outputs[cell]


def show_recorded(cell, reason="this machine does not allow raw sockets"):
    """Print recorded_output(cell, reason): what root sees, for everyone else."""
    print(recorded_output(cell, reason), end="")
