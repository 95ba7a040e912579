"""Lesson 05: the echo server in C."""

from socklab.checks import lesson05

from . import Exercise, Mistake

EXERCISES = [
    Exercise("05-echo", "my_echo_server", lesson05.check_echo_server_c, [
        Mistake("no-sigpipe-handling",
                "send_all(fd, buf, (size_t)n) < 0", "send(fd, buf, (size_t)n, 0) < 0",
                "killed by SIGPIPE"),
        Mistake("exits-on-a-reset",
                'perror("recv");', 'perror("recv"), exit(1);',
                "A server must outlive every one of its clients"),
        Mistake("one-recv-is-the-message",
                "while ((n = recv(", "if ((n = recv(",
                # the byte-at-a-time client sees the echo end, or a reset
                # under load; the 1 MiB client sees the connection end early
                ("the client sent", "before the client had finished",
                 "the client's socket failed")),
        Mistake("never-closes",
                "if (close(fd) < 0)", "if (fd < 0)",
                "more file descriptors than before"),
    ]),
]
