"""Lesson 15: a name parser in C that follows compression pointers and refuses traps."""

from socklab.checks import lesson15

from . import Exercise, Mistake

EXERCISES = [
    Exercise("15-dns", "my_names", lesson15.check_parse_name_c, [
        Mistake("no-loop-guard",
                "if (target >= start)\n                return -1; /* not back: a loop, or past the end */",
                "if (target >= len)\n                return -1; /* past the end */",
                "a pointer it follows for ever"),
        Mistake("pointer-offset-low-byte-only",
                "size_t target = ((length & 0x3Fu) << 8) | msg[offset + 1];",
                "size_t target = msg[offset + 1];",
                "want 'www.far.socklab.test.'"),
        Mistake("no-bounds-check-on-labels",
                "            if (offset + 1 + length > len)\n"
                "                return -1; /* a label past the end */\n", "",
                "heap-buffer-overflow"),
        Mistake("no-255-limit",
                "if (size > 255 || used + length + 2 > outsize)",
                "if (used + length + 2 > outsize)",
                "this name must be refused"),
        Mistake("reserved-types-read-as-labels",
                "        } else if (length & 0xC0) {\n"
                "            return -1; /* label types 01 and 10 are reserved */\n", "",
                "this name must be refused"),
        Mistake("half-pointer-read",
                "            if (offset + 2 > len)\n                return -1;\n", "",
                "heap-buffer-overflow"),
    ]),
]
