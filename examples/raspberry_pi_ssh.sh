#!/usr/bin/env bash
# A model for a Raspberry Pi 4 over SSH: measured latency table, search, verification on the board.
#
#   PI=pi@192.168.1.50 bash examples/raspberry_pi_ssh.sh
#
# On the board, once: `python3 -m pip install numpy ai-edge-litert` (the timing script needs
# only those), and from this machine `ssh $PI true` once so its host key is in known_hosts:
# edgeauto always checks host keys and never passes a shell string built from your input.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PI:?set PI=user@host[:port] of the board}"
EDGEAUTO=.venv/bin/edgeauto

# 1. Time every block of the space on the board (resumes where it stopped if the link drops).
#    --validate 20 also times 20 whole networks, which trains the predictor's residual.
$EDGEAUTO profile --device raspberry-pi-4 --host "$PI" --space fbnet-lite --dataset mnist5k \
  --validate 20

# 2. Point a copy of the profile at the board and run. `run` reads the host from the profile.
profile=$(mktemp --suffix=.yaml)
sed "s|^  host: .*|  host: ${PI#*@}|; s|^  user: .*|  user: ${PI%@*}|" \
  device_profiles/raspberry-pi-4.yaml > "$profile"
$EDGEAUTO run --device "$profile" --latency-ms 5 --dataset mnist5k --out runs/example-pi4
# measured_on in manifest.json says "device"; an unreachable board is "emulated" instead
# (host timing x the device/host ratio fitted on shared blocks; report.md gives the fit error).
grep -m1 measured_on runs/example-pi4/manifest.json
