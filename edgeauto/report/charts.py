"""The interactive charts of ``report.html``: Plotly figures as ``<div>`` fragments.

Each chart is returned without plotly.js (``include_plotlyjs=False``): the page inlines the
library once in its head, so two charts cost one copy and the page works offline.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from edgeauto.report.pareto import Point, frontier

#: One look for every chart of the page (the page's own palette, white background).
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 30, "b": 50},
    "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
    "legend": {"orientation": "h", "y": -0.22, "x": 0},
    "hoverlabel": {"font": {"family": "ui-monospace, monospace", "size": 12}},
}
_CONFIG = {"displaylogo": False, "responsive": True}
_BLUE, _ORANGE, _RED, _GREY = "#2563eb", "#f59e0b", "#dc2626", "#6b7280"


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)


def _trial_trace(points: list[Point], archs: dict[int, str], measured: bool) -> go.Scatter:
    """The trials whose latency was measured on the device, or those only predicted."""
    how = "measured" if measured else "predicted"
    return go.Scatter(
        x=[p.ms for p in points], y=[p.accuracy for p in points], mode="markers",
        name=f"trial ({how} latency)",
        marker={"size": 9, "color": _BLUE if measured else _ORANGE,
                "symbol": "circle" if measured else "x"},
        customdata=[[p.number, archs.get(p.number, "?")] for p in points],
        hovertemplate=(f"<b>trial %{{customdata[0]}}</b><br>arch %{{customdata[1]}}<br>"
                       f"%{{x:.4f}} ms ({how})<br>accuracy %{{y:.4f}}<extra></extra>"),
    )  # fmt: skip


def pareto_chart(
    points: list[dict[str, Any]],
    archs: dict[int, str],
    chosen: dict[str, Any] | None,
    budget_ms: float,
) -> str:
    """Every evaluated arch (search accuracy against latency), the Pareto front, the final
    model (``chosen``: ``ms``, ``accuracy``, ``arch``) and the budget line, as a ``<div>``."""
    pts = [Point(**{k: p[k] for k in ("number", "accuracy", "predicted_ms", "measured_ms")})
           for p in points]  # fmt: skip
    fig = go.Figure()
    for measured in (True, False):
        group = [p for p in pts if (p.measured_ms is not None) == measured]
        if group:
            fig.add_trace(_trial_trace(group, archs, measured))
    front = frontier(pts)
    fig.add_trace(go.Scatter(
        x=[p.ms for p in front], y=[p.accuracy for p in front], mode="lines", name="Pareto front",
        line={"dash": "dash", "color": _GREY, "width": 1}, hoverinfo="skip",
    ))  # fmt: skip
    if chosen:
        fig.add_trace(go.Scatter(
            x=[chosen["ms"]], y=[chosen["accuracy"]], mode="markers", name="final model",
            marker={"size": 18, "color": _RED, "symbol": "star", "line": {"width": 1, "color": "white"}},
            customdata=[[chosen["arch"]]],
            hovertemplate=("<b>final model</b> (pruned, fine-tuned)<br>arch %{customdata[0]}<br>"
                           "%{x:.4f} ms (measured)<br>val accuracy %{y:.4f}<extra></extra>"),
        ))  # fmt: skip
    fig.add_vline(x=budget_ms, line={"color": _RED, "dash": "dot", "width": 1.5},
                  annotation_text=f"budget {budget_ms:g} ms", annotation_position="top left")  # fmt: skip
    fig.update_layout(**_LAYOUT, xaxis_title="latency on the device (ms, batch 1)",
                      yaxis_title="validation accuracy")  # fmt: skip
    return _div(fig, "pareto-chart")


def supernet_chart(curve: list[dict[str, Any]]) -> str:
    """The supernet search (``dnas``) per epoch: the derived arch's accuracy, and its expected
    and derived latency on a second axis."""
    epochs = [p["epoch"] for p in curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=[p["accuracy"] for p in curve], name="accuracy",
                             mode="lines+markers", line={"color": _BLUE}))  # fmt: skip
    for key, dash in (("expected_ms", "dot"), ("derived_ms", "dash")):
        name = key.replace("_", " ")
        fig.add_trace(go.Scatter(x=epochs, y=[p[key] for p in curve], name=name, yaxis="y2",
                                 mode="lines+markers", line={"color": _ORANGE, "dash": dash}))  # fmt: skip
    fig.update_layout(**_LAYOUT, xaxis_title="epoch", yaxis_title="accuracy (derived arch)",
                      yaxis2={"title": "latency (ms)", "overlaying": "y", "side": "right"},
                      hovermode="x unified")  # fmt: skip
    fig.update_xaxes(tick0=0, dtick=max(1, len(epochs) // 10))  # whole epochs only
    return _div(fig, "search-chart")


def trials_chart(trials: list[dict[str, Any]], archs: dict[int, str]) -> str:
    """A trial-based search: each trial's accuracy in the order they finished, and the best
    so far."""
    ok = sorted((t for t in trials if t.get("status") == "ok"), key=lambda t: t["number"])
    numbers, acc = [t["number"] for t in ok], [t["accuracy"] for t in ok]
    best = [max(acc[: i + 1]) for i in range(len(acc))]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=numbers, y=acc, mode="markers", name="trial", marker={"size": 9, "color": _BLUE},
        customdata=[[archs.get(n, "?"), t.get("predicted_ms")] for n, t in zip(numbers, ok)],
        hovertemplate=("<b>trial %{x}</b><br>arch %{customdata[0]}<br>"
                       "predicted %{customdata[1]:.4f} ms<br>accuracy %{y:.4f}<extra></extra>"),
    ))  # fmt: skip
    fig.add_trace(go.Scatter(x=numbers, y=best, mode="lines", name="best so far",
                             line={"shape": "hv", "color": _RED}, hoverinfo="skip"))  # fmt: skip
    fig.update_layout(**_LAYOUT, xaxis_title="trial", yaxis_title="search accuracy (proxy)")
    fig.update_xaxes(tick0=0, dtick=max(1, len(numbers) // 10))  # whole trial numbers only
    return _div(fig, "search-chart")
