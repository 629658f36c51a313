# Tender's developer entry points. On a fresh machine:
#   make demo   start a local two-cluster Kubernetes with sample workloads and Tender on it
#   make test   install everything the tests need, then run the whole suite
PYTHON ?= python3
VENV := .venv
USER_VENV := .venv-user
PY := $(VENV)/bin/python
DEMO_DIR ?= $(CURDIR)/.demo
DEBIAN_LISTS := tests/debian-packages.txt

.PHONY: deps debian-deps python-deps cluster-bin test test-unit demo demo-down bench bench-quick kftray-peer clean

deps: debian-deps python-deps cluster-bin

debian-deps:
	@scripts/install-debian-packages $(DEBIAN_LISTS)

python-deps: $(VENV)/.installed $(USER_VENV)/.installed

# What a user gets from `pipx install kube-tender`: a plain `pip install .`, no extras,
# no PyGObject, no compiler.  The desktop tests run the tray from here (issue 12);
# reinstalled whenever the package's sources change.
$(USER_VENV)/.installed: pyproject.toml $(shell find tray -name '*.py' 2>/dev/null)
	$(PYTHON) -m venv $(USER_VENV)
	$(USER_VENV)/bin/python -m pip install -q --upgrade pip
	$(USER_VENV)/bin/python -m pip install -q --force-reinstall --no-deps .
	$(USER_VENV)/bin/python -m pip install -q .
	@! $(USER_VENV)/bin/python -c 'import gi' 2>/dev/null || { echo "$(USER_VENV) has PyGObject" >&2; exit 1; }
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,tray,bench]'
	touch $@

# Builds the test cluster's binary (cached in ~/.cache/kube-tender, keyed by its sources).
cluster-bin:
	@tests/cluster/testcluster --print-binary >/dev/null

# lint-imports checks the layer rules in pyproject.toml ([tool.importlinter]);
# --no-cache leaves no cache folders in the work tree.
test: deps
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: python-deps
	$(PY) -m pytest -q tests/unit tests/ui

demo: deps
	@scripts/demo $(DEMO_DIR)

demo-down:
	@tests/cluster/testcluster down --dir $(DEMO_DIR)

bench: deps kftray-peer
	$(PY) -m bench --out bench/results/latest.json

bench-quick: deps kftray-peer
	$(PY) -m bench --quick --out bench/results/quick.json

# kftray's engine, the benchmark's fourth forwarder (bench/peers/kftray, issue 16): its Debian
# build packages, then `cargo build --release` (nice 19; CARGO_BUILD_JOBS=1 limits it to one job), cached in
# ~/.cache/kube-tender/kftray keyed by its sources (~8 min cold on 2 cores). Not part of `make test`.
kftray-peer:
	@scripts/install-debian-packages bench/peers/kftray/debian-packages.txt
	@bench/peers/kftray/build >/dev/null

clean:
	rm -rf $(VENV) $(USER_VENV) build .pytest_cache .hypothesis tests/artifacts
