"""The run's story for a reader: ``report.md``, ``report.html`` and their charts.

Rendering only: it reads a written manifest (and the trials for the Pareto chart, and
``deploy.json`` when the run was deployed) and never drives a stage.
"""

from edgeauto.report.html import render_run_dir
from edgeauto.report.write import write_report

__all__ = ["render_run_dir", "write_report"]
