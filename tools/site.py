"""Render the lessons, with their stored outputs, to a static HTML site.

    python tools/site.py [--out _site]        # or: make site

Nothing is executed: every output on the site is the one stored in the notebook
by `make execute`.  The site has a root page linking both editions, an index per
edition (lesson titles taken from each notebook's first heading), and one page
per lesson with previous / next / index links and a link to the same lesson in
the other edition.  A C cell directly followed by a Python cell is shown as a
pair, side by side on a wide screen and stacked on a narrow one, each with its
output under it.  The site loads nothing from the network (no scripts at all),
so it works offline, from a folder or from any static web server.

Why a small renderer of our own rather than nbconvert's HTML exporter: nbconvert
renders one cell at a time, so showing two cells side by side would need a
preprocessor *and* an override of its lab template; each of its pages also
carries about 260 kB of JupyterLab CSS and loads MathJax and require.js from a
CDN unless told otherwise.  Here a page is one short template (site/page.html)
and one stylesheet (site/style.css), made with the two libraries nbconvert
itself is built on: mistune (Markdown) and Pygments (highlighting).
"""

import argparse
import base64
import hashlib
import html
import pathlib
import re
import shutil
import string
import sys
import urllib.parse

import mistune
import nbformat
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import CLexer, PythonLexer

ROOT = pathlib.Path(__file__).resolve().parent.parent
HERE = pathlib.Path(__file__).resolve().parent / "site"
EDITIONS = ("en", "zh")

# The words of the site itself, per edition (the lessons bring their own).
WORDS = {
    "en": {
        "lang": "en", "edition": "English", "course": "socklab",
        "lessons": "Lessons", "previous": "Previous", "next": "Next",
        "index": "All lessons", "other": "中文版",
        "other_missing": "中文版 (not translated yet)",
        "show_code": "Show the code", "english_only": "English only, not translated yet",
        "tagline": "Socket programming: every Linux C call beside its Python 3 "
                   "equivalent, both run live.",
        "stored": "Outputs shown here are the ones stored in the notebooks; "
                  "run the lessons yourself with <code>make lab</code>.",
    },
    "zh": {
        "lang": "zh-CN", "edition": "中文", "course": "socklab",
        "lessons": "课程", "previous": "上一课", "next": "下一课",
        "index": "全部课程", "other": "English",
        "other_missing": "English",
        "show_code": "显示代码", "english_only": "仅有英文版，尚未翻译",
        "tagline": "套接字编程：每个 Linux C 调用都配有对应的 Python 3 写法，两者都现场运行。",
        "stored": "这里显示的是笔记本中保存的输出；用 <code>make lab</code> 亲自运行这些课程。",
    },
}
OTHER = {"en": "zh", "zh": "en"}


# -- Markdown -------------------------------------------------------------------

def heading_id(text):
    """The anchor JupyterLab gives a heading: its text, spaces as dashes."""
    text = re.sub(r"<[^>]+>", "", html.unescape(text)).strip()
    return text.replace(" ", "-")


class LessonRenderer(mistune.HTMLRenderer):
    """Mistune's HTML, with links and images fixed up for the site's layout."""

    def __init__(self, fix_url):
        super().__init__(escape=False)  # lessons use a little raw HTML (<kbd>)
        self.fix_url = fix_url

    def link(self, text, url, title=None):
        return super().link(text, self.fix_url(url), title)

    def image(self, text, url, title=None):
        return super().image(text, self.fix_url(url), title)

    def heading(self, text, level, **attrs):
        return f'<h{level} id="{html.escape(heading_id(text))}">{text}</h{level}>\n'


class DocRenderer(LessonRenderer):
    """A Markdown file of the repository (benchmarks/README.md ...), linked from a
    lesson: its own links use GitHub's heading anchors, so its headings get those."""

    def heading(self, text, level, **attrs):
        return f'<h{level} id="{html.escape(github_slug(text))}">{text}</h{level}>\n'


def github_slug(text):
    """GitHub's anchor for a heading: lower case, punctuation dropped, dashes."""
    text = re.sub(r"<[^>]+>", "", html.unescape(text)).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def markdown_to_html(source, fix_url, renderer=LessonRenderer):
    render = mistune.create_markdown(
        renderer=renderer(fix_url), plugins=["table", "strikethrough"]
    )
    return render(source)


# -- ANSI colours (IPython's tracebacks) ---------------------------------------------

ANSI_NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"]
SGR = re.compile(r"\x1b\[([0-9;]*)m")
# cursor moves, erases, charset switches: nothing to show on a page
OTHER_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b[()][A-Z0-9]")


def xterm_colour(n, background=False):
    """CSS for colour n of the 256-colour palette (16..255; 0..15 are named)."""
    if n < 16:  # named in style.css; backgrounds lighter, so text stays readable
        return f"var(--ansi-{'bg-' if background else ''}{ANSI_NAMES[n % 8]})"
    if n >= 232:
        grey = 8 + 10 * (n - 232)
        return f"rgb({grey},{grey},{grey})"
    n -= 16
    levels = [0, 95, 135, 175, 215, 255]
    return f"rgb({levels[n // 36]},{levels[n // 6 % 6]},{levels[n % 6]})"


def ansi_to_html(text):
    """Escape text for HTML and turn ANSI colour codes into <span style>."""
    out, state = [], {}  # state: the CSS properties in force
    for i, part in enumerate(SGR.split(OTHER_ESCAPES.sub("", text))):
        if i % 2 == 0:
            if part:
                style = ";".join(f"{k}:{v}" for k, v in state.items())
                escaped = html.escape(part, quote=False)
                out.append(f'<span style="{style}">{escaped}</span>' if style else escaped)
            continue
        codes = [int(c) if c else 0 for c in part.split(";")]
        while codes:
            code = codes.pop(0)
            if code == 0:
                state = {}
            elif code == 1:
                state["font-weight"] = "bold"
            elif code == 3:
                state["font-style"] = "italic"
            elif code in (22, 23):
                state.pop("font-weight" if code == 22 else "font-style", None)
            elif 30 <= code <= 37 or 90 <= code <= 97:
                state["color"] = xterm_colour(code % 10 + (8 if code >= 90 else 0))
            elif 40 <= code <= 47 or 100 <= code <= 107:
                state["background"] = xterm_colour(code % 10 + (8 if code >= 100 else 0),
                                                   background=True)
            elif code in (38, 48) and codes[:1] == [5] and len(codes) >= 2:
                state["color" if code == 38 else "background"] = xterm_colour(codes[1], code == 48)
                del codes[:2]
            elif code in (38, 48) and codes[:1] == [2] and len(codes) >= 4:
                r, g, b = codes[1:4]
                state["color" if code == 38 else "background"] = f"rgb({r},{g},{b})"
                del codes[:4]
            elif code == 39:
                state.pop("color", None)
            elif code == 49:
                state.pop("background", None)
    return "".join(out)


# -- Cells -----------------------------------------------------------------------

def cell_language(cell):
    tags = cell.metadata.get("tags", [])
    if "lang-c" in tags or cell.source.startswith("%%c"):
        return "c"
    return "py"


def render_source(cell):
    """(label, highlighted source) of a code cell."""
    source = cell.source
    if cell_language(cell) == "c":
        magic, _, body = source.partition("\n")
        words = magic.split()
        label = "C" + (f" · {words[1]}" if len(words) > 1 and magic.startswith("%%c") else "")
        code = highlight(body, CLexer(), HtmlFormatter(nowrap=True))
        magic_html = f'<span class="magic">{html.escape(magic)}</span>\n'
        return label, f"<pre class=\"highlight\">{magic_html}{code}</pre>"
    code = highlight(source, PythonLexer(), HtmlFormatter(nowrap=True))
    return "Python", f'<pre class="highlight">{code}</pre>'


class Outputs:
    """Renders a cell's outputs; images become files next to the page."""

    def __init__(self, folder):
        self.folder = folder  # images: <folder>/out-<hash of the image>.png

    def render(self, cell):
        parts = []
        for output in cell.get("outputs", []):
            kind = output.output_type
            if kind == "stream":
                parts.append(f'<pre class="output {output.name}">'
                             f"{ansi_to_html(output.text)}</pre>")
            elif kind == "error":
                text = ansi_to_html("\n".join(output.traceback))
                parts.append(f'<pre class="output error">{text}</pre>')
            elif kind in ("execute_result", "display_data"):
                parts.append(self.rich(output.data))
        return "".join(parts)

    def rich(self, data):
        """An image if there is one, else the text form.

        Widgets and HTML reprs are shown by their text/plain form: socklab gives
        its widgets a readable one, and HTML from an output could load anything.
        """
        for mime, suffix in (("image/png", ".png"), ("image/svg+xml", ".svg")):
            if mime in data:
                raw = data[mime]
                content = base64.b64decode(raw) if suffix == ".png" else raw.encode()
                name = f"out-{hashlib.sha1(content).hexdigest()[:10]}{suffix}"
                self.folder.mkdir(parents=True, exist_ok=True)
                (self.folder / name).write_bytes(content)
                alt = html.escape(data.get("text/plain", "figure"))
                return (f'<div class="output image"><img src="{self.folder.name}/{name}"'
                        f' alt="{alt}"></div>')
        kind = "widget" if "application/vnd.jupyter.widget-view+json" in data else "result"
        return f'<pre class="output {kind}">{ansi_to_html(data.get("text/plain", ""))}</pre>'


def code_cell_html(cell, outputs, words):
    label, source = render_source(cell)
    lang = cell_language(cell)
    hidden = cell.metadata.get("jupyter", {}).get("source_hidden", False)
    if hidden:  # a solution: collapsed, as in JupyterLab
        source = (f"<details><summary>{words['show_code']} ({label})</summary>"
                  f"{source}</details>")
    out = outputs.render(cell)
    if out:
        out = f'<div class="outputs">{out}</div>'
    return (f'<div class="cell code lang-{lang}"><div class="label">{html.escape(label)}</div>'
            f"{source}{out}</div>\n")


def group_cells(cells):
    """Yield ('markdown', cell), ('code', cell) or ('pair', c_cell, py_cell)."""
    i = 0
    while i < len(cells):
        cell = cells[i]
        following = cells[i + 1] if i + 1 < len(cells) else None
        if (cell.cell_type == "code" and following is not None
                and following.cell_type == "code"
                and cell_language(cell) == "c" and cell_language(following) == "py"):
            yield ("pair", cell, following)
            i += 2
            continue
        yield (cell.cell_type, cell)
        i += 1


# -- Pages -------------------------------------------------------------------------

class Lesson:
    def __init__(self, path, edition):
        self.path, self.edition = path, edition
        self.nb = nbformat.read(path, as_version=4)
        self.page = path.stem + ".html"
        self.title = title_of(self.nb) or path.stem


def title_of(nb):
    """The text of the notebook's first Markdown heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+?)\s*#*\s*$", cell.source, re.M)
            if match:
                return match[1]
    return None


def inline_markdown(text):
    """A title's Markdown (`code`, *emphasis*) as HTML without the <p>."""
    rendered = mistune.create_markdown(escape=True)(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.S)


def url_fixer(lesson, repo, docs=None):
    """A function that maps a link in a lesson's Markdown to a link on the site.

    A link to a Markdown file of the repository (``../../benchmarks/README.md``)
    becomes a page of the site, files/<its path>.html; ``docs`` collects them.
    """

    def fix(url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith("#") or not parts.path:
            return url  # external, mail, or an anchor on this page
        target = (lesson.path.parent / urllib.parse.unquote(parts.path)).resolve()
        anchor = f"#{parts.fragment}" if parts.fragment else ""
        if target.parent == (repo / "images").resolve():
            return f"../images/{target.name}{anchor}"
        if target.suffix == ".ipynb" and target.parent.name in EDITIONS:
            return f"../{target.parent.name}/{target.stem}.html{anchor}"
        if (docs is not None and target.suffix == ".md" and target.is_file()
                and target.is_relative_to(repo.resolve())):
            relative = target.relative_to(repo.resolve()).with_suffix(".html")
            docs.add(target)
            return f"../files/{relative.as_posix()}{anchor}"
        raise SystemExit(
            f"{lesson.path.name}: the link {url!r} leads out of the site; "
            "link a figure in images/ or another lesson"
        )

    return fix


def nav_html(lesson, position, lessons, twin, words):
    def link(rel, target, text):
        if target is None:
            return f'<span class="disabled {rel}">{text}</span>'
        return f'<a rel="{rel}" href="{target.page}">{text}</a>'

    previous = lessons[position - 1] if position > 0 else None
    following = lessons[position + 1] if position + 1 < len(lessons) else None
    other_words = WORDS[OTHER[lesson.edition]]
    if twin is not None:
        other = (f'<a class="other-edition" hreflang="{other_words["lang"]}" '
                 f'href="../{twin.edition}/{twin.page}">{words["other"]}</a>')
    else:
        other = f'<span class="other-edition disabled">{words["other_missing"]}</span>'
    return (
        '<nav class="lesson-nav">'
        f'{link("prev", previous, "← " + words["previous"])}'
        f'<a rel="index" href="index.html">{words["index"]}</a>'
        f'{link("next", following, words["next"] + " →")}'
        f"{other}</nav>"
    )


def page_html(template, words, title, body, stylesheet):
    return template.substitute(
        lang=words["lang"], title=html.escape(title), body=body, stylesheet=stylesheet,
    )


def lesson_html(lesson, position, lessons, twin, repo, out, template, docs=None):
    words = WORDS[lesson.edition]
    fix_url = url_fixer(lesson, repo, docs)
    folder = out / lesson.edition / (lesson.path.stem + "-outputs")
    outputs = Outputs(folder)
    parts = []
    for group in group_cells(lesson.nb.cells):
        if group[0] == "markdown":
            prose = markdown_to_html(group[1].source, fix_url)
            parts.append(f'<div class="cell markdown">{prose}</div>\n')
        elif group[0] == "code":
            parts.append(code_cell_html(group[1], outputs, words))
        elif group[0] == "pair":
            parts.append('<div class="pair">' + code_cell_html(group[1], outputs, words)
                         + code_cell_html(group[2], outputs, words) + "</div>\n")
    nav = nav_html(lesson, position, lessons, twin, words)
    body = (f'<header>{nav}</header>\n<main>\n{"".join(parts)}</main>\n'
            f'<footer>{nav}<p class="note">{words["stored"]}</p></footer>')
    title = re.sub(r"<[^>]+>", "", inline_markdown(lesson.title))
    return page_html(template, words, f"{html.unescape(title)} · socklab", body, "../style.css")


def index_html(edition, lessons, english, template):
    words = WORDS[edition]
    items = []
    own_lessons = {x.path.name: x for x in lessons}
    english = {x.path.name: x for x in english}
    for name in sorted(own_lessons.keys() | english.keys()):
        own, lesson = own_lessons.get(name), english.get(name)
        if own is not None:
            items.append(f'<li><a href="{own.page}">{inline_markdown(own.title)}</a></li>')
        else:  # not translated yet: the English page, said so
            items.append(f'<li><a hreflang="en" href="../en/{lesson.page}">'
                         f'{inline_markdown(lesson.title)}</a> '
                         f'<span class="note">({words["english_only"]})</span></li>')
    other = OTHER[edition]
    body = (f'<header><nav class="lesson-nav"><a rel="up" href="../index.html">socklab</a>'
            f'<a class="other-edition" href="../{other}/index.html">{words["other"]}</a>'
            f'</nav></header>\n<main class="index"><h1>socklab · {words["lessons"]}</h1>'
            f'<p>{words["tagline"]}</p><ul class="lessons">{"".join(items)}</ul>'
            f'<p class="note">{words["stored"]}</p></main>')
    return page_html(template, words, f"socklab · {words['lessons']}", body, "../style.css")


def doc_html(path, repo, template):
    """A repository Markdown file as a page: files/<path>.html, self-contained."""
    relative = path.relative_to(repo.resolve())

    def fix(url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme or parts.netloc or url.startswith("#"):
            return url
        raise SystemExit(f"{relative}: the link {url!r} leads out of the site")

    up = "../" * len(relative.parts)
    body = (f'<header><nav class="lesson-nav"><a rel="up" href="{up}index.html">socklab</a>'
            f'</nav></header>\n<main class="doc">'
            f'{markdown_to_html(path.read_text(encoding="utf-8"), fix, DocRenderer)}'
            f'<p class="note">{html.escape(relative.as_posix())}</p></main>')
    return page_html(template, WORDS["en"], f"{relative.as_posix()} · socklab", body,
                     f"{up}style.css")


def root_html(template):
    blocks = "".join(
        f'<li lang="{WORDS[e]["lang"]}"><a href="{e}/index.html">{WORDS[e]["edition"]}</a>'
        f' — {WORDS[e]["tagline"]}</li>' for e in EDITIONS
    )
    body = f'<main class="index"><h1>socklab</h1><ul class="editions">{blocks}</ul></main>'
    return page_html(template, WORDS["en"], "socklab", body, "style.css")


def build(repo=ROOT, out=ROOT / "_site"):
    """Build the site of repo's notebooks/{en,zh} into out (emptied first)."""
    repo, out = pathlib.Path(repo), pathlib.Path(out)
    template = string.Template((HERE / "page.html").read_text(encoding="utf-8"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    css = (HERE / "style.css").read_text(encoding="utf-8")
    css += "\n/* Pygments (generated) */\n" + HtmlFormatter().get_style_defs(".highlight")
    (out / "style.css").write_text(css, encoding="utf-8")
    if (repo / "images").is_dir():
        shutil.copytree(repo / "images", out / "images")

    # Whatever lessons exist now; the English edition is the source of truth.
    editions = {
        e: [Lesson(p, e) for p in sorted((repo / "notebooks" / e).glob("[0-9]*.ipynb"))]
        for e in EDITIONS
    }
    english = editions["en"]
    docs = set()  # repository Markdown files the lessons link to
    for edition, lessons in editions.items():
        folder = out / edition
        folder.mkdir()
        twins = {x.path.name: x for x in editions[OTHER[edition]]}
        for position, lesson in enumerate(lessons):
            page = lesson_html(lesson, position, lessons, twins.get(lesson.path.name),
                               repo, out, template, docs)
            (folder / lesson.page).write_text(page, encoding="utf-8")
        (folder / "index.html").write_text(
            index_html(edition, lessons, english, template),
            encoding="utf-8")
    for path in sorted(docs):
        page = out / "files" / path.relative_to(repo.resolve()).with_suffix(".html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(doc_html(path, repo, template), encoding="utf-8")
    (out / "index.html").write_text(root_html(template), encoding="utf-8")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "_site"), help="output folder (emptied)")
    args = parser.parse_args(argv)
    out = build(ROOT, pathlib.Path(args.out))
    pages = sum(1 for _ in out.rglob("*.html"))
    print(f"{pages} pages in {out}; open {out / 'index.html'}")


if __name__ == "__main__":
    sys.exit(main())
