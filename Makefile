# Two commands: `make run` and `make test`. Everything else is a helper of those.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
BUDGET  ?= 0.06
DATASET ?= mnist5k

.PHONY: install install-nni run run-cifar test lint format docs tables bench bench-prune bench-smbo bench-dnas bench-pipeline bench-all clean

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

# Every committed figure again: each benchmark that writes a results JSON, into
# benchmarks/results/ under the committed file's name and with the committed file's command
# (each JSON's own `command` field). Long: most of a day on 2 cores; not in CI. The durations
# below are rough guesses on 2 cores, except those marked "recorded" (the committed run's). The dated pipeline-*.json files
# are snapshots of earlier code, kept as history: the current code's run is pipeline.json.
# cifar10-example.json is assembled from `make run-cifar`'s run directory, not regenerated here.
R := benchmarks/results
bench-all: install
	# ~5 min (recorded: 327 s): LiteRT fp32 vs int8 on sampled archs
	$(PY) benchmarks/int8_vs_fp32.py --json $(R)/int8_vs_fp32.json
	# ~30 min each (table build + 100 archs x 5 rounds), the OFA ones ~1-2 h
	$(PY) benchmarks/latency_predictor.py --space fbnet-lite --dataset mnist5k --archs 100 --json $(R)/latency_predictor-fbnet-lite-fp32.json
	$(PY) benchmarks/latency_predictor.py --space fbnet-cifar --input-shape 3,32,32 --archs 100 --json $(R)/latency_predictor-fbnet-cifar-fp32.json
	$(PY) benchmarks/latency_predictor.py --space fbnet-cifar --input-shape 3,32,32 --archs 100 --runtimes litert-int8 --json $(R)/latency_predictor-fbnet-cifar-int8.json
	$(PY) benchmarks/latency_predictor.py --space ofa-mbv3 --input-shape 3,160,160 --archs 50 --runs 30 --rounds 5 --warmup 10 --runtimes litert --json $(R)/latency_predictor-ofa-mbv3-fp32-50archs.json
	$(PY) benchmarks/latency_predictor.py --space ofa-mbv3 --input-shape 3,160,160 --archs 100 --runs 30 --rounds 5 --warmup 10 --runtimes litert --work runs/bench-latency-archs --json $(R)/latency_predictor-ofa-mbv3-fp32.json
	# ~5 min each: pinned vs unpinned timing
	$(PY) benchmarks/pinning.py --json $(R)/pinning.json
	$(PY) benchmarks/pinning.py --space fbnet-lite --input-shape 1,28,28 --json $(R)/pinning-fbnet-lite.json
	# ~5 min: a reference net timed over 20 takes
	$(PY) benchmarks/reference_timing.py --json $(R)/reference_timing.json
	# ~1 h (make run alone, recorded: 117 s): then 3 budgets x 2 modes + the hand-made net
	$(PY) benchmarks/pipeline.py --budgets 3 --json $(R)/pipeline.json
	# ~2 h: 12 cifar-mbv2 archs, proxies vs final training
	$(PY) benchmarks/proxy_fidelity.py --archs 12 --json $(R)/proxy_fidelity.json
	# ~30 min: CIFAR-10 row (a), quick settings
	$(PY) benchmarks/real_task.py --quick --only a --json $(R)/real_task-quick.json
	# ~5 min (recorded, under load): MLP at 90%, 7 methods, epochs and equal-FLOPs budgets;
	# then the CNN appended to the same file (recorded: 43 min under load). sparse.py keeps the rows its
	# --json already holds, so the old file goes first.
	rm -f $(R)/sparse.json
	$(PY) benchmarks/sparse.py --models mlp --sparsities 0.9 --epochs 3 --methods imp-finetune,imp-slr,lottery,colt,snip,rigl,static --budget both --json $(R)/sparse.json
	$(PY) benchmarks/sparse.py --models cnn --sparsities 0.9 --epochs 3 --methods imp-finetune,imp-slr,lottery,colt,snip,rigl,static --budget both --json $(R)/sparse.json
	# ~30 min under load: growth inits, NOISY, SNL vs layer dropping, TEG
	$(PY) benchmarks/growth.py --seeds 2 --archs 30 --json $(R)/growth.json
	# ~1 h each: pruning criteria, SMBO vs random, DNAS (no committed file yet)
	$(PY) benchmarks/prune.py --json $(R)/prune.json
	$(PY) benchmarks/smbo.py --json $(R)/smbo.json
	$(PY) benchmarks/dnas.py --json $(R)/dnas.json
	# ~5 min: table build over SSH (loopback sshd) vs local
	$(PY) benchmarks/ssh_vs_local.py --json $(R)/ssh_vs_local.json

clean:
	rm -rf $(VENV) runs .pytest_cache site
