"""socklab.relay.LossyRelay, tested with real UDP sockets on loopback only.

The target is always a socklab.UDPEchoServer, so every datagram the relay passes
to the server comes back through the relay as a reply.  Tests never sleep: they
wait for the relay to have seen their datagrams (wait_for_datagrams) and read
replies with a timeout.
"""

import os
import socket
import struct
import threading
import time

import pytest

import socklab
from socklab.relay import LossyRelay

TIMEOUT = 10  # seconds; every blocking call in these tests has one
MAX_UDP = 65507  # the largest UDP payload over IPv4
PERFECT = dict(loss=0, duplicate=0, reorder=0, delay=0)  # a relay that changes nothing


def udp_client(family=socket.AF_INET):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    return sock


def numbered(number, size=4):
    """A datagram that says which it is: a 4-byte number, then filler up to size."""
    return struct.pack("!I", number) + bytes([number % 251]) * (size - 4)


def number_of(datagram):
    return struct.unpack("!I", datagram[:4])[0]


def receive(sock, count, relay):
    """Read ``count`` replies; each must come from the relay's address."""
    replies = []
    for _ in range(count):
        data, sender = sock.recvfrom(65536)
        assert sender[:2] == relay.address
        replies.append(data)
    return replies


def send_numbered(sock, relay, numbers, size=4):
    for number in numbers:
        sock.sendto(numbered(number, size), relay.address)


def expected_replies(relay):
    """How many replies reach the client, once every fate has been decided."""
    def delivered(counts):
        return counts["forward"] + 2 * counts["duplicate"] + counts["reorder"]

    requests = delivered(relay.stats["client>server"])
    relay.wait_for_datagrams(requests, "server>client", timeout=TIMEOUT)
    return delivered(relay.stats["server>client"])


def assert_nothing_more(sock, wait=0.1):
    sock.settimeout(wait)
    with pytest.raises(socket.timeout):
        sock.recvfrom(65536)
    sock.settimeout(TIMEOUT)


# ---------------------------------------------------------------- a perfect relay


def test_perfect_relay_passes_200_datagrams_in_order_byte_exact():
    with socklab.UDPEchoServer() as srv, LossyRelay(srv.address, **PERFECT) as relay, \
            udp_client() as sock:
        # The extremes one at a time: a few 64 KiB datagrams would overflow the
        # kernel's receive buffer on their own, and that is not the relay's doing.
        for data in (b"", os.urandom(MAX_UDP)):
            sock.sendto(data, relay.address)
            assert receive(sock, 1, relay) == [data]
        # Then 198 more, in bursts, so that any reordering would show.
        sent = [numbered(n, size=4 + (n * 37) % 1400) for n in range(198)]
        for start in range(0, len(sent), 18):
            burst = sent[start:start + 18]
            for data in burst:
                sock.sendto(data, relay.address)
            assert receive(sock, len(burst), relay) == burst
        relay.wait_for_datagrams(200, "server>client", timeout=TIMEOUT)
        assert relay.stats == {
            "client>server": {"forward": 200, "drop": 0, "duplicate": 0, "reorder": 0},
            "server>client": {"forward": 200, "drop": 0, "duplicate": 0, "reorder": 0},
        }
        sizes = [event.nbytes for event in relay.events if event.party == "client>server"]
        assert sizes[:2] == [0, MAX_UDP]


def test_events_are_one_line_per_datagram_without_ports():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0.3, duplicate=0.1, reorder=0.1, delay=(0, 0.05), seed=5
    ) as relay, udp_client() as sock:
        send_numbered(sock, relay, range(6), size=12)
        relay.wait_for_datagrams(6)
        receive(sock, expected_replies(relay), relay)
    assert repr(relay.events).splitlines() == [
        "relay    bound",
        "relay    new client (client 1 gets its own socket to the server)",
        "client>server 1 forward 12 bytes (delay 1 ms)",
        "client>server 2 forward 12 bytes (delay 45 ms)",
        "client>server 3 duplicate 12 bytes (delay 17 ms)",
        "client>server 4 reorder 12 bytes (held back, delay 26 ms)",
        "client>server 5 forward 12 bytes (overtakes 4, delay 29 ms)",
        "client>server 6 forward 12 bytes (delay 5 ms)",
        "server>client 1 forward 12 bytes (delay 47 ms)",
        "server>client 2 drop 12 bytes",
        "server>client 3 forward 12 bytes (delay 32 ms)",
        "server>client 4 drop 12 bytes",
        "server>client 5 forward 12 bytes (delay 8 ms)",
        "server>client 6 reorder 12 bytes (held back, delay 41 ms)",
        "server>client 7 forward 12 bytes (overtakes 6, delay 31 ms)",
        "relay    stop",
    ]
    assert str(relay.port) not in repr(relay.events)
    assert str(srv.port) not in repr(relay.events)


# ---------------------------------------------------------------- determinism


def run_session(seed):
    """40 datagrams through a relay with every impairment; what happened to them."""
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0.2, duplicate=0.1, reorder=0.1, delay=(0, 0.005), seed=seed
    ) as relay, udp_client() as sock:
        for number in range(40):
            sock.sendto(numbered(number, size=4 + number % 9), relay.address)
        relay.wait_for_datagrams(40, timeout=TIMEOUT)
        replies = receive(sock, expected_replies(relay), relay)
    return repr(relay.events), relay.fates(), [number_of(reply) for reply in replies]


def test_same_seed_same_fates_different_seed_different_fates():
    first_log, first_fates, first_replies = run_session(seed=7)
    again_log, again_fates, again_replies = run_session(seed=7)
    assert again_fates == first_fates
    assert again_log == first_log  # both directions, delays included
    assert again_replies == first_replies  # and the order the client saw
    assert {"drop", "duplicate", "reorder"} <= set(first_fates)  # a real test
    _, other_fates, _ = run_session(seed=8)
    assert other_fates != first_fates


def test_loss_rate_over_1000_datagrams():
    total, burst = 1000, 50  # bursts small enough for the kernel's buffers
    received = []
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0.3, duplicate=0, reorder=0, delay=0, seed=1, both_ways=False
    ) as relay, udp_client() as sock:
        for start in range(0, total, burst):
            send_numbered(sock, relay, range(start, start + burst))
            relay.wait_for_datagrams(start + burst, timeout=TIMEOUT)
            still_to_come = relay.stats["client>server"]["forward"] - len(received)
            received += [number_of(reply) for reply in receive(sock, still_to_come, relay)]
        fates = relay.fates()
    dropped = fates.count("drop")
    assert 0.25 <= dropped / total <= 0.35  # binomial: 0.3 +- 3.4 standard deviations
    assert dropped == 307  # seed=1 drops exactly these, every run
    assert received == [n for n, fate in enumerate(fates) if fate == "forward"]


# ---------------------------------------------------------------- each impairment


@pytest.mark.parametrize("both_ways, copies", [(False, 2), (True, 4)])
def test_duplicates_arrive_twice_each_way(both_ways, copies):
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=1.0, reorder=0, delay=0, both_ways=both_ways
    ) as relay, udp_client() as sock:
        send_numbered(sock, relay, range(5))
        replies = [number_of(reply) for reply in receive(sock, 5 * copies, relay)]
        assert replies == [n for n in range(5) for _ in range(copies)]
        assert_nothing_more(sock)
        assert relay.fates() == ["duplicate"] * 5


def test_reorder_swaps_neighbours():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=1.0, delay=0, both_ways=False
    ) as relay, udp_client() as sock:
        send_numbered(sock, relay, range(1, 11))
        replies = [number_of(reply) for reply in receive(sock, 10, relay)]
        # The datagram held back goes out right after the one that overtakes it,
        # and that one is never held itself: pairs swap.
        assert replies == [2, 1, 4, 3, 6, 5, 8, 7, 10, 9]
        assert relay.fates() == ["reorder", "forward"] * 5
        assert [str(event) for event in relay.events][2:4] == [
            "client>server 1 reorder 4 bytes (held back)",
            "client>server 2 forward 4 bytes (overtakes 1)",
        ]


def test_reorder_both_ways_swaps_back():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=1.0, delay=0
    ) as relay, udp_client() as sock:
        send_numbered(sock, relay, range(1, 7))
        # The server sees 2 1 4 3 6 5; its replies are swapped again on the way back.
        assert [number_of(reply) for reply in receive(sock, 6, relay)] == [1, 2, 3, 4, 5, 6]
        assert srv.events.of_kind("recvfrom")  # it did go through the server
        assert relay.fates("server>client") == ["reorder", "forward"] * 3


def test_held_datagram_with_nothing_to_overtake_it_goes_late():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=1.0, delay=0, both_ways=False
    ) as relay, udp_client() as sock:
        started = time.monotonic()
        sock.sendto(b"alone", relay.address)
        assert receive(sock, 1, relay) == [b"alone"]
        assert time.monotonic() - started >= relay.reorder_hold  # a lower bound only


@pytest.mark.parametrize("both_ways, legs", [(False, 1), (True, 2)])
def test_replies_come_no_earlier_than_the_minimum_delay(both_ways, legs):
    low = 0.05
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=0, delay=(low, low + 0.02),
        both_ways=both_ways,
    ) as relay, udp_client() as sock:
        for number in range(3):
            started = time.monotonic()
            sock.sendto(numbered(number), relay.address)
            assert receive(sock, 1, relay) == [numbered(number)]
            assert time.monotonic() - started >= legs * low  # a lower bound only


def test_random_delays_never_reorder_a_flow():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=0, delay=(0, 0.05), seed=5
    ) as relay, udp_client() as sock:
        send_numbered(sock, relay, range(30))
        assert [number_of(reply) for reply in receive(sock, 30, relay)] == list(range(30))
        delays = {event.detail for event in relay.events if event.party == "client>server"}
        assert len(delays) > 10  # the delays really differed


def test_two_clients_get_only_their_own_replies():
    with socklab.UDPEchoServer() as srv, LossyRelay(
        srv.address, loss=0, duplicate=0, reorder=0, delay=(0, 0.01)
    ) as relay, udp_client() as first, udp_client() as second:
        for number in range(50):
            first.sendto(b"first %d" % number, relay.address)
            second.sendto(b"second %d" % number, relay.address)
        assert receive(first, 50, relay) == [b"first %d" % n for n in range(50)]
        assert receive(second, 50, relay) == [b"second %d" % n for n in range(50)]
        assert_nothing_more(first)
        # Two clients, two upstream sockets: the server saw two peers.
        assert {event.conn for event in srv.events.of_kind("recvfrom")} == {1, 2}
        relay.wait_for_datagrams(100, "server>client", timeout=TIMEOUT)
        assert relay.fates(client=2) == ["forward"] * 50
        parties = {event.party for event in relay.events if event.conn}
        assert parties == {"client>server", "server>client", "client2>server", "server>client2"}



def test_client_number_names_each_client_once_the_relay_has_seen_it():
    with socklab.UDPEchoServer() as srv, LossyRelay(srv.address, **PERFECT) as relay, \
            udp_client() as first, udp_client() as second:
        for sock in (first, second):  # as the relay sees them: 127.0.0.1, not 0.0.0.0
            sock.bind(("127.0.0.1", 0))
        assert relay.client_number(second.getsockname()) is None  # not seen yet
        second.sendto(b"one", relay.address)
        first.sendto(b"two", relay.address)
        relay.wait_for_datagrams(2, timeout=TIMEOUT)
        assert relay.client_number(second.getsockname()) == 1
        assert relay.client_number(first.getsockname()) == 2

def test_relay_on_ipv6_loopback_to_an_ipv4_server():
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    with socklab.UDPEchoServer() as srv:
        try:
            relay = LossyRelay(srv.address, host="::1", **PERFECT)
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        with relay, udp_client(socket.AF_INET6) as sock:
            sock.sendto(b"over IPv6", relay.address)
            assert sock.recvfrom(100)[0] == b"over IPv6"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "host",
    ["192.0.2.1", "10.0.0.1", "0.0.0.0", "::", "fe80::1", "::ffff:127.0.0.1",
     "localhost", "example.com"],
)
def test_target_must_be_a_loopback_address(host, no_leaks):
    with pytest.raises(ValueError, match="loopback"):
        LossyRelay((host, 9))


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(loss=1.5), "probability"),
        (dict(loss=-0.1), "probability"),
        (dict(duplicate=float("nan")), "probability"),
        (dict(loss=0.5, duplicate=0.3, reorder=0.3), "one fate"),
        (dict(delay=(0.2, 0.1)), "min <= max"),
        (dict(delay=-1), "min <= max"),
        (dict(delay=(0, 50)), "seconds"),
        (dict(delay="slow"), "min <= max"),
    ],
)
def test_settings_are_checked_before_any_socket_exists(settings, message, no_leaks):
    with pytest.raises(ValueError, match=message):
        LossyRelay(("127.0.0.1", 9), **settings)


@pytest.mark.parametrize("port", [0, 65536, "53"])
def test_target_port_is_checked(port, no_leaks):
    with pytest.raises(ValueError, match="port"):
        LossyRelay(("127.0.0.1", port))


def test_nothing_listening_at_the_target_is_an_event_not_a_crash():
    srv = socklab.UDPEchoServer()
    srv.stop()  # its port is closed now: the kernel answers ICMP port unreachable
    with LossyRelay(srv.address, **PERFECT) as relay, udp_client() as sock:
        sock.sendto(b"anyone?", relay.address)
        error = relay.events.wait_for("error", timeout=TIMEOUT)[0]
        assert "ConnectionRefusedError" in error.detail
        sock.sendto(b"still relaying", relay.address)
        relay.wait_for_datagrams(2, timeout=TIMEOUT)
    # stop() raised nothing: a refused datagram is the network's doing


class BrokenRelay(LossyRelay):
    """A relay with a bug, to see that the bug is not lost in the thread."""

    def _draw(self, flow):
        raise ZeroDivisionError("bug in the relay")


def test_a_bug_in_the_relay_thread_is_raised_by_stop():
    with socklab.UDPEchoServer() as srv, udp_client() as sock:
        relay = BrokenRelay(srv.address)
        sock.sendto(b"boom", relay.address)
        relay.events.wait_for("error", timeout=TIMEOUT)
        with pytest.raises(ZeroDivisionError, match="bug in the relay"):
            relay.stop()
        relay.stop()  # raised once; stopping again is quiet


# ---------------------------------------------------------------- the contract


def test_stop_is_bounded_idempotent_and_leaves_nothing_behind(no_leaks):
    threads_before = threading.active_count()
    srv = socklab.UDPEchoServer()
    relay = LossyRelay(srv.address, loss=0, duplicate=0, reorder=0, delay=5.0)
    clients = [udp_client() for _ in range(3)]
    for sock in clients:
        sock.sendto(b"late", relay.address)  # each waits 5 s in the relay
    relay.wait_for_datagrams(3, timeout=TIMEOUT)
    started = time.monotonic()
    relay.stop()  # the 3 waiting datagrams are discarded; 3 upstream sockets closed
    assert time.monotonic() - started < 2
    relay.stop()
    assert not relay.alive
    assert repr(relay).endswith("stopped>")
    srv.stop()
    for sock in clients:
        sock.close()
    assert threading.active_count() == threads_before


def test_running_and_stop_all_see_the_relay():
    srv = socklab.UDPEchoServer(name="target")
    relay = LossyRelay(srv.address, name="bad network")
    assert socklab.running() == [srv, relay]
    assert repr(relay) == (
        "<LossyRelay 'bad network' udp on 127.0.0.1: loss 0.2, duplicate 0.05, "
        "reorder 0.1, delay 0-50 ms, running>"
    )
    assert socklab.stop_all() == 2
    assert not relay.alive and socklab.running() == []


def test_named_relay_replaces_its_namesake():
    with socklab.UDPEchoServer() as srv:
        old = LossyRelay(srv.address, name="relay")
        new = LossyRelay(srv.address, name="relay")
        assert not old.alive and new.alive
        assert socklab.running() == [srv, new]
        new.stop()


def test_wait_for_datagrams_times_out_clearly():
    with socklab.UDPEchoServer() as srv, LossyRelay(srv.address) as relay:
        with pytest.raises(TimeoutError, match="1 datagram"):
            relay.wait_for_datagrams(1, timeout=0.1)
        with pytest.raises(ValueError, match="direction"):
            relay.fates("sideways")
