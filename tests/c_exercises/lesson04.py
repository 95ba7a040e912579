"""Lesson 04: a client in C with both loops (send_all, and recv_exact's loop)."""

from socklab.checks import lesson04

from . import Exercise, Mistake

EXERCISES = [
    Exercise("04-tcp-client", "my_client", lesson04.check_client_c, [
        Mistake("one-recv-is-the-reply",
                "        got += (size_t)r;\n    }",
                "        got += (size_t)r;\n        break; /* the whole reply, surely */\n    }",
                "One recv() returns what has arrived so far"),
        Mistake("recv-of-0-ignored",
                "        if (r == 0)\n            break;", "        if (r == 0)\n            continue;",
                "a recv() loop that never sees 0?"),
        Mistake("one-send-no-loop",
                "send_all(fd, out, n) < 0", "send(fd, out, n, 0) < 0",
                "the server received only part of the 8,388,608 bytes"),
        Mistake("asks-recv-for-too-much",
                "recv(fd, buf + got, n - got, 0)", "recv(fd, buf + got, n, 0)",
                # An overflow when one recv() brings more than the room left; on a
                # busy machine the bytes come in smaller pieces, and the loop
                # reads past SIZE into the extra bytes instead.
                ("AddressSanitizer: heap-buffer-overflow",
                 "Ask recv() for at most SIZE - got bytes")),
        Mistake("size-not-checked-to-the-end",
                "*end != '\\0' || ", "",
                "it took SIZE '5000x' for 5,000"),
    ]),
]
