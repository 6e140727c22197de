"""``report.html``: the Markdown report as one self-contained page (images inlined).

The report's Markdown uses a small subset (headings, bullets, pipe tables, images, bold and
code spans), so a converter for that subset is a few lines and needs no dependency; every
image the report links is embedded as a base64 data URI, so the page can be mailed or
opened from a board's SD card without the PNGs beside it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from edgeauto.fileio import write_text

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:2px 8px}"
    "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}code{background:#eee}"
)
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _inline(text: str, root: Path) -> str:
    """Escape, then bold, code spans and images (inlined from ``root``)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return _IMAGE.sub(lambda m: _img(m[1], root / m[2]), out)


def _img(alt: str, path: Path) -> str:
    if not path.is_file() or path.suffix.lower() != ".png":
        return f"<i>[{alt}: {path.name} missing]</i>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def _table(rows: list[str], root: Path) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    body = [c for c in cells if not all(set(x) <= set("-: ") for x in c)]  # drop the rule row
    head, *rest = body
    th = "".join(f"<th>{_inline(c, root)}</th>" for c in head)
    trs = "".join(
        "<tr>" + "".join(f"<td>{_inline(c, root)}</td>" for c in r) + "</tr>" for r in rest
    )
    return f"<table><tr>{th}</tr>{trs}</table>"


def markdown_to_html(text: str, root: Path, title: str) -> str:
    """The report's Markdown subset as a complete HTML page."""
    parts, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            parts.append(_table(lines[i:j], root))
            i = j
            continue
        if m := re.match(r"(#{1,3}) (.*)", line):
            n = len(m[1])
            parts.append(f"<h{n}>{_inline(m[2], root)}</h{n}>")
        elif line.startswith("- "):
            parts.append(f"<li>{_inline(line[2:], root)}</li>")
        elif line.strip():
            parts.append(f"<p>{_inline(line, root)}</p>")
        i += 1
    body = re.sub(
        r"((?:<li>.*?</li>)+)", r"<ul>\1</ul>", "\n".join(parts).replace("</li>\n<li>", "</li><li>")
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_html(path: Path, markdown: str, title: str) -> Path:
    """Write ``report.html`` beside the Markdown report, images inlined."""
    write_text(path, markdown_to_html(markdown, path.parent, title))
    return path
