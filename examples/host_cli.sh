#!/usr/bin/env bash
# Search, compress, export and verify a model for THIS machine, from the command line.
#
#   bash examples/host_cli.sh            (after `make install`; about 3 minutes on 2 cores)
#
# 1. Time every block of the search space with the real LiteRT runtime (cached in hw_latency/).
# 2. Search under a 0.06 ms budget, prune to it, fine-tune, export ONNX + TFLite (fp32, int8),
#    time the artifacts here, and write the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGEAUTO=.venv/bin/edgeauto

$EDGEAUTO profile --device host --space fbnet-lite --dataset mnist5k
$EDGEAUTO run --device host --latency-ms 0.06 --dataset mnist5k --strategy random \
  --out runs/example-host
# The bundle: model.tflite, model_int8.tflite, model.onnx, labels.txt, preprocess.json,
# infer.py, manifest.json, report.md / report.html (Pareto chart, per-block latency).
ls runs/example-host
