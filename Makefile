# socklab — two commands: `make lab` to learn, `make test` to check everything.
# Each target sets up .venv by itself first (only when it is missing or stale).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp is newer than pyproject.toml once the venv matches it.
READY  := $(VENV)/.socklab-ready
# Which edition `make lab` opens: the Chinese one when the learner's locale for
# messages is Chinese.  That locale is the first of LC_ALL, LC_MESSAGES and LANG
# that is set and not empty (POSIX's order), so LC_ALL=C wins over LANG=zh_CN.UTF-8.
# `make lab-zh` opens the Chinese edition whatever the locale; LESSON=... any lesson.
MESSAGES_LOCALE := $(firstword $(LC_ALL) $(LC_MESSAGES) $(LANG))
EDITION := $(if $(filter zh%,$(MESSAGES_LOCALE)),zh,en)
LESSON  := notebooks/$(EDITION)/00-start-here.ipynb
# A lab on a Chinese lesson shows JupyterLab's own menus in Chinese (the pinned
# jupyterlab-language-pack-zh-CN).  The language is a JupyterLab user setting, so
# that lab gets a settings folder of its own, made by the setup below from
# tools/jupyter/zh_CN.jupyterlab-settings; any other lab keeps the learner's own
# settings (English by default: tools/jupyter/overrides.json).
ZH_SETTINGS := $(VENV)/share/socklab/lab-zh/user-settings
LAB_SETTINGS = $(if $(filter notebooks/zh/%,$(LESSON)),--LabApp.user_settings_dir=$(ZH_SETTINGS))
# Jupyter refuses to run as root unless told; containers and CI often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL  := --nbval --nbval-current-env --nbval-cell-timeout=60 \
          --nbval-sanitize-with tools/nbval-sanitize.cfg
# pytest-xdist workers: more than the cores, since most of a lesson's time is
# spent waiting on sockets and timeouts, not computing.  --dist loadfile sends
# each file to one worker, a notebook's cells in order to one kernel; conftest.py
# spreads the long independent tests of a few files over the workers.
JOBS   ?= 6
PARALLEL := -n $(JOBS) --dist loadfile
UV     := uv==0.13.9

.PHONY: help lab lab-zh test test-fast test-workshop test-pythons test-image execute bench doctor site clean

help:
	@echo "make lab      set up .venv if needed, then open JupyterLab on lesson 00"
	@echo "             (the Chinese edition when LC_ALL / LC_MESSAGES / LANG is zh_*)"
	@echo "make lab-zh   the same on the Chinese edition (中文版), JupyterLab's menus in Chinese"
	@echo "make test     set up .venv if needed, then run every test and every notebook"
	@echo "make test-fast  socklab's own tests only (no lesson runs, no workshop tests)"
	@echo "make test-pythons  install and test on each Python version found (slow; PYTHONS=... to choose)"
	@echo "make test-image  build the course's container image and run lessons in it (needs Docker)"
	@echo "make execute  re-run the lessons and store their outputs (after changing one)"
	@echo "make bench    C vs Python: echo server, bulk transfer vs iperf3, small messages, Nagle"
	@echo "make doctor   what works on this machine (gcc, strace, root, sysctls)"
	@echo "make site     the lessons and their stored outputs as web pages, in _site/"
	@echo "make clean    remove .venv and caches"

$(READY): pyproject.toml tools/jupyter/overrides.json tools/jupyter/zh_CN.jupyterlab-settings tools/hub/package-lock.json socklab/kernel.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "socklab needs Python 3.11 or newer; '$(PYTHON)' is older. Try: make lab PYTHON=python3.12"; exit 1; }
	@if ! $(PY) -c 'import sys' 2>/dev/null; then \
	  echo "==> creating $(VENV) with $$($(PYTHON) --version)"; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	@echo "==> installing pinned packages and socklab into $(VENV)"
	@# uv installs the same pinned packages as pip in a fraction of the time;
	@# where uv cannot be had, pip does it (slower, same result).  Both compile
	@# the packages' bytecode now, once (pip does by default): where
	@# PYTHONDONTWRITEBYTECODE is set, as on many CI machines, every kernel and
	@# test process would otherwise compile its imports again, about 3 s of CPU each.
	@if $(PY) -m pip install --disable-pip-version-check -q '$(UV)'; then \
	  $(PY) -m uv pip install --compile-bytecode --python $(PY) -e '.[test]'; \
	else \
	  $(PY) -m pip install --disable-pip-version-check --progress-bar on -e '.[test]'; \
	fi
	@# The lessons' kernel, "Python 3 (socklab)": a network of its own (socklab/kernel.py)
	@$(PY) -m socklab.kernel install
	@# JupyterLab's news and update pop-ups: off (see tools/jupyter/overrides.json)
	@mkdir -p $(VENV)/share/jupyter/lab/settings
	@cp tools/jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@# The Chinese lab's own settings folder: JupyterLab's menus in Chinese (above)
	@mkdir -p $(ZH_SETTINGS)/@jupyterlab/translation-extension
	@cp tools/jupyter/zh_CN.jupyterlab-settings \
	  $(ZH_SETTINGS)/@jupyterlab/translation-extension/plugin.jupyterlab-settings
	@# JupyterHub's proxy (docs/hub.md, tests/test_hub.py) is a Node.js program;
	@# the lessons do not need it, so a failed install does not stop `make lab`.
	@if command -v npm >/dev/null 2>&1; then \
	  echo "==> installing configurable-http-proxy into tools/hub/node_modules (npm ci)"; \
	  (cd tools/hub && npm ci --no-audit --no-fund --loglevel=error) || \
	    echo "==> npm ci failed: the lessons work, tests/test_hub.py will be skipped"; \
	else \
	  echo "==> no npm: tests/test_hub.py will be skipped (Debian: apt-get install nodejs npm)"; \
	fi
	@touch $@
	@echo "==> $(VENV) is ready"

lab: $(READY)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) \
	  --ServerApp.ip=127.0.0.1 \
	  --ServerApp.root_dir=. \
	  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  $(LAB_SETTINGS) $(LESSON)

# The Chinese edition, whatever the locale (a target-specific LESSON: `lab` runs
# with it, and so picks the Chinese settings folder too)
lab-zh: LESSON = notebooks/zh/00-start-here.ipynb
lab-zh: lab

# Everything in one run on $(JOBS) workers: socklab's tests; the English
# lessons under nbval, each run twice in one kernel (conftest.py); the
# workshop tests (twenty learners, a JupyterHub, a browser), started first,
# whose waiting overlaps the rest -- a busy machine, as a shared hub is.  The
# Chinese lessons have the same code cells and outputs, byte for byte
# (tests/test_editions.py), so they are not executed again.
test: $(READY)
	$(PY) -m pytest $(PARALLEL) tests notebooks/en $(NBVAL)

# The workshop tests alone (each loads the whole machine)
test-workshop: $(READY)
	$(PY) -m pytest -m workshop tests

# socklab's own tests only: no lesson executed, no workshop test
test-fast: $(READY)
	$(PY) -m pytest $(PARALLEL) -m "not workshop and not notebooks" tests

# Does each Python version that pyproject.toml claims install and pass?  A fresh
# venv per version, in a temporary copy of the project (tools/test_pythons.py).
# Not part of `make test`: it installs everything once per version.
test-pythons:
	$(PYTHON) tools/test_pythons.py $(PYTHONS)

# The course in a container (Dockerfile; README, "macOS and Windows"): make a
# Debian base image where Docker Hub is out of reach, build the image, then run
# the doctor and lessons in containers with and without the README's flag, as
# uid 1000, and JupyterLab on a published port (tools/image/test-image.sh).
# Needs a running Docker engine, and root for the base image.  Not part of
# `make test`: .ci/run runs it after.  It needs no .venv on this side.
test-image:
	NBVAL="$(NBVAL)" tools/image/test-image.sh

execute: $(READY)
	$(PY) tools/execute.py $(if $(NB),$(NB),notebooks/en/*.ipynb)

bench: $(READY)
	$(PY) benchmarks/echo_bench.py
	$(PY) benchmarks/bulk_bench.py

doctor: $(READY)
	$(PY) -m socklab doctor

# Static HTML of both editions, stored outputs as they are (nothing is run)
site: $(READY)
	$(PY) tools/site.py --out _site

clean:
	rm -rf $(VENV) .pytest_cache socklab.egg-info _site tools/hub/node_modules
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
