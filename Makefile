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

# nbgrader's exchange, where release_assignment, fetch_assignment, submit, collect and the feedback
# commands meet: the folder nbgrader is configured with (c.Exchange.root in grader_config.py or in
# any nbgrader_config.py nbgrader reads; its default is /usr/local/share/nbgrader/exchange).
# Everyone may write there and no one may remove or rename another's files (mode 1777); then
# `nbgrader list` checks it, as formgrader does.
.PHONY: exchange
EXCHANGE_ROOT := from nbgrader.apps import ListApp; from nbgrader.exchange.default import Exchange; \
  app = ListApp(); app.initialize([]); print(Exchange(config=app.config).root)
exchange: install
	@root="$$($(PY) -c '$(EXCHANGE_ROOT)')" && [ -n "$$root" ] || exit 1; \
	{ mkdir -p "$$root" && chmod 1777 "$$root"; } || { echo "make exchange: could not make $$root writable by everyone:" \
	  "run it as root, or set c.Exchange.root in grader_config.py to a folder you may use" >&2; exit 1; }; \
	echo "the exchange is $$root (mode 1777: everyone writes there, no one removes another's files)"
	$(VENV)/bin/nbgrader list --log-level=ERROR

bench: install
	$(PY) tests/bench.py $(BENCH)

clean:
	rm -rf build *.egg-info .pytest_cache bench-course
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
