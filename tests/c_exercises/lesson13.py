"""Lesson 13: the HTTP echo server, in C."""

from socklab.checks import lesson13

from . import Exercise, Mistake

EXERCISES = [
    Exercise("13-http-server", "my_http", lesson13.check_web_server_c, [
        Mistake("no-keep-alive",
                "if (rc < 0 || r.close)", "if (rc < 0 || !r.close || r.close)",
                "HTTP/1.1 keeps the connection open by default"),
        Mistake("head-sends-a-body",
                '13, "", head_only, r.close);', '13, "", 0, r.close);',
                "A response to HEAD has a head and no body"),
        Mistake("no-deadline",
                "long long deadline = now_ms() + TIMEOUT_MS;",
                "long long deadline = now_ms() + 600000;",
                "was still connected after"),
        Mistake("waits-for-the-end-of-an-endless-head",
                "if (in_len >= HEAD_MAX) {", "if (0) {",
                "refused at once"),
        Mistake("connection-close-ignored",
                'r.close |= has_token(value, value_len, "close");', "(void)has_token;",
                "The client asked: close after this response"),
        Mistake("no-sigpipe-handling",
                "    if (send_all(fd, head, (size_t)n) < 0)\n        return -1;\n"
                "    if (!head_only && len > 0 && send_all(fd, body, len) < 0)",
                "    if (send(fd, head, (size_t)n, 0) < 0)\n        return -1;\n"
                "    if (!head_only && len > 0 && send(fd, body, len, 0) < 0)",
                "killed by SIGPIPE"),
        Mistake("exits-on-a-bad-request",
                "refuse(fd, status, NULL, head_only, 1); /* the framing is lost */\n"
                "            return;",
                "refuse(fd, status, NULL, head_only, 1); /* the framing is lost */\n"
                "            exit(1);",
                "A server must outlive every one of its clients"),
    ]),
]
