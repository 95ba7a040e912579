"""Lesson 07: the UDP echo server in C."""

from socklab.checks import lesson07

from . import Exercise, Mistake

RECVFROM = """recvfrom(fd, buf, sizeof buf, 0,
                             (struct sockaddr *)&peer, &len);"""
SENDTO = "        if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, len) < 0)"

EXERCISES = [
    Exercise("07-udp", "my_udp_echo", lesson07.check_udp_echo_server_c, [
        Mistake("a-small-buffer",
                "buf[65536]", "buf[1024]",
                "1,024 of the 65,507 bytes came back: the datagram was truncated"),
        Mistake("strlen-for-the-length",
                "(size_t)n, 0,", "strlen(buf), 0,",
                "the reply stopped at the first NUL byte"),
        Mistake("zero-is-the-end",
                "        if (n < 0) {",
                "        if (n == 0)\n            return 0; /* the end? */\n        if (n < 0) {",
                "exited with status 0"),
        Mistake("an-empty-datagram-skipped",
                "        if (n < 0) {",
                "        if (n == 0)\n            continue; /* nothing to echo? */\n"
                "        if (n < 0) {",
                "no reply to the empty datagram; the one after it got its reply"),
        Mistake("replies-to-the-first-client",
                SENDTO,
                "        static struct sockaddr_storage first; /* the client */\n"
                "        if (first.ss_family == AF_UNSPEC)\n"
                "            first = peer;\n"
                + SENDTO.replace("&peer", "&first"),
                "went to the check's first client"),
        Mistake("connects-to-the-first-client",
                SENDTO,
                "        static int connected = 0; /* the client, from now on */\n"
                "        if (!connected && connect(fd, (struct sockaddr *)&peer, len) == 0)\n"
                "            connected = 1;\n"
                "        if (send(fd, buf, (size_t)n, 0) < 0)",
                "a server does not connect()"),
        Mistake("exits-on-an-error-of-one-datagram",
                "continue; /* one datagram's trouble: go on */", "return 1;",
                "That error belongs to one datagram"),
        Mistake("spins-on-a-non-blocking-socket",
                RECVFROM,
                RECVFROM.replace(" 0,\n", " MSG_DONTWAIT,\n")
                + "\n        if (n < 0 && errno == EAGAIN)\n"
                  "            continue; /* nothing yet: try again */",
                "a busy loop"),
    ]),
]
