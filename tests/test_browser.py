"""A real browser runs a lesson in a real JupyterLab, as a learner would.

The test starts JupyterLab (this environment's) on 127.0.0.1, port 0, with a token
of its own, on a *copy* of the lessons in a temporary folder -- JupyterLab saves
notebooks by itself, and the stored outputs in the repository must come only from
`make execute`.  Headless Chromium (Debian's, driven by Playwright's Python
package; never a browser download) opens lesson 00, runs all cells, and checks:
the cells that show an error are exactly those tagged raises-exception (a
warning on stderr is no error), every cell ran, the chat console's widgets
rendered and a message sent through them comes back.  Then, in the same lab and
browser, lesson 00 of the Chinese edition with the settings `make lab-zh` uses:
JupyterLab's menus are Chinese, and the lesson's title is drawn with a CJK font
(Chromium's own account of the fonts it used), not as empty boxes.
"""

import pathlib
import re
import shutil

import nbformat
import pytest

import labserver  # tests/labserver.py
import nbcompare  # tests/nbcompare.py: which cells nbval expects to raise

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LESSON = "00-start-here.ipynb"
ZH_SETTINGS = ROOT / "tools" / "jupyter" / "zh_CN.jupyterlab-settings"  # as make lab-zh
# Font families that carry Chinese glyphs (Noto / Source Han, PingFang, YaHei, ...)
# The first heading of the notebook in the tab shown
ZH_HEADING = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedMarkdown h1"
CJK_FAMILY = re.compile(r"CJK|Han|Hei|PingFang|YaHei|WenQuanYi|Song|Ming|Kai", re.I)
CHAT = "socklab.ui.chat(rev)"  # the cell with the lesson's chat console
# How long the page may take to show a lesson and its kernel to start: make
# test starts this test together with twenty learners' kernels and a hub on two
# cores, where a kernel took more than 60 s to say Idle once.
STARTUP_MS = 180_000
# Without these flags Chromium keeps trying to reach Google's servers.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab on a copy of both editions and the figures; yields its URL."""
    home = tmp_path_factory.mktemp("lab")
    course = home / "course"  # the same layout as the repository: lessons link ../../images
    shutil.copytree(ROOT / "notebooks" / "en", course / "notebooks" / "en")
    shutil.copytree(ROOT / "notebooks" / "zh", course / "notebooks" / "zh")
    shutil.copytree(ROOT / "images", course / "images")
    # Render every cell, not only those in view, so the test can see them all.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    # window.jupyterapp, as JupyterLab's own browser tests (Galata) use it: the
    # test reads which outputs are errors from the notebook's model.
    server, log, token, url = labserver.start(course, home,
                                              ["--LabApp.expose_app_in_browser=True"])
    try:
        yield url, token, home
    finally:
        labserver.stop(server, log)


# JavaScript: what the page shows.  The errors come from the open notebook's
# model, as the page renders an error and a stderr stream alike, so its HTML
# cannot tell them apart.  The prompts are those of the first `upTo` code cells
# (all of them when null): [ ]: not run, [*]: running or waiting, [7]: ran.
# Cells whose code is collapsed, like the solutions, show no prompt.
PAGE_STATE = """(upTo) => {
    const model = window.jupyterapp.shell.currentWidget.content.model.cells;
    const errors = [];
    for (let index = 0; index < model.length; index++) {
        const cell = model.get(index);
        for (let n = 0; cell.type === "code" && n < cell.outputs.length; n++) {
            const output = cell.outputs.get(n).toJSON();
            if (output.output_type === "error")
                errors.push({index, id: cell.id, text: `${output.ename}: ${output.evalue}`});
        }
    }
    const prompts = [...document.querySelectorAll(".jp-CodeCell")]
        .slice(0, upTo ?? undefined)
        .map(cell => cell.querySelector(".jp-InputArea-prompt")).filter(Boolean)
        .map(node => node.textContent.trim());
    return {errors, prompts};
}"""
RAN = r"^\[\d+\]:$"
# A run has ended: each of those cells has run, or it stopped at an error in a
# cell that expects none (JupyterLab's Run All stops there).
RUN_ENDED = f"""({{upTo, expected}}) => {{
    const {{errors, prompts}} = ({PAGE_STATE})(upTo);
    if (prompts.every(prompt => /{RAN}/.test(prompt))) return true;
    return !prompts.some(prompt => prompt.includes("*"))
        && errors.some(error => !expected.includes(error.id));
}}"""


def _wait_for_the_run(page, expected, up_to=None, limit=180):
    """Wait (at most limit seconds) until a run of the first up_to code cells
    has ended; returns what the page shows then: {"errors": [], "prompts": []}."""
    try:
        page.wait_for_function(RUN_ENDED, arg={"upTo": up_to, "expected": list(expected)},
                               timeout=limit * 1000)
    except playwright_api.TimeoutError:
        pass  # _assert_ran_as_tagged says what did not happen
    return page.evaluate(PAGE_STATE, up_to)


def _first_line(cell):
    return (cell.source.splitlines() or [""])[0]


def _assert_ran_as_tagged(shown, nb, expected, finished):
    """The cells that show an error are those tagged for one (once finished, all
    of them: before, the tagged cells still to run show none), and every cell ran."""
    wrong = [
        f"cell {error['index']} ({_first_line(nb.cells[error['index']])!r}) "
        f"showed an error it is not tagged for: {error['text']}"
        for error in shown["errors"] if error["id"] not in expected
    ]
    if finished:
        showing = {error["id"] for error in shown["errors"]}
        wrong += [
            f"cell {index} ({_first_line(nb.cells[index])!r}) is tagged "
            "raises-exception but showed no error"
            for id_, index in expected.items() if id_ not in showing
        ]
    assert wrong == [], "\n".join(wrong)
    prompts = shown["prompts"]
    assert all(re.fullmatch(RAN, prompt) for prompt in prompts), \
        f"not every cell ran; prompts: {' '.join(prompts)}"


def _menu(page, menu, item, select=None):
    """Select a cell (by clicking its prompt), then click menu > item."""
    if select is not None:
        select.locator(".jp-InputPrompt").click()
    page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def _use_chat_console(page, chat_cell):
    """Run the console's cell, send a message through it, see the reply."""
    chat_cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")  # run this cell, stay on it
    console = chat_cell.locator(".widget-vbox:has(button:text-is('Send'))")
    console.wait_for(timeout=30_000)
    console.locator("input[type='text']").fill("from the browser")
    console.locator("button:text-is('Send')").click()
    # The lesson's console talks to its `reverse` server.
    chat_cell.locator("text=received b'resworb eht morf'").wait_for(timeout=20_000)


def test_lesson_00_runs_in_a_real_browser(lab):
    url, token, home = lab
    nb = nbformat.read(ROOT / "notebooks" / "en" / LESSON, as_version=4)
    expected = {cell.id: index for index, cell in enumerate(nb.cells)
                if cell.cell_type == "code" and nbcompare.options(cell)["check_exception"]}
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    chat_number = next(n for n, cell in enumerate(code) if CHAT in cell.source)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/notebooks/en/{LESSON}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=STARTUP_MS)
            page.wait_for_selector("text=Python 3 (socklab) | Idle", timeout=STARTUP_MS)
            # Clear the stored outputs first: a fresh run gives the same prompt
            # numbers, so only cleared prompts show that the cells really ran.
            page.wait_for_selector(".jp-InputArea-prompt:text-is('[1]:')")  # stored outputs shown
            page.click(".lm-MenuBar-itemLabel:text-is('Edit')")
            page.click(".lm-Menu-itemLabel:text-is('Clear Outputs of All Cells')")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                ".every(n => n.textContent.trim() === '[ ]:')"
            )
            # Run the lesson up to its chat console, use the console, then run the
            # rest: the lesson's last cell stops every server, the console's too.
            chat_cell = page.locator(f".jp-CodeCell:has-text('{CHAT}')")
            _menu(page, "Run", "Run All Above Selected Cell", select=chat_cell)
            shown = _wait_for_the_run(page, expected, up_to=chat_number)
            _assert_ran_as_tagged(shown, nb, expected, finished=False)
            _use_chat_console(page, chat_cell)
            next_cell = page.locator(".jp-CodeCell:has-text('socklab.running()')").first
            _menu(page, "Run", "Run Selected Cell and All Below", select=next_cell)
            shown = _wait_for_the_run(page, expected)
            _assert_ran_as_tagged(shown, nb, expected, finished=True)
            assert "received b'resworb eht morf'" in chat_cell.inner_text()
            broken_images = page.evaluate(
                "[...document.querySelectorAll('.jp-Notebook img')]"
                ".filter(i => i.complete && i.naturalWidth === 0).map(i => i.alt || i.src)"
            )
            assert broken_images == []
            page.screenshot(path=str(home / "lesson-00.png"))
        finally:
            browser.close()


def test_a_chinese_lesson_in_chinese_menus_and_a_cjk_font(lab):
    url, token, home = lab
    # The translation setting of `make lab-zh`'s settings folder (Makefile), in this
    # lab's settings: the server reads it when the page asks, so this page (and any
    # later one) gets Chinese menus.  The English test above has had its page.
    plugin = home / "settings" / "@jupyterlab" / "translation-extension"
    plugin.mkdir(parents=True, exist_ok=True)
    shutil.copy(ZH_SETTINGS, plugin / "plugin.jupyterlab-settings")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # ?reset: a fresh workspace, not the English test's tabs (whose lesson
            # would still be open, and rendered, behind this one)
            page.goto(f"{url}/lab/tree/notebooks/zh/{LESSON}?reset&token={token}")
            heading = page.locator(ZH_HEADING).first
            heading.wait_for(timeout=STARTUP_MS)
            menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
            assert {"文件", "编辑", "运行", "内核"} <= set(menus), menus
            # the heading's own text (its anchor link "¶" is a child element)
            text = heading.evaluate(
                "h => [...h.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)"
                ".map(n => n.textContent).join('')")
            chinese = [c for c in text if "\u4e00" <= c <= "\u9fff"]
            assert "从这里开始" in text, heading.evaluate("h => h.outerHTML")
            # Chromium's DevTools protocol: which platform fonts drew the heading's
            # text, and how many glyphs each.
            cdp = page.context.new_cdp_session(page)
            cdp.send("DOM.enable")
            cdp.send("CSS.enable")
            root = cdp.send("DOM.getDocument")["root"]["nodeId"]
            node = cdp.send("DOM.querySelector", {
                "nodeId": root, "selector": ZH_HEADING})["nodeId"]
            fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            cjk = sum(f["glyphCount"] for f in fonts if CJK_FAMILY.search(f["familyName"]))
            assert cjk >= len(chinese), (
                f"{text!r} drawn with {fonts}: no CJK font for its {len(chinese)} Chinese "
                "characters (Debian: apt-get install fonts-noto-cjk)")
            page.screenshot(path=str(home / "lesson-00-zh.png"))
        finally:
            browser.close()
