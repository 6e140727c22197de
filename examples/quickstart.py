"""Search, prune, export and verify a digits classifier for this machine in under a minute.

.venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import edgeauto


def main() -> None:
    manifest = edgeauto.run(
        device="host", latency_ms=0.05, dataset="digits", space="fbnet-micro",
        trials=4, epochs=3, out="runs/quickstart",
        check=False,  # return the manifest even when over budget (else edgeauto.OverBudget)
    )  # fmt: skip
    print(f"within budget: {manifest.within_budget}")
    print(f"accuracy {manifest.accuracy:.3f}")
    print(f"predicted {manifest.predicted_ms:.4f} ms, measured {manifest.measured_ms:.4f} ms")
    print(f"tflite: {manifest.artifact('tflite')}")


if __name__ == "__main__":
    main()
