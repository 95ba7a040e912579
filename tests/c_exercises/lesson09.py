"""Lesson 09: a server for length-prefixed frames, in C."""

from socklab.checks import lesson09

from . import Exercise, Mistake

EXERCISES = [
    Exercise("09-framing", "my_frame_server", lesson09.check_frame_server_c, [
        Mistake("one-recv-is-the-frame",
                "got += (size_t)n;", "return n; /* one recv() is the frame */",
                "One recv() returns what has arrived so far"),
        Mistake("length-without-ntohl",
                "uint32_t size = ntohl(header);", "uint32_t size = header;",
                "through ntohl() first"),
        Mistake("length-sent-without-htonl",
                "header = htonl(size);", "header = size;",
                "put it through htonl()"),
        Mistake("no-max-frame",
                "if (size > MAX_FRAME) {", "if (0) {",
                "global-buffer-overflow"),
        Mistake("no-sigpipe-handling",
                "send_all(fd, &header, sizeof header) < 0",
                "send(fd, &header, sizeof header, 0) < 0",
                "killed by SIGPIPE"),
        Mistake("exits-on-a-broken-frame",
                'printf("broken frame: %zd of 4 header bytes\\n", n);\n            return;',
                'printf("broken frame: %zd of 4 header bytes\\n", n);\n            exit(1);',
                "A server must outlive every one of its clients"),
        Mistake("recv-loop-ignores-eof",
                "        if (n == 0)\n            break; /* the peer closed */\n", "",
                "a loop that spins"),
    ]),
]
