"""A UDP relay that makes loopback behave like a bad network.

On loopback a datagram is almost never lost, duplicated, late or out of order, so a
lesson about UDP would have nothing to show.  The usual tool for a bad network,
``tc qdisc ... netem``, needs root and a kernel module that this course cannot
count on.  So the bad network is a program: clients send to the relay instead of to
the server, and the relay passes each datagram on -- or drops it, sends it twice,
holds it back -- on purpose:

    >>> import socket, socklab
    >>> with socklab.UDPEchoServer() as srv, socklab.LossyRelay(srv.address, loss=0.2) as relay:
    ...     sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ...     sock.sendto(b"hello", relay.address)   # not srv.address
    ...     relay.wait_for_datagrams(1)            # the relay has decided its fate
    ...     relay.fates()
    ...     sock.close()
    5
    ['forward']

How it is built, and why:

* **One socket for clients, one socket per client towards the server.**  Clients
  send to ``relay.address``.  The first datagram from a new client address makes
  the relay open an *upstream* socket, connected to the server, for that client
  alone.  The server therefore sees one peer per client, as it would without the
  relay, and a reply arriving on an upstream socket can only belong to its client:
  the relay sends it back from ``relay.address``, the address the client wrote to.

* **Each datagram gets a fate when it arrives.**  One random number in [0, 1)
  decides it: below ``loss`` it is dropped; in the next ``duplicate`` it is sent
  twice; in the next ``reorder`` it is held back so the following datagram
  overtakes it; anywhere else it is forwarded.  So the fates exclude each other,
  and ``loss=0.3`` drops 30 % of datagrams whatever the other settings are (which
  is why loss + duplicate + reorder may not exceed 1).  A second number, uniform
  in ``delay=(min, max)`` seconds, is how long the datagram waits before it is sent.

* **Delay does not reorder.**  A datagram is never sent before one that arrived
  before it in the same direction: it waits its own delay *and* for the datagram
  ahead of it, like packets in one queue on a real link.  The only thing that
  changes the order is ``reorder``, and it does so in a way you can predict: the
  held datagram goes out right after the next one.  (A datagram that overtakes a
  held one is never held itself, so ``reorder=1.0`` swaps pairs: 2 1 4 3 6 5.)  If
  nothing follows within ``reorder_hold`` seconds -- a request waiting for its
  reply, say -- the held datagram is sent anyway: late, but not overtaken.

* **Same seed, same fates -- whatever the timing.**  Every *flow* (one client, one
  direction) has its own random generator, seeded from ``seed``, the client's
  number and the direction, and every datagram takes exactly two numbers from it.
  The fate of datagram 7 from client 1 to the server therefore depends on the seed
  and on the number 7 only, not on how requests and replies happened to interleave
  in time.  Because delay keeps each flow in order, the order the server and the
  client receive is deterministic too.  What real time can still change is how
  datagrams of *different* flows interleave, and what a client sees if it stops
  waiting too early; so a lesson shows ``relay.events`` or ``relay.fates()``,
  which are the same every run, and calls ``relay.wait_for_datagrams()`` rather
  than sleeping.  (``seed=None`` gives different fates every run.)

* **One thread, no sleeping.**  The relay thread waits in a selector on the
  clients' socket, on every upstream socket and on a socketpair that stop() writes
  to.  Datagrams waiting for their time sit in a heap ordered by (due time,
  sequence number) -- the sequence number breaks ties in arrival order, so two
  datagrams due at the same moment always leave in the same order.  The selector's
  timeout is the time until the next one is due.  No thread per datagram, no
  sleep(), and stop() is bounded: datagrams still waiting are simply discarded,
  as a network would lose them.

* **The log is one line per datagram, ordered by flow.**  ``relay.events`` lists,
  for each flow, each datagram's number, size and fate ("forward", "drop",
  "duplicate", "reorder") with its delay; the text never shows a port.  ``print``
  would be wrong in a background thread (see socklab.events); a network error --
  nothing listening at the target, say -- is recorded as an "error" event and the
  relay goes on.  A bug in the relay itself is kept and raised again by stop().

The relay is a socklab server like the others (a servers.Server):
bound before its thread starts, on 127.0.0.1 and a port the kernel picks,
registered so that ``socklab.running()`` shows it and ``socklab.stop_all()`` stops
it, and a relay started under the name of a running one replaces it.  It only ever
sends to a loopback address: the target must be in 127.0.0.0/8 or be ::1.
"""

import heapq
import ipaddress
import itertools
import random
import selectors
import socket
import threading
import time
import typing

from .events import EventLog
from .servers import UDP_BUFSIZE, Server

__all__ = ["LossyRelay", "RelayLog"]

CLIENT_TO_SERVER = "client>server"
SERVER_TO_CLIENT = "server>client"
DIRECTIONS = (CLIENT_TO_SERVER, SERVER_TO_CLIENT)
FATES = ("forward", "drop", "duplicate", "reorder")
MAX_DELAY = 10.0  # seconds; a larger delay is almost surely milliseconds by mistake
MAX_CLIENTS = 256  # each client costs a socket; a runaway loop must not use them all


# ----------------------------------------------------------------- checking

def _check_probability(name, value):
    if not 0.0 <= value <= 1.0:  # also rejects NaN: every comparison with it is False
        raise ValueError(f"{name} is a probability, from 0 to 1, not {value!r}")
    return float(value)


def _check_delay(delay):
    """(min, max) in seconds; a single number means exactly that delay."""
    if isinstance(delay, (int, float)):
        delay = (delay, delay)
    try:
        low, high = delay
        in_order = 0.0 <= low <= high  # also False for NaN
    except (TypeError, ValueError):
        in_order = False
    if not in_order:
        raise ValueError(f"delay must be (min, max) with 0 <= min <= max, not {delay!r}")
    if high > MAX_DELAY:
        raise ValueError(
            f"delay is in seconds, at most {MAX_DELAY:g}: {delay!r} "
            "(for 50 ms write 0.05)"
        )
    return float(low), float(high)


def _check_target(target):
    """The target as (host, port) and its family; ValueError unless it is loopback.

    Only a literal address is accepted: resolving a name could mean asking a DNS
    server, and the course sends nothing off this machine.
    """
    host, port = target[0], target[1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"target host must be a literal loopback address such as '127.0.0.1' "
            f"or '::1', not {host!r}"
        ) from None
    # 127.0.0.0/8 for IPv4, only ::1 for IPv6.  Python 3.13 also calls an IPv4
    # address in IPv6 form (::ffff:127.0.0.1) loopback, 3.12 does not: the relay
    # takes one spelling per address on every version.
    if not ip.is_loopback or getattr(ip, "ipv4_mapped", None) is not None:
        raise ValueError(
            f"the relay only sends to loopback (127.0.0.0/8 or ::1), not to {host}"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"target port must be a number from 1 to 65535, not {port!r}")
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return (str(ip), port), family


# ----------------------------------------------------------------- the log

def _flow_name(client, direction):
    """How a flow is named in the log: "client>server", or "client2>server" ..."""
    suffix = "" if client == 1 else str(client)
    if direction == CLIENT_TO_SERVER:
        return f"client{suffix}>server"
    return f"server>client{suffix}"


class RelayLog(EventLog):
    """An EventLog whose text lists the relay's datagrams flow by flow.

    A datagram's event has the flow as its ``party`` ("client>server"), the
    datagram's number in that flow as its ``conn`` and its fate as its ``kind``.
    Requests and replies arrive interleaved in whatever way the timing makes them,
    so the text sorts them: the relay's own events first (its "stop" last), then
    client 1's requests in number order, then client 1's replies, then client 2's
    ... -- the same text every run.  Iterate over the log for the order in time.
    """

    def __init__(self, maxlen=10_000):
        super().__init__(maxlen)
        self.flow_order = {}  # flow name -> (client number, direction index)

    def __repr__(self):
        events = self.snapshot()
        if not events:
            return "(no events)"
        lines = [self._line(event) for event in sorted(events, key=self._display_order)]
        if self.dropped:
            lines.insert(0, f"... {self.dropped} older events dropped")
        return "\n".join(lines)

    def _display_order(self, event):
        if not event.conn:
            return (2,) if event.kind == "stop" else (0,)
        return (1, self.flow_order.get(event.party, (MAX_CLIENTS + 1, 0)), event.conn)

    @staticmethod
    def _line(event):
        if event.conn:  # a datagram: "client>server 3 drop 12 bytes"
            return str(event)
        # The relay's own events; an Event would call the relay "server".
        text = f"{'relay':<8} {event.kind}"
        if event.detail:
            text += f" ({event.detail})"
        return text


# ----------------------------------------------------------------- flows

class _Flow:
    """One direction of one client's traffic: its numbering, generator and queue."""

    def __init__(self, client, direction, rng, send, impaired):
        self.client = client
        self.direction = direction
        self.name = _flow_name(client, direction)
        self.rng = rng  # None when this direction passes unimpaired
        self.send = send  # send(data): out of the relay, towards the receiver
        self.impaired = impaired
        self.count = 0  # datagrams that have arrived in this flow so far
        self.last_due = 0.0  # when the flow's latest scheduled datagram leaves
        self.held = None  # a _Held datagram waiting to be overtaken


class _Held(typing.NamedTuple):
    """A datagram held back by "reorder" until the next one has overtaken it."""

    number: int
    data: bytes
    due: float  # when its own delay is over
    release_at: float  # when it goes anyway, if nothing has overtaken it


class _Client:
    """A client address the relay has seen, with its own socket to the server."""

    def __init__(self, number, address, upstream):
        self.number = number
        self.address = address
        self.upstream = upstream
        self.flows = {}  # direction -> _Flow


# ----------------------------------------------------------------- the relay

class LossyRelay(Server):
    """Relay UDP datagrams between clients and ``target``, impairing them on purpose.

    target     -- (host, port) of the server, e.g. ``srv.address``; loopback only
    loss       -- probability that a datagram is dropped
    duplicate  -- probability that it is sent twice
    reorder    -- probability that it is held back until the next one has passed
    delay      -- (min, max) seconds each datagram waits, uniform; or one number
    seed       -- the same seed gives the same fates every run; None: random
    both_ways  -- impair the server's replies too (True), or pass them unharmed
    name, host, port -- as for every socklab server

    Clients send to ``relay.address``.  ``relay.events`` shows the fate of every
    datagram, ``relay.fates()`` lists them, ``relay.stats`` counts them.
    """

    kind = "udp"
    default_name = "relay"
    socktype = socket.SOCK_DGRAM
    log_class = RelayLog  # a log whose text is ordered by flow
    reorder_hold = 1.0  # seconds a held datagram waits for one to overtake it (long:
    # a sender slowed by a busy machine must not change the order the seed promises)

    def __init__(self, target, *, loss=0.2, duplicate=0.05, delay=(0.0, 0.05),
                 reorder=0.1, seed=1, both_ways=True, name=None,
                 host="127.0.0.1", port=0):
        # Everything is checked before a socket exists: a mistake leaks nothing.
        self.target, self._target_family = _check_target(target)
        self.loss = _check_probability("loss", loss)
        self.duplicate = _check_probability("duplicate", duplicate)
        self.reorder = _check_probability("reorder", reorder)
        if self.loss + self.duplicate + self.reorder > 1.0 + 1e-9:
            raise ValueError(
                "loss + duplicate + reorder may not exceed 1: each datagram has "
                f"one fate (here {self.loss:g} + {self.duplicate:g} + {self.reorder:g})"
            )
        self.delay = _check_delay(delay)
        self.seed = seed
        self.both_ways = bool(both_ways)
        self._clients = {}  # client address -> _Client; only the relay thread adds
        self._queue = []  # heap of (due, sequence, flow, number, data)
        self._sequence = itertools.count()  # breaks ties between equal due times
        self._holding = {}  # flows with a held datagram (a dict keeps them in order)
        self._counts = {direction: dict.fromkeys(FATES, 0) for direction in DIRECTIONS}
        self._counted = threading.Condition()  # guards _counts; wait_for_datagrams
        self._selector = None
        super().__init__(name=name, host=host, port=port)

    # -- what a Server asks of us -------------------------------------------
    def open(self):
        super().open()
        self.sock.setblocking(False)  # the thread reads only when the selector says so

    def serve(self):
        """The relay loop: runs in its own thread until stop()."""
        self.events.add("bound")
        try:
            with selectors.DefaultSelector() as selector:
                self._selector = selector
                selector.register(self.sock, selectors.EVENT_READ)
                selector.register(self.wake_reader, selectors.EVENT_READ)
                while self._relay_once(selector):
                    pass
        finally:
            self._selector = None

    def close(self):
        for client in self._clients.values():
            client.upstream.close()
        super().close()

    # -- the loop -----------------------------------------------------------
    def _relay_once(self, selector):
        """Receive what has arrived, send what is due; False once stop() wakes us."""
        for key, _ in selector.select(self._seconds_to_next_deadline()):
            if key.fileobj is self.wake_reader:
                return False
            if key.fileobj is self.sock:
                self._receive_from_a_client()
            else:
                self._receive_from_the_server(key.data)
        self._send_what_is_due(time.monotonic())
        return True

    def _seconds_to_next_deadline(self):
        """How long the selector may wait: None when nothing is waiting to be sent."""
        deadlines = [flow.held.release_at for flow in self._holding]
        if self._queue:
            deadlines.append(self._queue[0][0])
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _receive_from_a_client(self):
        try:
            data, address = self.sock.recvfrom(UDP_BUFSIZE)
        except BlockingIOError:
            return  # nothing after all
        except OSError as exc:
            self._record_error(exc)
            return
        client = self._clients.get(address) or self._new_client(address)
        if client is not None:
            self._arrive(client.flows[CLIENT_TO_SERVER], data)

    def _receive_from_the_server(self, client):
        try:
            data = client.upstream.recv(UDP_BUFSIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # ECONNREFUSED: nothing listens at the target
            self._record_error(exc, f"client {client.number}")
            return
        self._arrive(client.flows[SERVER_TO_CLIENT], data)

    def _new_client(self, address):
        """Open the upstream socket of a client seen for the first time."""
        if len(self._clients) >= MAX_CLIENTS:
            self._record_error(f"more than {MAX_CLIENTS} clients; datagram dropped")
            return None
        try:
            upstream = socket.socket(self._target_family, socket.SOCK_DGRAM)
        except OSError as exc:  # EMFILE: out of file descriptors
            self._record_error(exc, "datagram dropped")
            return None
        try:
            upstream.setblocking(False)
            # Connected: the kernel passes up only datagrams from the target, and
            # reports ICMP "port unreachable" as ECONNREFUSED.
            upstream.connect(self.target)
        except OSError as exc:
            upstream.close()
            self._record_error(exc, "datagram dropped")
            return None
        client = _Client(len(self._clients) + 1, address, upstream)
        client.flows[CLIENT_TO_SERVER] = self._new_flow(
            client, CLIENT_TO_SERVER, send=upstream.send
        )
        client.flows[SERVER_TO_CLIENT] = self._new_flow(
            client, SERVER_TO_CLIENT, send=lambda data: self.sock.sendto(data, address)
        )
        self._clients[address] = client
        self._selector.register(upstream, selectors.EVENT_READ, data=client)
        self.events.add(
            "new client", detail=f"client {client.number} gets its own socket to the server"
        )
        return client

    def _new_flow(self, client, direction, send):
        impaired = direction == CLIENT_TO_SERVER or self.both_ways
        rng = None
        if impaired and self.seed is None:
            rng = random.Random()  # seeded from the operating system: new fates each run
        elif impaired:
            # A string seed is hashed the same way in every process and version,
            # and gives each flow its own stream of numbers (see the docstring).
            rng = random.Random(f"{self.seed}/{client.number}/{direction}")
        flow = _Flow(client.number, direction, rng, send, impaired)
        self.events.flow_order[flow.name] = (client.number, DIRECTIONS.index(direction))
        return flow

    # -- fates ----------------------------------------------------------------
    def _draw(self, flow):
        """The fate and delay of the flow's next datagram: always two numbers."""
        if not flow.impaired:
            return "forward", 0.0
        chance = flow.rng.random()
        delay = flow.rng.uniform(*self.delay)
        for fate, probability in (("drop", self.loss), ("duplicate", self.duplicate),
                                  ("reorder", self.reorder)):
            if chance < probability:
                return fate, delay
            chance -= probability
        return "forward", delay

    def _arrive(self, flow, data):
        """Decide what happens to one datagram, record it, and queue it."""
        now = time.monotonic()
        flow.count += 1
        number = flow.count
        fate, delay = self._draw(flow)
        due = now + delay
        if fate == "drop":
            self._record(flow, number, fate, data)
        elif fate == "reorder" and flow.held is None:
            flow.held = _Held(number, data, due, now + self.reorder_hold)
            self._holding[flow] = None
            self._record(flow, number, fate, data, delay, "held back")
        else:
            # A datagram arriving while another is held overtakes it, and is not
            # held itself: "reorder" swaps neighbours, it never chains.
            if fate == "reorder":
                fate = "forward"
            overtaken = flow.held
            note = f"overtakes {overtaken.number}" if overtaken else ""
            self._record(flow, number, fate, data, delay, note)
            for _ in range(2 if fate == "duplicate" else 1):
                self._schedule(flow, number, data, due)
            if overtaken:
                self._release(flow)

    def _release(self, flow):
        """Queue the flow's held datagram behind everything already queued in it."""
        held = flow.held
        flow.held = None
        del self._holding[flow]
        self._schedule(flow, held.number, held.data, held.due)

    def _schedule(self, flow, number, data, due):
        due = max(due, flow.last_due)  # never before an earlier datagram of the flow
        flow.last_due = due
        heapq.heappush(self._queue, (due, next(self._sequence), flow, number, data))

    def _send_what_is_due(self, now):
        for flow in [flow for flow in self._holding if flow.held.release_at <= now]:
            self._release(flow)  # nothing came to overtake it in time
        while self._queue and self._queue[0][0] <= now:
            _, _, flow, number, data = heapq.heappop(self._queue)
            try:
                flow.send(data)
            except OSError as exc:  # refused, buffer full: lost, as on a real network
                self.events.add("error", number, detail=_describe(exc), party=flow.name)

    # -- recording -------------------------------------------------------------
    def _record(self, flow, number, fate, data, delay=None, note=""):
        # Recorded before the datagram is sent: once a reply has reached the
        # client, its fate (and the request's) is already in the log.
        notes = [note] if note else []
        if delay is not None and flow.impaired and self.delay[1] > 0:
            notes.append(f"delay {delay * 1000:.0f} ms")
        self.events.add(fate, number, len(data), ", ".join(notes), party=flow.name)
        with self._counted:
            self._counts[flow.direction][fate] += 1
            self._counted.notify_all()

    def _record_error(self, what, context=""):
        detail = what if isinstance(what, str) else _describe(what)
        self.events.add("error", detail=f"{context}: {detail}" if context else detail)

    # -- what lessons use ---------------------------------------------------------
    @property
    def stats(self):
        """How many datagrams met each fate, per direction (all clients together).

        {"client>server": {"forward": 7, "drop": 2, "duplicate": 1, "reorder": 0},
         "server>client": {...}}  -- a duplicated datagram counts once.
        """
        with self._counted:
            return {direction: dict(counts) for direction, counts in self._counts.items()}

    def fates(self, direction=CLIENT_TO_SERVER, client=1):
        """The fates of one flow's datagrams, in number order: ['forward', 'drop', ...].

        The same for the same seed and the same datagrams, every run.  Call
        wait_for_datagrams() first, so that the last datagrams have arrived.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        name = _flow_name(client, direction)
        mine = [event for event in self.events if event.party == name and event.kind in FATES]
        return [event.kind for event in sorted(mine, key=lambda event: event.conn)]

    def client_number(self, address):
        """The number the relay gave the client at ``address`` (1, 2, ...: the
        ``client=`` of fates()), or None while it has not seen that client.

        The relay thread enters a client here before it logs its "new client"
        event, so once this answers, every datagram the relay took before that
        client's first has its fate in ``events``.
        """
        client = self._clients.get(address)  # only the relay thread adds; get() is atomic
        return None if client is None else client.number

    def wait_for_datagrams(self, count, direction=CLIENT_TO_SERVER, timeout=5.0):
        """Block until ``count`` datagrams in ``direction`` have reached the relay.

        Every datagram gets its fate the moment it arrives, so afterwards
        ``relay.events`` and ``relay.fates()`` are complete -- a cell waits here
        instead of sleeping for a guessed time.  Raises TimeoutError after
        ``timeout`` seconds, so a cell never hangs.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")

        def arrived():
            return sum(self._counts[direction].values())

        with self._counted:
            if not self._counted.wait_for(lambda: arrived() >= count, timeout):
                raise TimeoutError(
                    f"waited {timeout:g} s for {count} datagram(s) {direction}; "
                    f"{arrived()} arrived"
                )

    def __repr__(self):
        low, high = self.delay
        settings = (f"loss {self.loss:g}, duplicate {self.duplicate:g}, "
                    f"reorder {self.reorder:g}, delay {low * 1000:g}-{high * 1000:g} ms")
        if not self.both_ways:
            settings += ", replies unimpaired"
        state = "running" if self.alive else "stopped"
        return f"<LossyRelay {self.name!r} udp on {self.host}: {settings}, {state}>"


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"
