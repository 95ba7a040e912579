"""A Chinese learner's path, from `make lab` to JupyterLab's menus (issue 15).

- `make lab` opens the Chinese edition when the locale for messages is Chinese
  (the first of LC_ALL, LC_MESSAGES, LANG that is set), the English one otherwise;
  `make lab-zh` always opens the Chinese one.  Read from `make -n`: what make
  would run, without running it.
- A lab on the Chinese edition uses a settings folder of its own whose
  translation setting is zh_CN; the English lab keeps the learner's settings,
  English by default (tools/jupyter/overrides.json).
- The pinned language pack is installed, and a real JupyterLab server started the
  way `make lab-zh` starts it serves Chinese menus; one started like `make lab`
  serves English ones.
- The Chinese documents the READMEs promise exist and are linked.
"""

import contextlib
import importlib.metadata
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
import urllib.request

import pytest

import labserver  # tests/labserver.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
PACK = "jupyterlab-language-pack-zh-CN"
TRANSLATION = "@jupyterlab/translation-extension"
ZH_LESSON = "notebooks/zh/00-start-here.ipynb"
EN_LESSON = "notebooks/en/00-start-here.ipynb"

needs_make = pytest.mark.skipif(MAKE is None, reason="no make on PATH")


def dry_run(target, **locale):
    """The `jupyter lab` command line `make -n target` prints, under the given
    locale variables (all three unset first, as on a machine that sets none)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LESSON", "MAKEFLAGS", "MFLAGS")}
    env.update(locale)
    result = subprocess.run([MAKE, "-n", "--no-print-directory", target], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = result.stdout.replace("\\\n", " ").splitlines()
    [lab] = [line for line in commands if "/jupyter lab " in line]
    return lab.split()


def settings_dir_of(command):
    """The --LabApp.user_settings_dir a lab command gives, or None."""
    found = [a.partition("=")[2] for a in command
             if a.startswith("--LabApp.user_settings_dir=")]
    return found[0] if found else None


@needs_make
@pytest.mark.parametrize("locale, lesson", [
    ({"LANG": "zh_CN.UTF-8"}, ZH_LESSON),
    ({"LANG": "zh_TW.UTF-8"}, ZH_LESSON),
    ({"LANG": "C.UTF-8"}, EN_LESSON),
    ({"LANG": "en_US.UTF-8"}, EN_LESSON),
    ({}, EN_LESSON),
    # LC_ALL, then LC_MESSAGES, then LANG: the first one set decides
    ({"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, EN_LESSON),
    ({"LC_ALL": "zh_CN.UTF-8", "LANG": "C.UTF-8"}, ZH_LESSON),
    ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_GB.UTF-8"}, ZH_LESSON),
    ({"LC_MESSAGES": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}, EN_LESSON),
    ({"LC_ALL": "", "LANG": "zh_CN.UTF-8"}, ZH_LESSON),  # set but empty: not set
], ids=lambda value: " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict) else None)
def test_make_lab_opens_the_edition_of_the_locale(locale, lesson):
    command = dry_run("lab", **locale)
    assert command[-1] == lesson
    if lesson == ZH_LESSON:
        assert settings_dir_of(command) == ".venv/share/socklab/lab-zh/user-settings"
    else:
        assert settings_dir_of(command) is None  # the learner's own settings


@needs_make
@pytest.mark.parametrize("lang", ["C.UTF-8", "en_US.UTF-8", "zh_CN.UTF-8"])
def test_make_lab_zh_always_opens_the_chinese_edition(lang):
    command = dry_run("lab-zh", LANG=lang)
    assert command[-1] == ZH_LESSON
    assert settings_dir_of(command) == ".venv/share/socklab/lab-zh/user-settings"


@needs_make
def test_make_help_names_lab_zh():
    result = subprocess.run([MAKE, "--no-print-directory", "help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert re.search(r"^make lab-zh\s", result.stdout, re.M), result.stdout


def read_settings(path):
    """A .jupyterlab-settings file: JSON5 (comments allowed), as JupyterLab reads it."""
    json5 = pytest.importorskip("json5", reason="json5 comes with JupyterLab's server")
    return json5.loads(pathlib.Path(path).read_text(encoding="utf-8"))


def test_the_chinese_settings_name_zh_CN_and_english_is_the_default():
    assert read_settings(ROOT / "tools" / "jupyter" / "zh_CN.jupyterlab-settings") == \
        {"locale": "zh_CN"}
    overrides = json.loads((ROOT / "tools" / "jupyter" / "overrides.json").read_text())
    assert overrides[f"{TRANSLATION}:plugin"] == {"locale": "en"}


def test_the_language_pack_is_pinned_and_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [pin] = [r for r in project["dependencies"] if r.lower().startswith(PACK.lower() + "==")]
    assert importlib.metadata.version(PACK) == pin.partition("==")[2]
    packs = importlib.metadata.entry_points(group="jupyterlab.languagepack")
    assert "zh_CN" in {entry.name for entry in packs}


# -- a real JupyterLab server, started as `make lab` and `make lab-zh` start it --------

def made_by_make():
    """The Chinese settings folder that make's setup made in this .venv, or skip."""
    folder = ROOT / ".venv" / "share" / "socklab" / "lab-zh" / "user-settings"
    if pathlib.Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not the .venv that make sets up (conda?): no make-made settings")
    plugin = folder / TRANSLATION / "plugin.jupyterlab-settings"
    assert plugin.is_file(), f"{plugin} missing: run make (its setup makes it)"
    assert plugin.read_bytes() == \
        (ROOT / "tools" / "jupyter" / "zh_CN.jupyterlab-settings").read_bytes(), \
        "the .venv's Chinese settings are stale: run make"
    return folder


def get(url, token, path):
    request = urllib.request.Request(f"{url}{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_a_real_lab_serves_chinese_menus_to_the_chinese_edition_only(tmp_path):
    zh_settings = made_by_make()
    with contextlib.ExitStack() as started:
        servers = {}
        for name, extra in (("en", []), ("zh", [f"--LabApp.user_settings_dir={zh_settings}"])):
            servers[name] = labserver.start(ROOT, tmp_path / name, extra)
            started.callback(labserver.stop, *servers[name][:2])
        urls = {name: url for name, (_, _, _, url) in servers.items()}
        tokens = {name: token for name, (_, _, token, _) in servers.items()}
        plugin = urllib.parse.quote(f"{TRANSLATION}:plugin")
        # What the page's translator reads: the user's setting over the default.
        chosen = {}
        for name in servers:
            setting = get(urls[name], tokens[name], f"/lab/api/settings/{plugin}")
            default = setting["schema"]["properties"]["locale"]["default"]
            chosen[name] = setting["settings"].get("locale", default)
        assert chosen == {"en": "en", "zh": "zh_CN"}
        # The pack is there, and its menu bar is Chinese.
        packs = get(urls["zh"], tokens["zh"], "/lab/api/translations/")
        assert "zh_CN" in packs["data"], packs
        chinese = get(urls["zh"], tokens["zh"], "/lab/api/translations/zh_CN")
        menus = chinese["data"]["jupyterlab"]
        assert [menus[f"menu\x04{item}"] for item in ("File", "Edit", "Run", "Kernel")] == \
            [["文件"], ["编辑"], ["运行"], ["内核"]]


# -- the Chinese documents ------------------------------------------------------------

ZH_DOCS = ["docs/glossary.zh-CN.md", "docs/instructor.zh-CN.md", "docs/hub.zh-CN.md",
           "docs/cheatsheet.zh-CN.md"]


def links_of(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    return set(re.findall(r"\]\(([^)\s#]+)", text))


def test_the_chinese_readme_links_the_chinese_documents_and_names_the_blog_post():
    readme = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    links = links_of("README.zh-CN.md")
    assert set(ZH_DOCS) <= links, set(ZH_DOCS) - links
    assert "make lab-zh" in readme
    # The seed is named by its own title (seed/python-socket-blog-zh.txt).
    assert "《python的socket编程》" in readme
    # Commands and links lead to the Chinese edition, never the English one.
    assert "notebooks/en/" not in readme.replace("](notebooks/en)", "")
    assert "notebooks/en/" not in (ROOT / "docs" / "instructor.zh-CN.md").read_text()


def test_the_english_readme_links_the_cheatsheet_and_lab_zh():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/cheatsheet.md" in links_of("README.md")
    assert "make lab-zh" in readme


def test_chinese_documents_link_chinese_documents():
    """A Chinese page that links a guide links its Chinese version, unless the
    link says it leads to the English one ("[English](...)", "英文版 [README.md]")."""
    for path in ["README.zh-CN.md", *ZH_DOCS]:
        text = (ROOT / path).read_text(encoding="utf-8")
        for link in re.finditer(r"\[([^\]]*)\]\(([^)\s#]+)", text):
            label, target = link.groups()
            target_path = (ROOT / path).parent / target
            twin = target_path.with_name(target_path.name.replace(".md", ".zh-CN.md"))
            if target.endswith(".md") and not target.endswith(".zh-CN.md") and twin.exists():
                said = label == "English" or "英文" in text[max(0, link.start() - 6):link.start()]
                assert said, f"{path} links {target}; {twin.name} exists"


def test_the_cheatsheets_cover_the_same_calls():
    calls = ["socket", "bind", "listen", "accept", "connect", "send", "recv", "sendto",
             "recvfrom", "close", "shutdown", "setsockopt", "getaddrinfo", "poll",
             "select", "epoll_wait", "htons", "inet_pton"]
    for path in ("docs/cheatsheet.md", "docs/cheatsheet.zh-CN.md"):
        text = (ROOT / path).read_text(encoding="utf-8")
        missing = [c for c in calls if f"{c}(" not in text]
        assert missing == [], (path, missing)
    english = (ROOT / "docs" / "cheatsheet.md").read_text(encoding="utf-8")
    chinese = (ROOT / "docs" / "cheatsheet.zh-CN.md").read_text(encoding="utf-8")
    # the same code in both: every inline code span of one is in the other
    spans = lambda text: set(re.findall(r"`([^`]+)`", text))  # noqa: E731
    assert spans(english) == spans(chinese), spans(english) ^ spans(chinese)
    # each lesson link resolves in its own edition
    for text, edition in ((english, "en"), (chinese, "zh")):
        for target in re.findall(r"\]\((\.\./notebooks/[^)#]+)", text):
            assert f"/notebooks/{edition}/" in target, target
            assert (ROOT / "docs" / target).resolve().is_file(), target


def glossary_rows(path):
    """The (English, 中文) columns of every table row of a glossary page."""
    rows = []
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (line.startswith("|") and len(cells) >= 2 and not set(line) <= set("|- ")
                and cells[0] != "English"):  # a header row
            rows.append((cells[0], cells[1]))
    return rows


def test_the_two_glossaries_name_the_same_terms():
    assert glossary_rows("docs/glossary.md") == glossary_rows("docs/glossary.zh-CN.md")


def test_the_glossary_agrees_with_itself():
    """One gloss per term: the accept queue is never glossed （backlog）, race is 竞态."""
    for path in ("docs/glossary.md", "docs/glossary.zh-CN.md"):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert "全连接队列（backlog）" not in text, path
        assert "全连接队列（accept queue）" in text and "半连接队列（SYN queue）" in text, path
        assert "竞争" not in text and "竞态（race condition）" in text, path
    rows = dict(glossary_rows("docs/glossary.md"))
    assert rows["accept queue"] == "全连接队列" and rows["SYN queue"] == "半连接队列"
    english = [english for english, _ in glossary_rows("docs/glossary.md")]
    assert len(english) == len(set(english)), "a term listed twice"
