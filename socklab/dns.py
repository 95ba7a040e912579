"""Tiny authoritative name servers for lesson 15, on loopback, in the background.

Lesson 15 resolves names the way a real resolver does: it asks a root server,
follows a referral to a top-level-domain server, then to the domain's server.
The real ones are on the Internet; the lesson's are here, each a
``NameServer`` on its own loopback address (127.0.53.1, .2, .3):

    >>> servers = start_name_servers([
    ...     (".", "127.0.53.1", [("test.", "NS", "ns.test."),
    ...                          ("ns.test.", "A", "127.0.53.2")]),
    ...     ("test.", "127.0.53.2", [...]), ...])
    >>> servers[0].port == servers[1].port    # one port number for all

**One port for all.**  Real DNS servers all listen on port 53, so an NS record
names a server and its A record gives its address: the port is never written
anywhere.  Port 53 needs privileges, and a shared machine's other users may run
the same lesson, so here the first server binds port 0 and the others bind the
*same* number on their own addresses; if that number is taken on one of them,
all start again with a new one.  The resolver is told this one port once, as a
real resolver "knows" 53.

**What a server answers** (RFC 1034, 4.3.2, much simplified): records of the
asked type at the asked name, with AA ("authoritative answer") set; or, for a
name below a delegation (an NS record set for a name under the zone's origin),
a *referral*: no answer, the NS records in the authority section and their
addresses ("glue") in the additional section; or NXDOMAIN (rcode 3) for a name
the zone does not have, NOERROR with no records for a name without that type,
REFUSED (rcode 5) for a name outside the zone.  No CNAME, no wildcards, no
DNSSEC: what the lesson needs, and nothing else.

**UDP and TCP on the same port** (RFC 7766, 5: both are required).  A reply
that does not fit in 512 bytes (RFC 1035, 4.2.1) goes over UDP as the header
and question only, with TC ("truncated") set; over TCP every message has a
two-byte length in front of it (RFC 1035, 4.2.2) and no size limit but 65,535.

**A lossy server on purpose.**  ``drop_first`` names whose first UDP query the
server ignores, as if the datagram were lost: the resolver must time out and
ask again.  ``heard`` lists what each server received and did, in order.

The server's own encoder compresses names (RFC 1035, 4.1.4), so the replies the
lesson parses have pointers in them, as a real server's do.
"""

import errno
import selectors
import socket
import struct
import threading

from .background import Background
from .servers import recv_exactly

__all__ = ["NameServer", "read_message", "start_name_servers", "TYPES", "UDP_LIMIT"]

UDP_LIMIT = 512  # bytes: the most a UDP message may carry (RFC 1035, 2.3.4)
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "TXT": 16, "AAAA": 28}
TYPE_NAMES = {number: name for name, number in TYPES.items()}
CLASS_IN = 1
TTL = 3600  # seconds, for every record
TCP_TIMEOUT = 2.0  # seconds a TCP client has to send its query
NOERROR, FORMERR, NXDOMAIN, REFUSED = 0, 1, 3, 5


def _name_key(name):
    """A name as compared: lower case, with the final dot (RFC 1035, 2.3.3)."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _parent_names(name):
    """'a.b.test.' -> 'a.b.test.', 'b.test.', 'test.', '.'"""
    labels = name.rstrip(".").split(".") if name != "." else []
    return [".".join(labels[i:]) + "." for i in range(len(labels))] + ["."]


class _Writer:
    """A DNS message being written, with name compression (RFC 1035, 4.1.4)."""

    def __init__(self):
        self.data = bytearray()
        self.offsets = {}  # a name already written (lower case) -> its offset

    def name(self, name):
        labels = [] if name == "." else name.rstrip(".").split(".")
        for i in range(len(labels)):
            suffix = _name_key(".".join(labels[i:]))
            if suffix in self.offsets:
                self.data += struct.pack("!H", 0xC000 | self.offsets[suffix])
                return
            if len(self.data) < 0x4000:  # a pointer holds 14 bits of offset
                self.offsets[suffix] = len(self.data)
            label = labels[i].encode("ascii")
            self.data += bytes([len(label)]) + label
        self.data += b"\0"

    def record(self, name, rtype, value):
        self.name(name)
        self.data += struct.pack("!HHIH", TYPES[rtype], CLASS_IN, TTL, 0)
        start = len(self.data)
        if rtype == "A":
            self.data += socket.inet_aton(value)
        elif rtype in ("NS", "CNAME"):
            self.name(value)
        elif rtype == "TXT":
            text = value.encode()
            self.data += bytes([len(text)]) + text
        else:
            raise ValueError(f"this server does not write {rtype} records")
        struct.pack_into("!H", self.data, start - 2, len(self.data) - start)


def _read_question(query):
    """(id, flags, name, qtype, qclass, end) of a query; ValueError if malformed.

    A query's name has no pointers (there is nothing earlier to point to).
    """
    if len(query) < 12:
        raise ValueError("shorter than a header")
    qid, flags, qdcount = struct.unpack_from("!HHH", query)
    if qdcount != 1 or flags & 0x8000:
        raise ValueError("not one question, or not a query")  # answer: FORMERR
    labels, offset = [], 12
    while True:
        if offset >= len(query):
            raise ValueError("the name runs past the end")
        length = query[offset]
        if length == 0:
            break
        if length > 63 or offset + 1 + length > len(query):
            raise ValueError("a pointer, or a label past the end")
        labels.append(query[offset + 1:offset + 1 + length].decode("ascii"))
        offset += 1 + length
    if offset + 5 > len(query):
        raise ValueError("no QTYPE and QCLASS")
    qtype, qclass = struct.unpack_from("!HH", query, offset + 1)
    name = ".".join(labels) + "." if labels else "."
    return qid, flags, name, qtype, qclass, offset + 5


def _read_name(message, offset):
    """(name, offset after it); pointers must point back (RFC 1035, 4.1.4)."""
    labels, after, start, size = [], None, offset, 1
    while True:
        if offset >= len(message):
            raise ValueError("a name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 2 > len(message):
                raise ValueError("half a pointer at the end of the message")
            target = struct.unpack_from("!H", message, offset)[0] & 0x3FFF
            if target >= start:
                raise ValueError(f"a pointer at offset {offset} does not point back")
            after = offset + 2 if after is None else after
            offset = start = target
        elif length & 0xC0:
            raise ValueError("a reserved label type")
        elif length == 0:
            name = ".".join(labels) + "." if labels else "."
            return name, offset + 1 if after is None else after
        else:
            if offset + 1 + length > len(message):
                raise ValueError("a label runs past the end of the message")
            size += 1 + length
            if size > 255:
                raise ValueError("a name longer than 255 bytes")
            labels.append(message[offset + 1:offset + 1 + length].decode("latin-1"))
            offset += 1 + length


def read_message(message):
    """A whole DNS message, read strictly: a dict; ValueError if it is malformed.

    {"id", "flags", "qr", "aa", "tc", "rd", "rcode", "question": [(name, type,
    class)], "answers"/"authority"/"additional": [(name, type, ttl, data)]};
    data is an address for A, a name for NS and CNAME, bytes otherwise.
    Bytes after the last record are an error too.
    """
    if len(message) < 12:
        raise ValueError(f"{len(message)} bytes: shorter than a header (12)")
    qid, flags, qdcount, *counts = struct.unpack_from("!6H", message)
    result = {"id": qid, "flags": flags, "qr": bool(flags & 0x8000),
              "aa": bool(flags & 0x0400), "tc": bool(flags & 0x0200),
              "rd": bool(flags & 0x0100), "rcode": flags & 0xF, "question": []}
    offset = 12
    for _ in range(qdcount):
        name, offset = _read_name(message, offset)
        if offset + 4 > len(message):
            raise ValueError("the question ends before its type and class")
        result["question"].append((name, *struct.unpack_from("!HH", message, offset)))
        offset += 4
    for section, count in zip(("answers", "authority", "additional"), counts):
        result[section] = []
        for _ in range(count):
            name, offset = _read_name(message, offset)
            if offset + 10 > len(message):
                raise ValueError(f"a record of the {section} section ends early")
            rtype, _, ttl, length = struct.unpack_from("!HHIH", message, offset)
            offset += 10
            if offset + length > len(message):
                raise ValueError(f"a record's data runs past the end ({section})")
            data = message[offset:offset + length]
            if rtype == TYPES["A"]:
                if length != 4:
                    raise ValueError(f"an A record with {length} bytes of data (4)")
                data = socket.inet_ntoa(data)
            elif rtype in (TYPES["NS"], TYPES["CNAME"]):
                data, end = _read_name(message, offset)
                if end != offset + length:
                    raise ValueError("a name in a record's data does not fill it")
            result[section].append((name, rtype, ttl, data))
            offset += length
    if offset != len(message):
        raise ValueError(f"{len(message) - offset} bytes after the last record")
    return result


class NameServer(Background):
    """An authoritative server for one zone, on UDP and TCP at (host, port).

    ``records`` is a list of (name, type, value): ("www.socklab.test.", "A",
    "127.0.0.1"), ("socklab.test.", "NS", "ns.socklab.test.") ...  An NS record
    set at a name below ``origin`` is a delegation; A records of the NS names
    below it are its glue.
    """

    default_name = "dns"

    def __init__(self, origin, records, *, host="127.0.0.1", port=0, name=None,
                 drop_first=()):
        self.origin = _name_key(origin)
        self.records = [(_name_key(n), t, _name_key(v) if t in ("NS", "CNAME") else v)
                        for n, t, v in records]
        self._host, self._port = host, port
        self._to_drop = {_name_key(n) for n in drop_first}
        self.heard = []  # ("udp"/"tcp", name, type, what the server did)
        self._heard_lock = threading.Lock()
        self.udp = self.tcp = None
        super().__init__(name)

    # -- lifecycle ------------------------------------------------------------
    def open(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self._host, self._port))
        self.address = self.udp.getsockname()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(self.address)  # the same port number, for TCP
        self.tcp.listen(16)

    @property
    def host(self):
        return self.address[0]

    @property
    def port(self):
        return self.address[1]

    def serve(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self.udp, selectors.EVENT_READ)
            selector.register(self.tcp, selectors.EVENT_READ)
            selector.register(self.wake_reader, selectors.EVENT_READ)
            while ready := self.wait_readable(selector):
                for key, _ in ready:
                    if key.fileobj is self.udp:
                        self._serve_udp()
                    else:
                        self._accept_tcp()

    def close(self):
        for sock in (self.udp, self.tcp):
            if sock is not None:
                sock.close()

    def __repr__(self):
        state = "running" if self.alive else "stopped"
        return f"<NameServer {self.name!r} for {self.origin} on {self._host}, {state}>"

    def drop_next(self, name):
        """Ignore the next UDP query for ``name``, as if it had been lost."""
        with self._heard_lock:
            self._to_drop.add(_name_key(name))

    # -- answering ----------------------------------------------------------------
    def _note(self, transport, name, qtype, what):
        with self._heard_lock:
            self.heard.append((transport, name, TYPE_NAMES.get(qtype, qtype), what))

    def _serve_udp(self):
        try:
            query, peer = self.udp.recvfrom(UDP_LIMIT)
        except OSError:
            return  # an ICMP error reported late: nothing to answer
        try:
            _, _, name, qtype, _, _ = _read_question(query)
        except ValueError:  # answer() says FORMERR, or nothing
            name = qtype = None
        with self._heard_lock:
            drop = name is not None and _name_key(name) in self._to_drop
            if drop:
                self._to_drop.discard(_name_key(name))
        if drop:
            self._note("udp", name, qtype, "dropped")
            return
        reply = self.answer(query, "udp", limit=UDP_LIMIT)
        if reply is not None:
            try:
                self.udp.sendto(reply, peer)
            except OSError:
                pass  # the client's problem, not the server's

    def _accept_tcp(self):
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        self.spawn(self._serve_tcp, f"socklab {self.name} tcp", conn)

    def _serve_tcp(self, conn):
        """One query, with its two-byte length (RFC 1035, 4.2.2); then close."""
        with conn:
            conn.settimeout(TCP_TIMEOUT)
            try:
                size = struct.unpack("!H", recv_exactly(conn, 2))[0]
                reply = self.answer(recv_exactly(conn, size), "tcp")
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:  # a reset, or closed inside a message (ConnectionError)
                pass  # a client that left, or was too slow: its loss

    def answer(self, query, transport, limit=None):
        """The reply to ``query`` (bytes), or None.

        A reply longer than ``limit`` is cut to its header and question, with
        TC set (RFC 1035, 4.2.1): "ask again over TCP".
        """
        if len(query) < 12 or query[2] & 0x80:
            return None  # no header, or a reply (QR set): never answer a reply
        try:
            qid, flags, name, qtype, qclass, end = _read_question(query)
        except ValueError:  # UnicodeDecodeError is one too
            qid = struct.unpack_from("!H", query)[0]
            return struct.pack("!6H", qid, 0x8000 | FORMERR, 0, 0, 0, 0)
        key = _name_key(name)
        answers, authority, additional, rcode, aa = [], [], [], NOERROR, True
        what = ""
        if self.origin not in _parent_names(key):
            rcode, aa, what = REFUSED, False, "refused: not my zone"
        elif (cut := self._delegation(key)) is not None:
            aa = False
            authority = [r for r in self.records if r[0] == cut and r[1] == "NS"]
            servers = {r[2] for r in authority}
            additional = [r for r in self.records if r[0] in servers and r[1] == "A"]
            what = f"referral to {cut}"
        else:
            answers = [r for r in self.records if r[0] == key and TYPES[r[1]] == qtype]
            if answers:
                what = f"answer: {len(answers)} record(s)"
            elif any(r[0] == key for r in self.records):
                what = "no record of that type"
            else:
                rcode, what = NXDOMAIN, "NXDOMAIN"
        out = _Writer()
        flags = 0x8000 | (flags & 0x7900) | (0x0400 if aa else 0) | rcode  # QR, opcode, RD
        out.data += struct.pack("!6H", qid, flags, 1, len(answers), len(authority),
                                len(additional))
        out.name(name)
        out.data += struct.pack("!HH", qtype, qclass)
        question_end = len(out.data)
        for record in answers + authority + additional:
            out.record(*record)
        if limit is not None and len(out.data) > limit:
            del out.data[question_end:]
            struct.pack_into("!HHHH", out.data, 2, flags | 0x0200, 1, 0, 0)
            struct.pack_into("!HH", out.data, 8, 0, 0)
            what = "truncated (TC)"
        self._note(transport, name, qtype, what)
        return bytes(out.data)

    def _delegation(self, key):
        """The closest name at or above ``key`` (below the origin) with NS records."""
        for parent in _parent_names(key):
            if parent == self.origin:
                return None
            if any(r[0] == parent and r[1] == "NS" for r in self.records):
                return parent
        return None


def start_name_servers(zones, attempts=20):
    """Start a NameServer per (origin, host, records[, drop_first]), on one port.

    The first binds port 0; the others take the same number on their own
    addresses.  If one of them finds it taken (EADDRINUSE: some other program
    has it on that address), all are stopped and started again on a new port.
    Their names are
    "dns <host>", so running the cell again replaces them.
    """
    for _ in range(attempts):
        servers, port = [], 0
        try:
            for origin, host, records, *drop_first in zones:
                servers.append(NameServer(
                    origin, records, host=host, port=port, name=f"dns {host}",
                    drop_first=drop_first[0] if drop_first else ()))
                port = servers[0].port
            return servers
        except OSError as exc:
            for server in servers:
                server.stop()
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port free on all addresses in {attempts} tries")
