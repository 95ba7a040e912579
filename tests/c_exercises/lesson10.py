"""Lesson 10: the event-loop echo server in C (poll or epoll)."""

from socklab.checks import lesson10

from . import Exercise, Mistake

EXERCISES = [
    Exercise("10-concurrency", "my_poll_server", lesson10.check_echo_server_c, [
        Mistake("blocking-client-sockets",
                "fcntl(fd, F_SETFL, flags | O_NONBLOCK)", "fcntl(fd, F_SETFL, flags)",
                "a call in the loop is blocking"),
        Mistake("closed-client-still-watched",
                "            count--; /* the last client, already served, takes slot i */\n"
                "            fds[i] = fds[count];\n"
                "            unsent[i] = unsent[count];\n", "",
                # A closed descriptor left in the poll set: poll() reports it at
                # once (POLLNVAL), a busy loop -- until accept() hands the same
                # number to a new client, which two slots then serve: under load
                # that comes first, and a client misses its echo.
                ("a busy loop", "got no echo within")),
        Mistake("exits-on-a-reset",
                'perror("recv"); /* ECONNRESET ...: this client only */',
                'perror("recv"), exit(1);',
                "A server must outlive every one of its clients"),
        Mistake("no-sigpipe-handling",
                "MSG_NOSIGNAL)", "0)",
                "killed by SIGPIPE"),
        Mistake("pollout-all-the-time",
                "fds[i].events = unsent[i].sent < unsent[i].len ? POLLOUT : POLLIN;",
                "fds[i].events = POLLIN | POLLOUT;",
                "It spins: is every socket watched for POLLOUT"),
    ]),
]
