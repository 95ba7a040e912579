"""Lesson 10: the event-loop echo server in C (poll or epoll)."""

from socklab.checks import lesson10

from . import Exercise, Mistake

# serve() of the solution, from its first line to its last: as it is, and as
# a server that reads on whatever its echo (the two edits of that mistake).
_SERVE_READS_ONLY_WHEN_SENT = """\
    if (unsent[i].sent == unsent[i].len) {
        ssize_t n = recv(fds[i].fd, unsent[i].buf, sizeof unsent[i].buf, 0);
        if (n == 0)
            return -1; /* the client closed */
        if (n < 0) {
            if (not_now())
                return 0;
            perror("recv"); /* ECONNRESET ...: this client only */
            return -1;
        }
        unsent[i].len = (size_t)n;
        unsent[i].sent = 0;
    }
    while (unsent[i].sent < unsent[i].len) {
        ssize_t n = send(fds[i].fd, unsent[i].buf + unsent[i].sent,
                         unsent[i].len - unsent[i].sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (not_now())
                break; /* its buffer is full: wait for POLLOUT */
            perror("send"); /* EPIPE, ECONNRESET: this client only */
            return -1;
        }
        unsent[i].sent += (size_t)n;
    }
    fds[i].events = unsent[i].sent < unsent[i].len ? POLLOUT : POLLIN;"""
_SERVE_READS_ON = _SERVE_READS_ONLY_WHEN_SENT.replace(
    "if (unsent[i].sent == unsent[i].len) {", "if (fds[i].revents & POLLIN) {").replace(
    "unsent[i].sent < unsent[i].len ? POLLOUT : POLLIN;",
    "POLLIN | (unsent[i].sent < unsent[i].len ? POLLOUT : 0);")

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
                # number to a new client, which two slots then serve.  After the
                # last clients have gone nothing takes their numbers, and the
                # idle server spins; each turn it prints (perror: EBADF), so it
                # also sleeps while its output waits to be read -- woken again
                # and again, which the check counts (busy machine or not).
                "a closed\ndescriptor still in the poll array"),
        Mistake("exits-on-a-reset",
                'perror("recv"); /* ECONNRESET ...: this client only */',
                'perror("recv"), exit(1);',
                "A server must outlive every one of its clients"),
        Mistake("no-sigpipe-handling",
                "MSG_NOSIGNAL)", "0)",
                "killed by SIGPIPE"),
        Mistake("reads-on-while-its-echo-waits",
                # It reads whenever the client has sent more, its echo sent or
                # not, and watches POLLIN always: a client that never reads can
                # pour in every byte (and its echo is overwritten, unsent).
                _SERVE_READS_ONLY_WHEN_SENT, _SERVE_READS_ON,
                "without reading a byte of the echo"),
        Mistake("pollout-all-the-time",
                "fds[i].events = unsent[i].sent < unsent[i].len ? POLLOUT : POLLIN;",
                "fds[i].events = POLLIN | POLLOUT;",
                "It spins: is every socket watched for POLLOUT"),
    ]),
]
