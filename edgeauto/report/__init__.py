"""The run's story for a reader: ``report.md``, ``report.html`` and their charts.

Rendering only: it reads a written manifest (and the trials for the Pareto chart) and never
drives a stage.
"""

from edgeauto.report.markdown import write_report

__all__ = ["write_report"]
