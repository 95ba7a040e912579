"""Lesson 14: a sniffer that tells a TLS record header from plain text, in C."""

from socklab.checks import lesson14

from . import Exercise, Mistake

EXERCISES = [
    Exercise("14-tls", "my_sniffer", lesson14.check_sniffer_c, [
        Mistake("one-recv-is-the-header",
                "got += (size_t)n;", "return n; /* one recv() is the header */",
                "loop until you have all 5 bytes"),
        Mistake("length-in-host-order",
                "unsigned length = (unsigned)(h[3] << 8 | h[4]);",
                "unsigned length = (unsigned)(h[4] << 8 | h[3]);",
                "through ntohs()"),
        Mistake("everything-is-tls",
                "if (type >= 20 && type <= 23 && h[1] == 3)", "if (1)",
                "Check both before saying TLS"),
        Mistake("exits-when-a-client-closes-early",
                "return; /* closed before a whole header: no answer */", "exit(1);",
                "A server must outlive every one of its clients"),
        Mistake("closes-with-bytes-unread",
                "    char rest[4096];\n    while ((n = recv(fd, rest, sizeof rest, 0)) != 0) {\n"
                "        if (n < 0 && errno != EINTR) {\n            perror(\"recv\");\n"
                "            return;\n        }\n    }\n",
                "",
                "reset the connection"),
        Mistake("never-closes",
                "        sniff(fd);\n        close(fd);", "        sniff(fd);",
                "did not close the connection"),
    ]),
]
