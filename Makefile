# The kit's jobs. `make install` once, then any of the targets below.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KIT := $(VENV)/bin/gradekit
# nbgrader runs `alembic` from PATH: the venv's tools come first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install test solution source release autograde report gradescope bench clean distclean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap (the grading sandbox)"; \
	    apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
	      || echo "warning: could not install bubblewrap; grading will run without the sandbox (see README)"; \
	  else echo "warning: bubblewrap (bwrap) is not installed; grading will run without the sandbox (see README)"; fi; }
	touch $@

test: install
	$(PY) -m pytest -q

solution: install
	$(KIT) solution

source: install
	$(KIT) source

release: install
	$(KIT) release

autograde: install
	$(KIT) autograde

gradescope: install
	$(KIT) gradescope

bench: install
	$(PY) tests/bench.py $(BENCH)

clean:
	rm -rf build *.egg-info .pytest_cache bench-course
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
