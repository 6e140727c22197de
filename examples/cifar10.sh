#!/usr/bin/env bash
# The real task: CIFAR-10 from the shared zip, searched, pruned and verified for THIS machine.
#
#   bash examples/cifar10.sh        (or `make run-cifar`; after `make install`)
#
# Of the 50,000 training JPEGs: 40,000 train, 5,000 val (every choice), 5,000 test
# (read once, at the end). Budget 0.5 ms of LiteRT fp32 on one pinned core. Override with
# CIFAR_ZIP, BUDGET, EPOCHS, TRIALS.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGEAUTO=.venv/bin/edgeauto
ZIP=${CIFAR_ZIP:-../shared/data/cifar10/cifar10-train.zip}
OUT=${OUT:-runs/cifar10}

$EDGEAUTO run --device host --latency-ms "${BUDGET:-0.5}" --dataset "folder:$ZIP" \
  --space cifar-mbv2 --epochs "${EPOCHS:-4}" --finetune-epochs 1 --trials "${TRIALS:-3}" \
  --out "$OUT"
python3 -c "import json,sys; m=json.load(open(sys.argv[1])); a=m['accuracy']; \
print(f\"test accuracy {a['test']:.4f} (val {a['val']:.4f}), measured {m['latency']['measured_ms']:.3f} ms\")" \
  "$OUT/manifest.json"
