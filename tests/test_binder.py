"""Binder builds from environment.yml, apt.txt and postBuild: keep them honest."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_binder_system_package_is_installed_by_ci_too():
    # What Binder learners get from apt.txt must be what CI tests with.
    binder = (ROOT / "apt.txt").read_text().split()
    ci_script = (ROOT / ".ci" / "run").read_text()
    installed = set(re.search(r"apt-get install[^\n]*\n((?:.*\\\n)*.*)", ci_script)[1]
                    .replace("\\", " ").split())
    assert binder, "apt.txt lists no package"
    assert set(binder) <= installed, set(binder) - installed


def test_post_build_is_executable_and_installs_the_jupyterlab_settings():
    post_build = ROOT / "postBuild"
    assert post_build.stat().st_mode & 0o111, "repo2docker runs postBuild only if executable"
    assert "tools/jupyter/overrides.json" in post_build.read_text()
