"""The static site of the lessons (tools/site.py, `make site`).

The site is built from the lessons as they are in the repository (whatever
lessons exist), into a temporary folder.  Every page is parsed: every link and
image must lead to a file of the site (and to an anchor that exists), nothing
may load from the network, every lesson page links to the previous and next
lesson, the index and the other edition.  Headless Chromium (Debian's, as in
test_browser.py) then opens a lesson: its figures load, and a C/Python pair
stands side by side on a wide screen and stacked on a narrow one.
"""

import html.parser
import importlib.util
import pathlib
import re
import shutil
import urllib.parse

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EN = sorted((ROOT / "notebooks" / "en").glob("[0-9]*.ipynb"))
ZH = sorted((ROOT / "notebooks" / "zh").glob("[0-9]*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [  # as in test_browser.py: no calls to Google's servers
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Attributes whose URL the browser loads by itself (not a link the reader follows).
RESOURCES = {("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src"),
             ("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src"),
             ("object", "data")}


def load_site_tool():
    # By path and under another name: `site` is also a module of the standard library.
    spec = importlib.util.spec_from_file_location("socklab_site", ROOT / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_tool = load_site_tool()


class Page(html.parser.HTMLParser):
    """What the tests need of a page: its URLs, ids, language and elements."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.urls = []          # (tag, attribute, url)
        self.ids = set()
        self.lang = None
        self.tags = []          # (tag, attrs dict), in document order
        self.text = path.read_text(encoding="utf-8")
        self.feed(self.text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "html":
            self.lang = attrs.get("lang")
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src", "data"):
            if attrs.get(name) is not None:
                self.urls.append((tag, name, attrs[name]))

    def links(self, rel):
        return [a.get("href") for t, a in self.tags if t == "a" and a.get("rel") == rel]

    def count(self, tag, css_class):
        return sum(1 for t, a in self.tags
                   if t == tag and css_class in (a.get("class") or "").split())


def pages_of(out):
    return {path: Page(path) for path in sorted(out.rglob("*.html"))}


def check_site(out):
    """Every URL of every page resolves inside the site; nothing loads from outside."""
    pages = pages_of(out)
    problems = []
    for path, page in pages.items():
        for tag, attribute, url in page.urls:
            parts = urllib.parse.urlsplit(url)
            where = f"{path.relative_to(out)}: <{tag} {attribute}={url!r}>"
            if (tag, attribute) in RESOURCES and (parts.scheme or parts.netloc):
                problems.append(f"{where} loads from outside the site")
                continue
            if parts.scheme in ("http", "https", "mailto"):
                continue  # a link the reader may follow (the docs, a PEP)
            if parts.scheme or parts.netloc or url.startswith("/"):
                problems.append(f"{where} is not a relative URL")
                continue
            target = (path.parent / urllib.parse.unquote(parts.path)).resolve() \
                if parts.path else path
            if not target.is_file() or out.resolve() not in target.parents:
                problems.append(f"{where} leads to no file of the site")
            elif parts.fragment and target.suffix == ".html":
                if parts.fragment not in pages[target].ids:
                    problems.append(f"{where}: no id {parts.fragment!r} there")
        if "<script" in page.text:
            problems.append(f"{path.relative_to(out)} has a script")
    css = (out / "style.css").read_text(encoding="utf-8")
    if re.search(r"@import|url\(\s*['\"]?(https?:)?//", css):
        problems.append("style.css loads from outside the site")
    return pages, problems


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    site_tool.build(ROOT, out)
    return out


def test_every_link_and_image_resolves_and_nothing_loads_from_outside(site):
    pages, problems = check_site(site)
    assert problems == []
    # Some links are really checked: the figures of the lessons, the navigation.
    images = [u for p in pages.values() for t, a, u in p.urls if t == "img"]
    assert any("images/" in u and u.endswith(".svg") for u in images)
    lesson_pages = [p for p in pages if p.parent.name in ("en", "zh")]
    assert len(lesson_pages) == 2 + len(EN) + len(ZH)  # + the two indexes
    # the repository files lessons link to (benchmarks/README.md) are pages too
    assert all((site / "files") in p.parents for p in pages
               if p not in lesson_pages and p != site / "index.html")


def test_no_path_of_this_machine_in_the_site(site):
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert str(ROOT) not in text and str(site) not in text, path


def test_both_editions_with_every_lesson_and_its_title(site):
    root = Page(site / "index.html")
    assert {u for _, _, u in root.urls} >= {"en/index.html", "zh/index.html", "style.css"}
    for edition, lessons, lang in (("en", EN, "en"), ("zh", ZH, "zh-CN")):
        index = Page(site / edition / "index.html")
        assert index.lang == lang
        hrefs = [u for t, _, u in index.urls if t == "a"]
        for lesson in lessons:
            assert f"{lesson.stem}.html" in hrefs
            page = Page(site / edition / f"{lesson.stem}.html")
            assert page.lang == lang, lesson
            title = site_tool.title_of(nbformat.read(lesson, as_version=4))
            plain = re.sub(r"[`*_]", "", title)
            assert plain in re.sub(r"<[^>]+>", "", index.text), (edition, title)
    assert "lang=\"zh-CN\"" in (site / "zh" / f"{ZH[0].stem}.html").read_text()


def test_each_lesson_page_has_previous_next_index_and_other_edition(site):
    for edition, lessons in (("en", EN), ("zh", ZH)):
        names = [p.stem for p in lessons]
        other = "zh" if edition == "en" else "en"
        twins = {p.stem for p in (ZH if edition == "en" else EN)}
        for position, name in enumerate(names):
            page = Page(site / edition / f"{name}.html")
            # top and bottom of the page
            assert page.links("index") == ["index.html"] * 2
            previous = [f"{names[position - 1]}.html"] * 2 if position else []
            following = [f"{names[position + 1]}.html"] * 2 \
                if position + 1 < len(names) else []
            assert page.links("prev") == previous, name
            assert page.links("next") == following, name
            if position == 0:
                assert page.count("span", "prev") == 2
            if name in twins:
                assert f"../{other}/{name}.html" in [u for _, _, u in page.urls]


def pairs_in(notebook):
    """How many C cells are followed directly by a Python cell."""
    cells = nbformat.read(notebook, as_version=4).cells
    tags = [set(c.metadata.get("tags", [])) if c.cell_type == "code" else set()
            for c in cells]
    count, i = 0, 0
    while i + 1 < len(cells):
        if "lang-c" in tags[i] and "lang-py" in tags[i + 1]:
            count, i = count + 1, i + 2
        else:
            i += 1
    return count


def test_c_and_python_pairs_side_by_side_and_cells_labelled(site):
    with_pairs = [p for p in EN if pairs_in(p)]
    assert with_pairs, "no lesson has a C cell followed by a Python cell"
    for notebook in with_pairs:
        page = Page(site / "en" / f"{notebook.stem}.html")
        assert page.count("div", "pair") == pairs_in(notebook), notebook.name
        # in a pair: the C cell first, then the Python cell
        first = next(i for i, (t, a) in enumerate(page.tags) if a.get("class") == "pair")
        cells = [a["class"] for t, a in page.tags[first:]
                 if "cell" in (a.get("class") or "").split()][:2]
        assert cells == ["cell code lang-c", "cell code lang-py"]
    page = Page(site / "en" / f"{with_pairs[0].stem}.html")
    labels = re.findall(r'<div class="label">([^<]*)</div>', page.text)
    assert "Python" in labels and any(label.startswith("C · ") for label in labels)


def test_solutions_collapsed_and_outputs_rendered(site):
    for notebook in EN:
        nb = nbformat.read(notebook, as_version=4)
        hidden = sum(c.metadata.get("jupyter", {}).get("source_hidden", False)
                     for c in nb.cells)
        text = (site / "en" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        assert text.count("<details>") == hidden, notebook.name  # no `open`: collapsed
        assert "\x1b" not in text, f"raw ANSI escape left in {notebook.name}"
        errors = sum(o.output_type == "error" for c in nb.cells for o in c.get("outputs", []))
        assert text.count('class="output error"') == errors, notebook.name
        assert "application/vnd.jupyter.widget" not in text


def test_ansi_colours_become_styles_and_text_is_escaped():
    html_text = site_tool.ansi_to_html(
        "\x1b[31mTypeError\x1b[39m: <b> \x1b[38;5;28;01mbold\x1b[39;00m \x1b[30;43mhi\x1b[0m x"
    )
    assert html_text == (
        '<span style="color:var(--ansi-red)">TypeError</span>: &lt;b&gt; '
        '<span style="color:rgb(0,135,0);font-weight:bold">bold</span> '
        '<span style="color:var(--ansi-black);background:var(--ansi-bg-yellow)">hi</span> x'
    )


def test_a_lesson_not_translated_yet(tmp_path):
    """An English lesson whose Chinese twin does not exist yet: no broken link."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "images", repo / "images")
    english, chinese = repo / "notebooks" / "en", repo / "notebooks" / "zh"
    english.mkdir(parents=True)
    chinese.mkdir(parents=True)
    for notebook in EN[:2]:
        shutil.copy(notebook, english)
    shutil.copy(ROOT / "notebooks" / "zh" / EN[0].name, chinese)
    out = site_tool.build(repo, tmp_path / "_site")
    pages, problems = check_site(out)
    assert problems == []
    lone = Page(out / "en" / f"{EN[1].stem}.html")
    assert lone.count("span", "other-edition") == 2  # said, not linked
    assert not any(u.startswith("../zh/") for _, _, u in lone.urls)
    zh_index = Page(out / "zh" / "index.html")
    assert f"../en/{EN[1].stem}.html" in [u for _, _, u in zh_index.urls]
    assert "zh/" + EN[1].stem not in " ".join(str(p) for p in pages)


def test_a_link_out_of_the_site_stops_the_build(tmp_path):
    repo = tmp_path / "repo"
    (repo / "notebooks" / "en").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · Test\n\nSee [the guide](../../docs/x.md).")]
    nbformat.write(nb, repo / "notebooks" / "en" / "99-test.ipynb")
    with pytest.raises(SystemExit, match="leads out of the site"):
        site_tool.build(repo, tmp_path / "_site")


def test_a_linked_repository_markdown_file_becomes_a_page(tmp_path):
    # Lesson 12 links benchmarks/README.md: the site carries it as a page of its
    # own, with GitHub's heading anchors (which the file's own links use).
    repo = tmp_path / "repo"
    (repo / "notebooks" / "en").mkdir(parents=True)
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks" / "README.md").write_text(
        "# Bench\n\nSee [below](#bulk_benchpy-c-vs-python).\n\n"
        "## bulk_bench.py: C vs Python\n\nFigures.\n", encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "# 99 · Test\n\nSee [the figures](../../benchmarks/README.md#bulk_benchpy-c-vs-python).")]
    nbformat.write(nb, repo / "notebooks" / "en" / "99-test.ipynb")
    out = site_tool.build(repo, tmp_path / "_site")
    lesson = (out / "en" / "99-test.html").read_text(encoding="utf-8")
    assert 'href="../files/benchmarks/README.html#bulk_benchpy-c-vs-python"' in lesson
    doc = (out / "files" / "benchmarks" / "README.html").read_text(encoding="utf-8")
    assert 'id="bulk_benchpy-c-vs-python"' in doc
    assert 'href="../../style.css"' in doc and 'href="../../index.html"' in doc


CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei"]
CJK_FAMILY = re.compile(r"CJK|Han|Hei|PingFang|YaHei|WenQuanYi|Song|Ming|Kai", re.I)


def test_the_stylesheet_names_cjk_fonts_for_chinese(site):
    """The Chinese pages ask for fonts made for Chinese, by name, for the body text."""
    css = (site / "style.css").read_text(encoding="utf-8")
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S))
    chinese = [body for selector, body in rules
               if re.search(r"body:lang\(zh\)", selector) and "font-family" in body]
    assert chinese, "no font-family rule for body:lang(zh)"
    families = re.findall(r'"([^"]+)"', chinese[0])
    assert set(CJK_FONTS) <= set(families), families
    assert chinese[0].rstrip().rstrip(";").endswith("sans-serif")
    # the lang attribute the rule keys on is on every Chinese page
    assert '<html lang="zh-CN">' in (site / "zh" / "index.html").read_text(encoding="utf-8")


def fonts_of(page, selector):
    """The platform fonts Chromium used for the text of the first node matching
    selector, with their glyph counts (the DevTools protocol: CSS domain)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


def test_a_lesson_page_in_headless_chromium(site, tmp_path):
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed"
    )
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    # A lesson with a figure and a C/Python pair.
    lesson = next(p for p in EN if pairs_in(p) and "images/" in p.read_text())
    url = (site / "en" / f"{lesson.stem}.html").as_uri()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requested = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url, wait_until="load")
            assert requested and all(u.startswith("file://") for u in requested), requested
            images = page.evaluate(
                "[...document.images].map(i => [i.getAttribute('src'),"
                " i.complete && i.naturalWidth])"
            )
            assert images and all(width > 0 for _, width in images), images
            assert any("images/" in src for src, _ in images)

            def pair_boxes():
                pair = page.locator(".pair").first
                # the pair's top 100 px below the top of the window: the shorter
                # cell (sticky while one scrolls the longer) is in its own place
                pair.evaluate("p => window.scrollTo(0,"
                              " p.getBoundingClientRect().top + window.scrollY - 100)")
                cells = pair.locator(":scope > .cell")
                return cells.nth(0).bounding_box(), cells.nth(1).bounding_box()

            c_box, py_box = pair_boxes()
            assert c_box["x"] + c_box["width"] <= py_box["x"], (c_box, py_box)
            assert abs(c_box["y"] - py_box["y"]) < 1
            assert c_box["width"] > 500 and py_box["width"] > 500
            page.screenshot(path=str(tmp_path / "wide.png"))

            page.set_viewport_size({"width": 700, "height": 1000})
            c_box, py_box = pair_boxes()
            assert c_box["y"] + c_box["height"] <= py_box["y"], (c_box, py_box)
            assert abs(c_box["x"] - py_box["x"]) < 1
            # nothing wider than the narrow screen: code scrolls inside its cell
            assert page.evaluate("document.documentElement.scrollWidth") <= 700

            # The same lesson in Chinese: its title drawn with a CJK font, not tofu.
            page.goto((site / "zh" / f"{lesson.stem}.html").as_uri(), wait_until="load")
            title = page.locator("main h1").first.inner_text()
            chinese = [c for c in title if "\u4e00" <= c <= "\u9fff"]
            assert chinese, title
            fonts = fonts_of(page, "main h1")
            cjk = sum(f["glyphCount"] for f in fonts if CJK_FAMILY.search(f["familyName"]))
            assert cjk >= len(chinese), (title, fonts)
        finally:
            browser.close()
