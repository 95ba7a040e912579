"""Lesson 03: make_listener() and serve_one() as one C server."""

from socklab.checks import lesson03

from . import Exercise, Mistake

EXERCISES = [
    Exercise("03-tcp-server", "my_hello_server", lesson03.check_hello_server_c, [
        Mistake("binds-the-wildcard",
                "htonl(INADDR_LOOPBACK)", "htonl(INADDR_ANY)",
                "the wildcard"),
        Mistake("no-so-reuseaddr",
                "SOL_SOCKET, SO_REUSEADDR", "SOL_SOCKET, SO_KEEPALIVE",
                "SO_REUSEADDR is not set"),
        Mistake("sends-the-nul",
                "strlen(GREETING)", "sizeof GREETING",
                "the '\\0' that ends a C string"),
        Mistake("never-closes",
                "if (close(fd) < 0)", "if (fd < 0)",
                "the connection stayed open"),
        Mistake("port-in-network-byte-order",
                "ntohs(peer.sin_port)", "peer.sin_port",
                "ntohs(peer.sin_port)"),
        Mistake("no-fflush",
                "fflush(stdout);", ";",
                "fflush(stdout)"),
        Mistake("no-room-for-the-address",
                "socklen_t len = sizeof peer;", "socklen_t len = 0;",
                "value-result"),
        Mistake("exits-when-getpeername-fails",
                'perror("getpeername");', 'perror("getpeername"), exit(1);',
                "getpeername() on it fails with\nENOTCONN"),
        Mistake("no-sigpipe-handling",
                "send_all(fd, GREETING, strlen(GREETING)) < 0",
                "send(fd, GREETING, strlen(GREETING), 0) < 0",
                "killed by SIGPIPE"),
        Mistake("exits-when-accept-fails",
                "accept_client(listener, NULL, NULL)", "accept(listener, NULL, NULL)",
                "accept() failed with EMFILE"),
        Mistake("accept-spins-on-emfile",
                "int fd = accept_client(listener, NULL, NULL);",
                "int fd;\n        while ((fd = accept(listener, NULL, NULL)) < 0)\n"
                "            continue;",
                "tries again and again"),
    ]),
]
