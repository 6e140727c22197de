# Two commands: `make run` and `make test`. Everything else is a helper of those.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
BUDGET  ?= 0.06
DATASET ?= mnist5k

.PHONY: install install-nni run run-cifar test lint format docs tables bench bench-prune bench-smbo bench-dnas bench-pipeline clean

install: $(STAMP)

# Re-installs only when the pins or the project metadata change (idempotent, fast when done).
$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -r requirements/lock.txt
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements/nodeps.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Optional: NNI 3.0 as a peer in benchmarks/prune.py (never needed by the package or tests).
install-nni: install
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements/nni.txt

run: install
	$(VENV)/bin/edgeauto run --device host --latency-ms $(BUDGET) --dataset $(DATASET) --out runs/default

# The real task: CIFAR-10 from ../shared/data, test accuracy printed at the end.
run-cifar: install
	bash examples/cifar10.sh

# Two workers (pytest-xdist), one per core; a file's tests stay on one worker (their fixtures
# are built once). Timing tests drop disturbed rounds, so the other worker does not move them.
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check edgeauto tests benchmarks examples
	$(VENV)/bin/ruff format --check edgeauto tests benchmarks examples

format: install
	$(VENV)/bin/ruff format edgeauto tests benchmarks examples
	$(VENV)/bin/ruff check --fix edgeauto tests benchmarks examples

# The docs site (docs/, mkdocs.yml) into site/; --strict: a broken link or page fails. Offline.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -f mkdocs.yml -d site

# The published tables shipped in hw_latency/, imported again from ../shared/data/luts with
# `edgeauto lut import` (provenance: origin, SHA-256 of the source bytes, units). The output
# is deterministic (the date is the source's), so this reproduces the committed files; the
# FBNet Pi 4 table (TensorFlow 2 eager) is converted to LiteRT with the overhead model kept in
# hw_latency/conversions/ (edgeauto/latency/conversion.py). Host tables stay out of git.
LUTS     ?= ../shared/data/luts
EDGEAUTO ?= $(VENV)/bin/edgeauto
tables: install
	EDGEAUTO_TABLES=hw_latency $(EDGEAUTO) lut import --format ofa-yaml $(LUTS)/ofa-note10 \
		--device samsung-note10 --space ofa-mbv3 --input-shape 3,224,224 --classes 1000 \
		--origin mit-han-lab/once-for-all@698a5c1/tutorial/checkpoints/latency_table@note10
	EDGEAUTO_TABLES=hw_latency $(EDGEAUTO) lut import --format fbnet-json \
		$(LUTS)/fbnet-raspi4/lookup_table_pi.json --device raspberry-pi-4 --space fbnet-cifar \
		--input-shape 3,32,32 --classes 10 --origin jh88/fbnet@5bd12ab/lookup_table_pi.json \
		--convert-to litert

bench: install
	$(PY) benchmarks/latency_predictor.py --json runs/bench-latency.json

bench-prune: install
	$(PY) benchmarks/prune.py --json runs/bench-prune.json

bench-smbo: install
	$(PY) benchmarks/smbo.py --json runs/bench-smbo.json

bench-dnas: install
	$(PY) benchmarks/dnas.py --json runs/bench-dnas.json

bench-pipeline: install
	$(PY) benchmarks/pipeline.py --json runs/bench-pipeline.json

clean:
	rm -rf $(VENV) runs .pytest_cache site
