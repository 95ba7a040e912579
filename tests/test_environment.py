"""The conda environment (environment.yml) must pin what pyproject.toml pins."""

import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 / 3.10
    tomllib = pytest.importorskip("tomli")
yaml = pytest.importorskip("yaml", reason="PyYAML comes with JupyterLab")

# conda packages that have no PyPI counterpart in pyproject.toml
CONDA_ONLY = {"python", "c-compiler", "make", "pip"}


def pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def environment_pins():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    pins, pip_section = {}, None
    for dependency in environment["dependencies"]:
        if isinstance(dependency, dict):
            pip_section = dependency["pip"]
            continue
        name, _, version = dependency.partition("=")
        pins[name.lower()] = version
    for requirement in pip_section or []:  # packages conda-forge lacks, from PyPI
        name, equals, version = requirement.partition("==")
        if equals:
            pins[name.lower()] = version
    return pins, pip_section


def test_every_python_package_is_pinned_alike():
    conda, _ = environment_pins()
    pypi = pyproject_pins()
    conda_packages = {n: v for n, v in conda.items() if n not in CONDA_ONLY}
    assert conda_packages == pypi


def test_conda_environment_has_the_tools_lessons_need():
    conda, pip_section = environment_pins()
    assert CONDA_ONLY <= set(conda)
    assert pip_section[-1] == "-e .", "socklab itself comes from the repo"


def test_conda_python_satisfies_requires_python():
    conda, _ = environment_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"])
    major, minor = (int(part) for part in conda["python"].split("."))
    assert (major, minor) >= (int(minimum[1]), int(minimum[2]))
