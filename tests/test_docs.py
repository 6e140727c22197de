"""The docs: the MkDocs site builds with ``--strict`` (offline), the README stays short, and
every measured figure in a table names the committed ``benchmarks/results/*.json`` it comes
from (and every named results file exists)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
NAMED = re.compile(r"benchmarks/results/([\w.-]+\.json)")
BARE_JSON = re.compile(r"`([\w.-]+\.json)`")
# A measured-looking number: a decimal, a percentage, or a number with a time unit.
FIGURE = re.compile(r"\d+\.\d+|\d+(?:\.\d+)?\s?%|\b\d+(?:\.\d+)?\s?(?:ms|µs|us|s)\b")


def sections(text: str) -> list[tuple[str, list[str]]]:
    """``(heading, lines)`` per section; ``#`` lines inside code fences are not headings."""
    out: list[tuple[str, list[str]]] = [("(top)", [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            out.append((line.lstrip("#").strip(), []))
        else:
            out[-1][1].append(line)
    return out


def unsourced_rows(text: str) -> list[str]:
    """Table rows holding a figure in a section that names no ``benchmarks/results`` JSON."""
    bad = []
    for heading, lines in sections(text):
        if NAMED.search("\n".join(lines)):
            continue
        for line in lines:
            if not line.startswith("|") or set(line) <= set("|-: "):
                continue
            if FIGURE.search(re.sub(r"[\w.-]+\.json", "", line)):
                bad.append(f"{heading}: {line[:80]}")
    return bad


def _docs() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for p in (README, *PAGES)]


def test_checker_flags_a_figure_without_its_json() -> None:
    table = "| run | ms |\n|---|---|\n| a | 0.418 |\n"
    assert unsourced_rows(f"# Results\n\n{table}") == ["Results: | a | 0.418 |"]
    assert unsourced_rows(f"# R\n\nFrom `benchmarks/results/x.json`:\n\n{table}") == []
    assert unsourced_rows("# R\n\n| name | what |\n|---|---|\n| `run` | search |\n") == []
    fenced = "# R\n\n```\n# not a heading\n```\n\n| a | 12% |\n"
    assert unsourced_rows(fenced) == ["R: | a | 12% |"]


def test_every_table_figure_names_its_json() -> None:
    bad = [f"{p.name}: {row}" for p, text in _docs() for row in unsourced_rows(text)]
    assert not bad, "figures without a benchmarks/results JSON in their section:\n" + "\n".join(bad)


def test_every_named_result_exists() -> None:
    missing = []
    for path, text in _docs():
        names = set(NAMED.findall(text))
        # bare names in table rows of a section that points at benchmarks/results
        for _, lines in sections(text):
            if NAMED.search("\n".join(lines)):
                rows = [line for line in lines if line.startswith("|")]
                names |= {n for row in rows for n in BARE_JSON.findall(row)}
        missing += [f"{path.name}: {n}" for n in sorted(names) if not (RESULTS / n).is_file()]
    assert not missing, f"named but not committed under benchmarks/results/: {missing}"


def test_readme_is_short_and_points_into_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "![report](docs/img/report.png)" in text
    links = re.findall(r"\]\((docs/[\w./-]+?\.md)(?:#[\w-]+)?\)", text)
    assert len(links) >= 5
    assert all((ROOT / link).is_file() for link in links), links


def test_mkdocs_build_is_strict_and_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    result = subprocess.run(
        [*cmd, "-d", str(site)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cli = (site / "cli" / "index.html").read_text()
    # the hook filled the reference from the CLI itself: a subcommand's own option is there
    assert "edgeauto lut import" in cli and "--convert-to" in cli
    assert "&lt;!-- edgeauto-help --&gt;" not in cli and "<!-- edgeauto-help -->" not in cli
