"""Both reports of a run at once: ``report.md`` (with its PNG charts) and ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeauto.report.html import HTML_REPORT, write_html
from edgeauto.report.markdown import write_markdown


def write_report(path: Path, manifest: Any) -> Path:
    """Write ``report.md`` at ``path`` and ``report.html`` beside it for ``manifest`` (a
    :class:`~edgeauto.manifest.Manifest`), each atomically; the Markdown report's path."""
    write_markdown(path, manifest.data)
    write_html(path.parent / HTML_REPORT, manifest.data)
    return path
