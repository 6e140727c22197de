#!/usr/bin/env bash
# A model for an Android phone over ADB, timed with LiteRT's benchmark_model binary.
#
#   BENCHMARK_MODEL=~/litert/android_aarch64_benchmark_model bash examples/phone_adb.sh
#
# Needs `adb` on PATH, one phone attached with USB debugging on (`adb devices`), and the
# benchmark_model binary for the phone's ABI from the LiteRT releases.
# NOTE: the adb runner is tested against recorded benchmark_model output and a fake adb; it
# has not been run against a real phone by the project yet.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BENCHMARK_MODEL:?set BENCHMARK_MODEL to the benchmark_model binary for the phone}"
EDGEAUTO=.venv/bin/edgeauto

profile=$(mktemp --suffix=.yaml)
sed "s|^  # benchmark_model: .*|  benchmark_model: ${BENCHMARK_MODEL}|" \
  device_profiles/pixel-7.yaml > "$profile"
$EDGEAUTO profile --device "$profile" --space fbnet-lite --dataset mnist5k
$EDGEAUTO run --device "$profile" --latency-ms 2 --dataset mnist5k --out runs/example-phone
